"""Yang et al. 2019: gradients of a BatchNorm MLP explode toward the input at initialisation.

Left: ln ‖∂L/∂h_l‖² against the layer for the deepest nets on probe batches of one size (line: the
median over seeds), with the mean-field slope −ln λ(φ, B) drawn dashed through each curve's mean.
Middle: the fitted per-layer factor λ (``signal_decay``) against the batch size B, one marker per
net, over the theory's curves λ(φ, B) (``bn_signal_decay_theory``; dotted: linear φ, (B−2)/(B−3)).
Right: training accuracy against SGD steps, shallow (dashed) and deep (solid) nets per activation:
the deep BN-ReLU net, whose gradients grow by λ^(L−1) from its last layer to its first, does not
train where the shallow one does.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns


def growth(results) -> pd.DataFrame:
    """Per (activation, probe_batch) of the deepest nets: the measured per-layer factor (geometric
    mean over seeds, and its extremes) and the theory's."""
    runs = results.runs
    deep = runs[runs["depth"] == runs["depth"].max()]
    log = np.log(deep["signal_decay"].astype(float))
    table = deep.assign(log=log).groupby(["activation", "probe_batch"]).agg(
        measured=("log", "mean"), lowest=("log", "min"), highest=("log", "max"),
        theory=("bn_signal_decay_theory", "first"))
    return table.assign(measured=np.exp(table["measured"]), lowest=np.exp(table["lowest"]),
                        highest=np.exp(table["highest"]))


def final_accuracy(results) -> pd.DataFrame:
    """Final training accuracy per (activation, depth): the worst and best seed. Training does not
    read probe_batch, so nets that differ only in it are one net."""
    runs = results.runs
    runs = runs[runs["probe_batch"] == runs["probe_batch"].min()]
    return runs.groupby(["activation", "depth"])["final_train_accuracy"].agg(["min", "max"])


def _shown_batch(runs) -> int:
    """The probe batch of the left panel: 32 if measured, else the middle one."""
    batches = sorted(runs["probe_batch"].unique())
    return 32 if 32 in batches else int(batches[len(batches) // 2])


def _layers_panel(ax, results, colours):
    from satbench.figures._common import at_init

    runs = results.runs
    depth, batch = int(runs["depth"].max()), _shown_batch(runs)
    layers = at_init(results)
    layers = layers[(layers["depth"] == depth) & (layers["probe_batch"] == batch)]
    layers = layers.assign(log_s2=2 * np.log(layers["signal_norm"].astype(float)))
    table = growth(results)
    for act, g in layers.groupby("activation"):
        curve = g.groupby("layer")["log_s2"].median()
        ax.plot(curve.index, curve.to_numpy(), color=colours[act], label=act)
        fitted = curve.loc[2:]  # the fit's layers (``probes.decay_rate``)
        slope = -np.log(table.loc[(act, batch), "theory"])
        line = fitted.mean() + slope * (fitted.index.to_numpy() - fitted.index.to_numpy().mean())
        ax.plot(fitted.index, line, color=colours[act], linestyle="--", linewidth=1)
    ax.set(xlabel="layer l", ylabel="ln ‖∂L/∂h_l‖² at init",
           title=f"depth {depth}, probe batch B = {batch} (dashed: theory's slope −ln λ)")
    ax.legend(fontsize=8)


def _batch_panel(ax, results, colours):
    from satbench import batchnorm_theory

    runs = results.runs
    deep = runs[runs["depth"] == runs["depth"].max()]
    grid = np.unique(np.geomspace(5, 2 * deep["probe_batch"].max(), 60).astype(int))
    for act, g in deep.groupby("activation"):
        ax.plot(grid, [batchnorm_theory.gradient_growth(act, int(b)) for b in grid], color=colours[act], label=act)
        ax.scatter(g["probe_batch"], g["signal_decay"], color=colours[act], edgecolor="k", zorder=3, s=25)
    ax.plot(grid, (grid - 2) / (grid - 3), color="grey", linestyle=":", label="linear φ")
    ax.set(xscale="log", xlabel="batch size B (probe batch)", ylabel="per-layer factor λ of ‖∂L/∂h_l‖²",
           title="λ: measured (markers) vs mean-field theory (lines)")
    ax.axhline(np.pi / (np.pi - 1), color="k", linewidth=0.6, linestyle="--")
    ax.legend(fontsize=8)


def _training_panel(ax, results, colours):
    runs = results.runs
    runs = runs[runs["probe_batch"] == runs["probe_batch"].min()]
    curves = results.with_config("curves")
    curves = curves[curves["config_id"].isin(runs["config_id"])]
    depths = sorted(runs["depth"].unique())
    styles = {d: "--" if d != depths[-1] else "-" for d in depths}
    for (act, depth), g in curves.groupby(["activation", "depth"]):
        median = g.groupby("step")["train_accuracy"].median()
        ax.plot(median.index, median.to_numpy(), color=colours[act], linestyle=styles[depth],
                label=f"{act}, {depth} layers")
    ax.set(xlabel="SGD step", ylabel="training accuracy (median of seeds)", ylim=(0, 1.02),
           title=f"SGD lr {runs['learning_rate'].iloc[0]:g}, batch {int(runs['batch_size'].iloc[0])}")
    ax.legend(fontsize=7)


def plot(results):
    from satbench.figures._common import palette, style

    style()
    colours = palette(results.runs["activation"])
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6), constrained_layout=True)
    _layers_panel(axes[0], results, colours)
    _batch_panel(axes[1], results, colours)
    _training_panel(axes[2], results, colours)
    runs = results.runs
    fig.suptitle(f"BatchNorm MLPs (width {int(runs['width'].iloc[0])}, {runs['init'].iloc[0]} init) on "
                 f"{runs['dataset'].iloc[0]}: gradient explosion at initialisation and its cost")
    sns.despine(fig)
    return fig


