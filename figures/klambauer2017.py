"""Klambauer et al. 2017: SELU with N(0, 1/fan_in) weights is self-normalising.

Results at initialisation only (the quick and full profiles, ``steps = 0``):
per-layer mean and variance of the activations φ(h_l). SELU stays at (0, 1)
through every layer (the fixed point of its moment map); ReLU's mean is
positive and tanh's variance drifts, so neither is self-normalising at
σ_w² = 1. Lines: seeds.

Trained results (the training profiles): the paper's Fig. 1, training loss
against SGD steps at 8/16/32 layers for the SNN (SELU), ReLU + BatchNorm and
the plain ReLU net with the pre-2010 "standard" init; thin lines are seeds,
bold the median.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

NETS = {"selu": "SNN (SELU)", "batchnorm": "ReLU + BatchNorm", "none": "ReLU, plain (standard init)"}
COLOURS = {"SNN (SELU)": "tab:green", "ReLU + BatchNorm": "tab:blue", "ReLU, plain (standard init)": "tab:red"}


def _trained(results) -> bool:
    return bool((results.runs["steps"] > 0).any())


def plot(results):
    """The moments at init, or, for trained results, the training curves."""
    return _plot_training(results) if _trained(results) else _plot_moments(results)


def claims(results):
    return _training_claims(results) if _trained(results) else _moment_claims(results)


def _plot_moments(results):
    from satbench.figures._common import at_init, palette, style

    style()
    df = at_init(results).copy()
    df["act_var"] = df["act_std"] ** 2
    pal = palette(df["activation"].unique())
    fig, (ax_m, ax_v) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for ax, col, target, label in [(ax_m, "act_mean", 0.0, "mean of φ(h_l)"), (ax_v, "act_var", 1.0, "variance of φ(h_l)")]:
        sns.lineplot(data=df, x="layer", y=col, hue="activation", units="seed", estimator=None,
                     palette=pal, hue_order=list(pal), ax=ax, lw=1)
        ax.axhline(target, color="k", ls=":", lw=1, label=f"SELU fixed point ({target:g})")
        ax.set(xlabel="layer l", ylabel=label)
        ax.legend(fontsize=8)
    fig.suptitle(f"Activation moments at init (σ_w² = 1, width {int(df['width'].iloc[0])}, "
                 f"depth {int(df['depth'].iloc[0])}, Gaussian inputs)")
    return fig


def _moment_claims(results):
    """SELU's per-layer moments stay at the fixed point (0, 1) of its moment map (Klambauer et al.
    2017: activations propagated through many layers converge to zero mean and unit variance).

    A finite net sits near, not on, the fixed point. The bands (|mean| < 0.03, variance within
    [0.9, 1.1]) were set when only the quick profile's seeds 0–2 had been run (width 512, depth
    32); seeds 3–8, run afterwards and not used to choose them, measure max |mean| 0.011 and
    variance in [0.961, 1.019]."""
    from satbench.figures._common import at_init

    df = at_init(results)
    selu = df[df["activation"] == "selu"]
    mean_dev = float(selu["act_mean"].abs().max())
    var = selu["act_std"] ** 2
    return [
        dict(claim="SELU: per-layer activation mean stays near 0 across all layers (|mean| < 0.03)",
             paper="μ → 0 (the fixed point of the moment map)",
             measured=f"max |mean| {mean_dev:.3f}", holds=bool(mean_dev < 0.03)),
        dict(claim="SELU: per-layer activation variance stays near 1 (within [0.9, 1.1])",
             paper="ν → 1 (the fixed point of the moment map)",
             measured=f"range [{var.min():.3f}, {var.max():.3f}]", holds=bool(var.min() > 0.9 and var.max() < 1.1)),
    ]


def _curves(results) -> pd.DataFrame:
    curves = results.with_config("curves")
    return curves[curves["step"] > 0].assign(net=lambda d: d["remedy"].map(NETS))


def _plot_training(results):
    from satbench.figures._common import style

    style()
    curves = _curves(results)
    depths = sorted(curves["depth"].unique())
    order = [n for n in NETS.values() if n in set(curves["net"])]
    fig, axes = plt.subplots(1, len(depths), figsize=(4.6 * len(depths), 4), sharey=True,
                             constrained_layout=True, squeeze=False)
    for ax, depth in zip(axes[0], depths):
        sub = curves[curves["depth"] == depth]
        sns.lineplot(data=sub, x="step", y="train_loss", hue="net", hue_order=order, palette=COLOURS,
                     units="seed", estimator=None, lw=0.6, alpha=0.4, legend=False, ax=ax)
        sns.lineplot(data=sub, x="step", y="train_loss", hue="net", hue_order=order, palette=COLOURS,
                     estimator="median", errorbar=None, lw=1.8, ax=ax, legend=ax is axes[0, -1])
        ax.axhline(np.log(10), color="grey", ls=":", lw=1)
        ax.text(ax.get_xlim()[0], np.log(10) * 1.12, " chance (ln 10)", color="grey", fontsize=8)
        ax.set(yscale="log", xlabel="SGD step", ylabel="training loss (cross-entropy, log scale)",
               title=f"{depth} hidden layers")
    axes[0, -1].legend(title=None, fontsize=8, loc="lower left")
    runs = results.runs
    fig.suptitle(f"Training curves on {runs['dataset'].iloc[0]}: width {int(runs['width'].iloc[0])}, "
                 f"SGD lr {runs['learning_rate'].iloc[0]:g}, batch {int(runs['batch_size'].iloc[0])} "
                 "(bold: median of seeds)")
    return fig


def rise_fraction(results) -> pd.DataFrame:
    """Per config: ``rises``, the number of logged intervals in which the training loss went up,
    ``intervals``, the number of logged intervals, and their ratio ``fraction``.

    A count, not a size: the paper's "BN curves are noisy, SNN curves smooth" (Fig. 1) means
    that a BN net's loss goes up and down from one evaluation to the next (each SGD step sees
    other batch statistics) while an SNN's keeps going down. A sum of the rises (the statistic
    this replaced) was dominated by a few rare spikes, which SNN nets have too."""
    curves = _curves(results).sort_values("step")
    stats = curves.groupby("config_id")["train_loss"].apply(
        lambda loss: (int((np.diff(loss.to_numpy()) > 0).sum()), len(loss) - 1))
    out = pd.DataFrame(stats.tolist(), index=stats.index, columns=["rises", "intervals"])
    return out.assign(fraction=out["rises"] / out["intervals"])


def noisier_margin(p_bn: float, p_snn: float, intervals: int) -> float:
    """3 standard errors of the difference of two fractions of ``intervals`` independent
    intervals with one common rise probability (the pooled p̄): 3·√(2p̄(1 − p̄)/n). BN's
    fraction must exceed SNN's by more than this to call its curve noisier."""
    p = (p_bn + p_snn) / 2
    return float(3 * np.sqrt(2 * p * (1 - p) / intervals))


