"""Xiao, Bahri, Sohl-Dickstein, Schoenholz & Pennington 2018, trainability: a vanilla tanh CNN (no
normalisation, no skips) hundreds of layers deep trains with delta-orthogonal kernels at criticality,
and does not off criticality or with Gaussian kernels at the same depth.

Why, in mean-field terms: off criticality the inputs' correlations relax to a fixed point within a few
ξ_c layers (6ξ_c = 57 ordered, 130 chaotic at σ_b² = 2e-5), so at depth 256 every image reaches the
readout as the same (ordered) or an equally decorrelated (chaotic) pattern. At criticality the
correlation between positions is a set of Fourier modes, each multiplied per layer by the kernel's
variance profile seen in frequency space: a delta kernel's profile is flat (every mode survives), a
Gaussian kernel's falls below 1 away from the zero frequency ((1 + 2cos(2π/8))/3 ≈ 0.80 per layer for
the lowest mode of an 8-pixel side, 1e-24 after 256 layers), so only the image's mean survives.

The quick profile's readout sees every position (``readout = "flatten"``): with a global average
pool a near-linear tanh (q* = 0.026) at init passes the readout only per-pixel functions averaged
over positions; learning must first grow the delta kernels' off-centre taps from zero, and a
depth-256 net did not within 600 steps on 2 cores.

Panels: train accuracy against SGD step at the deepest depth (mean over seeds); final train accuracy
of every net against σ_w², with the thresholds the claims use.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from satbench.figures.xiao2018 import KERNEL_COLOURS, KERNEL_STYLES, PHASE_COLOURS, critical_sigma_w2

#: the claims read nets at least this deep
MIN_DEPTH = 256


def trained_table(results) -> pd.DataFrame:
    """Trained nets (steps > 0) of depth ≥ ``MIN_DEPTH``, one row per config."""
    runs = results.runs
    return runs[(runs["steps"] > 0) & (runs["depth"] >= MIN_DEPTH)]


def _curves_panel(ax, results, trained):
    curves = results.with_config("curves")
    deepest = int(trained["depth"].max())
    sub = curves[curves["config_id"].isin(trained.loc[trained["depth"] == deepest, "config_id"])]
    for (init, sw2), g in sub.groupby(["init", "sigma_w2"]):
        mean = g.groupby("step")["train_accuracy"].mean()
        ls, lw = KERNEL_STYLES.get(init, (":", 1.0))
        phase = g["phase"].iloc[0]
        ax.plot(mean.index, mean.to_numpy(), ls, lw=lw, marker="o", ms=3, color=PHASE_COLOURS.get(phase, "grey"),
                label=f"{init}, σ_w²={sw2:g} ({phase})")
    ax.set(xlabel="SGD step", ylabel="train accuracy (mean over seeds)", ylim=(0, 1.02),
           title=f"training at depth {deepest}")
    ax.legend(fontsize=7)


def _final_panel(ax, results, trained):
    from satbench.figures._common import near_chance_below, plain_log_ticks, trained_above

    runs = results.runs
    for (init, depth), g in trained.groupby(["init", "depth"]):
        ls, lw = KERNEL_STYLES.get(init, (":", 1.0))
        mean = g.groupby("sigma_w2")["final_train_accuracy"].mean()
        ax.plot(mean.index, mean.to_numpy(), ls, lw=lw, color=KERNEL_COLOURS.get(init, "grey"),
                alpha=0.4 + 0.6 * (depth == trained["depth"].max()), label=f"{init}, L={depth} (mean)")
        ax.plot(g["sigma_w2"], g["final_train_accuracy"], "o", ms=5, color=KERNEL_COLOURS.get(init, "grey"))
    ax.axhline(trained_above(runs), color="black", ls="--", lw=1, label="trains above")
    ax.axhline(near_chance_below(runs), color="grey", ls=":", lw=1, label="near chance below")
    ax.axvline(critical_sigma_w2(runs), color="black", lw=0.8, alpha=0.5)
    ax.set(xscale="log", ylim=(0, 1.02), xlabel="σ_w² (log; vertical line: χ₁ closest to 1)",
           ylabel="final train accuracy (dots: each net)", title="after training, by σ_w²")
    ax.set_xticks(sorted(trained["sigma_w2"].unique()))
    plain_log_ticks(ax.xaxis)
    ax.legend(fontsize=7)


def plot(results):
    from satbench.figures._common import style

    style()
    runs = results.runs
    trained = trained_table(results)
    if trained.empty:  # a sweep too shallow for the claims still gets its curves
        trained = runs[runs["steps"] > 0]
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.5), constrained_layout=True)
    _curves_panel(axes[0], results, trained)
    _final_panel(axes[1], results, trained)
    fig.suptitle(f"Vanilla tanh CNN, circular padding, {int(runs['channels'].iloc[0])} channels, "
                 f"{runs['dataset'].iloc[0]}, σ_b² = {runs['sigma_b2'].iloc[0]:g}, readout "
                 f"{runs['readout'].iloc[0]}: only delta-orthogonal kernels at criticality train")
    return fig


def claims(results):
    """On every seed at depth ≥ 256, with the shared accuracy bars (``_common.trained_above``: three
    quarters of the way from chance to 1; ``near_chance_below``: a quarter): delta-orthogonal kernels at
    the sweep's σ_w² closest to criticality train; off criticality nets of either kernel stay near
    chance; Gaussian kernels at that σ_w² stay below the trains bar (the paper: they train far slower)."""
    from satbench.figures._common import near_chance_below, trained_above

    runs = results.runs
    trained = trained_table(results)
    alive, dead = trained_above(runs), near_chance_below(runs)
    sw2 = critical_sigma_w2(runs)
    critical = trained["sigma_w2"] == sw2
    good = trained[critical & (trained["init"] == "delta_orthogonal")]
    slow = trained[critical & (trained["init"] == "gaussian")]
    off = trained[~critical]

    def accuracies(t):
        return ", ".join(f"{i[:5]}. σ_w²={s:g} L={d} seed {k}: {a:.2f}" for i, s, d, k, a in
                         zip(t["init"], t["sigma_w2"], t["depth"], t["seed"], t["final_train_accuracy"]))

    def every(t, test):
        return bool(len(t) and test(t["final_train_accuracy"]).all())

    return [
        dict(claim=f"depth ≥ {MIN_DEPTH}: delta-orthogonal kernels at criticality (σ_w²={sw2:g}) train: final "
                   f"train accuracy > {alive:.3f} on every seed",
             paper="10,000-layer vanilla CNNs train with delta-orthogonal kernels at criticality",
             measured=accuracies(good) or "not measured", holds=every(good, lambda a: a > alive)),
        dict(claim=f"depth ≥ {MIN_DEPTH}: off criticality nets of either kernel stay near chance: final train "
                   f"accuracy < {dead:.3f} on every seed",
             paper="beyond about 6ξ_c layers off criticality signals do not propagate and nets do not train",
             measured=accuracies(off) or "not measured", holds=every(off, lambda a: a < dead)),
        dict(claim=f"depth ≥ {MIN_DEPTH}: Gaussian kernels at criticality do not train in the same steps: final "
                   f"train accuracy < {alive:.3f} on every seed",
             paper="at criticality, Gaussian (non-delta) kernels train far slower than delta-orthogonal ones: "
                   "their spatial (non-uniform Fourier) modes decay with depth",
             measured=accuracies(slow) or "not measured", holds=every(slow, lambda a: a < alive)),
    ]


if __name__ == "__main__":
    from satbench.figures._common import standalone

    standalone("xiao2018_training", plot)
