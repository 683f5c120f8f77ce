"""Regression seam: the model-family redesign changes no config id and no number.

What it guards, against reference results stored in tests/data/regression/ that were generated at
commit c3d0ac7 (before the model-family redesign):

* the config ids of every shipped experiment, its base spec and each of its profiles
  (``config_ids.json.gz``; experiments or profiles added later have no reference and are not checked);
* every number of a small sweep, ``tests/data/regression/seam.toml`` (its base spec and each profile;
  ~1 min on 2 cores), that goes through every path of the model code: four activations (tanh, relu,
  sigmoid, selu) and three elementwise inits (gaussian, he, glorot_uniform) in one program; depths 3 and
  5 padded into one masked program (scanned in the base spec, unrolled under norm_residual);
  orthogonal init; BatchNorm with residual layers (α = 0.5), momentum and gradient clipping;
  LayerNorm with Adam; σ_b² > 0; two seeds; Jacobian spectra (2 samples) and 4-bin histograms. The
  same config ids must come out, and the runs, layers, curves, spectra and histograms tables must
  agree with the reference:

  - at initialisation (rows of step 0; runs columns computed from the step-0 probe or from theory):
    rtol 1e-5 with an absolute floor of 1e-6. The floor is for values near 0 (mean activations,
    a unit's median, a layer's lo edge): their float32 error comes from sums of O(1) terms, ~1e-7
    absolute whatever the result's size (measured: ≤ 7e-7 between two plannings of this sweep).
    Quantities whose error is multiplicative and that span decades get no absolute floor
    (the Jacobian moments of runs; e.g. jac_var_s2 goes down to 1e-10), and a singular value's floor
    is 1e-6 of the largest one of its spectrum (a rank-deficient Jacobian's small singular values
    are rounding noise of the large ones). Histogram counts must be equal.
  - after training (every later step; the final/trained runs columns): rtol 1e-3, absolute floor
    1e-5 (1e-5 of the spectrum's largest singular value for spectra; one count for histogram
    counts, a value on a bin edge can move to the next bin).
  - exactly: the describing config fields, diverged, phase, and the plan columns program_depth and
    layers_mode (they show the sweep still runs the masked, scanned and unrolled programs).
  NaN must match NaN, ±inf the same infinity.

Regenerate the reference only for a deliberate change, with tests/data/regression/make_reference.py
(not imported here) run against the checkout whose numbers are the new reference::

    cd CHECKOUT && PYTHONPATH=CHECKOUT python tests/data/regression/make_reference.py
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REF = Path(__file__).resolve().parent / "data" / "regression"
SEAM = REF / "seam.toml"
BASE = "base"  # the label of the base spec (no profile) in the reference files

TABLES = ("runs", "layers", "curves", "spectra", "histograms")
KEYS = {
    "runs": ["config_id"],
    "layers": ["config_id", "step", "layer"],
    "curves": ["config_id", "step"],
    "spectra": ["config_id", "step", "sample", "index"],
    "histograms": ["config_id", "step", "quantity", "layer", "bin"],
}
INIT = {"rtol": 1e-5, "atol": 1e-6}
TRAINED = {"rtol": 1e-3, "atol": 1e-5}
#: runs columns computed from the step-0 probe or from mean-field theory (every other numeric
#: runs column is a result of training)
RUNS_AT_INIT = ("grad_decay", "jac_mean_s2", "jac_var_s2", "jac_s_max", "mf_sigma_w2", "q_star", "chi1", "xi_c",
                "jac_mean_s2_theory", "jac_var_s2_theory")
#: relative error only: multiplicative error, values spanning decades
RELATIVE_ONLY = ("jac_mean_s2", "jac_var_s2", "jac_s_max", "jac_mean_s2_theory", "jac_var_s2_theory")
RUNS_EXACT = ("profile", "activation", "init", "depth", "seed", "norm", "residual", "optimizer", "diverged", "phase",
              "program_depth", "layers_mode")


def load_reference() -> dict[str, pd.DataFrame]:
    return {t: pd.read_parquet(REF / f"{t}.parquet") for t in TABLES}


def run_seam(root: Path) -> dict[str, pd.DataFrame]:
    """seam.toml's base spec and every profile run with the code under test, tables concatenated."""
    from satbench import engine, spec, store

    exp = spec.load(str(SEAM))
    parts = {t: [] for t in TABLES}
    for profile in [None, *exp.profiles]:
        label = profile or BASE
        engine.run_experiment(exp, profile, root / label, progress=False)
        res = store.load_results(root / label)
        for t in TABLES:
            parts[t].append(getattr(res, t).assign(profile=label))
    return {t: pd.concat(dfs, ignore_index=True) for t, dfs in parts.items()}


def _floats(s: pd.Series) -> np.ndarray:
    if s.dtype == bool:
        return s.to_numpy(float)
    return pd.to_numeric(s, errors="coerce").astype("float64").to_numpy()


