"""Experiment files: parse, validate, expand into configs with stable ids.

An experiment is a TOML file with ``[experiment]`` (name, description,
reference, figures), ``[fixed]`` (one value per field), ``[grid]`` (lists,
swept as a cartesian product) and ``[profiles.NAME]`` (overrides: a list
makes the field a grid axis, a scalar fixes it). Everything is checked
before anything compiles; each problem is one ``SpecError`` line naming the
field and what is allowed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from satbench import data, families, remedies, schedule
from satbench.fields import Field, choices, greater_than_one, non_negative, open_unit_interval, positive, unit_interval

MAX_CONFIGS = 200_000
ACT_TRANSFORMS = ("none", "dks", "tat")
#: the φ̂ constants ``act_transform`` fills (``satbench.phi_hat``), and the constants' sources
PHI_FIELDS = ("phi_alpha", "phi_beta", "phi_gamma", "phi_delta", "phi_param")
TRANSFORM_TARGETS = ("dks_slope", "tat_c0", "tat_curvature")
OPTIMIZERS = ("sgd", "momentum", "adam", "rmsprop")
NORMS = ("none", "batchnorm", "layernorm")
RESIDUAL_BRANCHES = ("fixed", "rezero", "fixup")


class SpecError(ValueError):
    """A malformed experiment file or option: one line, names the field."""


def _activation(v):
    from satbench import activations  # the registry holds JAX functions: loaded when first checked

    try:
        activations.parse_name(v)
    except ValueError as err:
        return str(err)
    return None


def _known_inits():
    from satbench import inits

    return inits.known_inits()


def _init_problem(values):
    from satbench import inits

    return inits.config_problem(values)


FIELDS: dict[str, Field] = {
    "model": Field(str, "mlp", "model family (satbench list)", choices(families.known), id_omits_default=True),
    "activation": Field(str, "tanh", "nonlinearity φ (satbench list)", _activation),
    "init": Field(str, "gaussian", "weight init rule", choices(_known_inits)),
    "width": Field(int, 128, "units per hidden layer (mlp)", positive),
    "depth": Field(int, 8, "number of layers (hidden layers, convolutions, ...)", positive),
    "sigma_w2": Field(float, 1.0, "weight variance gain σ_w²", positive, batched=True),
    "sigma_b2": Field(float, 0.0, "bias variance σ_b²", non_negative, batched=True),
    "dataset": Field(str, "digits", "dataset name", choices(data.known_datasets)),
    "seq_len": Field(int, 0, "time steps T of a sequence task (0: the task's default; satbench list)", non_negative,
                     id_omits_default=True),
    "preprocess": Field(str, "auto", "inputs: auto (the dataset's default), standardise, center, binarise, none",
                        choices(lambda: list(data.PREPROCESS)), id_omits_default=True),
    "train_subset": Field(int, 0, "training examples used, a stratified subset (0: all)", non_negative,
                          id_omits_default=True),
    "optimizer": Field(str, "sgd", "optax optimizer", choices(lambda: list(OPTIMIZERS))),
    "momentum": Field(float, 0.9, "momentum of the 'momentum' optimizer", unit_interval),
    "learning_rate": Field(float, 0.01, "step size", positive, batched=True),
    "warmup_steps": Field(int, 0, "steps over which the learning rate rises linearly to learning_rate: step k uses "
                          "min(1, (k + 1)/warmup_steps) of it (0: none)", non_negative, batched=True,
                          id_omits_default=True),
    "batch_size": Field(int, 64, "minibatch size", positive),
    "steps": Field(int, 500, "training steps (0: probes at init only)", non_negative),
    "seed": Field(int, 0, "random seed (init and minibatches)", non_negative, batched=True, lane_dtype="uint32"),
    "log_every": Field(int, 0, "steps between loss/accuracy evaluations (0: auto, evaluations within 10% of the "
                       "training's cost)", non_negative),
    "probe_every": Field(int, 0, "steps between layer probes (0: first and last only)", non_negative),
    "probe_batch": Field(int, 256, "examples in the probe batch", positive),
    "jacobian_samples": Field(int, 0, "examples whose input-output Jacobian spectrum is probed", non_negative),
    "pair_samples": Field(int, 0, "input pairs whose pre-activation cosine is probed per layer (pair_cosine; "
                          "xi_c_measured); 2 x pair_samples <= probe_batch (0: off)", non_negative, id_omits_default=True),
    "histogram_bins": Field(int, 0, "bins of per-layer histograms of φ(h_l) and ∂L/∂h_l at each probe (0: off)",
                            non_negative, id_omits_default=True),
    "input_grad_probe": Field(bool, False, "probe the input gradients of the probe batch: their consecutive "
                              "examples' correlation (runs input_grad_autocorr) and the table input_grads",
                              id_omits_default=True),
    "target_loss": Field(float, None, "train loss that counts as trained", positive, batched=True, optional=True),
    "layers": Field(str, "auto", "layer stack: scan, unroll or auto (planner)",
                    choices(lambda: ["auto", "scan", "unroll"])),
    "norm": Field(str, "none", "normalisation before each φ", choices(lambda: list(NORMS)),
                  id_omits_default=True),
    "residual": Field(bool, False, "skip connections h ← h + α·F(h) on layers 2..depth", batched=True,
                      id_omits_default=True, lane_dtype="bool"),
    "residual_scale": Field(float, 1.0, "α of residual layers", positive, batched=True, id_omits_default=True),
    "residual_branch": Field(str, "fixed", "how residual branches are scaled: fixed (α = residual_scale), rezero "
                             "(a learned α per layer starting at 0) or fixup (two-layer branches h + α·φ(W h + b) V: a learned "
                             "α per layer starting at residual_scale, W × depth^-1/2, V and the readout 0)",
                             choices(lambda: list(RESIDUAL_BRANCHES)), id_omits_default=True),
    "clip_norm": Field(float, None, "global gradient-norm clipping threshold", positive, batched=True,
                       optional=True, id_omits_default=True, lane_none=float("inf")),
    "dropout": Field(float, 0.0, "rate p at which training zeroes each hidden unit's φ(h), the rest scaled by "
                     "1/(1 - p) (probes too: they see the net as it trains; evaluation does not)", unit_interval,
                     batched=True, id_omits_default=True),
    "agc": Field(float, None, "adaptive gradient clipping ratio λ: each unit's gradient at most λ × its weights' norm "
                 "(Brock et al. 2021; the readout unclipped)", positive, batched=True, optional=True,
                 id_omits_default=True, lane_none=float("inf")),
    "remedy": Field(str, None, "named bundle of init/norm/residual settings (satbench list)",
                    choices(remedies.known_remedies), optional=True, id_omits_default=True),
    # activation transforms (satbench.transforms): the target fields are per-lane so that a sweep over
    # them shares a program; the solved φ̂ constants are the phi_* fields, filled per config
    "act_transform": Field(str, "none", "activation transform φ̂(h) = γ(φ(αh+β)+δ) solved per config for its "
                           "depth: none, dks (Martens et al. 2021), tat (Zhang et al. 2022)",
                           choices(lambda: list(ACT_TRANSFORMS)), id_omits_default=True),
    "dks_slope": Field(float, 1.5, "dks: the net's C'(1) = ζ", greater_than_one, batched=True, id_omits_default=True),
    "tat_c0": Field(float, 0.9, "tat with leaky_relu: the net's C(0) = η", open_unit_interval, batched=True,
                    id_omits_default=True),
    "tat_curvature": Field(float, 0.3, "tat with a smooth φ: the net's C''(1) = τ", positive, batched=True,
                           id_omits_default=True),
    "phi_alpha": Field(float, 1.0, "φ̂'s input scale α (filled from act_transform)", batched=True,
                       id_omits_default=True),
    "phi_beta": Field(float, 0.0, "φ̂'s input shift β (filled from act_transform)", batched=True, id_omits_default=True),
    "phi_gamma": Field(float, 1.0, "φ̂'s output scale γ (filled from act_transform)", batched=True,
                       id_omits_default=True),
    "phi_delta": Field(float, 0.0, "φ̂'s output shift δ (filled from act_transform)", batched=True,
                       id_omits_default=True),
    "phi_param": Field(float, None, "φ's own parameter in φ̂, e.g. leaky ReLU's slope under tat (filled from "
                       "act_transform; None: the activation name's)", batched=True, optional=True,
                       id_omits_default=True),
}


def _add_family_fields(family: families.Family) -> None:
    for name, field in family.fields.items():
        if name in FIELDS and FIELDS[name] is not field:
            raise ValueError(f"model family {family.name!r}: field {name!r} is already defined")
        FIELDS[name] = field


families.on_register(_add_family_fields)


def model_fields() -> set[str]:
    """Fields that only some families read: a config keeps them only if its family reads them."""
    fams = [families.get(n) for n in families.known()]
    return {f for fam in fams for f in (*fam.reads, *fam.fields)}


#: fields a compiled program holds several values of, each lane carrying its index: they change
#: no shapes, so a sweep over them compiles once (init: within one ``inits.family``)
LANE_CHOICES = ("init", "activation", "norm", "optimizer")


def program_fields() -> tuple[str, ...]:
    """Static fields every family's program shares (the ``train.Program`` settings): not
    per-lane, not read by a family, and not depth, init, activation (lane indices) or a label."""
    skip = model_fields() | {"model", "depth", "init", "activation", "remedy"}
    return tuple(k for k, f in FIELDS.items() if not f.batched and k not in skip)


def lane_fields() -> tuple[str, ...]:
    """The per-lane (vmapped) fields."""
    return tuple(k for k, f in FIELDS.items() if f.batched)


EXPERIMENT_KEYS = {"name": str, "description": str, "reference": str, "figures": list}
TOP_LEVEL = {"experiment", "fixed", "grid", "profiles"}


@dataclasses.dataclass(frozen=True)
class Config:
    """One fully resolved run: every field, plus a stable id."""

    values: dict

    @property
    def config_id(self) -> str:
        return config_id({k: v for k, v in self.values.items()
                          if not (FIELDS[k].id_omits_default and v == FIELDS[k].default)})

    def __getitem__(self, key):
        return self.values[key]


def config_id(values: dict) -> str:
    """Hash of the resolved fields: equal configs get equal ids in any experiment."""
    text = json.dumps(values, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str
    description: str
    reference: str
    figures: tuple[str, ...]
    fixed: dict
    grid: dict
    profiles: dict
    source: str

    def resolve(self, profile: str | None) -> tuple[dict, dict]:
        """(fixed, grid) after applying ``profile`` (None: the base spec)."""
        fixed, grid = dict(self.fixed), dict(self.grid)
        if profile is not None:
            if profile not in self.profiles:
                allowed = ", ".join(sorted(self.profiles)) or "(none defined)"
                raise SpecError(f"{self.source}: unknown profile {profile!r}; allowed: {allowed}")
            for key, value in self.profiles[profile].items():
                if isinstance(value, list):
                    grid[key] = value
                    fixed.pop(key, None)
                else:
                    fixed[key] = value
                    grid.pop(key, None)
        return fixed, grid

    def configs(self, profile: str | None = None) -> list[Config]:
        """Every config of the sweep, in grid order, validated."""
        fixed, grid = self.resolve(profile)
        where = f"{self.source}" + (f" [profiles.{profile}]" if profile else "")
        defaults = {k: f.default for k, f in FIELDS.items()}
        keys = list(grid)
        configs = {}
        for combo in itertools.product(*(grid[k] for k in keys)):
            chosen = {**fixed, **dict(zip(keys, combo))}
            # a family's own defaults (a recurrent net: one layer, a sequence task) under what is set
            values = {**defaults, **families.get(chosen.get("model", defaults["model"])).defaults, **chosen}
            values = schedule.resolve_log_every(for_family(remedies.apply(values)))
            values["seq_len"] = values["seq_len"] or data.seq_len_of(values["dataset"])
            _check_consistency(values, where)
            values = with_transform(values, where)
            config = Config(values)
            configs.setdefault(config.config_id, config)  # a remedy can make grid points equal
        return list(configs.values())

    def spec_hash(self, profile: str | None) -> str:
        fixed, grid = self.resolve(profile)
        return config_id({"fixed": fixed, "grid": grid})


def default_out(exp: Experiment, profile: str | None, root: Path = Path("results")) -> Path:
    """Where a sweep's results go unless told: ``results/<name>/<profile>``."""
    return Path(root) / exp.name / (profile or "base")


