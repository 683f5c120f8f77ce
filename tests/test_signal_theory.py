"""Mean-field theory against measurement on wide nets, and theory in the store and CLI."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from click.testing import CliRunner

from satbench import cli, engine, mlp, models, probes, spec, store, tables, theory


def _input_at_q_star(n, n_in, q_star, sigma_w2, sigma_b2, seed=0):
    """Inputs whose first pre-activation already has variance q* (no transient)."""
    x = np.random.default_rng(seed).normal(size=(n, n_in))
    x *= np.sqrt((q_star - sigma_b2) / sigma_w2) / np.sqrt((x**2).mean())
    return jnp.asarray(x, jnp.float32)


def test_measured_signal_decay_matches_chi1_on_a_width_2000_tanh_net():
    """Per-layer factor of ‖∂L/∂h_l‖² equals χ₁ within 2 % (ordered, critical, chaotic)."""
    width, depth, sigma_b2 = 2000, 20, 0.05
    for sigma_w2 in (1.2, 1.76, 2.5):
        t = theory.summary("tanh", sigma_w2, sigma_b2)
        arch = mlp.Architecture(n_in=width, n_out=10, width=width, depth=depth, activation="tanh",
                                   init="gaussian", layers="scan")
        graphdef, params = models.init_state(arch, jax.random.key(7), sigma_w2, sigma_b2)
        x = _input_at_q_star(64, width, t["q_star"], sigma_w2, sigma_b2)
        y = jnp.arange(64) % 10
        signal = np.asarray(probes.layer_probes(graphdef, params, x, y)["signal_norm"], np.float64)
        ell = np.arange(1, depth + 1)
        keep = slice(2, depth - 1)  # away from the readout's own scale
        slope = np.polyfit(ell[keep], np.log(signal[keep] ** 2), 1)[0]
        measured = np.exp(-slope)
        assert measured == pytest.approx(t["chi1"], rel=0.02), (sigma_w2, measured, t["chi1"])


@pytest.mark.parametrize("init, expected, tolerance", [("orthogonal", 0.14, 0.15), ("gaussian", 32.1, 0.5)])
def test_jacobian_variance_matches_pennington_at_L32_N400(init, expected, tolerance):
    """Pennington et al. 2017: tanh at σ_w² = 1.05, σ_b² = 2.01e-5 (q* ≈ 0.026), L = 32, N = 400."""
    sigma_w2, sigma_b2, width, factors = 1.05, 2.01e-5, 400, 32
    with jax.enable_x64(True):
        _, var_theory = theory.jacobian_moments("tanh", sigma_w2, sigma_b2, factors, init)
    assert float(var_theory) == pytest.approx(expected, rel=0.05)
    q_star = theory.summary("tanh", sigma_w2, sigma_b2)["q_star"]
    arch = mlp.Architecture(n_in=width, n_out=2, width=width, depth=factors + 1, activation="tanh",
                               init=init, layers="scan")

    @jax.jit
    def spectrum(seed, x):
        graphdef, params = models.init_state(arch, jax.random.key(seed), sigma_w2, sigma_b2)
        return probes.jacobian_singular_values(graphdef, params, x)

    s2 = []
    for seed in range(3):
        x = _input_at_q_star(2, width, q_star, sigma_w2, sigma_b2, seed)
        s2.append(np.asarray(spectrum(seed, x), np.float64) ** 2)
    s2 = np.concatenate(s2).ravel()
    assert s2.mean() == pytest.approx(1.0, abs=0.25)
    assert s2.var() == pytest.approx(float(var_theory), rel=tolerance)


def test_cli_theory_prints_the_critical_point_and_a_summary():
    runner = CliRunner()
    r = runner.invoke(cli.main, ["theory", "tanh", "--critical", "--sigma-b2", "0.05"])
    assert r.exit_code == 0 and "1.76" in r.output
    r = runner.invoke(cli.main, ["theory", "relu", "--sigma-w2", "3", "--sigma-b2", "0.1"])
    assert r.exit_code == 0 and "χ₁   = 1.5" in r.output and "chaotic" in r.output
    r = runner.invoke(cli.main, ["theory", "nope", "--sigma-w2", "1"])
    assert r.exit_code == 2 and "unknown activation 'nope'" in r.stderr
    r = runner.invoke(cli.main, ["theory", "tanh"])
    assert r.exit_code == 2 and "--sigma-w2" in r.stderr


def test_runs_carry_theory_columns_in_the_mean_field_convention(tmp_path):
    exp = spec.parse("""
