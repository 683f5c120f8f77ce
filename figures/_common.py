"""Shared helpers of the figure scripts: a standalone ``main`` and small style rules."""

from __future__ import annotations

import argparse
from pathlib import Path

import seaborn as sns


def style() -> None:
    """One look for every figure (set per figure, not at import)."""
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)


def standalone(name: str, plot) -> None:
    """``python figures/NAME.py RESULTS_DIR``: draw this figure into RESULTS_DIR/figures."""
    from satbench import plots, store

    parser = argparse.ArgumentParser(description=f"draw {name} from a satbench results folder")
    parser.add_argument("results", type=Path)
    args = parser.parse_args()
    for path in plots.save(plot(store.load_results(args.results)), args.results / "figures", name):
        print(f"wrote {path}")


def at_init(results, table: str = "layers"):
    """Rows of ``table`` at step 0, joined with their config fields."""
    df = results.with_config(table)
    return df[df["step"] == 0]


def palette(names) -> dict:
    """A fixed colour per activation, the same in every figure, in a fixed legend order."""
    preferred = ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "gelu", "silu",
                 "softplus", "softsign", "hard_tanh", "erf", "linear"]
    colours = sns.color_palette("tab10", 10) + sns.color_palette("Set2", 8)
    rank = {n: i for i, n in enumerate(preferred)}
    ordered = sorted(set(names), key=lambda n: (rank.get(n.split(":")[0], len(rank)), n))
    return {n: colours[rank.get(n.split(":")[0], len(preferred) + i) % len(colours)]
            for i, n in enumerate(ordered)}


def crossing_step(steps, losses, target: float) -> float:
    """First step where the loss reaches ``target``, interpolating log(loss) linearly between
    the logged steps around the crossing; inf if never reached. Finer than the logging grid,
    so learning times of close configs do not tie at the same logged step."""
    import numpy as np

    steps, losses = np.asarray(steps, float), np.asarray(losses, float)
    hit = np.flatnonzero(losses <= target)
    if not len(hit):
        return np.inf
    i = hit[0]
    if i == 0 or not np.isfinite(losses[i - 1]):
        return float(steps[i])
    a, b = np.log(losses[i - 1]), np.log(losses[i])
    return float(steps[i - 1] + (steps[i] - steps[i - 1]) * (a - np.log(target)) / (a - b))


def learning_times(results):
    """Steps to each config's ``target_loss`` (``crossing_step``; inf: not reached or diverged),
    one row per config with its fields."""
    import numpy as np
    import pandas as pd

    curves = results.with_config("curves").sort_values(["config_id", "step"])
    times = {cid: crossing_step(g["step"], g["train_loss"], g["target_loss"].iloc[0])
             for cid, g in curves.groupby("config_id")}
    runs = results.runs.copy()
    runs["time"] = runs["config_id"].map(pd.Series(times))
    runs.loc[runs["diverged"].astype(bool), "time"] = np.inf
    return runs


def plain_log_ticks(axis) -> None:
    """Log-axis tick labels as plain numbers (40, 100, 200) rather than 4×10¹."""
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.1e}"[0] in "246" else ""))