def default_profile(exp: Experiment) -> str | None:
    return "quick" if "quick" in exp.profiles else None


def _check_value(key: str, value: Any, where: str) -> Any:
    """Type-check and range-check one field value; returns it normalised."""
    if key not in FIELDS:
        raise SpecError(f"{where}: unknown field {key!r}; allowed: {', '.join(FIELDS)}")
    field = FIELDS[key]
    kind = field.kind
    ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise SpecError(f"{where}: {key} must be {kind.__name__}, got {type(value).__name__} {value!r}")
    if kind is float and not math.isfinite(value):
        raise SpecError(f"{where}: {key} must be finite, got {value!r}")
    if field.check is not None:
        problem = field.check(value)
        if problem:
            raise SpecError(f"{where}: {key} {problem}" if problem.startswith("must") else f"{where}: {key}: {problem}")
    return value


def _check_table(table: Any, where: str, as_grid: bool) -> dict:
    if not isinstance(table, dict):
        raise SpecError(f"{where}: must be a table of fields")
    out = {}
    for key, value in table.items():
        if as_grid:
            if not isinstance(value, list):
                raise SpecError(f"{where}: {key} must be a list of values, got {value!r}")
            if not value:
                raise SpecError(f"{where}: {key} is an empty list; give at least one value")
            checked = [_check_value(key, v, where) for v in value]
            if len(set(map(repr, checked))) != len(checked):
                raise SpecError(f"{where}: {key} has duplicate values {value!r}")
            out[key] = checked
        else:
            out[key] = _check_value(key, value, where)
    return out


