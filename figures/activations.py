"""φ and φ' side by side: sigmoid's derivative peaks at 1/4, tanh's at 1, ReLU's is 0 or 1."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

DEFAULT = ("sigmoid", "tanh", "relu", "leaky_relu")


def plot(results=None, names=None):
    from satbench import activations

    from satbench.figures._common import style

    style()
    if names is None:
        names = list(dict.fromkeys(results.runs["activation"])) if results is not None else list(DEFAULT)
    x = np.linspace(-5, 5, 1001, dtype=np.float32)
    fig, (ax_f, ax_d) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for name in names:
        y = np.asarray(activations.get_activation(name)(x))
        dy = np.asarray(activations.derivative(name)(x))
        peak = activations.max_abs_derivative(name)
        (line,) = ax_f.plot(x, y, label=name)
        ax_d.plot(x, dy, color=line.get_color(), label=f"{name} (max {peak:.3g})")
    ax_f.set(xlabel="pre-activation h", ylabel="φ(h)", title="activation", ylim=(-1.5, 3))
    ax_d.set(xlabel="pre-activation h", ylabel="φ'(h)", title="derivative: the per-layer gradient factor",
             ylim=(-0.05, 1.2))
    ax_d.axhline(0.25, color="grey", ls=":", lw=1)
    ax_d.annotate("1/4: sigmoid's best case", (-4.9, 0.27), fontsize=8, color="grey")
    ax_f.legend(loc="upper left")
    ax_d.legend(loc="upper left", fontsize=8)
    return fig


if __name__ == "__main__":
    from satbench.figures._common import standalone

    standalone("activations", plot)
