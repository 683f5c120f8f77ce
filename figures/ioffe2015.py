"""Ioffe & Szegedy 2015, Fig. 1: a 3×100 sigmoid MLP with and without BatchNorm.

(a) Test accuracy against SGD steps (log scale), one thin line per seed and
the median bold: the BN net is far ahead early and at least level at the
end. (b, c) The 15th, 50th and 85th percentiles over the probe batch of one
sigmoid input in the last hidden layer (its first unit), for the first seed:
without BN the distribution widens and its median wanders as the layers
below learn (internal covariate shift); with BN it stays near the
standardised band [−1, 1] that BN gives it at initialisation, moved only by
the learned scale γ and shift β.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

LABELS = {"none": "without BN", "batchnorm": "with BN"}
COLOURS = {"without BN": "tab:red", "with BN": "tab:blue"}
PERCENTILES = ("unit_p15", "unit_p50", "unit_p85")
#: the "early step" of claim 1 is this fraction of the run (200 of 5000 steps on the quick profile)
EARLY_FRACTION = 1 / 25


def unit_band(results) -> pd.DataFrame:
    """Per config and probe step: the last hidden layer's unit percentiles and band p85 − p15."""
    layers = results.with_config("layers")
    last = layers[layers["layer"] == layers["depth"]].copy()
    last["band"] = last["unit_p85"] - last["unit_p15"]
    last["net"] = last["norm"].map(LABELS)
    return last


def drift(results) -> pd.DataFrame:
    """Per config: how far the last-layer unit's input distribution moves over training.

    band_ratio  max/min over probes of the band p85 − p15 (1: its width never changes)
    median_range  max − min over probes of the median (in units of the sigmoid's input)
    """
    band = unit_band(results)
    g = band.groupby(["config_id", "net", "seed"])
    out = g.agg(band_max=("band", "max"), band_min=("band", "min"),
                median_max=("unit_p50", "max"), median_min=("unit_p50", "min")).reset_index()
    return out.assign(band_ratio=out["band_max"] / out["band_min"],
                      median_range=out["median_max"] - out["median_min"])


def early_step(results) -> int:
    """The logged step nearest to EARLY_FRACTION of the run."""
    steps = np.sort(results.curves["step"].unique())
    target = EARLY_FRACTION * results.runs["steps"].max()
    return int(steps[np.argmin(np.abs(steps - target))])


def _accuracy_at(results, step: int) -> pd.Series:
    """Median over seeds of the test accuracy at ``step``, per net."""
    curves = results.with_config("curves")
    at = curves[curves["step"] == step]
    return at.groupby(at["norm"].map(LABELS))["test_accuracy"].median()


def plot(results):
    from satbench.figures._common import style

    style()
    curves = results.with_config("curves")
    curves = curves[curves["step"] > 0].assign(net=lambda d: d["norm"].map(LABELS))
    band = unit_band(results)
    first_seed = band["seed"].min()
    fig, (ax_a, ax_b, ax_c) = plt.subplots(1, 3, figsize=(14, 4.2), constrained_layout=True)

    sns.lineplot(data=curves, x="step", y="test_accuracy", hue="net", units="seed", estimator=None,
                 palette=COLOURS, lw=0.6, alpha=0.35, legend=False, ax=ax_a)
    sns.lineplot(data=curves, x="step", y="test_accuracy", hue="net", estimator="median", errorbar=None,
                 palette=COLOURS, lw=2, ax=ax_a)
    ax_a.axvline(early_step(results), color="grey", ls=":", lw=1, label="step of the early claim")
    ax_a.set(xscale="log", ylim=(0, 1.0), xlabel="SGD step (log scale)", ylabel="test accuracy",
             title="(a) test accuracy (bold: median of seeds)")
    ax_a.legend(title=None, fontsize=9, loc="lower right")

    lo = band.loc[band["seed"] == first_seed, list(PERCENTILES)].min().min()
    hi = band.loc[band["seed"] == first_seed, list(PERCENTILES)].max().max()
    for ax, net, tag in ((ax_b, "without BN", "(b)"), (ax_c, "with BN", "(c)")):
        sub = band[(band["net"] == net) & (band["seed"] == first_seed)].sort_values("step")
        for col, ls in zip(PERCENTILES, (":", "-", "--")):
            ax.plot(sub["step"], sub[col], color=COLOURS[net], ls=ls, lw=1.4,
                    label=f"{col[-2:]}th percentile")
        ax.set(ylim=(lo - 0.3, hi + 0.3), xlabel="SGD step",
               ylabel="input of the sigmoid (unit 1, layer 3)" if ax is ax_b else "",
               title=f"{tag} {net}: percentiles over the batch (seed {first_seed})")
        ax.legend(fontsize=8, loc="upper left")
    runs = results.runs
    fig.suptitle(f"{int(runs['depth'].iloc[0])}×{int(runs['width'].iloc[0])} sigmoid MLP on "
                 f"{runs['dataset'].iloc[0]}, batch {int(runs['batch_size'].iloc[0])}, "
                 f"SGD lr {runs['learning_rate'].iloc[0]:g}")
    return fig