def for_family(values: dict) -> dict:
    """``values`` with the fields its model family does not read at their defaults: a grid over
    ``model`` × ``width`` runs each CNN once, and an MLP's id never depends on ``channels``."""
    family = families.get(values["model"])
    unused = model_fields() - set(family.reads) - set(family.fields)
    return {k: (FIELDS[k].default if k in unused else v) for k, v in values.items()}


def with_transform(values: dict, where: str) -> dict:
    """``values`` with the phi_* constants of its ``act_transform`` solved for its activation and
    depth (once per config, before anything compiles); untransformed configs keep φ as named."""
    method = values["act_transform"]
    if method == "none":
        for key in PHI_FIELDS:
            if values[key] != FIELDS[key].default:
                raise SpecError(f"{where}: {key} is filled from act_transform; with act_transform none it must "
                                f"stay at its default {FIELDS[key].default}")
        return values
    if families.get(values["model"]).site_table != "layers":
        raise SpecError(f"{where}: act_transform {method} needs a net of layers; model {values['model']} "
                        "repeats one layer over time")
    from satbench import transforms

    try:
        k = transforms.solve(values["activation"], method, values["depth"],
                             {key: values[key] for key in TRANSFORM_TARGETS})
    except ValueError as err:
        raise SpecError(f"{where}: {err}") from None
    return {**values, "phi_alpha": k.alpha, "phi_beta": k.beta, "phi_gamma": k.gamma, "phi_delta": k.delta,
            "phi_param": k.param}


