"""Too-large initial weights saturate units and stall learning.

Left: fraction of saturated units (|φ'| < 5 % of its peak) at init,
averaged over layers, against σ_w². Middle: steps to reach the target train
loss (runs that never reach it are drawn on the dashed "not reached" line).
Right: final train accuracy. Gaussian init (σ_w² is then the whole scale),
deepest network of the sweep, mean and range over seeds.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import seaborn as sns


def plot(results):
    from satbench.figures._common import at_init, palette, style

    style()
    runs = results.runs
    init = "gaussian" if "gaussian" in set(runs["init"]) else runs["init"].iloc[0]
    depth = runs["depth"].max()
    runs = runs[(runs["init"] == init) & (runs["depth"] == depth)].copy()
    layers = at_init(results)
    layers = layers[(layers["init"] == init) & (layers["depth"] == depth)]
    sat = layers.groupby(["config_id", "activation", "sigma_w2"], as_index=False)["sat_frac"].mean()

    steps = int(runs["steps"].max())
    runs["reached"] = runs["steps_to_target"].notna()
    runs["steps_to_target_plot"] = runs["steps_to_target"].astype("float64").fillna(steps * 1.1)

    fig, axes = plt.subplots(1, 3, figsize=(14, 4), constrained_layout=True)
    kw = dict(hue="activation", marker="o", errorbar=("pi", 100), palette=palette(runs["activation"].unique()),
              hue_order=list(palette(runs["activation"].unique())))
    sat = sat.dropna(subset=["sat_frac"])  # defined for saturating activations only
    sns.lineplot(data=sat, x="sigma_w2", y="sat_frac", ax=axes[0], **kw)
    axes[0].set(xscale="log", xlabel="σ_w² (weight variance × fan-in)", ylabel="saturated fraction at init",
                title="saturation grows with weight scale\n(saturating activations)")
    sns.lineplot(data=runs, x="sigma_w2", y="steps_to_target_plot", ax=axes[1], legend=False, **kw)
    axes[1].axhline(steps * 1.1, color="grey", ls="--", lw=1)
    axes[1].text(axes[1].get_xlim()[0], steps * 1.12, " not reached", color="grey", fontsize=8)
    target = runs["target_loss"].dropna()
    axes[1].set(xscale="log", xlabel="σ_w²", ylabel="SGD steps",
                title=f"steps to train loss ≤ {target.iloc[0]:g}" if len(target) else "steps to target")
    sns.lineplot(data=runs, x="sigma_w2", y="final_train_accuracy", ax=axes[2], **kw)
    axes[2].legend(title="activation", fontsize=8)
    axes[2].set(xscale="log", xlabel="σ_w²", ylabel="train accuracy", ylim=(0, 1.02),
                title=f"after {steps} steps")
    fig.suptitle(f"{init} init, depth {depth}, width {int(runs['width'].iloc[0])}")
    return fig


if __name__ == "__main__":
    from satbench.figures._common import standalone

    standalone("saturation", plot)
