"""The CNN family's implementation (declared in ``satbench.families.cnn``).

Layer 1 maps the image's C_in channels to ``channels``; layers 2..depth are
k×k convolutions of ``channels`` channels at stride 1, so every site is an
(H, W, channels) map and the stack runs under ``lax.scan`` at any depth. With
circular padding a layer is a convolution on a torus, the setting in which Xiao
et al. (2018) show the q-map and χ₁ equal the fully connected ones with fan-in
k²·C. The readout is dense, over the channels' averages across positions (``pool``) or over
every position's channels (``flatten``).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from satbench.families import Cost, DataShape
from satbench.fields import choices_as_tuples, normalises
from satbench.models import LayerStack


@dataclasses.dataclass(frozen=True)
class Architecture:
    """Everything about the CNN that changes the compiled program (validated by ``satbench.spec``)."""

    image_shape: tuple[int, int, int]  # (height, width, input channels)
    n_out: int
    channels: int
    depth: int
    activation: tuple[str, ...]
    init: tuple[str, ...]
    kernel_size: int = 3
    padding: str = "circular"  # "circular" | "same"
    readout: str = "pool"  # "pool" | "flatten"
    layers: str = "scan"
    norm: str | tuple[str, ...] = "none"  # several: picked per lane by ``Context.norm_index``
    model = "cnn"

    def __post_init__(self):
        choices_as_tuples(self, ("init", "activation", "norm"))

    @property
    def site_shape(self) -> tuple[int, int, int]:
        height, width, _ = self.image_shape
        return (height, width, self.channels)

    @property
    def n_sites(self) -> int:
        return self.depth


def convolve(x, kernel, padding: str):
    """Stride-1 2-D convolution (cross-correlation, as ``lax.conv``) of NHWC ``x`` with an HWIO
    ``kernel``, output the input's size: ``circular`` wraps the image around (a torus), ``same``
    pads with zeros.

    Written as one matrix product of the k² shifted copies of the image (im2col) rather than
    ``lax.conv_general_dilated``: inside the training loop's ``scan`` XLA:CPU (jaxlib 0.10) lowers
    the convolution's kernel gradient to a slow layout path (55× one layer's time outside a loop,
    benchmarks/README.md); as a matmul a vmapped depth-8, 16-channel training run took 6-13 s
    instead of 66 s on 2 cores, with losses equal to 2e-7.
    """
    k = kernel.shape[0]
    half = k // 2
    pad = ((0, 0), (half, half), (half, half), (0, 0))
    padded = jnp.pad(x, pad, mode="wrap") if padding == "circular" else jnp.pad(x, pad)
    height, width = x.shape[1], x.shape[2]
    shifted = [padded[:, i:i + height, j:j + width, :] for i in range(k) for j in range(k)]
    return jnp.concatenate(shifted, axis=-1) @ kernel.reshape(-1, kernel.shape[-1])


class Network(LayerStack):
    """image → depth × (k×k convolution → φ) → [global average pool] → dense readout."""

    @staticmethod
    def param_shapes(arch: Architecture) -> dict:
        k, c, n = arch.kernel_size, arch.channels, arch.depth - 1
        features = readout_features(arch.readout, arch.image_shape, c)
        return {"w_in": (k, k, arch.image_shape[-1], c), "b_in": (c,), "w_hidden": (n, k, k, c, c),
                "b_hidden": (n, c), "w_out": (features, arch.n_out), "b_out": (arch.n_out,)}

    def first_layer(self, x):
        x = x.reshape(x.shape[0], *self.arch.image_shape)
        return convolve(x, self.w_in[...], self.arch.padding) + self.b_in[...]

    def hidden_affine(self, a, w, b):
        return convolve(a, w, self.arch.padding) + b

    def readout(self, a):
        features = a.mean(axis=(1, 2)) if self.arch.readout == "pool" else a.reshape(a.shape[0], -1)
        return features @ self.w_out[...] + self.b_out[...]


def readout_features(readout: str, image_shape, channels: int) -> int:
    """Inputs of the dense readout: the channels (``pool``), or every position's channels."""
    height, width, _ = image_shape
    return channels if readout == "pool" else height * width * channels


def architecture(values, depth: int, shape: DataShape, activations: tuple, inits: tuple, layers: str):
    return Architecture(image_shape=shape.input_shape, n_out=shape.n_out, channels=values["channels"], depth=depth,
                        activation=activations, init=inits, kernel_size=values["kernel_size"],
                        padding=values["padding"], readout=values["readout"], layers=layers, norm=values["norm"])


def cost(values, depth: int, shape: DataShape) -> Cost:
    height, width, c_in = shape.input_shape
    k, c = values["kernel_size"], values["channels"]
    positions = height * width
    weights = k * k * c_in * c + (depth - 1) * k * k * c * c
    normalised = normalises(values["norm"])  # a config's norm, or a program's norms
    features = readout_features(values["readout"], shape.input_shape, c)
    params = weights + depth * c + features * shape.n_out + shape.n_out + (2 * depth * c if normalised else 0)
    flops = 2.0 * positions * weights + 2.0 * features * shape.n_out
    return Cost(params=params, forward_flops=flops, site_units=positions * c, matmul_width=c,
                saved_units=positions * k * k * c)
