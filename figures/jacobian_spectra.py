"""Singular values of the input–output Jacobian ∂h_L/∂h_1 at initialisation.

Gaussian vs orthogonal weights, per activation (columns) and depth (rows),
each at the sweep's σ_w² closest to criticality (χ₁ ≈ 1). Pennington et al.
(2017): only orthogonal weights with a sigmoidal activation near q* → 0
achieve dynamical isometry (all s ≈ 1); ReLU cannot. Text: measured vs
predicted variance of s². Values near 1e-7·s_max are zeros at float32
precision: ReLU zeroes about half the directions (its Jacobian is rank
deficient), and deep Gaussian products are ill-conditioned.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns


def plot(results):
    from satbench.figures._common import style

    style()
    runs, spectra = results.runs, results.spectra
    if spectra is None or len(spectra) == 0:
        raise ValueError("no spectra in these results: set jacobian_samples > 0 in the experiment")
    runs = runs[runs["jacobian_samples"] > 0].copy()
    runs["distance"] = (np.log(runs["chi1"])).abs()
    acts = list(dict.fromkeys(runs["activation"]))
    depths = sorted(runs["depth"].unique())
    fig, axes = plt.subplots(len(depths), len(acts), figsize=(4.2 * len(acts), 3.0 * len(depths)),
                             constrained_layout=True, squeeze=False)
    colours = {"gaussian": "tab:blue", "orthogonal": "tab:orange"}
    positive = spectra.loc[spectra["singular_value"] > 0, "singular_value"]
    lo, hi = np.log10(max(positive.min(), 1e-12)), np.log10(positive.max())
    bins = np.logspace(lo - 0.05, hi + 0.05, 60)
    for j, act in enumerate(acts):
        sub = runs[runs["activation"] == act]
        best = sub.loc[sub.groupby("init")["distance"].idxmin()]  # per init, the most critical scale
        for i, depth in enumerate(depths):
            ax = axes[i][j]
            lines = []
            for _, row in best.iterrows():
                chosen = sub[(sub["init"] == row["init"]) & (sub["mf_sigma_w2"] == row["mf_sigma_w2"])
                             & (sub["depth"] == depth)]
                sv = spectra[spectra["config_id"].isin(chosen["config_id"]) & (spectra["step"] == 0)]
                if sv.empty:
                    continue
                s = sv["singular_value"].to_numpy()
                sns.histplot(s, ax=ax, bins=bins, stat="probability", element="step",
                             fill=False, color=colours.get(row["init"], "grey"),
                             label=f"{row['init']} σ_w²={row['mf_sigma_w2']:g}")
                lines.append(f"{row['init'][:5]}: var s² {np.var(s**2):.3g} "
                             f"(theory {chosen['jac_var_s2_theory'].iloc[0]:.3g})")
            ax.set(xscale="log", xlabel="singular value s of ∂h_L/∂h_1 (log)", title=f"{act}, depth {depth}")
            ax.axvline(1.0, color="grey", lw=0.8, ls=":")
            ax.text(0.02, 0.97, "\n".join(lines), transform=ax.transAxes, va="top", fontsize=7)
            if i == 0 and j == 0:
                ax.legend(fontsize=7, loc="center left")
    fig.suptitle(f"Jacobian spectra at init (width {int(runs['width'].iloc[0])}, σ_b² = "
                 f"{runs['sigma_b2'].iloc[0]:g}): orthogonal vs Gaussian near χ₁ = 1")
    return fig


if __name__ == "__main__":
    from satbench.figures._common import standalone

    standalone("jacobian_spectra", plot)
