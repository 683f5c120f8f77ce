"""Probes against independent computations: hand-written numpy backprop, finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from satbench import mlp, models, probes


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
    arch = mlp.Architecture(n_in=12, n_out=5, width=24, depth=6, activation="tanh",
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


def _reference_loss(p, x, y, taps, activation, norm, residual, alpha):
    """Mean cross-entropy of the MLP written out here (float64), with ``taps`` added to each h_l."""
    phi = {"sigmoid": lambda h: 1 / (1 + jnp.exp(-h)), "tanh": jnp.tanh}[activation]

    def normalise(h, l):
        if norm == "batchnorm":  # the batch's own statistics (biased variance), eps 1e-5, then γ, β
            h = (h - h.mean(0)) / jnp.sqrt(h.var(0) + 1e-5)
        elif norm == "layernorm":  # over the units of each example
            h = (h - h.mean(1, keepdims=True)) / jnp.sqrt(h.var(1, keepdims=True) + 1e-5)
        return h * p["norm_scale"][l] + p["norm_shift"][l] if norm != "none" else h

    h = normalise(x @ p["w_in"] + p["b_in"], 0) + taps[0]
    a = phi(h)
    for l in range(1, taps.shape[0]):
        h = normalise(a @ p["w_hidden"][l - 1] + p["b_hidden"][l - 1], l) + taps[l]
        a = a + alpha * phi(h) if residual else phi(h)
    logits = a @ p["w_out"] + p["b_out"]
    top = logits.max(1, keepdims=True)
    log_z = jnp.log(jnp.exp(logits - top).sum(1)) + top[:, 0]
    return jnp.mean(log_z - logits[jnp.arange(len(y)), y]), logits


def _central_differences(f, x, eps=1e-5):
    """∂f/∂x entry by entry, (f(x + eps e_i) - f(x - eps e_i)) / 2 eps, all entries at once."""
    basis = jnp.eye(x.size, dtype=x.dtype).reshape(x.size, *x.shape)
    shifted = jax.vmap(lambda e: f(x + eps * e) - f(x - eps * e))(basis)
    return (shifted / (2 * eps)).reshape(x.shape)


@pytest.mark.parametrize("activation, norm, residual", [("sigmoid", "batchnorm", False), ("tanh", "layernorm", True)])
def test_probe_norms_equal_finite_differences_of_an_independent_forward_pass(activation, norm, residual):
    """grad_norm ‖∂L/∂W_l‖ and signal_norm ‖∂L/∂h_l‖ from ``layer_probes`` against central
    differences (float64) of a forward pass written in this test, entry by entry of each W_l and
    of each h_l (a tap added after the norm). With BatchNorm the differences move the batch
    statistics too: probes measure the net as it trains."""
    alpha = 0.5
    with jax.enable_x64(True):
        arch = mlp.Architecture(n_in=5, n_out=3, width=6, depth=3, activation=activation, init="glorot_normal",
                                   norm=norm)
        graphdef, params = models.init_state(arch, jax.random.key(0), 1.5, 0.05)
        params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        if norm != "none":  # γ, β away from their initial 1, 0, so a probe that ignored them would show
            for name, base in (("norm_scale", 1.0), ("norm_shift", 0.0)):
                noise = jax.random.normal(jax.random.key(len(name)), params[name][...].shape, jnp.float64)
                params[name] = nnx.Param(base + 0.3 * noise)
        x = jax.random.normal(jax.random.key(1), (8, 5), jnp.float64)
        y = jnp.arange(8) % 3
        p = {k: jnp.asarray(v) for k, v in nnx.to_pure_dict(params).items()}
        zeros = jnp.zeros((3, 8, 6), jnp.float64)

        def loss(q, taps=zeros):
            return _reference_loss(q, x, y, taps, activation, norm, residual, alpha)[0]

        ctx = models.Context(residual=residual, residual_scale=alpha)
        # the reference is the same net: equal logits
        np.testing.assert_allclose(_reference_loss(p, x, y, zeros, activation, norm, residual, alpha)[1],
                                   nnx.merge(graphdef, params)(x, ctx).logits, rtol=1e-12, atol=1e-12)
        out = jax.jit(probes.layer_probes, static_argnums=0)(graphdef, params, x, y, ctx)

        @jax.jit
        def differences(p):
            return (_central_differences(lambda w: loss({**p, "w_in": w}), p["w_in"]),
                    _central_differences(lambda w: loss({**p, "w_hidden": w}), p["w_hidden"]),
                    _central_differences(lambda t: loss(p, t), zeros))

        d_in, d_hidden, d_taps = differences(p)
        grad_norm = np.sqrt([float(jnp.sum(d_in**2)), *np.asarray(jnp.sum(d_hidden**2, axis=(1, 2)))])
        signal_norm = np.sqrt(np.asarray(jnp.sum(d_taps**2, axis=(1, 2))))
        assert np.all(signal_norm > 1e-4)  # nothing trivially zero
        np.testing.assert_allclose(np.asarray(out["grad_norm"]), grad_norm, rtol=1e-6)
        np.testing.assert_allclose(np.asarray(out["signal_norm"]), signal_norm, rtol=1e-6)


def test_saturation_and_dead_fractions_equal_numpy_on_the_pre_activations():
    """sat_frac = mean over units × examples of |φ'(h)| < 0.05·max|φ'|, dead_frac = fraction of
    units with φ'(h) = 0 on every example, recomputed in numpy from the net's pre-activations.
    At moderate σ_w² a good part of the units is near the threshold (at σ_w² = 400 nearly all
    are saturated whatever it is); sigmoid (max σ' = 1/4) and tanh (max 1) share one program,
    so each lane must use its own activation's maximum."""
    x = jax.random.normal(jax.random.key(1), (64, 10))
    y = jnp.zeros(64, jnp.int32)
    layer_probes = jax.jit(probes.layer_probes, static_argnums=0)
    preacts = jax.jit(lambda graphdef, params, x, ctx=models.Context(): nnx.merge(graphdef, params)(x, ctx).preacts,
                      static_argnums=0)
    arch = mlp.Architecture(n_in=10, n_out=2, width=64, depth=3, activation=("sigmoid", "tanh"), init="gaussian")
    closed_forms = {0: (lambda h: np.exp(-h) / (1 + np.exp(-h)) ** 2, 0.25), 1: (lambda h: 1 / np.cosh(h) ** 2, 1.0)}
    for index, sigma_w2 in ((0, 16.0), (1, 4.0)):
        graphdef, params = models.init_state(arch, jax.random.key(0), sigma_w2, 0.1)
        ctx = models.Context(activation_index=index)
        out = layer_probes(graphdef, params, x, y, ctx)
        h = np.asarray(preacts(graphdef, params, x, ctx), np.float64)
        dphi, peak = closed_forms[index]
        expected = (np.abs(dphi(h)) < 0.05 * peak).mean(axis=(1, 2))
        assert np.all((expected > 0.05) & (expected < 0.5)), expected  # the threshold matters here
        np.testing.assert_allclose(np.asarray(out["sat_frac"]), expected, atol=2 / h[0].size)
        np.testing.assert_array_equal(np.asarray(out["dead_frac"]), 0.0)

    # relu: a unit is dead when h <= 0 on every example; large biases kill some and keep others
    relu_arch = mlp.Architecture(n_in=10, n_out=2, width=50, depth=3, activation="relu", init="he")
    graphdef, params = models.init_state(relu_arch, jax.random.key(0), 0.5, 2.0)
    out = layer_probes(graphdef, params, x[:16], y[:16])
    h = np.asarray(preacts(graphdef, params, x[:16]))
    expected = np.all(h <= 0, axis=1).mean(axis=-1)
    assert np.all((expected > 0.05) & (expected < 0.9)), expected
    np.testing.assert_allclose(np.asarray(out["dead_frac"]), expected, rtol=1e-6)
    assert np.all(np.isnan(np.asarray(out["sat_frac"])))  # relu is not a saturating activation


def test_relu_he_keeps_variance_while_gaussian_halves_it_per_layer():
    """He et al. 2015: q_L/q_1 ≈ 1 with He init, ≈ 2^-(L-1) with σ_w² = 1 (width 500, depth 30)."""
    depth, width = 30, 500
    x = jax.random.normal(jax.random.key(99), (32, width))

    def log_ratios(init):
        arch = mlp.Architecture(n_in=width, n_out=2, width=width, depth=depth, activation="relu",
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
    arch = mlp.Architecture(n_in=5, n_out=2, width=32, depth=6, activation="linear", init="orthogonal")
    graphdef, params = models.init_state(arch, jax.random.key(0), 1.0, 0.0)
    sv = probes.jacobian_singular_values(graphdef, params, jnp.ones((3, 5)))
    assert sv.shape == (3, 32)
    np.testing.assert_allclose(np.asarray(sv), 1.0, atol=1e-4)


@pytest.mark.parametrize("layers", ["scan", "unroll"])
@pytest.mark.parametrize("active_depth", [4, 3])
def test_jacobian_spectrum_equals_numpy_product_of_layer_jacobians(layers, active_depth):
    """Also in a padded program: a lane of depth 3 in a depth-4 program (its last layer masked)
    has the spectrum of its own 2 hidden layers' product."""
    arch = mlp.Architecture(n_in=4, n_out=2, width=16, depth=4, activation="tanh", init="gaussian", layers=layers)
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
    arch = mlp.Architecture(n_in=6, n_out=3, width=10, depth=3, activation="tanh", init="gaussian")
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
    arch = mlp.Architecture(n_in=4, n_out=2, width=64, depth=3, activation="linear", init="gaussian")
    graphdef, params = models.init_state(arch, jax.random.key(0), 1.0, 0.0)
    params["w_hidden"] = nnx.Param(jnp.full_like(params["w_hidden"][...], 1e30))  # J = W_3 W_2: all inf
    sv = probes.jacobian_singular_values(graphdef, params, jnp.ones((2, 4)))
    assert bool(jnp.all(jnp.isnan(sv)))
    out = capfd.readouterr()
    assert "SLASCL" not in out.out + out.err
    finite = probes.jacobian_singular_values(graphdef, models.init_state(arch, jax.random.key(0), 1.0, 0.0)[1],
                                             jnp.ones((2, 4)))
    assert bool(jnp.all(jnp.isfinite(finite)))
