"""log ‖∂L/∂W_l‖ against layer l at initialisation: one line per activation × init.

Vanishing gradients show as lines falling toward the input (layer 1); the
slope is the per-layer factor. Panels: network depth. Weight scale: the
config's sigma_w2 closest to 1 (the textbook setting); mean over seeds.
"""

from __future__ import annotations

import numpy as np
from matplotlib.ticker import MaxNLocator
import seaborn as sns


def plot(results):
    from satbench.figures._common import at_init, palette, style

    style()
    df = at_init(results)
    scales = np.sort(df["sigma_w2"].unique())
    scale = scales[np.argmin(np.abs(np.log(scales)))]
    df = df[df["sigma_w2"] == scale]
    g = sns.relplot(
        data=df, x="layer", y="grad_norm", hue="activation", style="init", col="depth",
        palette=palette(df["activation"].unique()),
        hue_order=list(palette(df["activation"].unique())),
        kind="line", marker="o", markersize=4, errorbar=None,
        facet_kws={"sharex": False}, height=3.6, aspect=1.1,
    )
    g.set(yscale="log")
    for ax in g.axes.flat:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    g.set_axis_labels("layer l (1 = next to the input)", "‖∂L/∂W_l‖_F at init")
    g.figure.suptitle(f"Gradient flow at initialisation (σ_w² = {scale:g}, σ_b² = "
                      f"{', '.join(f'{v:g}' for v in df['sigma_b2'].unique())})", y=1.03)
    return g.figure


if __name__ == "__main__":
    from satbench.figures._common import standalone

    standalone("gradient_flow", plot)
