"""The MLP family's implementation: dense layers on flattened inputs (declared in
``satbench.families.mlp``)."""

from __future__ import annotations

import dataclasses

from satbench.families import Cost, DataShape
from satbench.fields import choices_as_tuples, normalises
from satbench.models import LayerStack


@dataclasses.dataclass(frozen=True)
class Architecture:
    """Everything about the MLP that changes the compiled program (validated by ``satbench.spec``)."""

    n_in: int
    n_out: int
    width: int
    depth: int
    activation: str | tuple[str, ...]  # several: φ is chosen per lane by ``Context.activation_index``
    init: str | tuple[str, ...]  # several: the rule is chosen per lane by ``init_index``
    layers: str = "scan"  # "scan" | "unroll"
    norm: str | tuple[str, ...] = "none"  # none | batchnorm | layernorm before φ; several: per lane, norm_index
    residual_branch: str = "fixed"  # fixed | rezero | fixup (``models.LayerStack``)
    model = "mlp"

    def __post_init__(self):
        choices_as_tuples(self, ("init", "activation", "norm"))

    @property
    def site_shape(self) -> tuple[int]:
        return (self.width,)

    @property
    def n_sites(self) -> int:
        return self.depth


class Network(LayerStack):
    """input (flattened) → depth × (dense → φ) → dense readout."""

    @staticmethod
    def param_shapes(arch: Architecture) -> dict:
        w, n = arch.width, arch.depth - 1
        return {"w_in": (arch.n_in, w), "b_in": (w,), "w_hidden": (n, w, w), "b_hidden": (n, w),
                "w_out": (w, arch.n_out), "b_out": (arch.n_out,)}

    def first_layer(self, x):
        return x.reshape(x.shape[0], -1) @ self.w_in[...] + self.b_in[...]

    def hidden_affine(self, a, w, b):
        return a @ w + b

    def readout(self, a):
        return a @ self.w_out[...] + self.b_out[...]


MLP = Network


def architecture(values, depth: int, shape: DataShape, activations: tuple, inits: tuple, layers: str):
    return Architecture(n_in=shape.n_in, n_out=shape.n_out, width=values["width"], depth=depth,
                        activation=activations, init=inits, layers=layers, norm=values["norm"],
                        residual_branch=values["residual_branch"])


def n_params(width: int, depth: int, n_in: int, n_out: int) -> int:
    """Weights and biases: input layer, depth - 1 hidden layers, readout."""
    return n_in * width + width + (depth - 1) * (width * width + width) + width * n_out + n_out


def cost(values, depth: int, shape: DataShape) -> Cost:
    w = values["width"]
    weights = shape.n_in * w + (depth - 1) * w * w + w * shape.n_out
    normalised = normalises(values["norm"])  # a config's norm, or a program's norms
    branch = values["residual_branch"]
    second = (depth - 1) * w * w if branch == "fixup" else 0  # fixup's second layer per branch
    weights += second
    params = (n_params(w, depth, shape.n_in, shape.n_out) + (2 * depth * w if normalised else 0)
              + (depth if branch != "fixed" else 0) + second)
    return Cost(params=params, forward_flops=2.0 * weights, site_units=w, matmul_width=w)
