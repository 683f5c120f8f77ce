"""The adding problem (Hochreiter & Schmidhuber 1997; Le et al. 2015): learning curves per net and
length T, against the baseline of predicting 1 (MSE = Var(U₁ + U₂) = 1/6).

Left: ‖∂L/∂h_t‖² at initialisation relative to the last step, against the lag T − t (how much of the
loss's gradient reaches early inputs). Middle: training MSE (on up to 2048 training sequences) against
the step, median over seeds, one line per net and T. Right: at the end, the fraction of test sequences solved (|output − target| < 0.04,
Hochreiter & Schmidhuber's criterion) per net and T. ``hochreiter1997`` and ``le2015`` draw this
figure and check their own claims on it (a helper module: no experiment names it).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

#: MSE of the constant prediction 1: the variance of the sum of two U[0, 1] values
BASELINE = 1 / 6


def net_label(row) -> str:
    """What a net is, in a figure's words: the cell, or the vanilla RNN's activation and recurrent init."""
    if row["model"] != "rnn":
        return row["model"].upper()
    if row.get("recurrent_init") == "identity" and row["activation"] == "relu":
        return "IRNN"
    return f"RNN {row['activation']}, {row['recurrent_init']}"


def labelled(results):
    runs = results.runs.copy()
    runs["net"] = [net_label(r) for r in runs.to_dict("records")]
    return runs


#: a net "stays at the baseline" if it ends no more than this below 1/6
AT_BASELINE = 0.01


def stays_at_baseline(row, t: int, paper: str) -> dict:
    """The claim that a net (its ``final`` row at length ``t``) learned nothing: every seed's final
    MSE at least 1/6 − AT_BASELINE."""
    return dict(
        claim=f"T = {t}: a tanh RNN (Gaussian W) stays at the baseline (every seed's final MSE ≥ 1/6 − "
              f"{AT_BASELINE})",
        paper=paper, measured=f"best seed MSE {row['best']:.4f} vs {BASELINE:.4f}",
        holds=bool(row["best"] >= BASELINE - AT_BASELINE))


def final(results):
    """Per net and T: the median over seeds of the final training MSE, the worst and best seed's, and
    the median and smallest fraction of test sequences solved."""
    runs = labelled(results)
    return runs.groupby(["net", "seq_len"]).agg(
        mse=("final_loss", "median"), worst=("final_loss", "max"), best=("final_loss", "min"),
        solved=("final_test_accuracy", "median"), least_solved=("final_test_accuracy", "min"),
        seeds=("seed", "nunique")).reset_index()


def signal_at_init(results, runs):
    """‖∂L/∂h_t‖² relative to the last step, at initialisation, against the lag, median over seeds."""
    steps = results.timesteps
    steps = steps[steps["step"] == 0].merge(runs[["config_id", "net", "seq_len"]], on="config_id")
    end = steps[steps["t"] == steps["seq_len"]].set_index("config_id")["signal_norm"]
    steps = steps.assign(lag=steps["seq_len"] - steps["t"],
                         relative=(steps["signal_norm"] / steps["config_id"].map(end)) ** 2)
    return steps.groupby(["net", "seq_len", "lag"], as_index=False)["relative"].median()


def plot(results):
    from satbench.figures._common import style

    style()
    runs = labelled(results)
    curves = results.curves.merge(runs[["config_id", "net", "seq_len"]], on="config_id")
    fig, (ax_g, ax_c, ax_s) = plt.subplots(1, 3, figsize=(17, 4.8), constrained_layout=True)
    nets = sorted(runs["net"].unique())
    colours = dict(zip(nets, sns.color_palette("tab10", len(nets))))
    lengths = sorted(runs["seq_len"].unique())
    dashes = dict(zip(lengths, ["-", "--", ":", "-."] * 3))
    signal = signal_at_init(results, runs)
    for (net, t), g in signal.groupby(["net", "seq_len"]):
        g = g[g["relative"] > 0]  # underflowed: off a log axis
        ax_g.plot(g["lag"], g["relative"], dashes[t], color=colours[net], label=f"{net}, T = {t}")
    ax_g.set(yscale="log", xlabel="lag T − t (steps back from the loss)", ylabel="‖∂L/∂h_t‖² / ‖∂L/∂h_T‖² at init",
             title="the signal through time at initialisation")
    ax_g.legend(fontsize=7)
    for (net, t), g in curves.groupby(["net", "seq_len"]):
        med = g.groupby("step")["train_loss"].median()
        ax_c.plot(med.index, med.clip(upper=10), dashes[t], color=colours[net], label=f"{net}, T = {t}")
    ax_c.axhline(BASELINE, color="grey", lw=1, ls="--", label="predict 1 (MSE 1/6)")
    ax_c.set(yscale="log", xlabel="step", ylabel="training MSE (median over seeds)",
             title="learning curves")
    ax_c.legend(fontsize=7)
    table = final(results)
    width = 0.8 / max(len(nets), 1)
    for i, net in enumerate(nets):
        sub = table[table["net"] == net].set_index("seq_len").reindex(lengths)
        ax_s.bar(np.arange(len(lengths)) + i * width, sub["solved"], width, color=colours[net], label=net)
    ax_s.set_xticks(np.arange(len(lengths)) + width * (len(nets) - 1) / 2, [f"T = {t}" for t in lengths])
    ax_s.set(ylim=(0, 1), ylabel="test sequences solved (|error| < 0.04)", title="solved at the end")
    ax_s.legend(fontsize=7)
    fig.suptitle(f"The adding problem: width {int(runs['width'].iloc[0])}, {runs['optimizer'].iloc[0]}, "
                 f"{int(runs['steps'].iloc[0])} steps, batch {int(runs['batch_size'].iloc[0])}, "
                 f"{runs['seed'].nunique()} seeds")
    return fig

