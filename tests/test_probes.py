"""Probes against independent computations: hand-written numpy backprop, finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from satbench import models, probes


def _numpy_backprop(p, x, y):
    """Per-layer ‖∂L/∂W_l‖ and ‖∂L/∂h_l‖ of a tanh MLP by explicit backprop in float64."""
    ws = [p["w_in"]] + list(p["w_hidden"])
    bs = [p["b_in"]] + list(p["b_hidden"])
    a, hs, acts = x, [], [x]
    for w, b in zip(ws, bs):
        h = a @ w + b
        a = np.tanh(h)
        hs.append(h)
        acts.append(a)
    logits = a @ p["w_out"] + p["b_out"]
    z = logits - logits.max(1, keepdims=True)
    prob = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    onehot = np.eye(logits.shape[1])[y]
    loss = -np.mean(np.log(prob[np.arange(len(y)), y]))
    delta_out = (prob - onehot) / len(y)
    back = delta_out @ p["w_out"].T
    grad_w, grad_h = [None] * len(ws), [None] * len(ws)
    for l in reversed(range(len(ws))):
        delta = back * (1 - np.tanh(hs[l]) ** 2)
        grad_h[l] = np.linalg.norm(delta)
        grad_w[l] = np.linalg.norm(acts[l].T @ delta)
        back = delta @ ws[l].T
    return loss, np.array(grad_w), np.array(grad_h), np.array([np.sqrt(np.mean(h**2)) for h in hs])


@pytest.mark.parametrize("layers", ["scan", "unroll"])
def test_grad_and_signal_norms_equal_explicit_backprop(layers):
    arch = models.Architecture(n_in=12, n_out=5, width=24, depth=6, activation="tanh",
                               init="gaussian", layers=layers)
    graphdef, params = models.init_state(arch, jax.random.key(3), 2.0, 0.1)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 12)).astype(np.float32)
    y = rng.integers(0, 5, size=40).astype(np.int32)
    out = probes.layer_probes(graphdef, params, jnp.asarray(x), jnp.asarray(y))
    p = {k: np.asarray(v, np.float64) for k, v in nnx.to_pure_dict(params).items()}
    _, ref_w, ref_h, ref_q = _numpy_backprop(p, x.astype(np.float64), y)
    np.testing.assert_allclose(np.asarray(out["preact_rms"]), ref_q, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(out["grad_norm"]), ref_w, rtol=2e-4)
    np.testing.assert_allclose(np.asarray(out["signal_norm"]), ref_h, rtol=2e-4)


def test_loss_gradient_matches_finite_differences():
    """Directional derivative of the loss along a random W_3 direction, float64."""
    with jax.enable_x64(True):
        arch = models.Architecture(n_in=7, n_out=3, width=9, depth=4, activation="sigmoid", init="glorot_normal")
        graphdef, params = models.init_state(arch, jax.random.key(0), 1.5, 0.05)
        params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
        x = jax.random.normal(jax.random.key(1), (11, 7), jnp.float64)
        y = jnp.arange(11) % 3

        def loss(p):
            return probes.cross_entropy(nnx.merge(graphdef, p)(x).logits, y)

        g = jax.grad(loss)(params)
        direction = jax.random.normal(jax.random.key(2), params["w_hidden"][...].shape, jnp.float64)
        eps = 1e-6

        def shifted(sign):
            p = jax.tree.map(lambda a: a, params)
            p["w_hidden"] = nnx.Param(params["w_hidden"][...] + sign * eps * direction)
            return loss(p)

        fd = (shifted(1) - shifted(-1)) / (2 * eps)
        ad = jnp.sum(g["w_hidden"][...] * direction)
        assert float(ad) == pytest.approx(float(fd), rel=1e-6)


def test_saturation_and_dead_fractions():
    arch = models.Architecture(n_in=10, n_out=2, width=200, depth=2, activation="tanh", init="gaussian")
    graphdef, params = models.init_state(arch, jax.random.key(0), 400.0, 0.0)  # huge weights
    x = jax.random.normal(jax.random.key(1), (64, 10))
    out = probes.layer_probes(graphdef, params, x, jnp.zeros(64, jnp.int32))
    # pre-activations of layer 2 have std ~ 20·E[tanh²]^½: tanh' < 0.05 needs |h| > 2.18 -> mostly saturated
    assert float(out["sat_frac"][1]) > 0.85
    relu_arch = models.Architecture(n_in=10, n_out=2, width=50, depth=2, activation="relu", init="he")
    graphdef, params = models.init_state(relu_arch, jax.random.key(0), 1.0, 0.0)
    params["b_in"] = nnx.Param(params["b_in"][...].at[:10].set(-1e3))  # kill 10 of 50 units of layer 1
    out = probes.layer_probes(graphdef, params, x, jnp.zeros(64, jnp.int32))
    assert float(out["dead_frac"][0]) == pytest.approx(10 / 50, abs=1 / 50)
    assert np.isnan(float(out["sat_frac"][0]))  # relu is not a saturating activation


def test_relu_he_keeps_variance_while_gaussian_halves_it_per_layer():
    """He et al. 2015: q_L/q_1 ≈ 1 with He init, ≈ 2^-(L-1) with σ_w² = 1 (width 500, depth 30)."""
    depth, width = 30, 500
    x = jax.random.normal(jax.random.key(99), (32, width))

    def log_ratios(init):
        arch = models.Architecture(n_in=width, n_out=2, width=width, depth=depth, activation="relu",
                                   init=init, layers="scan")

        @jax.jit
        @jax.vmap
        def one(seed):
            graphdef, params = models.init_state(arch, jax.random.key(seed), 1.0, 0.0)
            q = jnp.mean(nnx.merge(graphdef, params)(x).preacts ** 2, axis=(1, 2))
            return jnp.log(q[-1] / q[0])

        return np.asarray(one(jnp.arange(8)))

    he = log_ratios("he")
    assert abs(np.median(he)) < 0.5
    assert np.all(np.abs(he) < 3 * np.sqrt(5 * depth / width))
    gauss = log_ratios("gaussian")
    expected = -(depth - 1) * np.log(2.0)
    assert abs(np.median(gauss) - expected) < 1.0  # ln 2^-29 = -20.1


def test_decay_rate_recovers_a_geometric_profile():
    g = 3.0 * 0.5 ** np.arange(1, 11)  # grad_norm halves per layer -> grad_norm² quarters
    # g[::-1] grows toward the output, so going backward grad_norm² quarters per layer
    assert probes.decay_rate(g[::-1]) == pytest.approx(0.25)
    assert probes.decay_rate(np.ones(5)) == pytest.approx(1.0)


def test_jacobian_spectrum_of_an_orthogonal_linear_net_is_all_ones():
    """Saxe et al. 2014: a product of orthogonal matrices has every singular value 1."""
    arch = models.Architecture(n_in=5, n_out=2, width=32, depth=6, activation="linear", init="orthogonal")
    graphdef, params = models.init_state(arch, jax.random.key(0), 1.0, 0.0)
    sv = probes.jacobian_singular_values(graphdef, params, jnp.ones((3, 5)))
    assert sv.shape == (3, 32)
    np.testing.assert_allclose(np.asarray(sv), 1.0, atol=1e-4)


@pytest.mark.parametrize("layers", ["scan", "unroll"])
@pytest.mark.parametrize("active_depth", [4, 3])
def test_jacobian_spectrum_equals_numpy_product_of_layer_jacobians(layers, active_depth):
    """Also in a padded program: a lane of depth 3 in a depth-4 program (its last layer masked)
    has the spectrum of its own 2 hidden layers' product."""
    arch = models.Architecture(n_in=4, n_out=2, width=16, depth=4, activation="tanh", init="gaussian", layers=layers)
    graphdef, params = models.init_state(arch, jax.random.key(1), 1.5, 0.1)
    x = np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32)
    ctx = models.Context(active=jnp.arange(4) < active_depth)
    sv = np.asarray(probes.jacobian_singular_values(graphdef, params, jnp.asarray(x), ctx))
    p = {k: np.asarray(v, np.float64) for k, v in nnx.to_pure_dict(params).items()}
    for i in range(2):
        h = x[i].astype(np.float64) @ p["w_in"] + p["b_in"]
        jac = np.eye(16)
        for w, b in list(zip(p["w_hidden"], p["b_hidden"]))[: active_depth - 1]:
            layer_jac = np.diag(1 - np.tanh(h) ** 2) @ w  # ∂h_{l+1}/∂h_l as row-vector map
            jac = jac @ layer_jac
            h = np.tanh(h) @ w + b
        np.testing.assert_allclose(sv[i], np.linalg.svd(jac, compute_uv=False), rtol=1e-4, atol=1e-6)


