"""Schoenholz et al. 2017: trainable depth is bounded by the correlation depth scale ξ_c.

Left, heatmap: train accuracy after the run (mean over seeds) over σ_w² × depth
for tanh at σ_b² = 0.05. Curve: 6ξ_c from mean-field theory (ξ_c diverges
at the critical σ_w² ≈ 1.76, the edge of chaos); nets much deeper than 6ξ_c
fail to train, on both the ordered (small σ_w²) and chaotic (large σ_w²) side.

Right, the depth scales against σ_w² (the paper's Fig. 1-2 panel): theory ξ_c
and the gradient scale ξ_∇ = 1/|ln χ₁| (equal in the ordered phase), with ξ_∇
measured at initialisation from each net's per-layer factor of ‖∂L/∂W_l‖²
(``grad_decay``, geometric mean over seeds), and ξ_c measured from the slope of each net's own c-map at
its fixed point, on pairs of inputs at a spread of angles (``xi_c_measured``, at the deepest nets). A net
of depth L can only measure gradient scales up to about L, so near criticality the points fall below the diverging
theory. The fit of the log measures the per-layer factor's geometric mean, which lies below its
mean χ₁ by (2+3κ)/(2N) in the log (``_common.log_step_variance``): 1.1–2.7 % at width 100.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def _accuracy_grid(runs):
    grid = runs.pivot_table(index="depth", columns="sigma_w2", values="final_train_accuracy", aggfunc="mean")
    return grid.sort_index(ascending=True)


def gradient_depth_scales(results) -> pd.DataFrame:
    """Per (σ_w², depth) at init: the measured per-layer factor of ‖∂L/∂W_l‖² (geometric mean of
    ``grad_decay`` over seeds) against χ₁, and the depth scales 1/|ln| of both, with ξ_c.

    ``factor_expected`` is χ₁ times the finite-width bias of a fit of the log,
    e^(−(2+3κ)/(2N)) (``_common.log_step_variance``: the fit measures the geometric mean of the
    per-layer factor, a few per cent below χ₁ at width 100), and ``log_tolerance`` three standard
    errors of the fitted log factor from the same per-layer variance (``_common.slope_sigma``
    over the fitted layers 2..L, ÷ √seeds for the geometric mean over seeds)."""
    from satbench.figures._common import log_step_variance, slope_sigma

    runs = results.runs
    table = runs.groupby(["sigma_w2", "depth"]).agg(
        factor=("grad_decay", lambda v: float(np.exp(np.mean(np.log(v))))),
        chi1=("chi1", "first"), xi_c=("xi_c", "first"), seeds=("seed", "nunique"),
        activation=("activation", "first"), mf_sigma_w2=("mf_sigma_w2", "first"),
        sigma_b2=("sigma_b2", "first"), width=("width", "first")).reset_index()
    var = [log_step_variance(r.activation, r.mf_sigma_w2, r.sigma_b2, int(r.width)) for r in table.itertuples()]
    table["factor_expected"] = table["chi1"] * np.exp(-np.asarray(var) / 2)
    table["log_tolerance"] = [3 * slope_sigma(int(r.width), int(r.depth) - 2, v) / np.sqrt(r.seeds)
                              for r, v in zip(table.itertuples(), var)]
    table["xi_grad"] = 1 / np.abs(np.log(table["factor"]))
    table["xi_grad_theory"] = 1 / np.abs(np.log(table["chi1"]))
    return table.drop(columns=["activation", "mf_sigma_w2", "sigma_b2", "width"])


def correlation_depth_scales(results) -> pd.DataFrame:
    """Per σ_w², at the deepest nets: ξ_c measured from the pairs' c-map (``xi_c_measured``,
    geometric mean over the seeds where the fit found a slope below 1 at a fixed point) and the
    theory's ξ_c. Empty when no pairs were probed."""
    runs = results.runs
    if "xi_c_measured" not in runs or runs["xi_c_measured"].isna().all():
        return pd.DataFrame(columns=["sigma_w2", "depth", "xi_c_measured", "xi_c"])
    deepest = runs[runs["depth"] == runs["depth"].max()].dropna(subset=["xi_c_measured"])
    return deepest.groupby("sigma_w2").agg(
        depth=("depth", "first"), xi_c_measured=("xi_c_measured", lambda v: float(np.exp(np.log(v).mean()))),
        xi_c=("xi_c", "first")).reset_index()


def _depth_scales_panel(ax, results) -> None:
    from satbench import theory

    runs = results.runs
    sigma_b2, act = float(runs["sigma_b2"].iloc[0]), runs["activation"].iloc[0]
    table = gradient_depth_scales(results)
    fine = np.linspace(table["sigma_w2"].min(), table["sigma_w2"].max(), 300)
    t = theory.summaries(act, fine, np.full_like(fine, sigma_b2))
    ax.plot(fine, t["xi_c"], color="red", lw=2, label="ξ_c (theory)")
    ax.plot(fine, 1 / np.abs(np.log(t["chi1"])), "k--", lw=1.2, label="ξ_∇ = 1/|ln χ₁| (theory)")
    depths = sorted(table["depth"].unique())
    shades = dict(zip(depths, plt.get_cmap("Greys")(np.linspace(0.4, 1.0, len(depths)))))
    for d in depths:
        g = table[table["depth"] == d]
        ax.plot(g["sigma_w2"], g["xi_grad"], "o", ms=5, color=shades[d], label=f"ξ_∇ measured, depth {d}")
    measured = correlation_depth_scales(results)
    if len(measured):
        ax.plot(measured["sigma_w2"], measured["xi_c_measured"], "s", ms=6, mfc="none", color="red",
                label=f"ξ_c measured, depth {int(measured['depth'].iloc[0])} (c-map slope)")
    ax.axhline(max(depths), color="grey", ls=":", lw=1)
    ax.text(fine[0], max(depths) * 1.08, "deepest net: larger scales are not measurable", fontsize=7, color="grey")
    ax.set(yscale="log", xlabel="σ_w²", ylabel="depth scale (layers, log)",
           title=f"depth scales at init, σ_b² = {sigma_b2:g}")
    ax.legend(fontsize=7, loc="upper right")