#: |measured/theory − 1| allowed per (φ, B), seeds' geometric mean (see ``claims``)
GROWTH_TOLERANCE = 0.05


def claims(results):
    """Thresholds, from seeds 0–1 (the quick profile: width 128, depth 48; factors fitted over
    layers 2–48): measured/theory − 1 of the seeds' geometric mean ranged over −1.7 % … +1.9 %
    across relu, tanh, leaky_relu:0.5 × B = 8, 32, 128 (single seeds to ±3.2 %), so a 5 % band; the
    factor falls from B = 8 to 128 by ≥ 0.13 for every φ (asked > 0.05); relu > tanh > leaky_relu:0.5
    at every B, as the theory orders them (its smallest gap, tanh − leaky_relu:0.5 at B = 8, is
    0.076; measured ≥ 0.071), asked only strictly. Training (200 SGD steps at lr 0.01): the depth-48
    BN-ReLU nets end at 0.10–0.12 training accuracy, the depth-8 ones at 0.89–0.92, the depth-48
    leaky_relu:0.5 ones at 0.93–0.94, judged by the shared near-chance and trained bars
    (``_common``). Seeds 2–3, not used to set them: worst −2.8 % (tanh, B = 8), drops ≥ 0.11,
    smallest order gap 0.033, relu 0.14–0.19 vs 0.91, leaky_relu:0.5 0.94–0.96: every claim holds."""
    from satbench import batchnorm_theory
    from satbench.figures._common import near_chance_below, trained_above

    table = growth(results)
    ratio = table["measured"] / table["theory"] - 1
    worst = ratio.abs().idxmax()
    batches = sorted(table.index.get_level_values("probe_batch").unique())
    small, large = batches[0], batches[-1]
    by_batch = table["measured"].unstack("probe_batch")
    drop = by_batch[small] - by_batch[large]
    order = ["relu", "tanh", "leaky_relu:0.5"]
    present = [a for a in order if a in by_batch.index]
    gaps = [by_batch.loc[a] - by_batch.loc[b] for a, b in zip(present, present[1:])]
    smallest_gap = float(min(g.min() for g in gaps)) if gaps else float("nan")
    acc = final_accuracy(results)
    depths = sorted(results.runs["depth"].unique())
    shallow, deep = depths[0], depths[-1]
    runs = results.runs
    chance, trained = near_chance_below(runs), trained_above(runs)
    relu_deep, relu_shallow = acc.loc[("relu", deep)], acc.loc[("relu", shallow)]
    leaky = acc.loc[("leaky_relu:0.5", deep)] if ("leaky_relu:0.5", deep) in acc.index else pd.Series(
        {"min": float("nan"), "max": float("nan")})
    # the training batches' own λ: BN normalises each step with batch_size examples
    relu_theory = batchnorm_theory.gradient_growth("relu", int(runs["batch_size"].iloc[0]))
    return [
        dict(claim=f"the measured per-layer factor λ of ‖∂L/∂h_l‖² (depth {deep}, seeds' geometric mean) is the "
                   f"mean-field λ(φ, B) within {GROWTH_TOLERANCE:.0%} for every activation and probe batch",
             paper="gradient explosion theorem: ‖∂L/∂h‖² grows by λ(φ, B) per layer (ReLU, B → ∞: π/(π−1))",
             measured=f"{len(ratio)} (φ, B): worst {worst[0]}, B = {worst[1]}: {table.loc[worst, 'measured']:.3f} vs "
                      f"{table.loc[worst, 'theory']:.3f} ({ratio[worst]:+.1%})",
             holds=bool(ratio.abs().max() <= GROWTH_TOLERANCE)),
        dict(claim=f"smaller batches explode faster: λ(B = {small}) exceeds λ(B = {large}) by > 0.05 for every φ",
             paper="λ decreases with B toward its B → ∞ limit",
             measured=", ".join(f"{a}: {by_batch.loc[a, small]:.3f} vs {by_batch.loc[a, large]:.3f}"
                                for a in by_batch.index),
             holds=bool(drop.min() > 0.05)),
        dict(claim="the nearer φ is to linear, the weaker the explosion: λ(relu) > λ(tanh) > λ(leaky_relu:0.5) "
                   "at every B, as the theory orders them",
             paper="explosion is intrinsic to BN with a nonlinearity; it vanishes only for linear φ at large B",
             measured=f"smallest gap {smallest_gap:.3f}; B = {large}: "
                      + ", ".join(f"{a} {by_batch.loc[a, large]:.3f}" for a in present),
             holds=bool(len(present) == len(order) and smallest_gap > 0)),
        dict(claim=f"a {deep}-layer BN-ReLU MLP stays near chance (< {chance:.3f} training accuracy) where a "
                   f"{shallow}-layer one trains (> {trained:.3f})",
             paper="deep vanilla BN nets are untrainable at initialisation's gradient explosion (Fig. 2)",
             measured=f"depth {deep}: {relu_deep['min']:.3f}–{relu_deep['max']:.3f}, depth {shallow}: "
                      f"{relu_shallow['min']:.3f}–{relu_shallow['max']:.3f} (theory at the training batch: "
                      f"λ^{deep - 1} = {relu_theory ** (deep - 1):.1e})",
             holds=bool(relu_deep["max"] < chance and relu_shallow["min"] > trained)),
        dict(claim=f"with φ nearer linear the {deep}-layer BN net trains (leaky_relu:0.5 > {trained:.3f})",
             paper="explosion, and with it untrainability, weakens as φ approaches linear",
             measured=f"{leaky['min']:.3f}–{leaky['max']:.3f}",
             holds=bool(leaky["min"] > trained)),
    ]


if __name__ == "__main__":
    from satbench.figures._common import standalone

    standalone("yang2019", plot)