[experiment]
name = "theorycols"
[fixed]
steps = 0
width = 32
depth = 4
activation = "relu"
jacobian_samples = 2
[grid]
init = ["gaussian", "he"]
sigma_w2 = [1.0, 1.5]
""")
    engine.run_experiment(exp, None, tmp_path, progress=False)
    r = store.load_results(tmp_path)
    runs = r.runs.set_index(["init", "sigma_w2"])
    # relu: χ₁ = σ_w²/2 where σ_w² is fan_in·Var(W): He doubles the gain
    assert runs.loc[("gaussian", 1.0), "chi1"] == pytest.approx(0.5, rel=1e-5)
    assert runs.loc[("he", 1.0), "chi1"] == pytest.approx(1.0, rel=1e-5)
    assert runs.loc[("he", 1.0), "phase"] == "critical" and runs.loc[("gaussian", 1.5), "phase"] == "ordered"
    assert runs.loc[("he", 1.5), "mf_sigma_w2"] == 3.0
    assert set(r.spectra.columns) == {"config_id", "step", "sample", "index", "singular_value"}
    assert len(r.spectra) == 4 * 2 * 32
    assert np.isfinite(r.runs["jac_var_s2"]).all() and np.isfinite(r.runs["jac_var_s2_theory"]).all()


def test_theory_columns_solve_repeated_pairs_once_and_map_them_back_in_order():
    """Seeds repeat (σ_w², σ_b²) pairs; each distinct pair is solved once and every row gets its
    own pair's values, whatever the row order."""
    import pandas as pd

    sw2 = [2.0, 0.5, 2.0, 1.0, 0.5, 2.0]
    configs = pd.DataFrame({"config_id": range(6), "init": "gaussian", "sigma_w2": sw2, "sigma_b2": 0.05,
                            "activation": "tanh", "norm": "none", "residual": False, "jacobian_samples": 0,
                            "depth": 4})
    cols = tables.theory_columns(configs)
    for cid, s in enumerate(sw2):
        want = theory.summary("tanh", s, 0.05)
        assert cols.loc[cid, "q_star"] == pytest.approx(want["q_star"], rel=1e-9)
        assert cols.loc[cid, "xi_c"] == pytest.approx(want["xi_c"], rel=1e-9)
        assert cols.loc[cid, "phase"] == want["phase"]
    assert cols.loc[0, "phase"] == "chaotic" and cols.loc[1, "phase"] == "ordered"


def test_jacobian_moments_from_q1_follow_the_q_map_transient():
    """Inputs away from q* (tanh at σ_w² = 1.05 creeps to q* = 0.026 over tens of layers): the
    moments of s² along the mean-field q_l path match a width-256 orthogonal net, where the
    q*-only formula is off by far more; started at q*, the path formula is the q* one."""
    sigma_w2, sigma_b2, width, factors, q1 = 1.05, 2.01e-5, 256, 16, 0.5
    with jax.enable_x64(True):
        q_star = theory.q_star("tanh", sigma_w2, sigma_b2)
        at_star = theory.jacobian_moments_from("tanh", sigma_w2, sigma_b2, q_star, factors, "gaussian")
        np.testing.assert_allclose(at_star, theory.jacobian_moments("tanh", sigma_w2, sigma_b2, factors, "gaussian"),
                                   rtol=1e-9)
        mean, var = (float(v) for v in theory.jacobian_moments_from("tanh", sigma_w2, sigma_b2, q1, factors))
        _, var_star = theory.jacobian_moments("tanh", sigma_w2, sigma_b2, factors)
    arch = mlp.Architecture(n_in=width, n_out=2, width=width, depth=factors + 1, activation="tanh",
                               init="orthogonal", layers="scan")

    @jax.jit
    def spectrum(seed, x):
        graphdef, params = models.init_state(arch, jax.random.key(seed), sigma_w2, sigma_b2)
        return probes.jacobian_singular_values(graphdef, params, x)

    s2 = np.concatenate([np.asarray(spectrum(seed, _input_at_q_star(2, width, q1, sigma_w2, sigma_b2, seed)),
                                    np.float64).ravel() ** 2 for seed in range(2)])
    assert s2.mean() == pytest.approx(mean, rel=0.05)
    assert s2.var() / s2.mean() ** 2 == pytest.approx(var / mean**2, rel=0.15)
    assert var / mean**2 > 3 * float(var_star)  # the transient dominates the spread