def test_layer_histograms_count_every_value_in_shared_bins_and_skip_masked_layers():
    """Counts equal numpy's histogram over [min, max] of the active layers; a masked layer's
    (garbage) values neither widen the range nor count."""
    rng = np.random.default_rng(0)
    values = rng.normal(size=(3, 20, 7)) * np.array([1.0, 0.1, 50.0])[:, None, None]
    active = jnp.array([True, True, False])
    counts, lo, hi = probes.layer_histograms(jnp.asarray(values, jnp.float32), 9, active)
    edges = np.linspace(values[:2].min(), values[:2].max(), 10)
    assert float(lo) == pytest.approx(edges[0], rel=1e-6) and float(hi) == pytest.approx(edges[-1], rel=1e-6)
    for layer in range(2):
        np.testing.assert_array_equal(np.asarray(counts[layer]), np.histogram(values[layer], edges)[0])
    assert int(counts[2].sum()) == 0
    # the narrow layer piles into the middle bins: Glorot & Bengio's "0-peak"
    assert int(counts[1, 3:6].sum()) == 140


def test_layer_probes_histograms_are_the_activations_and_back_propagated_gradients():
    arch = models.Architecture(n_in=6, n_out=3, width=10, depth=3, activation="tanh", init="gaussian")
    graphdef, params = models.init_state(arch, jax.random.key(0), 1.0, 0.0)
    x = jax.random.normal(jax.random.key(1), (8, 6))
    y = jnp.arange(8) % 3
    out = probes.layer_probes(graphdef, params, x, y, histogram_bins=5)
    assert "histograms" not in probes.layer_probes(graphdef, params, x, y)
    hist = out["histograms"]
    assert hist["counts"].shape == (2, 3, 5)
    np.testing.assert_array_equal(np.asarray(hist["counts"].sum(-1)), 8 * 10)
    preacts = nnx.merge(graphdef, params)(x).preacts
    assert float(hist["hi"][0]) == pytest.approx(float(jnp.tanh(preacts).max()))
    # the gradient range is set by ‖∂L/∂h_l‖: its largest entry is at most the norm
    assert float(jnp.maximum(-hist["lo"][1], hist["hi"][1])) <= float(out["signal_norm"].max()) + 1e-7


