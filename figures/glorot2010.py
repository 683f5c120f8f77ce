"""Glorot & Bengio 2010, Fig. 2: mean (± std) of each hidden layer's sigmoid activations over training.

With the "standard" init U[±1/√fan_in], the top hidden layer of a sigmoid
net is driven to ≈ 0 early (saturated: its units output 0, the readout
learns from biases alone) while lower layers stay above 0.5; the network
sits near chance. The same net with tanh learns. Bottom: train accuracy
(dashed: the normalised init of Figs. 6-7, for reference).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns


def _standard_init(df):
    """The rows of Fig. 2's setting: the "standard" init (the sweep may add the normalised one)."""
    return df[df["init"] == "standard"]


def plot(results):
    from satbench.figures._common import style

    style()
    layers = _standard_init(results.with_config("layers"))
    sig = layers[(layers["activation"] == "sigmoid") & (layers["seed"] == layers["seed"].min())]
    curves = results.with_config("curves")
    fig, (ax_a, ax_c) = plt.subplots(2, 1, figsize=(8, 7), constrained_layout=True,
                                     gridspec_kw={"height_ratios": [2, 1]})
    colours = sns.color_palette("viridis", int(sig["layer"].max()))
    for layer, g in sig.groupby("layer"):
        c = colours[layer - 1]
        ax_a.plot(g["step"], g["act_mean"], color=c, label=f"layer {layer}")
        ax_a.fill_between(g["step"], g["act_mean"] - g["act_std"], g["act_mean"] + g["act_std"],
                          color=c, alpha=0.15)
    ax_a.set(ylim=(-0.02, 1.02), xlabel="SGD step", ylabel="sigmoid activation: mean ± std",
             title=f"sigmoid, {int(sig['depth'].iloc[0])}×{int(sig['width'].iloc[0])}, standard init, "
                   f"batch {int(sig['batch_size'].iloc[0])}")
    ax_a.legend(title="hidden layer (1 = input side)", fontsize=8)
    styles = [i for i in ("standard", "glorot_uniform") if i in set(curves["init"])]
    sns.lineplot(data=curves, x="step", y="train_accuracy", hue="activation", style="init", style_order=styles,
                 units="seed", estimator=None, ax=ax_c)
    ax_c.set(ylim=(0, 1.02), xlabel="SGD step", ylabel="train accuracy")
    ax_c.legend(fontsize=8, ncol=2)
    return fig


def claims(results):
    """Fig. 2's statements (the last hidden layer is pushed to its lower saturation value 0 early
    in training; the other layers' means stay above 0.5 and decrease from the output layer toward
    the input), measured at the last probe, median over seeds, standard init.

    Thresholds: "near 0" is below 0.1, a fifth of the way from an unsaturated unit's 0.5;
    "above 0.5" allows 3σ₀ below it, σ₀ the scatter around 0.5 of a layer's mean activation at
    initialisation (zero-mean weights, zero biases: 0.5 exactly in expectation), which is all
    layer 1 shows, since the vanishing gradient barely moves it; accuracy bands are a quarter and
    three quarters of the way from chance (1/K) to 1 (``_common.near_chance_below``)."""
    from satbench.figures._common import near_chance_below, trained_above

    layers = _standard_init(results.with_config("layers"))
    last_step = layers["step"].max()
    sig = layers[(layers["activation"] == "sigmoid")]
    depth = int(sig["depth"].max())
    end = sig[sig["step"] == last_step].groupby("layer")["act_mean"].median()
    at_init = sig.loc[sig["step"] == 0, "act_mean"].to_numpy()
    sigma0 = float(np.sqrt(np.mean((at_init - 0.5) ** 2)))
    floor = 0.5 - 3 * sigma0
    runs = _standard_init(results.runs)
    acc = runs.groupby("activation")["final_train_accuracy"].median()
    lower = end.loc[1 : depth - 1]
    falls = bool((np.diff(lower.to_numpy()) > 0).all())
    chance_bar, trained_bar = near_chance_below(runs), trained_above(runs)
    return [
        dict(claim="top hidden sigmoid layer driven to its lower saturation value 0 "
                   "(mean activation < 0.1, a fifth of the way from the unsaturated 0.5)",
             paper="≈ 0 early in training (Fig. 2)",
             measured=f"{end.loc[depth]:.3f}", holds=bool(end.loc[depth] < 0.1)),
        dict(claim=f"lower sigmoid layers stay above 0.5 (≥ 0.5 − 3σ₀ = {floor:.3f}, σ₀ the scatter of a "
                   "layer mean at init) and decrease toward the input",
             paper="> 0.5, decreasing from the output layer toward the input (Fig. 2)",
             measured="/".join(f"{v:.3f}" for v in lower) + f" (layers 1–{depth - 1})",
             holds=bool((lower >= floor).all() and falls)),
        dict(claim=f"sigmoid net stays near chance (train accuracy < {chance_bar:.3f}: a quarter of the way "
                   "from chance to 1)",
             paper="test error 82.61 % on Shapeset-3×2, chance 88.9 % (Table 1)",
             measured=f"train accuracy {acc['sigmoid']:.3f}", holds=bool(acc["sigmoid"] < chance_bar)),
        dict(claim=f"the same net with tanh learns (train accuracy > {trained_bar:.3f}: three quarters of the "
                   "way from chance to 1)",
             paper="tanh 27.15 % test error on Shapeset-3×2 (Table 1)",
             measured=f"train accuracy {acc['tanh']:.3f}", holds=bool(acc["tanh"] > trained_bar)),
    ]


if __name__ == "__main__":
    from satbench.figures._common import standalone

    standalone("glorot2010", plot)