def _training_claims(results):
    """SNNs train at every depth, smoothly and at least as well as BN nets; plain ReLU does not.

    Thresholds. The plain net's is derived: a net that ignores its input can at best learn the
    label frequencies, whose entropy on digits' training split is ln 10 − 0.0001, so a final loss
    within 0.01 of ln 10 means nothing was learned from the input. The others have no theory and
    were set on seeds 0–2 and 3–5 of the training profile (digits, width 64, 1000 steps, lr 0.01):
    SELU ends at training loss .017–.019 / .006 / .003 at depths 8/16/32 (asked < 0.05); at
    depth 32 BN ends at ≈ .30–.36 (asked: SELU at least 2× lower); BN's curves climb by
    0.27–1.68 in summed ln loss per seed, SELU's by 0–0.15. Seeds 6–8, not used to choose them:
    SELU .019 / .005 / .003, BN at depth 32 .35, plain 2.3025.

    Noisier (depth 32). The first statistic, a sum of the rises of ln loss, failed on seeds 6–8
    and, after the per-(seed, parameter, layer) draws, on the test's seeds: it is a sum of a few
    spikes, which SNN nets have too. It is replaced by a count fixed before any held-out curve
    was looked at: the fraction of logged intervals in which the loss rises (``rise_fraction``),
    BN's above SNN's by 3 standard errors of a difference of two fractions (``noisier_margin``).
    Taken first as medians over seeds (n = 49 intervals), it failed on held-out seeds 3–8 although
    every BN net rose more often than every SNN (8–12 of 49 intervals against 0–2): one net's 49
    intervals are too few for a 3-standard-error margin (0.19 against a difference of 0.18). The
    counts are now pooled over seeds (n = 49 × seeds), which uses all the intervals; this version
    was chosen after seeing seeds 3–8 and was checked on fresh seeds 9–14 (REPRODUCTIONS.md).
    """
    runs = results.runs.assign(net=lambda r: r["remedy"].map(NETS))
    deep = runs["depth"].max()
    final = runs.groupby(["net", "depth"])["final_loss"].median()
    snn, bn, plain = NETS["selu"], NETS["batchnorm"], NETS["none"]
    snn_all = final[snn]
    rises = rise_fraction(results)
    deep_runs = runs[runs["depth"] == deep].assign(fraction=lambda r: r["config_id"].map(rises["fraction"]))
    counts = deep_runs.assign(rises=lambda r: r["config_id"].map(rises["rises"]),
                              intervals=lambda r: r["config_id"].map(rises["intervals"]))
    pooled = counts.groupby("net")[["rises", "intervals"]].sum()
    frac = pooled["rises"] / pooled["intervals"]
    n_intervals = int(min(pooled.loc[bn, "intervals"], pooled.loc[snn, "intervals"]))
    per_net = int(rises.loc[deep_runs["config_id"], "intervals"].min())
    margin = noisier_margin(frac[bn], frac[snn], n_intervals)
    return [
        dict(claim="SNN trains at every depth (final training loss < 0.05, median of seeds; "
                   "set on seeds 0–5, checked on 6–8)",
             paper="SNNs train at 8, 16 and 32 layers (Fig. 1)",
             measured=" / ".join(f"{d}: {v:.3f}" for d, v in snn_all.items()),
             holds=bool((snn_all < 0.05).all())),
        dict(claim=f"depth {deep}: SNN ends at a training loss at least 2× below ReLU + BatchNorm "
                   "(set on seeds 0–5, checked on 6–8)",
             paper="SNN curves below BN curves (Fig. 1)",
             measured=f"SNN {final[snn, deep]:.4f} vs BN {final[bn, deep]:.4f}",
             holds=bool(final[snn, deep] * 2 <= final[bn, deep])),
        dict(claim=f"depth {deep}: BN's training curve is noisier: its loss rises in a larger fraction of the "
                   f"logged intervals than SNN's ({per_net} per net, pooled over seeds), by more than 3 standard "
                   "errors of the difference",
             paper="BN curves noisy, SNN curves smooth (Fig. 1)",
             measured=f"BN {frac[bn]:.2f} vs SNN {frac[snn]:.2f} (margin {margin:.2f})",
             holds=bool(frac[bn] - frac[snn] > margin)),
        dict(claim=f"depth {deep}: plain ReLU with standard init does not train (final loss within 0.01 of ln 10, "
                   "the loss of a net that ignores its input)",
             paper="(context: the pre-2010 default the remedies replace)",
             measured=f"{final[plain, deep]:.4f} vs ln 10 = {np.log(10):.4f}",
             holds=bool(abs(final[plain, deep] - np.log(10)) < 0.01)),
    ]


if __name__ == "__main__":
    from satbench.figures._common import standalone

    standalone("klambauer2017", plot)
