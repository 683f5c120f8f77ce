"""He et al. 2015: variance propagation and trainability of a deep ReLU net.

Left: pre-activation variance q_l = mean h_l² at initialisation, relative to
layer 1, against layer: He init (Var W = 2/fan_in) keeps it flat, Xavier /
LeCun (Var W = 1/fan_in) halves it per layer (dashed: 2^-(l-1)). Right:
train accuracy over SGD steps, one line per seed: He trains, Xavier stalls
(the paper's Fig. 3, 30-layer model).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

LABELS = {"he": "He (2/fan_in)", "gaussian": "Xavier/LeCun (1/fan_in)"}


def _log_ratio(results):
    """ln(q_L/q_1) at init per config, with its init."""
    layers = results.with_config("layers")
    init = layers[layers["step"] == 0]
    first = init[init["layer"] == 1].set_index("config_id")["preact_rms"]
    last = init[init["layer"] == init["depth"]].set_index("config_id")["preact_rms"]
    runs = results.runs.set_index("config_id")
    return runs.assign(log_q_ratio=2 * np.log(last / first))


def plot(results):
    from satbench.figures._common import style

    style()
    layers = results.with_config("layers")
    init = layers[layers["step"] == 0].copy()
    q1 = init[init["layer"] == 1].set_index("config_id")["preact_rms"]
    init["q_rel"] = (init["preact_rms"] / init["config_id"].map(q1)) ** 2
    init["init_label"] = init["init"].map(LABELS).fillna(init["init"])
    curves = results.with_config("curves")
    curves["init_label"] = curves["init"].map(LABELS).fillna(curves["init"])

    fig, (ax_q, ax_c) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    sns.lineplot(data=init, x="layer", y="q_rel", hue="init_label", units="seed", estimator=None,
                 marker="o", markersize=3, ax=ax_q)
    depth = int(init["depth"].max())
    ell = np.arange(1, depth + 1)
    ax_q.plot(ell, 2.0 ** -(ell - 1.0), "k--", lw=1, label="theory 2^-(l-1)")
    ax_q.axhline(1.0, color="k", ls=":", lw=1, label="theory: flat")
    ax_q.set(yscale="log", xlabel="layer l", ylabel="q_l / q_1 (pre-activation variance)",
             title=f"variance at init, ReLU, width {int(results.runs['width'].iloc[0])}")
    ax_q.legend(fontsize=8)
    sns.lineplot(data=curves, x="step", y="train_accuracy", hue="init_label", units="seed",
                 estimator=None, ax=ax_c)
    ax_c.axhline(0.1, color="grey", ls=":", lw=1)
    ax_c.text(0, 0.12, "chance", color="grey", fontsize=8)
    ax_c.set(ylim=(0, 1.02), xlabel="SGD step", ylabel="train accuracy",
             title=f"{depth}-layer ReLU MLP on digits")
    ax_c.legend(fontsize=8, title=None)
    return fig


def claims(results):
    """He et al. 2015's statements, measured. The variance bands are theory: Var[ln q_L/q_1] ≈ 5L/N
    at finite width N (Hanin 2018; ``hanin2018`` checks it), so one seed's ln ratio lies within
    3√(5L/N) of its expectation, and the median of several seeds closer still. The accuracy bands
    are a quarter and three quarters of the way from chance to 1 (``_common.near_chance_below``)."""
    from satbench.figures._common import near_chance_below, trained_above

    r = _log_ratio(results)
    depth, width = int(r["depth"].iloc[0]), int(r["width"].iloc[0])
    spread = 3 * np.sqrt(5 * depth / width)  # Hanin: std of ln q_L/q_1 ≈ √(5L/N)
    he, xavier = r[r["init"] == "he"], r[r["init"] == "gaussian"]
    halving = -(depth - 1) * np.log(2)
    runs = results.runs
    dead, alive = near_chance_below(runs), trained_above(runs)
    return [
        dict(claim="He init: q_L/q_1 ≈ 1 (|median ln ratio| < 3√(5L/N))",
             paper="Var[y_L] = Var[y_1] when ½ n Var w = 1 (sec. 2.2)",
             measured=f"median ln ratio {he['log_q_ratio'].median():.2f} (bound {spread:.2f})",
             holds=bool(abs(he["log_q_ratio"].median()) < spread)),
        dict(claim="Xavier init: q_L/q_1 ≈ 2^-(L-1) (within 3√(5L/N))", paper=f"ln ratio {halving:.1f}",
             measured=f"median ln ratio {xavier['log_q_ratio'].median():.1f}",
             holds=bool(abs(xavier["log_q_ratio"].median() - halving) < spread)),
        dict(claim=f"He init trains (final train accuracy > {alive:.3f}, median over seeds)",
             paper="30-layer model converges (Fig. 3)",
             measured=f"{he['final_train_accuracy'].median():.3f}",
             holds=bool(he["final_train_accuracy"].median() > alive)),
        dict(claim=f"Xavier init stalls near chance (final train accuracy < {dead:.3f}, median over seeds)",
             paper="\"completely stalls\" (Fig. 3)",
             measured=f"{xavier['final_train_accuracy'].median():.3f}",
             holds=bool(xavier["final_train_accuracy"].median() < dead)),
    ]


if __name__ == "__main__":
    from satbench.figures._common import standalone

    standalone("he2015", plot)
