"""The MLP under study, as a Flax nnx module used in functional style.

Layer 1 maps the input to ``width`` units; layers 2..depth are stacked along
a leading axis so they can run under ``lax.scan`` (compile time flat in
depth) or be unrolled (faster for shallow stacks). The forward pass returns
every pre-activation, and accepts additive ``taps`` on them, so probes read
``h_l`` and ``∂L/∂h_l`` without hooks.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from satbench import activations, inits

LAYER_MODES = ("scan", "unroll")


@dataclasses.dataclass(frozen=True)
class Architecture:
    """Everything about the network that changes the compiled program."""

    n_in: int
    n_out: int
    width: int
    depth: int
    activation: str
    init: str | tuple[str, ...]  # several: the rule is chosen per lane by ``init_index``
    layers: str = "scan"  # "scan" | "unroll"

    def __post_init__(self):
        if isinstance(self.init, str):
            object.__setattr__(self, "init", (self.init,))
        if self.depth < 1:
            raise ValueError(f"depth must be >= 1, got {self.depth}")
        if self.layers not in LAYER_MODES:
            raise ValueError(f"layers must be one of {LAYER_MODES}, got {self.layers!r}")


class Forward(NamedTuple):
    logits: jax.Array  # (batch, n_out)
    preacts: jax.Array  # (depth, batch, width): h_l = W_l φ(h_{l-1}) + b_l


class MLP(nnx.Module):
    """input → depth × (affine → φ) → affine readout."""

    def __init__(self, arch: Architecture, sigma_w2, sigma_b2, *, rngs: nnx.Rngs, init_index=0):
        self.arch = arch
        rule = _init_rule(arch.init, init_index)
        w, n = arch.width, arch.depth - 1
        shapes = {
            "w_in": (arch.n_in, w), "b_in": (w,),
            "w_hidden": (n, w, w), "b_hidden": (n, w),
            "w_out": (w, arch.n_out), "b_out": (arch.n_out,),
        }
        noise = _split_noise(jax.random.normal(rngs.params(), (_total(shapes),)), shapes)
        bias_scale = jnp.sqrt(sigma_b2)
        self.w_in = nnx.Param(rule(noise["w_in"], sigma_w2))
        self.b_in = nnx.Param(noise["b_in"] * bias_scale)
        self.w_hidden = nnx.Param(
            jax.vmap(rule, in_axes=(0, None))(noise["w_hidden"], sigma_w2).reshape(n, w, w)
        )
        self.b_hidden = nnx.Param(noise["b_hidden"] * bias_scale)
        self.w_out = nnx.Param(rule(noise["w_out"], sigma_w2))
        self.b_out = nnx.Param(noise["b_out"] * bias_scale)

    def __call__(self, x, taps=None, active=None) -> Forward:
        """Forward pass.

        taps: optional (depth, batch, width) added to the pre-activations; the
          gradient with respect to them is ∂L/∂h_l.
        active: optional (depth,) boolean mask; an inactive layer is the
          identity (pad-and-mask batching of several depths in one program).
        """
        arch = self.arch
        phi = activations.get_activation(arch.activation)
        if taps is None:
            taps = jnp.zeros((arch.depth, x.shape[0], arch.width), x.dtype)
        if active is None:
            active = jnp.ones((arch.depth,), bool)

        h1 = x @ self.w_in[...] + self.b_in[...] + taps[0]
        a1 = phi(h1)

        def layer(a, inputs):
            w, b, tap, on = inputs
            h = a @ w + b + tap
            return jnp.where(on, phi(h), a), h

        xs = (self.w_hidden[...], self.b_hidden[...], taps[1:], active[1:])
        if arch.layers == "scan":
            a, hs = jax.lax.scan(layer, a1, xs)
        else:
            a, hs_list = a1, []
            for i in range(arch.depth - 1):
                a, h = layer(a, jax.tree.map(lambda t: t[i], xs))
                hs_list.append(h)
            hs = jnp.stack(hs_list) if hs_list else jnp.zeros((0,) + h1.shape, h1.dtype)
        logits = a @ self.w_out[...] + self.b_out[...]
        return Forward(logits, jnp.concatenate([h1[None], hs], axis=0))

    def layer_weight_norms(self) -> jax.Array:
        """(depth,) Frobenius norms of the hidden weights; applied to a gradient state
        merged into this module, they are ‖∂L/∂W_l‖_F."""
        first = jnp.sqrt(jnp.sum(self.w_in[...] ** 2))[None]
        rest = jnp.sqrt(jnp.sum(self.w_hidden[...] ** 2, axis=(1, 2)))
        return jnp.concatenate([first, rest])


def _init_rule(names: tuple[str, ...], index):
    """The init rule ``names[index]``; with several names, ``index`` may be traced."""
    rules = [inits.get_init(n) for n in names]
    if len(rules) == 1:
        return rules[0]
    return lambda noise, sigma_w2: jax.lax.switch(index, rules, noise, sigma_w2)


def _total(shapes: dict) -> int:
    return sum(math.prod(shape) for shape in shapes.values())


def _split_noise(flat, shapes: dict) -> dict:
    """Slice one flat N(0, 1) draw into arrays of the given shapes.

    One random call for the whole network: on CPU each call costs compile time.
    """
    out, offset = {}, 0
    for name, shape in shapes.items():
        size = math.prod(shape)
        out[name] = flat[offset : offset + size].reshape(shape)
        offset += size
    return out


def init_state(arch: Architecture, key, sigma_w2, sigma_b2, init_index=0):
    """(graphdef, params) of a freshly initialised MLP: plain pytrees for jit/vmap."""
    model = MLP(arch, sigma_w2, sigma_b2, rngs=nnx.Rngs(params=key), init_index=init_index)
    return nnx.split(model)
