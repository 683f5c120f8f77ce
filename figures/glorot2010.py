"""Glorot & Bengio 2010, Fig. 2: mean (± std) of each hidden layer's sigmoid activations over training.

With the "standard" init U[±1/√fan_in], the top hidden layer of a sigmoid
net is driven to ≈ 0 early (saturated: its units output 0, the readout
learns from biases alone) while lower layers stay above 0.5; the network
sits near chance. The same net with tanh learns. Bottom: train accuracy
(dashed: the normalised init of Figs. 6-7, for reference).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
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
    """Fig. 2's statements, measured at the last probe (median over seeds), standard init."""
    layers = _standard_init(results.with_config("layers"))
    last_step = layers["step"].max()
    sig = layers[(layers["activation"] == "sigmoid")]
    depth = int(sig["depth"].max())
    end = sig[sig["step"] == last_step].groupby("layer")["act_mean"].median()
    runs = _standard_init(results.runs)
    acc = runs.groupby("activation")["final_train_accuracy"].median()
    lower = end.loc[1 : depth - 1]
    return [
        dict(claim="top hidden sigmoid layer saturates near 0", paper="≈ 0 (CPU: .034 at step 3000)",
             measured=f"{end.loc[depth]:.3f}", holds=bool(end.loc[depth] < 0.15)),
        dict(claim="lower sigmoid layers stay above 0.5", paper="> 0.5 (CPU: .50/.55/.72)",
             measured="/".join(f"{v:.2f}" for v in lower), holds=bool((lower > 0.45).all())),
        dict(claim="sigmoid net stays near chance", paper="test error 82.61 % on Shapeset (CPU: acc .10)",
             measured=f"train accuracy {acc['sigmoid']:.3f}", holds=bool(acc["sigmoid"] < 0.3)),
        dict(claim="the same net with tanh learns", paper="CPU: acc 1.00",
             measured=f"train accuracy {acc['tanh']:.3f}", holds=bool(acc["tanh"] > 0.9)),
    ]


if __name__ == "__main__":
    from satbench.figures._common import standalone

    standalone("glorot2010", plot)