def plot(results):
    from satbench import theory
    from satbench.figures._common import style

    style()
    runs = results.runs
    grid = _accuracy_grid(runs)
    sigma_b2 = float(runs["sigma_b2"].iloc[0])
    act = runs["activation"].iloc[0]
    fig, (ax, ax_xi) = plt.subplots(1, 2, figsize=(14, 5), constrained_layout=True,
                                    gridspec_kw={"width_ratios": [1.15, 1]})
    _depth_scales_panel(ax_xi, results)
    scales, depths = grid.columns.to_numpy(float), grid.index.to_numpy(float)
    mesh = ax.pcolormesh(np.arange(len(scales) + 1), np.arange(len(depths) + 1), grid.to_numpy(),
                         cmap="viridis", vmin=0, vmax=1)
    for i, d in enumerate(depths):
        for j, s in enumerate(scales):
            v = grid.iloc[i, j]
            ax.text(j + 0.5, i + 0.5, f"{v:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if v < 0.6 else "black")
    fine = np.linspace(scales.min(), scales.max(), 200)
    xi = theory.summaries(act, fine, np.full_like(fine, sigma_b2))["xi_c"]
    # map σ_w² and depth to the heatmap's cell coordinates (piecewise linear between cell centres)
    x = np.interp(fine, scales, np.arange(len(scales)) + 0.5)
    y = np.interp(6 * xi, depths, np.arange(len(depths)) + 0.5, left=-1, right=len(depths) + 1)
    ax.plot(x, y, color="red", lw=2, label="6 ξ_c (mean-field theory)")
    ax.set_xticks(np.arange(len(scales)) + 0.5, [f"{s:g}" for s in scales])
    ax.set_yticks(np.arange(len(depths)) + 0.5, [f"{int(d)}" for d in depths])
    ax.set_ylim(0, len(depths))
    ax.set(xlabel="σ_w²", ylabel="depth L (hidden layers)",
           title=f"{act}, σ_b² = {sigma_b2:g}, width {int(runs['width'].iloc[0])}, "
                 f"{int(runs['steps'].iloc[0])} SGD steps")
    ax.legend(loc="upper right", fontsize=8)
    fig.colorbar(mesh, ax=ax, label="train accuracy")
    return fig


def claims(results):
    """Nets much deeper than 6ξ_c do not train, on the ordered and on the chaotic side, while near
    criticality the same depth trains (Schoenholz et al. 2017, Figs. 5-6: the trainable region of
    the accuracy heatmaps is bounded by 6ξ_c). One row of the grid (L = 60 where present). Both
    "untrainable" claims use one rule, a quarter of the way from chance to 1, and "trains" three
    quarters (``_common.near_chance_below``); the near-critical claim reads the grid's σ_w²
    nearest the critical point, not the best of several."""
    from satbench import theory
    from satbench.figures._common import near_chance_below, trained_above

    runs = results.runs
    depth = 60 if 60 in set(runs["depth"]) else int(runs["depth"].max())
    at = runs[runs["depth"] == depth]
    row = at.groupby("sigma_w2")["final_train_accuracy"].mean()
    six_xi = 6 * at.groupby("sigma_w2")["xi_c"].first()
    sigma_b2 = float(runs["sigma_b2"].iloc[0])
    critical = float(theory.critical_sigma_w2(str(runs["activation"].iloc[0]), sigma_b2))
    near = float(row.index[np.argmin(np.abs(np.log(row.index.to_numpy(float) / critical)))])
    low, high = float(row.index.min()), float(row.index.max())
    dead, alive = near_chance_below(runs), trained_above(runs)
    return [
        dict(claim=f"L={depth}, σ_w²={low:g} (ordered, 6ξ_c = {six_xi.loc[low]:.0f}): untrainable "
                   f"(train accuracy < {dead:.3f})",
             paper="near chance beyond 6ξ_c (Figs. 5-6)",
             measured=f"{row.loc[low]:.2f}", holds=bool(depth > six_xi.loc[low] and row.loc[low] < dead)),
        dict(claim=f"L={depth}, σ_w²={high:g} (chaotic, 6ξ_c = {six_xi.loc[high]:.0f}): untrainable "
                   f"(train accuracy < {dead:.3f})",
             paper="near chance beyond 6ξ_c (Figs. 5-6)",
             measured=f"{row.loc[high]:.2f}", holds=bool(depth > six_xi.loc[high] and row.loc[high] < dead)),
        dict(claim=f"L={depth}, σ_w²={near:g} (nearest the critical {critical:.2f}): trains "
                   f"(train accuracy > {alive:.3f})",
             paper="trainable near criticality (Figs. 5-6)",
             measured=f"{row.loc[near]:.2f}", holds=bool(row.loc[near] > alive)),
    ]


if __name__ == "__main__":
    from satbench.figures._common import standalone

    standalone("schoenholz2017", plot)
