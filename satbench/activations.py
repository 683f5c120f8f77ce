"""Activation registry: a name maps to one elementwise function.

A new activation is one function; its derivative comes from ``jax.grad``
and its mean-field theory from quadrature, so nothing else is needed.

Names may carry one numeric parameter after a colon, e.g. ``leaky_relu:0.2``;
an activation registered with ``param_default`` receives it as ``param``.
Other packages add activations through the entry-point group
``satbench.activations``: each entry point names a function ``x -> y``,
registered under the entry point's name.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from satbench import plugins

ENTRY_POINT_GROUP = "satbench.activations"


@dataclasses.dataclass(frozen=True)
class Activation:
    """A registered activation: the function plus what probes need to know."""

    name: str
    fn: Callable  # fn(x) or fn(x, param)
    saturating: bool = False
    param_default: float | None = None
    doc: str = ""


_REGISTRY: dict[str, Activation] = {}


def register_activation(
    name: str, *, saturating: bool = False, param_default: float | None = None
):
    """Decorator that adds ``fn`` to the registry under ``name``.

    ``saturating`` marks activations whose derivative vanishes in both tails
    (sigmoid, tanh, ...); it is informational, probes measure every activation.
    """
    if not name or ":" in name:
        raise ValueError(f"activation name must be non-empty and contain no ':': {name!r}")

    def decorate(fn: Callable) -> Callable:
        doc = (fn.__doc__ or "").strip().splitlines()
        _REGISTRY[name] = Activation(name, fn, saturating, param_default, doc[0] if doc else "")
        _cached_fn.cache_clear()
        return fn

    return decorate


def _load_plugins() -> None:
    plugins.load_once(ENTRY_POINT_GROUP, _REGISTRY, lambda name, fn: register_activation(name)(fn))


def known_activations() -> list[str]:
    """Names of every registered activation, plugins included."""
    _load_plugins()
    return sorted(_REGISTRY)


def parse_name(spec: str) -> tuple[str, float | None]:
    """Split ``'leaky_relu:0.2'`` into ``('leaky_relu', 0.2)``; raise ValueError if unknown."""
    _load_plugins()
    base, _, param_text = spec.partition(":")
    if base not in _REGISTRY:
        raise ValueError(
            f"unknown activation {spec!r}; known: {', '.join(known_activations())}"
        )
    entry = _REGISTRY[base]
    if not param_text:
        return base, entry.param_default
    if entry.param_default is None:
        raise ValueError(f"activation {base!r} takes no parameter (got {spec!r})")
    try:
        return base, float(param_text)
    except ValueError:
        raise ValueError(f"activation parameter must be a number: {spec!r}") from None


def get_entry(spec: str) -> Activation:
    """The registry entry for ``spec`` (parameter ignored)."""
    return _REGISTRY[parse_name(spec)[0]]


def get_activation(spec: str) -> Callable[[jax.Array], jax.Array]:
    """The elementwise function for ``spec`` (e.g. ``'tanh'`` or ``'leaky_relu:0.2'``)."""
    base, param = parse_name(spec)
    return _cached_fn(base, param)


@functools.lru_cache(maxsize=None)
def _cached_fn(base: str, param: float | None) -> Callable:
    fn = _REGISTRY[base].fn
    if param is None:
        return fn
    return functools.partial(fn, param=param)


def derivative(spec: str) -> Callable[[jax.Array], jax.Array]:
    """Elementwise φ' by autodiff, valid on arrays of any shape."""
    fn = get_activation(spec)
    scalar_grad = jax.grad(lambda x: fn(x))
    return lambda x: jnp.vectorize(scalar_grad)(x)


def switch(fns: list[Callable], index) -> Callable[[jax.Array], jax.Array]:
    """``fns[index]`` as one elementwise function; ``index`` may be traced.

    Several activations then share one compiled program, the choice being
    per-lane data: under vmap every branch is evaluated and selected, which
    costs elementwise work, small next to the matmuls, and saves compiles.
    """
    if len(fns) == 1:
        return fns[0]
    return lambda x: jax.lax.switch(index, fns, x)


@functools.lru_cache(maxsize=None)
def max_abs_derivative(spec: str) -> float:
    """max |φ'(x)| over x in [-12, 12] on a grid of step 1e-4 (0 is on the grid).

    The saturation threshold is relative to this value (sigmoid 0.25, tanh 1).
    """
    d = derivative(spec)
    grid = np.linspace(-12.0, 12.0, 240_001, dtype=np.float32)
    with jax.ensure_compile_time_eval():  # may be first called while tracing a run
        values = np.abs(np.asarray(d(jnp.asarray(grid))))
    return float(values.max())


# ---------------------------------------------------------------- built-ins
@register_activation("sigmoid", saturating=True)
def sigmoid(x):
    """Logistic function; derivative peaks at 1/4."""
    return jax.nn.sigmoid(x)


@register_activation("tanh", saturating=True)
def tanh(x):
    """Hyperbolic tangent; derivative peaks at 1."""
    return jnp.tanh(x)


@register_activation("relu")
def relu(x):
    """Rectifier: derivative 0 or 1, units can die."""
    return jax.nn.relu(x)


@register_activation("leaky_relu", param_default=0.01)
def leaky_relu(x, param=0.01):
    """Rectifier with slope ``param`` (default 0.01) for x < 0."""
    return jnp.where(x >= 0, x, param * x)


@register_activation("elu")
def elu(x):
    """Exponential linear unit (alpha = 1)."""
    return jax.nn.elu(x)


@register_activation("selu")
def selu(x):
    """Scaled ELU of Klambauer et al. 2017 (self-normalising)."""
    return jax.nn.selu(x)


@register_activation("gelu")
def gelu(x):
    """Gaussian error linear unit, exact erf form."""
    return jax.nn.gelu(x, approximate=False)


@register_activation("silu")
def silu(x):
    """x·sigmoid(x) (swish)."""
    return jax.nn.silu(x)


@register_activation("softplus")
def softplus(x):
    """log(1 + e^x)."""
    return jax.nn.softplus(x)


@register_activation("softsign", saturating=True)
def softsign(x):
    """x / (1 + |x|): polynomial tails (Glorot & Bengio 2010)."""
    return x / (1.0 + jnp.abs(x))


@register_activation("hard_tanh", saturating=True)
def hard_tanh(x):
    """clip(x, -1, 1): derivative exactly 0 outside [-1, 1]."""
    return jnp.clip(x, -1.0, 1.0)


@register_activation("erf", saturating=True)
def erf(x):
    """Error function: a tanh-like sigmoid with closed-form mean-field integrals."""
    return jax.scipy.special.erf(x)


@register_activation("linear")
def linear(x):
    """Identity: deep linear networks (Saxe et al. 2014)."""
    return x