def _check_consistency(values: dict, where: str) -> None:
    """Cross-field rules that a single field cannot check."""
    steps, log_every, probe_every = values["steps"], values["log_every"], values["probe_every"]
    if steps % log_every:
        raise SpecError(f"{where}: log_every ({log_every}) must divide steps ({steps})")
    if probe_every % log_every:
        raise SpecError(f"{where}: probe_every ({probe_every}) must be a multiple of log_every ({log_every})")
    if values["residual_branch"] != "fixed" and not values["residual"]:
        raise SpecError(f"{where}: residual_branch {values['residual_branch']!r} needs residual = true")
    if values["residual"] and values["depth"] < 2:
        raise SpecError(f"{where}: residual needs depth >= 2 (layer 1 changes the width), got depth {values['depth']}")
    if 2 * values["pair_samples"] > values["probe_batch"]:
        raise SpecError(f"{where}: pair_samples ({values['pair_samples']}) pairs need 2 x pair_samples <= probe_batch "
                        f"({values['probe_batch']}) examples")
    if values["norm"] == "batchnorm" and min(values["batch_size"], values["probe_batch"]) < 2:
        raise SpecError(f"{where}: batchnorm needs batch_size and probe_batch >= 2 (batch statistics)")
    problem = data.check_options(values["dataset"], values["preprocess"], values["train_subset"], values["seq_len"])
    if problem:
        raise SpecError(f"{where}: {problem}")
    family = families.get(values["model"])
    if data.describe(values["dataset"]).task == "classify_steps" and not family.per_step_outputs:
        able = [n for n in families.known() if families.get(n).per_step_outputs]
        raise SpecError(f"{where}: dataset {values['dataset']!r} has a label at every step, which model "
                        f"{values['model']} cannot output; allowed models: {', '.join(able)}")
    problem = _init_problem(values)
    if problem:
        raise SpecError(f"{where}: {problem}")
    problem = family.check(values) if family.check else None
    if problem:
        raise SpecError(f"{where}: model {values['model']}: {problem}")


