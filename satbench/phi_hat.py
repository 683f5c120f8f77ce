"""A lane's transformed activation φ̂(h) = γ(φ(αh + β) + δ) and its derivative, as JAX functions.

The constants are per-lane numbers (the ``phi_*`` fields, filled per config from
``satbench.transforms.solve``), so nets that differ only in their transform's depth or targets share
a compiled program. A program whose configs are all untransformed never builds these: its
forward pass is the plain φ, op for op (``models.Context.phi`` is None).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from satbench import activations

#: the lane fields that hold the constants, in ``PhiTransform`` order
FIELDS = ("phi_alpha", "phi_beta", "phi_gamma", "phi_delta", "phi_param")


class PhiTransform(NamedTuple):
    """One lane's constants (scalars). ``param``: the activation's own parameter (leaky ReLU's
    negative slope) where the transform sets it; NaN: the one in the activation's name."""

    alpha: jax.Array | float = 1.0
    beta: jax.Array | float = 0.0
    gamma: jax.Array | float = 1.0
    delta: jax.Array | float = 0.0
    param: jax.Array | float = float("nan")

    @classmethod
    def from_lane(cls, lane: dict) -> "PhiTransform":
        return cls(*(lane[name] for name in FIELDS))


def _with_param(name: str, param):
    """φ of ``name``, its parameter replaced by ``param`` where that is a number (not NaN)."""
    entry = activations.get_entry(name)
    _, own = activations.parse_name(name)
    if own is None:  # takes no parameter
        return activations.get_activation(name)
    return lambda x: entry.fn(x, param=jnp.where(jnp.isnan(param), own, param).astype(x.dtype))


def _derivative(fn):
    """Elementwise fn' by autodiff (arrays of any shape)."""
    return jnp.vectorize(jax.grad(fn))


def function(names: tuple[str, ...], index, t: PhiTransform):
    """φ̂ of the lane's activation ``names[index]`` (``index`` may be traced)."""
    phi = activations.switch([_with_param(n, t.param) for n in names], index)
    return lambda h: t.gamma * (phi(t.alpha * h + t.beta) + t.delta)


def derivative(names: tuple[str, ...], index, t: PhiTransform):
    """φ̂'(h) = γα φ'(αh + β)."""
    dphi = activations.switch([_derivative(_with_param(n, t.param)) for n in names], index)
    return lambda h: t.gamma * t.alpha * dphi(t.alpha * h + t.beta)
