"""Glorot & Bengio 2010, Figs. 6-7: histograms of tanh activations and back-propagated gradients
per layer at initialisation, "standard" init U[±1/√fan_in] against normalised U[±√(6/(fan_in+fan_out))].

Standard init has fan_in·Var W = 1/3: each layer shrinks the pre-activation variance about 3×,
so the activations narrow toward the top (Fig. 6, the "0-peak" grows upward) and the gradient
∂L/∂h_l loses a factor σ_w² E[φ'²] ≈ 1/3 in variance per layer on its way down (Fig. 7, the
gradients narrow toward the input). Normalised init has fan_in·Var W = 1 on square layers, so
only tanh' < 1 shrinks them. Histograms: the histogram probe (``histogram_bins``) over the probe
batch, bins shared by the layers of one net. Right: the per-layer spread with the mean-field
prediction (q-map from the measured q_1; gradient ratio ∏ σ_w² E[φ'(h_k)²]).
"""

from __future__ import annotations

import jax
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

INITS = {"standard": "standard U[±1/√n]", "glorot_uniform": "normalised U[±√6/√(n_in+n_out)]"}
QUANTITIES = {"activation": "activation value tanh(h_l)", "gradient": "back-propagated gradient ∂L/∂h_l"}


def _tanh_at_init(df):
    return df[(df["activation"] == "tanh") & (df["step"] == 0) & df["init"].isin(list(INITS))]


def layer_spread(results) -> pd.DataFrame:
    """Per (init, layer) at init, median over seeds: std of tanh(h_l) and RMS of ∂L/∂h_l over
    units × examples (``signal_norm``/√(probe batch · width)), each relative to its value at the
    top layer too."""
    layers = _tanh_at_init(results.with_config("layers")).copy()
    layers["grad_rms"] = layers["signal_norm"] / np.sqrt(layers["probe_batch"] * layers["width"])
    spread = layers.groupby(["init", "layer"])[["act_std", "grad_rms", "preact_rms"]].median().reset_index()
    top = spread.groupby("init")["layer"].transform("max")
    for col in ("act_std", "grad_rms"):
        at_top = spread[spread["layer"] == top].set_index("init")[col]
        spread[f"{col}_rel"] = spread[col] / spread["init"].map(at_top)
    return spread


def mean_field_spread(results) -> pd.DataFrame:
    """Mean-field prediction per (init, layer): std of tanh(h_l) and RMS ∂L/∂h_l relative to the
    top layer, from the q-map iterated from each init's measured q_1."""
    from satbench import inits, theory

    spread = layer_spread(results)
    rows = []
    with jax.enable_x64(True):
        for init, g in spread.groupby("init"):
            g = g.sort_values("layer")
            sigma_w2 = inits.mean_field_sigma_w2(init, 1.0)  # hidden layers are square
            q = [float(g["preact_rms"].iloc[0]) ** 2]
            for _ in range(len(g) - 1):
                q.append(float(theory.q_map("tanh", q[-1], sigma_w2, 0.0)))
            act = [float(np.sqrt(theory.q_map("tanh", qq, 1.0, 0.0))) for qq in q]  # √E tanh²
            chi = [float(theory.chi1("tanh", sigma_w2, 0.0, q=qq)) for qq in q]
            grad = np.sqrt(np.cumprod(chi[::-1])[::-1] / chi[-1])  # ∏_{k=l}^{L-1} χ(q_k), 1 at the top
            for layer, a, gr in zip(g["layer"], act, grad):
                rows.append({"init": init, "layer": layer, "act_std_rel": a / act[-1], "grad_rms_rel": gr})
    return pd.DataFrame(rows)


