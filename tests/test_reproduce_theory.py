"""Paper reproductions of the theory papers, end to end through ``satbench reproduce``.

Quick profiles that take over a minute on 2 cores run as ``-m slow``; the default run uses
each experiment's reduced ``test`` profile, whose claims are the same statements on fewer
configs. Glorot & Bengio's Figs. 6-7 and Schoenholz et al.'s depth scales are checked on
small init-only sweeps built here (their experiments train for minutes).
"""

import dataclasses

import numpy as np
import pytest
from click.testing import CliRunner

from satbench import cli, engine, spec, store


def _reproduce(tmp_path, name, profile=None):
    args = ["reproduce", name, "--results-root", str(tmp_path)] + (["--profile", profile] if profile else [])
    r = CliRunner().invoke(cli.main, args)
    assert r.exit_code == 0, r.output + r.stderr
    assert (tmp_path / name / (profile or "quick") / "figures" / f"{name}.png").exists()
    return r.output


def test_hanin2018_log_length_variance_collapses_onto_5_beta(tmp_path):
    """ReLU + He init, widths 32-128 × depths 5-65, 96 seeds at init: Var[ln q_L/q_1]/β ≈ 5,
    one line in β (log-log exponent 1, R² ≥ 0.95), mean ≈ −5β/2."""
    out = _reproduce(tmp_path, "hanin2018")
    assert out.count("PASS") == 3 and "FAIL" not in out


def test_saxe2014_deep_linear_learning_time_test_profile(tmp_path):
    """Depths 4 and 32: orthogonal learning time flat, Gaussian ≥ 2× slower at 32, best rate ∝ 1/depth,
    spectra of the weight product (orthogonal all 1, Gaussian var s² ≈ L − 1)."""
    out = _reproduce(tmp_path, "saxe2014", "test")
    assert out.count("PASS") == 6 and "FAIL" not in out


@pytest.mark.slow
def test_saxe2014_quick(tmp_path):
    out = _reproduce(tmp_path, "saxe2014")
    assert out.count("PASS") == 6 and "FAIL" not in out


def test_pennington2017_isometry_and_learning_speed_test_profile(tmp_path):
    """Depth 32, one seed: orthogonal tanh near-isometric, Gaussian tanh and relu wide, theory along the
    q_l path, orthogonal tanh learns fastest and critical relu slowest."""
    out = _reproduce(tmp_path, "pennington2017", "test")
    assert out.count("PASS") == 7 and "FAIL" not in out


@pytest.mark.slow
def test_pennington2017_quick(tmp_path):
    out = _reproduce(tmp_path, "pennington2017")
    assert out.count("PASS") == 7 and "FAIL" not in out


def _init_only(name, tmp_path, **grid):
    """The quick profile of a shipped experiment at initialisation only (steps = 0), ``grid`` overriding."""
    exp = spec.load(name)
    fixed, full_grid = exp.resolve("quick")
    fixed = {**fixed, "steps": 0, "log_every": 10, "probe_every": 0}
    exp = dataclasses.replace(exp, fixed=fixed, grid={**full_grid, **grid}, profiles={})
    engine.run_experiment(exp, None, tmp_path, progress=False)
    return store.load_results(tmp_path)


def test_glorot2010_figs_6_7_claims_at_initialisation(tmp_path):
    """The Figs. 6-7 claims need only the probes at step 0 of the glorot2010 grid (tanh)."""
    from satbench.figures import glorot2010_init

    results = _init_only("glorot2010", tmp_path, activation=["tanh"])
    rows = glorot2010_init.claims(results)
    assert len(rows) == 4 and all(r["holds"] for r in rows), rows
    assert set(results.histograms["quantity"]) == {"activation", "gradient"}


def test_schoenholz2017_gradient_depth_scale_matches_chi1_at_depth_80(tmp_path):
    """ξ_∇ panel: in the quick grid's deepest nets the measured per-layer factor of ‖∂L/∂W_l‖² is χ₁
    within 2 % at every σ_w² (PAPERS.md). ξ_∇ = 1/|ln factor| amplifies a factor's error by ξ, so it
    matches theory within 10 % only where it is short (ξ < 10 layers; 1 % per layer → ≤ 10 %)."""
    from satbench.figures import schoenholz2017

    table = schoenholz2017.gradient_depth_scales(_init_only("schoenholz2017", tmp_path, depth=[80]))
    assert len(table) == 8
    assert np.all(np.abs(table["factor"] / table["chi1"] - 1) < 0.02), table
    short = table[table["xi_grad_theory"] < 10]
    assert len(short) >= 4
    assert np.all(np.abs(short["xi_grad"] / short["xi_grad_theory"] - 1) < 0.1), short
