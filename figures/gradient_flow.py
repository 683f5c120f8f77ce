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


def _signal_factor(layers) -> float:
    """One net's per-layer factor of ‖∂L/∂h_l‖² going backward (layer l+1 -> l), from a least-squares
    fit of log ‖∂L/∂h_l‖² over layers 2..L−1 (layer L's gradient comes from the readout, not from a
    layer of width N; layer 1 is left out as in ``probes.decay_rate``)."""
    g = layers.sort_values("layer")
    ell, logs = g["layer"].to_numpy(float)[1:-1], 2 * np.log(g["signal_norm"].to_numpy(float)[1:-1])
    return float(np.exp(-np.polyfit(ell, logs, 1)[0])) if len(ell) >= 2 else float("nan")


def claims(results):
    """Textbook statements about gradient flow at init in the deepest nets (σ_w² = 1), each a median
    over seeds of one net's fitted per-layer factor.

    Sigmoid and tanh read ``grad_decay``, the factor of ‖∂L/∂W_l‖². ReLU + He reads the factor of
    the back-propagated ‖∂L/∂h_l‖² instead: ReLU is positively homogeneous, so without biases
    ‖∂L/∂W_l‖² = ‖∂L/∂h_l‖²·‖x_{l−1}‖² is the same at every layer for *any* weight scale (the
    backward loss of (σ_w²/2)^(L−l) is made up by the forward gain of (σ_w²/2)^(l−1)); only
    ‖∂L/∂h_l‖² (factor σ_w²/2: 1 with He init, 1/2 with N(0, 1/n)) tells He init from the others.

    Bands are theory: the mean-field factor is χ₁ = σ_w² E[φ'(h)²], which σ' ≤ 1/4 bounds by
    σ_w²/16 for sigmoid and He init sets to 1 for relu; one net's fitted factor scatters around
    it by e^(±3s), s the finite-width standard error of the fit (``_common.slope_sigma``).
    A claim whose nets are not in the results says "not measured" and does not hold."""
    from satbench.figures._common import at_init, slope_sigma

    runs = results.runs
    deepest = runs[runs["depth"] == runs["depth"].max()]
    depth, width = int(deepest["depth"].iloc[0]), int(deepest["width"].iloc[0])
    band = float(np.exp(3 * slope_sigma(width, depth - 2)))  # the fits span depth − 2 steps

    def pick(act, init, scale=1.0):
        return deepest[(deepest["activation"] == act) & (deepest["init"] == init) & (deepest["sigma_w2"] == scale)]

    def decay(sel):
        return float(sel["grad_decay"].median()) if len(sel) else float("nan")

    sig_runs, tanh_runs, he_runs = pick("sigmoid", "gaussian"), pick("tanh", "gaussian"), pick("relu", "he")
    sig, tanh = decay(sig_runs), decay(tanh_runs)
    he_layers = at_init(results)
    he_layers = he_layers[he_layers["config_id"].isin(he_runs["config_id"])]
    relu_he = float(np.median([_signal_factor(g) for _, g in he_layers.groupby("config_id")])) if len(he_layers) else float("nan")
    absent = lambda *sels: not all(len(s) for s in sels)  # noqa: E731
    missing = f"not measured (no such nets at depth {depth}, σ_w² = 1)"
    sig_bound = float(sig_runs["mf_sigma_w2"].iloc[0]) / 16 * band if len(sig_runs) else float("nan")
    chi_ratio = float(tanh_runs["chi1"].iloc[0] / sig_runs["chi1"].iloc[0]) if not absent(sig_runs, tanh_runs) else float("nan")
    return [
        dict(claim=f"sigmoid: the per-layer factor of grad_norm² is at most σ_w²·max σ'² = 1/16 "
                   f"(< {sig_bound:.3g} with finite-width scatter)",
             paper="σ'(0) = 1/4", measured=missing if absent(sig_runs) else f"factor {sig:.3g} per layer",
             holds=bool(sig < sig_bound)),
        dict(claim=f"relu + He: back-propagated gradient ‖∂L/∂h_l‖² flat across layers (factor within ×/÷ {band:.2f} "
                   "of 1; it is σ_w²/2 = 1/2 per layer with N(0, 1/n))",
             paper="factor 1 (He et al. 2015)",
             measured=missing if absent(he_runs) else f"factor {relu_he:.3g} per layer",
             holds=bool(1 / band < relu_he < band)),
        dict(claim=f"tanh (σ_w² = 1) loses far less per layer than sigmoid (ratio of factors > mean-field "
                   f"{chi_ratio:.1f} ÷ {band:.2f}²)",
             paper="tanh'(0) = 1 vs σ'(0) = 1/4",
             measured=missing if absent(sig_runs, tanh_runs) else
             f"tanh {tanh:.3g} vs sigmoid {sig:.3g} (ratio {tanh / sig:.1f})",
             holds=bool(tanh / sig > chi_ratio / band**2)),
    ]


if __name__ == "__main__":
    from satbench.figures._common import standalone

    standalone("gradient_flow", plot)