def _close(got, want, rtol, atol) -> np.ndarray:
    """Elementwise |got − want| ≤ atol + rtol·|want|; NaN matches only NaN, inf only the same inf."""
    g, w = np.asarray(got, float), np.asarray(want, float)
    with np.errstate(invalid="ignore"):
        close = np.abs(g - w) <= atol + rtol * np.abs(w)
    return (np.isnan(g) & np.isnan(w)) | (g == w) | close


def _same(got: pd.Series, want: pd.Series) -> np.ndarray:
    """Exact equality, missing (None, NaN, NA) matching missing."""
    g, w = got.astype(object).to_numpy(), want.astype(object).to_numpy()
    missing_g, missing_w = pd.isna(got).to_numpy(), pd.isna(want).to_numpy()
    equal = np.array([a == b if not (ma or mb) else False for a, b, ma, mb in zip(g, w, missing_g, missing_w)],
                     dtype=bool)
    return (missing_g & missing_w) | equal


def _show(value) -> str:
    return repr(value.item() if isinstance(value, np.generic) else value)


def _tolerance(table: str, column: str, at_init: bool, want: pd.DataFrame):
    """(rtol, atol) for ``column``; atol may be per row (spectra: scaled by the spectrum's top value)."""
    tol = dict(INIT if at_init else TRAINED)
    if table == "runs" and column in RELATIVE_ONLY:
        tol["atol"] = 0.0
    if table == "spectra":
        top = want.groupby(level=["config_id", "step", "sample"])["singular_value"].transform("max").to_numpy()
        tol["atol"] = tol["atol"] * top
    if table == "histograms" and column == "count":
        tol = {"rtol": 0.0, "atol": 0.0} if at_init else {"rtol": TRAINED["rtol"], "atol": 1.0}
    return tol["rtol"], tol["atol"]


def compare(got: dict[str, pd.DataFrame], want: dict[str, pd.DataFrame], phase: str = "all",
            max_examples: int = 3) -> list[str]:
    """Every difference between ``got`` and the reference ``want``, one line per (table, column, phase).

    phase: "init" (step-0 rows, runs columns at initialisation, exact columns, row sets), "trained"
    (later rows and the trained runs columns) or "all".
    """
    problems = []
    for table in TABLES:
        keys = KEYS[table]
        a = got[table].set_index(keys).sort_index()
        b = want[table].set_index(keys).sort_index()
        if not a.index.is_unique:
            problems.append(f"{table}: duplicate rows for keys {keys}")
            continue
        if phase != "trained":
            gone, new = b.index.difference(a.index), a.index.difference(b.index)
            if len(gone) or len(new):
                problems.append(f"{table}: {len(gone)} reference rows missing (e.g. {list(gone[:2])}), "
                                f"{len(new)} rows not in the reference (e.g. {list(new[:2])})")
        common = b.index.intersection(a.index)
        a, b = a.loc[common], b.loc[common]
        absent = [c for c in b.columns if c not in a.columns]
        if absent:
            problems.append(f"{table}: columns missing: {absent}")
        for column in b.columns:
            if column in absent:
                continue
            if table == "runs":
                exact = column in RUNS_EXACT or b[column].dtype == object or str(b[column].dtype) in ("str", "string")
                at_init = exact or column in RUNS_AT_INIT
                masks = {at_init: np.ones(len(b), bool)}
            else:
                exact = column == "profile" or column in ("quantity",)
                step0 = (b.index.get_level_values("step") == 0)
                masks = {True: step0, False: ~step0}
            for at_init, rows in masks.items():
                if (phase == "init" and not at_init) or (phase == "trained" and at_init) or not rows.any():
                    continue
                if exact:
                    ok = _same(a[column], b[column])
                    what = "exactly"
                else:
                    rtol, atol = _tolerance(table, column, at_init, b)
                    ok = _close(_floats(a[column]), _floats(b[column]), rtol, atol)
                    what = (f"rtol {rtol:g}, atol {atol:g}" if np.ndim(atol) == 0
                            else f"rtol {rtol:g}, atol up to {np.max(atol):g}, scaled by the spectrum's top value")
                bad = rows & ~ok
                if bad.any():
                    where = b.index[bad][:max_examples]
                    examples = "; ".join(f"{k}: got {_show(a[column].loc[k])}, want {_show(b[column].loc[k])}"
                                         for k in where)
                    label = "at init" if at_init else "after training"
                    problems.append(f"{table}.{column} {label}: {bad.sum()} of {rows.sum()} rows differ ({what}): "
                                    f"{examples}")
    return problems


@pytest.fixture(scope="module")
def reference():
    return load_reference()


@pytest.fixture(scope="module")
def seam(tmp_path_factory):
    return run_seam(tmp_path_factory.mktemp("seam"))


