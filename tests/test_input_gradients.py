"""The input-gradient probe (``input_grad_probe``): each probe example's ∂(Σ outputs)/∂x against
finite differences of a numpy forward pass from identical weights, and the correlation of
consecutive examples' gradients against a numpy loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from satbench import data, engine, mlp, models, probes, spec, store


def _numpy_forward(p, x, residual, alpha):
    """A ReLU MLP's outputs in float64, written here: layer 1, then h ← [a +] α·relu(W a + b)."""
    a = np.maximum(x @ p["w_in"] + p["b_in"], 0)
    for w, b in zip(p["w_hidden"], p["b_hidden"]):
        out = np.maximum(a @ w + b, 0)
        a = a + alpha * out if residual else out
    return a @ p["w_out"] + p["b_out"]


@pytest.mark.parametrize("residual", [False, True])
def test_input_gradients_equal_finite_differences_on_the_line(residual):
    """Depth 12 ReLU net on the line dataset's grid: df/dx from the probe against central
    differences (step 1e-6) of the numpy forward pass at every grid point (a kink closer than the
    step to a grid point would spoil its difference; none is, for this seed)."""
    arch = mlp.Architecture(n_in=1, n_out=2, width=32, depth=12, activation="relu", init="he")
    graphdef, params = models.init_state(arch, jax.random.key(3), 1.0, 0.1)
    x = data.load("line").x_train[:256]
    ctx = models.Context(residual=residual, residual_scale=0.5)
    g = np.asarray(probes.input_gradients(graphdef, params, jnp.asarray(x), ctx))
    p = {k: np.asarray(v[...], np.float64) for k, v in params.items()}
    step = 1e-6
    x64 = x.astype(np.float64)
    fd = (_numpy_forward(p, x64 + step, residual, 0.5) - _numpy_forward(p, x64 - step, residual, 0.5)).sum(1)
    fd = fd / (2 * step)
    bad = np.abs(g[:, 0] - fd) > 1e-3 * np.abs(fd).max()
    assert bad.sum() == 0, np.flatnonzero(bad)
    assert np.std(fd) > 1e-2 * np.abs(fd).max()  # g varies along the grid: not a trivial match


def test_input_gradients_of_a_vector_input_tanh_net_equal_finite_differences():
    """Each example's gradient vector, tanh net of 5 inputs and 3 outputs, float64 differences."""
    with jax.enable_x64(True):
        arch = mlp.Architecture(n_in=5, n_out=3, width=16, depth=4, activation="tanh", init="gaussian")
        graphdef, params = models.init_state(arch, jax.random.key(0), 1.5, 0.05)
        params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        x = np.asarray(jax.random.normal(jax.random.key(1), (6, 5), jnp.float64))
        g = np.asarray(probes.input_gradients(graphdef, params, jnp.asarray(x)))
        model = models.nnx.merge(graphdef, params)
        f = lambda v: np.asarray(model(jnp.asarray(v)).logits).sum(1)  # noqa: E731
        step = 1e-6
        fd = np.stack([(f(x + step * e) - f(x - step * e)) / (2 * step) for e in np.eye(5)], axis=1)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9)


def _correlation_loop(g):
    """Σ_i ⟨g_i, g_{i+1}⟩ / √(Σ_i ‖g_i‖² Σ_i ‖g_{i+1}‖²), one pair at a time."""
    num = den_a = den_b = 0.0
    for i in range(len(g) - 1):
        a, b = g[i].ravel(), g[i + 1].ravel()
        num += sum(u * v for u, v in zip(a, b))
        den_a += sum(u * u for u in a)
        den_b += sum(v * v for v in b)
    return num / np.sqrt(den_a * den_b)


def test_neighbour_correlation_equals_a_numpy_loop_and_its_extremes():
    rng = np.random.default_rng(0)
    smooth = np.cumsum(rng.normal(size=(200, 3)), axis=0)  # brown noise: neighbours alike
    for g in (rng.normal(size=(50, 4)), rng.normal(size=(64,)), smooth):
        assert float(probes.neighbour_correlation(jnp.asarray(g))) == pytest.approx(_correlation_loop(g), rel=1e-5)
    assert float(probes.neighbour_correlation(jnp.asarray(smooth))) > 0.9
    assert abs(float(probes.neighbour_correlation(jnp.asarray(rng.normal(size=(4000,)))))) < 0.05  # white noise
    assert float(probes.neighbour_correlation(jnp.full((10, 2), 3.0))) == pytest.approx(1.0)
    assert float(probes.neighbour_correlation(jnp.asarray([1.0, -1.0] * 5))) == pytest.approx(-1.0)
    huge = rng.normal(size=(256,)) * 1e12  # its sums of squares overflow float32 unless scaled first
    assert float(probes.neighbour_correlation(jnp.asarray(huge, jnp.float32))) == pytest.approx(
        _correlation_loop(huge), rel=1e-4, abs=1e-5)


def test_a_sweep_stores_the_gradients_and_their_correlation(tmp_path):
    """``input_grad_probe = true`` on the line dataset: the table holds the probe's gradients of the
    grid at init and at the end, and runs' correlations are those of the stored gradients; a
    looks-linear net's gradient is the same at every grid point (correlation 1)."""
    exp = spec.parse("""
[experiment]
name = "grads"
[fixed]
dataset = "line"
activation = "relu"
width = 16
depth = 6
sigma_b2 = 0.1
steps = 10
log_every = 10
input_grad_probe = true
[grid]
init = ["he", "looks_linear"]
""")
    engine.run_experiment(exp, None, tmp_path, progress=False)
    results = store.load_results(tmp_path)
    grads = results.input_grads
    runs = results.runs.set_index("config_id")
    assert set(grads["step"]) == {0, 10} and set(grads["sample"]) == set(range(256))
    for (cid, step), part in grads.groupby(["config_id", "step"]):
        g = part.sort_values("sample")["input_grad"].to_numpy()
        column = "input_grad_autocorr" if step == 0 else "input_grad_autocorr_final"
        assert runs.loc[cid, column] == pytest.approx(_correlation_loop(g), rel=1e-5)
        if runs.loc[cid, "init"] == "looks_linear" and step == 0:
            np.testing.assert_allclose(g, g[0], rtol=1e-4)
    assert runs.loc[runs["init"] == "he", "input_grad_autocorr"].iloc[0] < 0.999
