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


# Thresholds shared by the claims. Each is fixed by a rule stated here, not by the measurement it
# judges; REPRODUCTIONS.md ("How the claims' thresholds are set") lists them.

def chance_accuracy(runs) -> float:
    """1/K, the accuracy of guessing, for the (one) dataset of these runs."""
    from satbench import data

    return 1.0 / data.describe(str(runs["dataset"].iloc[0])).n_classes


def near_chance_below(runs) -> float:
    """A net "stays near chance" below a quarter of the way from chance to perfect accuracy
    (0.325 for 10 classes)."""
    c = chance_accuracy(runs)
    return c + (1 - c) / 4


def trained_above(runs) -> float:
    """A net "trains" beyond three quarters of the way from chance to perfect accuracy
    (0.775 for 10 classes)."""
    c = chance_accuracy(runs)
    return c + 3 * (1 - c) / 4


def slope_sigma(width: int, layers: int, variance: float | None = None) -> float:
    """Standard error of one net's fitted per-layer log factor (``grad_decay``'s log) from
    finite width alone: log ‖·‖² moves by a random step of variance ``variance`` per layer
    (default 5/width: ``log_step_variance`` of ReLU, Hanin 2018), and the least-squares slope of
    a random walk over m steps has variance ≈ 6σ²/(5m) (exactly 6(m² + m + 1)/(5m(m + 1)(m + 2))
    per unit step variance)."""
    import math

    variance = 5 / width if variance is None else variance
    return math.sqrt(6 * variance / (5 * max(layers, 1)))


def log_step_variance(activation: str, sigma_w2: float, sigma_b2: float, width: int) -> float:
    """Per-layer variance of the log of the back-propagated ‖∂L/∂h_l‖² at finite width N, at q*.

    One layer multiplies ‖δ‖² by R = (σ_w²/N) Σ_i φ'(h_i)² z_i², z_i ~ N(0, 1) the components of
    Wᵀδ/‖δ‖ (independent of the h_i in the mean-field picture), so E R = χ₁ and
    Var R / χ₁² = (3 E[φ'⁴]/E[φ'²]² − 1)/N = (2 + 3κ)/N, κ = Var[φ'(h)²]/E[φ'(h)²]² at q*
    (ReLU: κ = 1, 5/N). The log of R then has this variance and mean ln χ₁ − (2 + 3κ)/(2N):
    a fit of log ‖·‖² over layers measures the geometric mean of the per-layer factor, below χ₁
    by that much per layer."""
    import jax

    from satbench import theory

    with jax.enable_x64(True):
        q = float(theory.q_star(activation, sigma_w2, sigma_b2))
        mu1, mu2 = (float(theory.jacobian_mu(activation, q, k)) for k in (1, 2))
    return (2 + 3 * (mu2 / mu1**2 - 1)) / width


def seed_standard_error(values, by) -> float:
    """Standard error of a per-cell mean over seeds, from the seed-to-seed standard deviation
    pooled over the cells ``by`` groups into (ddof 1 per cell): σ_pooled / √(seeds per cell)."""
    import numpy as np

    groups = [np.asarray(g, float) for _, g in values.groupby(by)]
    dof = sum(len(g) - 1 for g in groups)
    if dof <= 0:
        return float("nan")
    pooled = np.sqrt(sum(((g - g.mean()) ** 2).sum() for g in groups) / dof)
    return float(pooled / np.sqrt(np.mean([len(g) for g in groups])))