def test_jacobian_spectrum_of_a_blown_up_net_is_nan_without_lapack_errors(capfd):
    """A lane whose weights overflowed (a deep linear net at a too-large learning rate) has an
    inf/NaN Jacobian: its spectrum is NaN, and LAPACK never sees the non-finite matrix (it
    printed 'On entry to SLASCL parameter number 4 had an illegal value' to stdout: the divide-and-
    conquer SVD of a matrix wider than 25 rescales by its non-finite norm)."""
    arch = models.Architecture(n_in=4, n_out=2, width=64, depth=3, activation="linear", init="gaussian")
    graphdef, params = models.init_state(arch, jax.random.key(0), 1.0, 0.0)
    params["w_hidden"] = nnx.Param(jnp.full_like(params["w_hidden"][...], 1e30))  # J = W_3 W_2: all inf
    sv = probes.jacobian_singular_values(graphdef, params, jnp.ones((2, 4)))
    assert bool(jnp.all(jnp.isnan(sv)))
    out = capfd.readouterr()
    assert "SLASCL" not in out.out + out.err
    finite = probes.jacobian_singular_values(graphdef, models.init_state(arch, jax.random.key(0), 1.0, 0.0)[1],
                                             jnp.ones((2, 4)))
    assert bool(jnp.all(jnp.isfinite(finite)))