def claims(results):
    """BN learns faster, ends no worse, and steadies the last layer's input distribution
    (Ioffe & Szegedy 2015, Fig. 1).

    "Ends no worse" allows one binomial standard error of a test accuracy, √(p(1 − p)/n) for the
    test set's n examples (0.010 at p = .96 on digits' 359): a smaller gap is not a measurable
    difference. The other thresholds have no theory behind them and were set on seeds 0–12
    (digits, 5000 steps): at step 200 the median BN net is at .95 and the plain one at .67–.71,
    so a 0.1 lead leaves room; BN's band starts at the standardised width 2.07 and grows with the
    learned γ to at most 2.06× (worst of 13 seeds), the plain net's starts at ≈ 0.08 (small
    weights) and grows ≥ 23×, so 2.5 and 10 sit outside both; the plain median wanders 0.65–1.9,
    BN's 0.21–0.50 per seed, and the last claim asks for a factor 2 between their medians over
    seeds. Seeds 13–17, not used to choose them: step 200 BN .947 vs plain .691; final .975 vs
    .964; BN band ≤ 1.89×, plain ≥ 21.4×; median wander 1.18 vs 0.25.
    """
    from satbench import data

    step = early_step(results)
    early = _accuracy_at(results, step)
    final = results.runs.groupby(results.runs["norm"].map(LABELS))["final_test_accuracy"].median()
    n_test = data.describe(str(results.runs["dataset"].iloc[0])).n_test
    p = float(final["without BN"])
    margin = float(np.sqrt(p * (1 - p) / n_test))
    d = drift(results).groupby("net")
    worst_bn, best_plain = d["band_ratio"].max()["with BN"], d["band_ratio"].min()["without BN"]
    med_range = d["median_range"].median()
    return [
        dict(claim=f"BN reaches a higher test accuracy earlier (step {step}: BN ahead by > 0.1, median of seeds; "
                   "threshold set on seeds 0–12, checked on 13–17)",
             paper="BN ahead from the start (Fig. 1a)",
             measured=f"BN {early['with BN']:.3f} vs plain {early['without BN']:.3f}",
             holds=bool(early["with BN"] - early["without BN"] > 0.1)),
        dict(claim=f"BN ends no worse (final test accuracy, median of seeds, within one binomial standard "
                   f"error {margin:.3f})",
             paper="BN ahead at the end of training too (Fig. 1a)",
             measured=f"BN {final['with BN']:.3f} vs plain {final['without BN']:.3f}",
             holds=bool(final["with BN"] >= final["without BN"] - margin)),
        dict(claim="last-layer sigmoid input: band p85−p15 changes < 2.5× with BN (worst seed), "
                   "> 10× without (best seed); thresholds set on seeds 0–12, checked on 13–17",
             paper="stable with BN, widens without (Fig. 1b, c)",
             measured=f"max/min band width: BN ≤ {worst_bn:.2f}, plain ≥ {best_plain:.1f}",
             holds=bool(worst_bn < 2.5 and best_plain > 10)),
        dict(claim="its median wanders ≥ 2× further without BN (max − min over probes, median of seeds; "
                   "factor set on seeds 0–12, checked on 13–17)",
             paper="median drifts without BN, steady with (Fig. 1b, c)",
             measured=f"plain {med_range['without BN']:.2f} vs BN {med_range['with BN']:.2f}",
             holds=bool(med_range["without BN"] >= 2 * med_range["with BN"])),
    ]


if __name__ == "__main__":
    from satbench.figures._common import standalone

    standalone("ioffe2015", plot)