def parse(text: str, source: str = "<string>") -> Experiment:
    """Parse and validate experiment TOML text."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{source}: not valid TOML: {err}") from None
    unknown = set(doc) - TOP_LEVEL
    if unknown:
        raise SpecError(f"{source}: unknown table {sorted(unknown)[0]!r}; allowed: {', '.join(sorted(TOP_LEVEL))}")
    meta = doc.get("experiment")
    if not isinstance(meta, dict) or "name" not in meta:
        raise SpecError(f"{source}: [experiment] needs a name")
    for key, value in meta.items():
        if key not in EXPERIMENT_KEYS:
            raise SpecError(f"{source}: [experiment] unknown key {key!r}; allowed: {', '.join(EXPERIMENT_KEYS)}")
        if not isinstance(value, EXPERIMENT_KEYS[key]):
            raise SpecError(f"{source}: [experiment] {key} must be {EXPERIMENT_KEYS[key].__name__}")
    name = meta["name"]
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise SpecError(f"{source}: [experiment] name must be letters, digits, '-' or '_', got {name!r}")

    fixed = _check_table(doc.get("fixed", {}), f"{source} [fixed]", as_grid=False)
    grid = _check_table(doc.get("grid", {}), f"{source} [grid]", as_grid=True)
    both = set(fixed) & set(grid)
    if both:
        raise SpecError(f"{source}: {sorted(both)[0]} is in both [fixed] and [grid]; keep one")
    profiles_raw = doc.get("profiles", {})
    if not isinstance(profiles_raw, dict):
        raise SpecError(f"{source}: [profiles] must hold tables such as [profiles.quick]")
    profiles = {}
    for pname, table in profiles_raw.items():
        where = f"{source} [profiles.{pname}]"
        if not isinstance(table, dict):
            raise SpecError(f"{where}: must be a table of fields")
        profiles[pname] = {
            k: _check_table({k: v}, where, as_grid=isinstance(v, list))[k] for k, v in table.items()
        }
    exp = Experiment(
        name=name,
        description=meta.get("description", ""),
        reference=meta.get("reference", ""),
        figures=tuple(meta.get("figures", [])),
        fixed=fixed,
        grid=grid,
        profiles=profiles,
        source=source,
    )
    for profile in [None, *profiles]:
        _check_size(exp, profile)
        exp.configs(profile)  # cross-field checks on every profile, before anything runs
    return exp


def _check_size(exp: Experiment, profile: str | None) -> None:
    _, grid = exp.resolve(profile)
    n = math.prod(len(v) for v in grid.values())
    if n > MAX_CONFIGS:
        where = exp.source + (f" [profiles.{profile}]" if profile else "")
        raise SpecError(f"{where}: the grid has {n} configs; at most {MAX_CONFIGS} are allowed")


def experiments_dir():
    """The folder of experiment files shipped with satbench."""
    return resources.files("satbench.experiments")


def known_experiments() -> list[str]:
    return sorted(p.name[:-5] for p in experiments_dir().iterdir() if p.name.endswith(".toml"))


def load(name_or_path: str) -> Experiment:
    """An experiment by file path, or by name from the shipped experiments/."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise SpecError(f"experiment file not found: {name_or_path}")
        return parse(path.read_text(), str(path))
    shipped = experiments_dir() / f"{name_or_path}.toml"
    if not shipped.is_file():
        raise SpecError(
            f"unknown experiment {name_or_path!r}; give a .toml path or one of: {', '.join(known_experiments())}"
        )
    return parse(shipped.read_text(), f"experiments/{name_or_path}.toml")
