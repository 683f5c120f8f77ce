"""Adaptive gradient clipping (Brock et al. 2021) on satbench's parameter layout.

AGC rescales the gradient G_i of each unit i (one output unit's incoming weights) whenever
‖G_i‖ > λ·max(‖W_i‖, ε), so no step changes a unit's weights by more than a fraction λ of their
norm. ``optax.adaptive_grad_clip`` does the arithmetic; what it cannot know is which axes hold a
unit here: its default reads a rank-3 array as multi-head weights, while satbench stacks the hidden
layers of a net along a leading axis (``w_hidden``: layers × in × out), where a unit is one
layer's output column. So each parameter is clipped with its own axes, through ``optax.partition``:

* a weight: every axis but the last (the output units), and but the first if stacked by layer;
* a bias, norm scale or shift: one layer's whole vector (Brock et al. clip vectors as one unit);
* the readout (``w_out``, ``b_out``): not clipped, as in Brock et al.

A network lists its layer-stacked parameters in ``stacked_params`` (a class attribute).
"""

from __future__ import annotations

import jax
import optax

#: the readout's parameters, left unclipped
READOUT = ("w_out", "b_out")
#: the default unit of ``optax.adaptive_grad_clip``'s ε: a zero-initialised unit may still move
EPS = 1e-3


def unit_axes(name: str, ndim: int, stacked: tuple[str, ...]) -> tuple[int, ...] | None:
    """The axes one unit of parameter ``name`` spans (its norm is taken over them); None: not clipped."""
    if name in READOUT:
        return None
    first = 1 if name in stacked else 0
    if ndim - first <= 1:  # one layer's vector (a bias, γ, β) or one scalar per layer
        return tuple(range(first, ndim))
    return tuple(range(first, ndim - 1))


def _label(axes) -> str:
    return "none" if axes is None else "axes" + "_".join(map(str, axes))


def adaptive_clip(clipping, stacked: tuple[str, ...] = (), eps: float = EPS) -> optax.GradientTransformation:
    """AGC at ratio ``clipping`` (may be traced: one λ per lane; inf leaves every gradient exactly
    as it is), each parameter over its own unit axes (``unit_axes``). ``stacked``: the names of the
    parameters with a leading layer axis."""

    def labels(params):
        def one(path, leaf):
            return _label(unit_axes(_name(path), leaf.ndim, stacked))

        return jax.tree_util.tree_map_with_path(one, params)

    def transforms(params) -> dict:
        found = set(jax.tree.leaves(labels(params)))
        out = {"none": optax.identity()}
        for label in found - {"none"}:
            axes = tuple(int(a) for a in label[len("axes"):].split("_"))
            out[label] = optax.adaptive_grad_clip(clipping, eps=eps, axis=axes)
        return out

    def init(params):
        return optax.partition(transforms(params), labels).init(params)

    def update(updates, state, params=None):
        return optax.partition(transforms(params), labels).update(updates, state, params)

    return optax.GradientTransformation(init, update)


def _name(path) -> str:
    """A parameter's attribute name from its pytree path (``['w_hidden'].value`` -> w_hidden)."""
    for key in path:
        name = getattr(key, "key", getattr(key, "name", None))
        if isinstance(name, str) and name != "value":
            return name
    return ""