def plot(results):
    from satbench.figures._common import plain_log_ticks, style

    style()
    hist = results.histograms
    if hist is None or len(hist) == 0:
        raise ValueError("no histograms in these results: set histogram_bins > 0 in the experiment")
    hist = _tanh_at_init(hist.merge(results.runs, on="config_id", suffixes=("", "_run")))
    hist = hist[hist["seed"] == hist["seed"].min()]
    depth = int(hist["layer"].max())
    colours = dict(zip(range(1, depth + 1), sns.color_palette("viridis", depth)))
    fig, axes = plt.subplots(2, 3, figsize=(16, 8.5), constrained_layout=True,
                             gridspec_kw={"width_ratios": [1, 1, 0.8]})
    for i, quantity in enumerate(QUANTITIES):
        for j, init in enumerate(INITS):
            ax = axes[i][j]
            sub = hist[(hist["quantity"] == quantity) & (hist["init"] == init)]
            for layer, g in sub.groupby("layer"):
                centre = (g["lo"] + g["hi"]).to_numpy() / 2
                ax.plot(centre, g["count"].to_numpy() / g["count"].sum(), drawstyle="steps-mid",
                        color=colours[layer], lw=1.4, label=f"layer {layer}")
            ax.set(xlabel=QUANTITIES[quantity], ylabel="fraction of units × examples", title=f"{INITS[init]}")
            ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 2))
            ax.legend(fontsize=8, title="hidden layer (1 = input side)", title_fontsize=7)
    spread, theory_spread = layer_spread(results), mean_field_spread(results)
    for ax, col, label in [(axes[0][2], "act_std_rel", "std of tanh(h_l) / top layer's"),
                           (axes[1][2], "grad_rms_rel", "RMS ∂L/∂h_l / top layer's")]:
        for init, c in zip(INITS, ("tab:red", "tab:blue")):
            m = spread[spread["init"] == init]
            t = theory_spread[theory_spread["init"] == init]
            name = INITS[init].split()[0]
            ax.plot(m["layer"], m[col], "o", color=c, label=f"{name}: measured")
            ax.plot(t["layer"], t[col], "--", color=c, lw=1, label=f"{name}: mean-field theory")
        ax.set(yscale="log", xlabel="hidden layer l (1 = input side)", ylabel=label + " (log)",
               title="spread per layer at init")
        plain_log_ticks(ax.yaxis)
        ax.set_xticks(range(1, depth + 1))
        ax.legend(fontsize=8)
    runs = results.runs
    fig.suptitle(f"tanh at initialisation, {depth}×{int(runs['width'].iloc[0])}, {runs['dataset'].iloc[0]}: "
                 f"Fig. 6 (top) and Fig. 7 (bottom) of Glorot & Bengio 2010")
    return fig


def claims(results):
    """Figs. 6-7, from the per-layer spreads at init (median over seeds). Each threshold is the
    geometric mean of the two inits' mean-field predictions for the same ratio (``mean_field_spread``,
    from each init's measured q_1): a ratio on the standard side of it is nearer the standard init's
    prediction, on the other side nearer the normalised init's. Glorot & Bengio's linear argument
    predicts no trend at all for the normalised init; tanh' < 1 leaves a mild one."""
    spread, theory = layer_spread(results), mean_field_spread(results)
    s = spread[spread["init"] == "standard"].set_index("layer")
    n = spread[spread["init"] == "glorot_uniform"].set_index("layer")
    ts = theory[theory["init"] == "standard"].set_index("layer")
    tn = theory[theory["init"] == "glorot_uniform"].set_index("layer")
    bottom = int(s.index.min())
    act_bar = float(np.sqrt(ts["act_std_rel"].loc[bottom] * tn["act_std_rel"].loc[bottom]))
    grad_bar = float(np.sqrt(ts["grad_rms_rel"].loc[bottom] * tn["grad_rms_rel"].loc[bottom]))
    fmt = lambda t, col: " / ".join(f"{v:.3g}" for v in t[col])  # noqa: E731
    falls = bool((np.diff(s["grad_rms"].to_numpy()) > 0).all())  # grows with layer: shrinks going down
    mf = lambda t, col: f"mean field {t[col].loc[bottom]:.3g}"  # noqa: E731
    return [
        dict(claim=f"Fig. 6, standard init: activations narrow toward the top (std bottom/top > {act_bar:.2f}, "
                   "the geometric mean of the two inits' mean-field ratios)",
             paper="the peak at 0 grows with the layer (Fig. 6)",
             measured=f"std of tanh(h_l), l = 1..: {fmt(s, 'act_std')} (bottom/top {s['act_std_rel'].loc[bottom]:.2f}; "
                      f"{mf(ts, 'act_std_rel')})",
             holds=bool(s["act_std_rel"].loc[bottom] > act_bar)),
        dict(claim=f"Fig. 6, normalised init: activation spread similar across layers (std bottom/top < {act_bar:.2f})",
             paper="similar across layers (Fig. 6)",
             measured=f"{fmt(n, 'act_std')} (bottom/top {n['act_std_rel'].loc[bottom]:.2f}; {mf(tn, 'act_std_rel')})",
             holds=bool(n["act_std_rel"].loc[bottom] < act_bar)),
        dict(claim="Fig. 7, standard init: back-propagated gradients shrink layer by layer toward the input "
                   f"(RMS bottom/top < {grad_bar:.2f})",
             paper="the peak at 0 grows toward the input (Fig. 7)",
             measured=f"RMS ∂L/∂h_l relative to the top, l = 1..: {fmt(s, 'grad_rms_rel')} ({mf(ts, 'grad_rms_rel')})",
             holds=bool(falls and s["grad_rms_rel"].loc[bottom] < grad_bar)),
        dict(claim=f"Fig. 7, normalised init: back-propagated gradient spread similar across layers "
                   f"(RMS bottom/top > {grad_bar:.2f})",
             paper="roughly the same at every layer (Fig. 7)",
             measured=f"{fmt(n, 'grad_rms_rel')} ({mf(tn, 'grad_rms_rel')})",
             holds=bool(n["grad_rms_rel"].loc[bottom] > grad_bar)),
    ]


if __name__ == "__main__":
    from satbench.figures._common import standalone

    standalone("glorot2010_init", plot)
