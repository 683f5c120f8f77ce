"""Measured ‖∂L/∂h_l‖² against layer at initialisation, with the mean-field prediction χ₁^(L−l).

Ordered phase (χ₁ < 1): the back-propagated signal vanishes toward the input;
chaotic (χ₁ > 1): it explodes; at criticality it is flat. Points: measurement
(mean over seeds), normalised to 1 at the last layer; dashed: theory from the
runs' chi1 column. Gaussian init, deepest network of the sweep.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns


def plot(results):
    from satbench.figures._common import at_init, style

    style()
    runs = results.runs
    init = "gaussian" if "gaussian" in set(runs["init"]) else runs["init"].iloc[0]
    depth = int(runs["depth"].max())
    sel = runs[(runs["init"] == init) & (runs["depth"] == depth)]
    layers = at_init(results)
    layers = layers[layers["config_id"].isin(sel["config_id"])].copy()
    last = layers[layers["layer"] == depth].set_index("config_id")["signal_norm"]
    layers["relative_signal2"] = (layers["signal_norm"] / layers["config_id"].map(last)) ** 2

    acts = list(dict.fromkeys(sel["activation"]))
    scales = sorted(sel["mf_sigma_w2"].unique())
    colours = dict(zip(scales, sns.color_palette("viridis", len(scales))))
    fig, axes = plt.subplots(1, len(acts), figsize=(4.6 * len(acts), 4.2), constrained_layout=True, squeeze=False)
    ell = np.arange(1, depth + 1)
    for ax, act in zip(axes[0], acts):
        sub = layers[layers["activation"] == act]
        mean = sub.groupby(["mf_sigma_w2", "layer"], as_index=False)["relative_signal2"].mean()
        for s in scales:
            m = mean[mean["mf_sigma_w2"] == s]
            chi = sel[(sel["activation"] == act) & (sel["mf_sigma_w2"] == s)]["chi1"].iloc[0]
            ax.plot(m["layer"], m["relative_signal2"], "o", ms=3.5, color=colours[s],
                    label=f"σ_w²={s:g}  χ₁={chi:.3g}")
            ax.plot(ell, chi ** (depth - ell), "--", lw=1, color=colours[s])
        ax.set(yscale="log", xlabel="layer l", title=f"{act} (σ_b² = {sel['sigma_b2'].iloc[0]:g})")
        ax.legend(fontsize=7, title="points: measured, dashed: χ₁^(L−l)", title_fontsize=7)
    axes[0][0].set_ylabel("‖∂L/∂h_l‖² / ‖∂L/∂h_L‖²")
    fig.suptitle(f"Back-propagated signal vs mean-field theory ({init} init, depth {depth}, "
                 f"width {int(sel['width'].iloc[0])})")
    return fig


def claims(results):
    """Measured per-layer factor of ‖∂L/∂h_l‖² against χ₁ (Schoenholz et al. 2017: the gradient's
    variance changes by χ₁ per layer), Gaussian init, deepest net. Tolerance: 3
    standard errors of the fitted factor from finite width (``_common.slope_sigma`` over the
    fitted layers, divided by √seeds since the fit is to the seeds' mean)."""
    from satbench.figures._common import at_init, slope_sigma

    runs = results.runs
    depth = int(runs["depth"].max())
    sel = runs[(runs["init"] == "gaussian") & (runs["depth"] == depth)]
    layers = at_init(results)
    seeds = sel.groupby(["activation", "mf_sigma_w2"])["seed"].nunique().min()
    out = []
    for act, group in sel.groupby("activation"):
        errors = []
        for (scale, chi), cfgs in group.groupby(["mf_sigma_w2", "chi1"]):
            sub = layers[layers["config_id"].isin(cfgs["config_id"])]
            mean = sub.groupby("layer")["signal_norm"].apply(lambda s: np.mean(np.log(s**2)))
            ell = mean.index.to_numpy()[2:-1]
            slope = np.polyfit(ell, mean.to_numpy()[2:-1], 1)[0]
            errors.append(abs(np.exp(-slope) / chi - 1))
        tol = float(np.expm1(3 * slope_sigma(int(group["width"].iloc[0]), len(ell) - 1) / np.sqrt(seeds)))
        worst = max(errors)
        out.append(dict(claim=f"{act}: per-layer factor of ‖∂L/∂h_l‖² = χ₁ within {tol:.1%} (all σ_w², depth {depth})",
                        paper="mean-field χ₁ (Schoenholz et al. 2017)", measured=f"worst relative error {worst:.1%}",
                        holds=bool(worst < tol)))
    return out


if __name__ == "__main__":
    from satbench.figures._common import standalone

    standalone("gradient_vs_theory", plot)
