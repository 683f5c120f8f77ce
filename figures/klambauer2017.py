"""Klambauer et al. 2017: SELU with N(0, 1/fan_in) weights is self-normalising.

Per-layer mean and variance of the activations φ(h_l) at initialisation:
SELU stays at (0, 1) through every layer (the fixed point of its moment
map); ReLU's mean is positive and tanh's variance drifts, so neither is
self-normalising at σ_w² = 1. Lines: seeds.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import seaborn as sns


def plot(results):
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


def claims(results):
    """SELU's per-layer moments stay within the published self-normalising band."""
    from satbench.figures._common import at_init

    df = at_init(results)
    selu = df[df["activation"] == "selu"]
    mean_dev = float(selu["act_mean"].abs().max())
    var = selu["act_std"] ** 2
    return [
        dict(claim="SELU: per-layer activation mean stays near 0 across all layers", paper="μ → 0",
             measured=f"max |mean| {mean_dev:.3f}", holds=bool(mean_dev < 0.03)),
        dict(claim="SELU: per-layer activation variance stays near 1", paper="ν → 1",
             measured=f"range [{var.min():.3f}, {var.max():.3f}]", holds=bool(var.min() > 0.9 and var.max() < 1.1)),
    ]


if __name__ == "__main__":
    from satbench.figures._common import standalone

    standalone("klambauer2017", plot)
