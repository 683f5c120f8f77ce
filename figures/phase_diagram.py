"""Mean-field phase diagram over (σ_w², σ_b²) for each activation of the sweep.

Colour: correlation depth scale ξ_c (log scale; it diverges on the critical
line). Solid line: χ₁ = 1, the edge of chaos; left of it gradients vanish
(ordered), right of it they explode (chaotic). Crosses: the sweep's configs.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm

SIGMA_W2 = np.linspace(0.5, 4.5, 33)
SIGMA_B2 = np.linspace(0.0, 0.3, 7)


def theory_grid(act: str):
    """(χ₁, ξ_c) on the SIGMA_B2 × SIGMA_W2 grid, one call of theory.summaries."""
    from satbench import theory

    w, b = np.meshgrid(SIGMA_W2, SIGMA_B2)
    t = theory.summaries(act, w.ravel(), b.ravel(), x64=False)  # float32 is plenty for a picture
    return t["chi1"].reshape(w.shape), t["xi_c"].reshape(w.shape)


def plot(results=None, names=("tanh", "relu", "hard_tanh")):
    from satbench.figures._common import style

    style()
    if results is not None:
        names = list(dict.fromkeys(results.runs["activation"]))
    fig, axes = plt.subplots(1, len(names), figsize=(4.4 * len(names), 3.9), constrained_layout=True,
                             squeeze=False)
    for ax, act in zip(axes[0], names):
        chi, xi = theory_grid(act)
        xi = np.clip(np.where(np.isfinite(xi), xi, 1e3), 0.3, 1e3)
        mesh = ax.pcolormesh(SIGMA_W2, SIGMA_B2, xi, norm=LogNorm(0.3, 1e3), cmap="magma", shading="auto")
        ax.contour(SIGMA_W2, SIGMA_B2, chi, levels=[1.0], colors="cyan", linewidths=2)
        ax.contour(SIGMA_W2, SIGMA_B2, xi, levels=[3, 10, 30], colors="white", linewidths=0.7,
                   linestyles=":")
        if results is not None:
            pts = results.runs[results.runs["activation"] == act][["mf_sigma_w2", "sigma_b2"]].drop_duplicates()
            ax.plot(pts["mf_sigma_w2"], pts["sigma_b2"], "x", color="white", ms=6)
        ax.set(xlabel="σ_w²", ylabel="σ_b²", title=f"{act}: χ₁ = 1 (cyan), ξ_c contours 3/10/30")
        fig.colorbar(mesh, ax=ax, label="ξ_c (layers)")
    fig.suptitle("Ordered (left of the line: vanishing gradients) vs chaotic (right: exploding)")
    return fig


if __name__ == "__main__":
    from satbench.figures._common import standalone

    standalone("phase_diagram", plot)