def test_config_ids_of_shipped_experiments():
    from satbench import spec

    want = json.loads(gzip.decompress((REF / "config_ids.json.gz").read_bytes()))
    gone = sorted(set(want) - set(spec.known_experiments()))
    assert not gone, f"shipped experiments removed since the reference: {gone}"
    problems = []
    for name, profiles in sorted(want.items()):
        exp = spec.load(name)
        for profile, ids in sorted(profiles.items()):
            if profile != BASE and profile not in exp.profiles:
                problems.append(f"{name}: profile {profile!r} removed")
                continue
            got = sorted(c.config_id for c in exp.configs(None if profile == BASE else profile))
            if got != ids:
                problems.append(f"{name} [{profile}]: {len(set(ids) - set(got))} of {len(ids)} ids gone, "
                                f"{len(set(got) - set(ids))} new")
    assert not problems, "config ids changed:\n" + "\n".join(problems)


def test_seam_config_ids(seam, reference):
    want = reference["runs"].set_index("config_id")["profile"].sort_index()
    got = seam["runs"].set_index("config_id")["profile"].sort_index()
    assert got.index.is_unique
    assert sorted(got.index) == sorted(want.index), (
        f"{len(want.index.difference(got.index))} reference ids missing, "
        f"{len(got.index.difference(want.index))} new")
    assert got.equals(want)


def test_seam_numbers_at_initialisation(seam, reference):
    problems = compare(seam, reference, "init")
    assert not problems, "differences from the reference (c3d0ac7) at initialisation:\n" + "\n".join(problems)


def test_seam_numbers_after_training(seam, reference):
    problems = compare(seam, reference, "trained")
    assert not problems, "differences from the reference (c3d0ac7) after training:\n" + "\n".join(problems)


def test_seam_still_covers_the_model_paths(seam):
    """The fixture's coverage claims hold for the current planner and code, not just at c3d0ac7."""
    runs = seam["runs"]
    assert set(runs["activation"]) == {"tanh", "relu", "sigmoid", "selu"}
    assert set(runs["init"]) == {"gaussian", "he", "glorot_uniform", "orthogonal"}
    assert set(runs["norm"]) == {"none", "batchnorm", "layernorm"}
    assert runs["residual"].any() and runs["clip_norm"].notna().any() and (runs["sigma_b2"] > 0).all()
    assert set(runs["optimizer"]) == {"sgd", "momentum", "adam"} and set(runs["seed"]) == {0, 1}
    masked = runs[runs["program_depth"] > runs["depth"]]
    assert set(masked["layers_mode"]) == {"scan", "unroll"}, "a padded program, scanned and unrolled"
    assert not seam["spectra"].empty and not seam["histograms"].empty


def test_compare_flags_every_kind_of_change(reference):
    """The comparison can fail: perturbed copies of the reference are flagged, tiny noise is not."""
    assert compare(reference, reference) == []

    def changed(table, column, rows, how):
        got = {t: df.copy() for t, df in reference.items()}
        df = got[table]
        idx = df.index[rows(df)][:1]
        assert len(idx) == 1
        df.loc[idx, column] = how(df.loc[idx, column])
        return compare(got, reference)

    step0 = lambda df: (df["step"] == 0).to_numpy()  # noqa: E731
    later = lambda df: (df["step"] > 0).to_numpy()  # noqa: E731
    nonzero = lambda col: lambda df: (df[col].abs() > 0.1).to_numpy()  # noqa: E731
    assert changed("layers", "grad_norm", step0, lambda v: v * (1 + 1e-7)) == []
    assert changed("layers", "grad_norm", step0, lambda v: v * (1 + 1e-4))
    assert changed("curves", "train_loss", step0, lambda v: v * (1 + 1e-4))
    assert changed("curves", "train_loss", later, lambda v: v * (1 + 1e-4)) == []
    assert changed("curves", "train_loss", later, lambda v: v * (1 + 3e-3))
    assert changed("layers", "act_mean", lambda df: step0(df) & (df["act_mean"].abs() < 0.01).to_numpy(),
                   lambda v: v + 5e-6)
    assert changed("layers", "sat_frac", lambda df: df["sat_frac"].isna().to_numpy(), lambda v: v.fillna(0.0))
    assert changed("spectra", "singular_value", step0, lambda v: v * (1 + 1e-4))
    assert changed("histograms", "count", step0, lambda v: v + 1)
    assert changed("runs", "final_loss", nonzero("final_loss"), lambda v: v * (1 + 3e-3))
    assert changed("runs", "jac_var_s2", lambda df: (df["jac_var_s2"] < 1e-6).to_numpy(), lambda v: v * 1.5)
    assert changed("runs", "layers_mode", nonzero("final_loss"), lambda v: v.map({"scan": "unroll", "unroll": "scan"}))
    fewer = {t: df.copy() for t, df in reference.items()}
    fewer["layers"] = fewer["layers"].iloc[1:]
    assert compare(fewer, reference)
