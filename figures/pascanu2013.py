"""Pascanu, Mikolov & Bengio 2013, sec. 2.1 and 3.2: vanishing and exploding gradients through time.

One step back in time multiplies the back-propagated signal by ∂h_t/∂h_{t−1} = W diag(φ'(z_t)) (in
satbench's row convention), whose norm is at most γλ₁ with λ₁ W's largest singular value and γ the
bound on |φ'| (1 for tanh, 1/4 for sigmoid). So λ₁ < 1/γ is sufficient for the signal to vanish
(eq. 7: ‖∂L/∂h_t‖ ≤ (γλ₁)^(T−t)‖∂L/∂h_T‖) and λ₁ > 1/γ necessary for it to explode. With
orthogonal W = σ_w Q every singular value is σ_w, so λ₁ = σ_w exactly.

Top: ‖∂L/∂h_t‖² relative to the last step against the lag T − t at initialisation (median over
seeds), one line per λ₁, for tanh and sigmoid. Bottom left: the fitted per-step factor
(``time_decay``) against λ₁, with the bound (γλ₁)² and the mean-field prediction. Bottom right:
training on the adding problem at learning rate 0.1 with and without clipping the gradient norm
at 1 (Algorithm 1), for the nets whose signal explodes.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

#: sup |φ'| of each activation (Pascanu et al.'s γ)
GAMMA = {"tanh": 1.0, "sigmoid": 0.25}


def factors(results):
    """Per config: activation, λ₁ (= σ_w for orthogonal W), the measured per-step factor, the bound
    (γλ₁)² and the mean-field factor; one row per config of the unclipped nets (clipping changes
    nothing at initialisation)."""
    runs = results.runs
    runs = runs[runs["remedy"] == "none"].copy()
    runs["lambda1"] = np.sqrt(runs["sigma_w2"])
    runs["gamma"] = runs["activation"].map(GAMMA)
    runs["bound"] = (runs["gamma"] * runs["lambda1"]) ** 2
    return runs[["config_id", "activation", "seed", "lambda1", "gamma", "bound", "time_decay",
                 "time_decay_theory", "recurrent_radius"]]


def relative_signal(results):
    """‖∂L/∂h_t‖² / ‖∂L/∂h_T‖² at initialisation against the lag T − t, median over seeds."""
    steps = results.with_config("timesteps")
    steps = steps[(steps["step"] == 0) & (steps["remedy"] == "none")].copy()
    last = steps.groupby("config_id")["t"].transform("max")
    end = steps[steps["t"] == last].set_index("config_id")["signal_norm"]
    steps["lag"] = last - steps["t"]
    steps["relative"] = (steps["signal_norm"] / steps["config_id"].map(end)) ** 2
    steps["lambda1"] = np.sqrt(steps["sigma_w2"])
    return steps.groupby(["activation", "lambda1", "lag"], as_index=False)["relative"].median()


def training(results):
    """The runs (clipped and not) of the nets whose signal explodes at init: (activation, λ₁) pairs
    whose median measured factor over seeds exceeds 1."""
    f = factors(results)
    median = f.groupby(["activation", "lambda1"])["time_decay"].median()
    pairs = {(a, lam**2) for (a, lam), v in median.items() if v > 1}
    runs = results.runs
    keep = [(a, np.sqrt(w) ** 2) in pairs for a, w in zip(runs["activation"], runs["sigma_w2"])]
    return runs[np.asarray(keep, bool)]


def plot(results):
    from satbench.figures._common import style

    style()
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5), constrained_layout=True)
    rel = relative_signal(results)
    for ax, act in zip(axes[0], ["tanh", "sigmoid"]):
        sub = rel[rel["activation"] == act]
        lams = sorted(sub["lambda1"].unique())
        colours = dict(zip(lams, sns.color_palette("coolwarm", len(lams))))
        for lam, g in sub.groupby("lambda1"):
            g = g[g["relative"] > 0]  # a signal that underflowed float32 has no place on a log axis
            side = "<" if lam < 1 / GAMMA[act] else ">"
            ax.plot(g["lag"], g["relative"], color=colours[lam], label=f"λ₁ = {lam:g} ({side} 1/γ)")
        ax.set(yscale="log", xlabel="lag T − t (steps back from the loss)",
               ylabel="‖∂L/∂h_t‖² / ‖∂L/∂h_T‖² at init",
               title=f"{act}: γ = {GAMMA[act]:g}, threshold λ₁ = 1/γ = {1 / GAMMA[act]:g}")
        ax.legend(fontsize=7, ncol=2)

    ax = axes[1, 0]
    f = factors(results)
    lam = np.geomspace(f["lambda1"].min(), f["lambda1"].max(), 100)
    for act, g in f.groupby("activation"):
        colour = "tab:blue" if act == "tanh" else "tab:green"
        ax.plot(g["lambda1"], g["time_decay"], "o", color=colour, ms=5, label=f"{act}: measured")
        theory = g.groupby("lambda1")["time_decay_theory"].first()
        ax.plot(theory.index, theory.values, "x", color=colour, ms=7, label=f"{act}: mean field")
        ax.plot(lam, (GAMMA[act] * lam) ** 2, "--", color=colour, lw=1, label=f"{act}: bound (γλ₁)²")
    ax.axhline(1.0, color="grey", lw=1)
    ax.set(xscale="log", yscale="log", xlabel="λ₁, the largest singular value of W (log)",
           ylabel="per-step factor of ‖∂L/∂h_t‖² at init (log)", title="vanishing below 1, exploding above")
    ax.set_ylim(max(1e-4, f["time_decay"].min() / 3), None)
    ax.legend(fontsize=7)

    ax = axes[1, 1]
    curves = results.with_config("curves")
    exploding = training(results)
    curves = curves[curves["config_id"].isin(exploding["config_id"])]
    for (act, remedy, sw2), g in curves.groupby(["activation", "remedy", "sigma_w2"]):
        med = g.groupby("step")["train_loss"].median()
        style_ = "-" if remedy == "clip" else ":"
        ax.plot(med.index, med.clip(upper=1e3), style_, label=f"{act} λ₁={np.sqrt(sw2):g} {remedy}")
    ax.set(yscale="log", xlabel="SGD step (learning rate 0.1)", ylabel="train MSE (capped at 1e3; inf: diverged)",
           title="exploding nets: clipped (solid) vs not (dotted)")
    ax.legend(fontsize=6, ncol=2)
    fig.suptitle(f"Vanilla RNNs on the adding problem, T = {int(results.runs['seq_len'].iloc[0])}, "
                 f"width {int(results.runs['width'].iloc[0])}, orthogonal W = σ_w Q")
    return fig


def claims(results):
    """Eq. 7 and sec. 3.2, measured. The bound holds for every step, so for the least-squares fit
    too (its slope is a positive-weighted mean of the steps' log-ratios): a 1 % margin is float32
    rounding only. Vanishing and exploding are read off the fitted factor (< 1, > 1)."""
    f = factors(results)
    below = f[f["lambda1"] < 1 / f["gamma"]]
    sig_between = f[(f["activation"] == "sigmoid") & (f["lambda1"] > 1) & (f["lambda1"] < 4)]
    tanh_above = f[(f["activation"] == "tanh") & (f["lambda1"] > 1)]
    exploding = training(results)
    exploding = exploding.assign(lambda1=np.sqrt(exploding["sigma_w2"]))
    clipped = exploding[exploding["remedy"] == "clip"]
    plain = exploding[exploding["remedy"] == "none"]
    first_loss = results.curves[results.curves["step"] == 0].set_index("config_id")["train_loss"]
    finite = np.isfinite(clipped["final_loss"]) & ~clipped["diverged"].astype(bool)
    moderate = clipped[clipped["lambda1"] <= 2]
    halved = moderate["final_loss"] < moderate["config_id"].map(first_loss).astype(float) / 2  # (also if empty)
    worst = (f["time_decay"] / f["bound"]).max()
    return [
        dict(claim="the per-step factor of ‖∂L/∂h_t‖² never exceeds (γλ₁)² (eq. 7's bound; 1 % for rounding)",
             paper="‖∂h_t/∂h_{t−1}‖ ≤ γλ₁", measured=f"largest factor / bound = {worst:.3f} over {len(f)} nets",
             holds=bool(len(f) and worst <= 1.01)),
        dict(claim="λ₁ < 1/γ: the signal vanishes (factor < 1) for every net, tanh and sigmoid",
             paper="λ₁ < 1/γ is sufficient for vanishing",
             measured=", ".join(f"{a} λ₁={lam:g}: {v:.3f}" for a, lam, v in
                                below.groupby(["activation", "lambda1"])["time_decay"].max().reset_index().to_numpy()),
             holds=bool(len(below) and (below["time_decay"] < 1).all())),
        dict(claim="sigmoid (γ = 1/4) vanishes even with 1 < λ₁ < 4, where tanh with the same λ₁ need not",
             paper="γ = 1/4 for sigmoid",
             measured=", ".join(f"λ₁={lam:g}: {v:.3f}" for lam, v in
                                sig_between.groupby("lambda1")["time_decay"].max().items()),
             holds=bool(len(sig_between) and (sig_between["time_decay"] < 1).all())),
        dict(claim="above λ₁ = 1/γ the signal can explode: some tanh net with λ₁ > 1 has factor > 1",
             paper="λ₁ > 1/γ is necessary for exploding",
             measured=", ".join(f"λ₁={lam:g}: {v:.3f}" for lam, v in
                                tanh_above.groupby("lambda1")["time_decay"].median().items()),
             holds=bool((tanh_above["time_decay"] > 1).any())),
        dict(claim="at learning rate 0.1 every net whose signal explodes diverges unclipped, and stays finite "
                   "for every step with the gradient norm clipped at 1",
             paper="Algorithm 1 deals with exploding gradients",
             measured=f"unclipped diverged {int(plain['diverged'].sum())}/{len(plain)} (by step "
                      f"{plain['diverged_step'].max()}), clipped finite {int(finite.sum())}/{len(clipped)}",
             holds=bool(len(plain) and plain["diverged"].all() and len(clipped) and finite.all())),
        dict(claim="clipped, the moderately exploding nets (1 < λ₁ ≤ 2) learn: final MSE below half the initial",
             paper="clipping lets SGD train where gradients explode (sec. 4)",
             measured=", ".join(f"{a} λ₁={lam:g}: {first_loss[c]:.2f} → {v:.3f}" for a, lam, c, v in
                                moderate[["activation", "lambda1", "config_id", "final_loss"]].to_numpy()),
             holds=bool(len(moderate) and halved.all())),
    ]


if __name__ == "__main__":
    from satbench.figures._common import standalone

    standalone("pascanu2013", plot)
