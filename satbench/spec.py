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
from typing import Any, Callable

from satbench import activations, data, inits, models, remedies, train

MAX_CONFIGS = 200_000


class SpecError(ValueError):
    """A malformed experiment file or option: one line, names the field."""


def _positive(v):
    return None if v > 0 else "must be > 0"


def _non_negative(v):
    return None if v >= 0 else "must be >= 0"


def _choices(names_fn: Callable[[], list[str]]):
    def check(v):
        names = names_fn()
        return None if v in names else f"unknown value {v!r}; allowed: {', '.join(names)}"

    return check


def _activation(v):
    try:
        activations.parse_name(v)
    except ValueError as err:
        return str(err)
    return None


def _unit_interval(v):
    return None if 0 <= v < 1 else "must be in [0, 1)"


@dataclasses.dataclass(frozen=True)
class Field:
    kind: type
    default: Any
    doc: str
    check: Callable[[Any], str | None] | None = None
    batched: bool = False  # a vmapped lane value rather than part of the compiled program
    optional: bool = False  # may be absent (None)
    #: added after results existed: left out of the config id while at its default, so the
    #: ids of earlier results (and resuming them) survive the new field
    id_omits_default: bool = False


FIELDS: dict[str, Field] = {
    "activation": Field(str, "tanh", "nonlinearity φ (satbench list)", _activation),
    "init": Field(str, "gaussian", "weight init rule", _choices(inits.known_inits)),
    "width": Field(int, 128, "units per hidden layer", _positive),
    "depth": Field(int, 8, "number of hidden layers", _positive),
    "sigma_w2": Field(float, 1.0, "weight variance gain σ_w²", _positive, batched=True),
    "sigma_b2": Field(float, 0.0, "bias variance σ_b²", _non_negative, batched=True),
    "dataset": Field(str, "digits", "dataset name", _choices(data.known_datasets)),
    "preprocess": Field(str, "auto", "inputs: auto (the dataset's default), standardise, center, binarise, none",
                        _choices(lambda: list(data.PREPROCESS)), id_omits_default=True),
    "train_subset": Field(int, 0, "training examples used, a stratified subset (0: all)", _non_negative,
                          id_omits_default=True),
    "optimizer": Field(str, "sgd", "optax optimizer", _choices(lambda: list(train.OPTIMIZERS))),
    "momentum": Field(float, 0.9, "momentum of the 'momentum' optimizer", _unit_interval),
    "learning_rate": Field(float, 0.01, "step size", _positive, batched=True),
    "batch_size": Field(int, 64, "minibatch size", _positive),
    "steps": Field(int, 500, "training steps (0: probes at init only)", _non_negative),
    "seed": Field(int, 0, "random seed (init and minibatches)", _non_negative, batched=True),
    "log_every": Field(int, 10, "steps between loss/accuracy evaluations", _positive),
    "probe_every": Field(int, 0, "steps between layer probes (0: first and last only)", _non_negative),
    "probe_batch": Field(int, 256, "examples in the probe batch", _positive),
    "jacobian_samples": Field(int, 0, "examples whose input-output Jacobian spectrum is probed", _non_negative),
    "histogram_bins": Field(int, 0, "bins of per-layer histograms of φ(h_l) and ∂L/∂h_l at each probe (0: off)",
                            _non_negative, id_omits_default=True),
    "target_loss": Field(float, None, "train loss that counts as trained", _positive, batched=True, optional=True),
    "layers": Field(str, "auto", "layer stack: scan, unroll or auto (planner)",
                    _choices(lambda: ["auto", "scan", "unroll"])),
    "norm": Field(str, "none", "normalisation before each φ", _choices(lambda: list(models.NORMS)),
                  id_omits_default=True),
    "residual": Field(bool, False, "skip connections h ← h + α·F(h) on layers 2..depth", id_omits_default=True),
    "residual_scale": Field(float, 1.0, "α of residual layers", _positive, batched=True, id_omits_default=True),
    "clip_norm": Field(float, None, "global gradient-norm clipping threshold", _positive, batched=True,
                       optional=True, id_omits_default=True),
    "remedy": Field(str, None, "named bundle of init/norm/residual settings (satbench list)",
                    _choices(remedies.known_remedies), optional=True, id_omits_default=True),
}

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
        base = {k: f.default for k, f in FIELDS.items()}
        base.update(fixed)
        keys = list(grid)
        configs = {}
        for combo in itertools.product(*(grid[k] for k in keys)):
            values = dict(base)
            values.update(zip(keys, combo))
            values = remedies.apply(values)
            _check_consistency(values, where)
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


def _check_consistency(values: dict, where: str) -> None:
    """Cross-field rules that a single field cannot check."""
    steps, log_every, probe_every = values["steps"], values["log_every"], values["probe_every"]
    if steps % log_every:
        raise SpecError(f"{where}: log_every ({log_every}) must divide steps ({steps})")
    if probe_every % log_every:
        raise SpecError(f"{where}: probe_every ({probe_every}) must be a multiple of log_every ({log_every})")
    if values["residual"] and values["depth"] < 2:
        raise SpecError(f"{where}: residual needs depth >= 2 (layer 1 changes the width), got depth {values['depth']}")
    if values["norm"] == "batchnorm" and min(values["batch_size"], values["probe_batch"]) < 2:
        raise SpecError(f"{where}: batchnorm needs batch_size and probe_batch >= 2 (batch statistics)")
    problem = data.check_options(values["dataset"], values["preprocess"], values["train_subset"])
    if problem:
        raise SpecError(f"{where}: {problem}")


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
