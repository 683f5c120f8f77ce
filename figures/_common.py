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
