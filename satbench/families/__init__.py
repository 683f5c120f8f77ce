"""Model families: the one seam between a network and the rest of satbench.

A family is declared here, without JAX, by what the sweep machinery needs to
know before anything compiles: its name, the config fields it reads (its own
and shared ones such as ``norm``), and a cross-field check. Its
implementation is a module (imported when first built) with

``architecture(values, depth, shape, activations, inits, layers)``
    the hashable, static description of one compiled network (``depth`` is the
    program's, ``shape`` the data's ``DataShape``); it has ``model``, ``depth``,
    ``site_shape`` (one site's pre-activation per example: a layer, a block or a
    time step), ``activation``, ``init`` and ``norm`` (and, if it has a choice, ``layers``:
    "scan" or "unroll", recorded in the manifest).
``cost(values, depth, shape)``
    a ``Cost``: the planner's FLOP and memory terms.
``Network``
    an nnx module built as ``Network(arch, sigma_w2, sigma_b2, rngs=..., init_index=...)`` (and
    ``lane=`` the lane's per-config numbers, if its signature takes it: a family's own per-lane
    fields; at call time they are ``ctx.lane``)
    whose call ``(x, ctx, taps) -> models.Forward`` returns the logits, the
    pre-activations of every site (leading site axis) and opaque state, and
    whose ``site_param_norms()`` applied to a gradient gives ‖∂L/∂θ_l‖ per site;
    optionally ``last_preact(h1, ctx)`` (the first site to the last, for
    Jacobian spectra) and ``initial_state(arch)`` (BatchNorm statistics).

``train``, ``probes``, ``plan`` and ``engine`` use a network only through
this. Other packages add families through the entry-point group
``satbench.models`` (an entry point naming a ``Family``), or ``register`` in
the same process.
"""

from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType
from typing import Any, Callable, Mapping

from satbench import plugins
from satbench.fields import Field

ENTRY_POINT_GROUP = "satbench.models"


@dataclasses.dataclass(frozen=True)
class DataShape:
    """What a network needs to know of its data: one example's input shape and the classes."""

    input_shape: tuple[int, ...]  # (features,), (height, width, channels) or (steps, features)
    n_out: int
    per_step: bool = False  # a target at every time step: the network outputs (batch, steps, n_out)

    @property
    def n_in(self) -> int:
        n = 1
        for d in self.input_shape:
            n *= d
        return n


@dataclasses.dataclass(frozen=True)
class Cost:
    """One config's size for the planner (float32 numbers, per example where it says)."""

    params: int  # parameters, norm scales and shifts included
    forward_flops: float  # one example's forward pass
    site_units: int  # numbers at one site per example (a layer's width, C·H·W, ...)
    matmul_width: int  # the inner size of its matrix products (small ones run below peak)
    #: numbers per example a site keeps for the backward pass beyond its pre-activation and
    #: activation (a CNN's im2col patches: k²·C·H·W); 0 for dense layers
    saved_units: int = 0


@dataclasses.dataclass(frozen=True)
class Family:
    """A model family's declaration (see the module docstring)."""

    name: str
    description: str
    implementation: str | ModuleType | Any  # a module, its import path, or any object with its functions
    reads: tuple[str, ...] = ()  # shared config fields it uses (others are reset to their defaults)
    fields: Mapping[str, Field] = dataclasses.field(default_factory=dict)  # fields of its own
    #: defaults of shared fields for this family's configs, under what an experiment sets (a
    #: recurrent net: one layer and a sequence task, where the MLP's defaults are 8 and digits)
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    check: Callable[[Mapping], str | None] | None = None  # cross-field rule: None or "field ... problem"
    mean_field: Callable[[Mapping], bool] | None = None  # whether the MLP's mean-field theory applies
    #: XLA:CPU's LLVM optimisation level for this family's programs. Level 1 compiles a small MLP
    #: program in half the time of XLA's default (2) and runs dense layers as fast; a family whose
    #: hot loop is not matmuls (the CNN's im2col) may run slower at 1. A family's own choice, so a
    #: config's numbers never depend on the sweep it is planned in (levels differ in the last bits).
    cpu_optimization_level: int = 1
    #: whether configs of several depths may share a program, the shallower ones masked
    #: (``Context.active``); False: one program per depth
    pads_depth: bool = True
    #: the results table of its per-site probes: "layers" (sites are layers or blocks) or
    #: "timesteps" (sites are the time steps of a recurrent net)
    site_table: str = "layers"
    #: whether it can give an output at every time step (tasks with a label per step need it)
    per_step_outputs: bool = False
    #: the (σ_w², σ_b²) mean-field theory sees for a config (None: the init rule's σ_w² and σ_b²)
    mean_field_point: Callable[[Mapping], tuple[float, float]] | None = None
    #: a family's own theory columns for one config where ``mean_field`` applies (a recurrent net's
    #: predicted per-step factor); ``tables.THEORY_COLUMNS`` lists them, NaN elsewhere
    theory: Callable[[Mapping], dict[str, float]] | None = None

    def impl(self):
        """The implementation module (imported on first use: it loads JAX)."""
        if isinstance(self.implementation, str):
            return importlib.import_module(self.implementation)
        return self.implementation

    def has_mean_field(self, values: Mapping) -> bool:
        return bool(self.mean_field and self.mean_field(values))


def sequence_task_problem(values: Mapping) -> str | None:
    """For a family that reads sequences only: the one-line problem when ``values``' dataset is not
    a sequence task, naming those that are; None when it is."""
    from satbench import data

    if data.describe(values["dataset"]).sequence is not None:
        return None
    tasks = [n for n in data.known_datasets() if data.describe(n).sequence is not None]
    return (f"dataset {values['dataset']!r} is not a sequence task for model {values['model']}; "
            f"allowed: {', '.join(tasks)}")


def unprobed_problem(values: Mapping, fields: tuple[str, ...], why: str) -> str | None:
    """The one-line problem when one of ``fields`` (probes a family cannot give: ``why``) is set."""
    for field in fields:
        if values[field]:
            return f"{field} must be 0 for model {values['model']} ({why}), got {values[field]}"
    return None


_FAMILIES: dict[str, Family] = {}
_on_register: list[Callable[[Family], None]] = []


def register(family: Family, *, overwrite: bool = False) -> Family:
    """Add ``family`` under its name (and its fields to the config schema)."""
    if family.name in _FAMILIES and not overwrite and _FAMILIES[family.name] is not family:
        raise ValueError(f"model family {family.name!r} is already registered")
    _FAMILIES[family.name] = family
    for listener in _on_register:
        listener(family)
    return family


def on_register(listener: Callable[[Family], None]) -> None:
    """Call ``listener`` for every family registered so far and from now on (the schema uses it)."""
    _on_register.append(listener)
    for family in list(_FAMILIES.values()):
        listener(family)


def _load_plugins() -> None:
    plugins.load_once(ENTRY_POINT_GROUP, _FAMILIES, lambda name, family: register(family))


def known() -> list[str]:
    _load_plugins()
    return list(_FAMILIES)


def get(name: str) -> Family:
    if name not in _FAMILIES:
        _load_plugins()
    try:
        return _FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; allowed: {', '.join(known())}") from None


def of(arch) -> Family:
    """The family of a built architecture."""
    return get(arch.model)


from satbench.families import mlp  # noqa: E402, I001  (the built-in families register themselves; the default first)
from satbench.families import cnn  # noqa: E402
from satbench.families import recurrent  # noqa: E402
from satbench.families import transformer  # noqa: E402

__all__ = ["Cost", "DataShape", "Family", "cnn", "get", "known", "mlp", "of", "on_register", "recurrent", "register",
           "sequence_task_problem", "transformer", "unprobed_problem"]
