"""DKS and TAT activation transforms: the solved constants meet their conditions (checked by Monte
Carlo and finite differences, not the solver's quadrature), agree with DeepMind's ``dks`` package,
and the forward pass applies them (a TAT net's measured output correlation is the target η)."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from satbench import data, mlp, models, phi_hat, probes, spec, train, transforms

NUMPY_PHI = {"tanh": np.tanh, "softplus": lambda x: np.logaddexp(0.0, x), "relu": lambda x: np.maximum(x, 0.0)}


def _phi_hat_numpy(activation, k):
    """φ̂ from numpy's own φ (not the registry's JAX function the solver uses)."""
    phi = NUMPY_PHI[activation]
    return lambda x: k.gamma * (phi(k.alpha * x + k.beta) + k.delta)


def _chain(depth):
    """The ``dks`` package's subnetwork-maximising function of a chain of ``depth`` identical layers."""
    return functools.partial(_compose, depth)


def _compose(depth, x, local):
    for _ in range(depth):
        x = local(x)
    return x


# ----------------------------------------------------------------------------------- solver
@pytest.mark.parametrize("depth, slope", [(20, 0.1814), (50, 0.4305), (100, 0.5704), (200, 0.6796)])
def test_tat_leaky_relu_slope_matches_the_values_computed_for_eta_0_9(depth, slope):
    k = transforms.solve("leaky_relu", "tat", depth, {"tat_c0": 0.9})
    assert k.param == pytest.approx(slope, abs=1e-3)
    assert k.gamma == pytest.approx(math.sqrt(2 / (1 + k.param**2)), rel=1e-12)
    assert (k.alpha, k.beta, k.delta) == (1.0, 0.0, 0.0)


def test_leaky_relu_closed_form_c_map_matches_quadrature():
    """The closed form TAT solves with, against the 2-D quadrature of the scaled leaky ReLU."""
    k = transforms.TransformConstants(gamma=math.sqrt(2 / (1 + 0.3**2)), param=0.3)
    c = np.array([-0.5, 0.0, 0.4, 0.9])
    np.testing.assert_allclose(transforms.c_map("leaky_relu", k, c), transforms.leaky_relu_c_map(c, 0.3), atol=2e-6)


@pytest.mark.parametrize("activation, depth", [("tanh", 10), ("softplus", 10), ("tanh", 100), ("softplus", 50),
                                               ("relu", 10)])
def test_dks_conditions_hold_by_monte_carlo(activation, depth):
    """Q(1) = 1, Q'(1) = 1, C(0) = 0, C'(1) = 1.5^{1/L}: sampled with numpy's φ, derivatives by
    central differences, so neither the solver's quadrature nor autodiff is trusted (ReLU: Q'(1) is
    not among its conditions)."""
    k = transforms.solve(activation, "dks", depth)
    f = _phi_hat_numpy(activation, k)
    rng = np.random.default_rng(0)
    z1, z2 = rng.standard_normal((2, 1_000_000))
    eps = 1e-4

    def mean_and_error(v):
        return v.mean(), 5 * v.std() / math.sqrt(v.size)

    q, q_err = mean_and_error(f(z1) ** 2)
    # d/dq E[φ̂(√q z)²] at q = 1 with common samples: the difference has a small variance
    dq, dq_err = mean_and_error((f(math.sqrt(1 + eps) * z1) ** 2 - f(math.sqrt(1 - eps) * z1) ** 2) / (2 * eps))
    c0, c0_err = mean_and_error(f(z1) * f(z2))
    dc, dc_err = mean_and_error(((f(z1 + eps) - f(z1 - eps)) / (2 * eps)) ** 2)  # C'(1) = E[φ̂'(z)²]
    assert abs(q - 1) < q_err
    assert abs(dq - 1) < dq_err or activation == "relu"
    assert abs(c0) < c0_err
    assert abs(dc - 1.5 ** (1 / depth)) < dc_err
    assert dc_err < 0.2 * (1.5 ** (1 / depth) - 1) or depth > 50  # the check tells the target from 1


def test_solved_constants_meet_their_equations_by_quadrature():
    for activation in ("tanh", "softplus", "elu"):
        maps = transforms.local_maps(activation, transforms.solve(activation, "dks", 30))
        np.testing.assert_allclose([maps.q_value, maps.q_slope, maps.c_zero, maps.c_slope],
                                   [1, 1, 0, 1.5 ** (1 / 30)], atol=1e-9, err_msg=activation)
    k = transforms.solve("tanh", "tat", 40, {"tat_curvature": 0.3})
    maps = transforms.local_maps("tanh", k, curvature=True)
    np.testing.assert_allclose([maps.q_value, maps.q_slope, maps.c_slope, maps.c_curvature], [1, 1, 1, 0.3 / 40],
                               atol=1e-9)


@pytest.mark.parametrize("activation, method, depth, field", [
    ("leaky_relu", "tat", 5, "tat_c0"),  # a 5-layer ReLU chain only reaches C(0) ≈ 0.71
    ("relu", "tat", 50, "relu"),
    ("leaky_relu", "dks", 50, "leaky ReLU has too few free numbers"),
])
def test_infeasible_targets_are_one_line_errors(activation, method, depth, field):
    with pytest.raises(ValueError, match=field) as err:
        transforms.solve(activation, method, depth)
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------ against the dks package
def _package_phi_hat(name, method, depth, **params):
    """The ``dks`` package's transformed φ (its numpy/autograd base: ``dks.jax`` imports
    ``jax.config``, gone from current JAX)."""
    base = pytest.importorskip("dks.base.activation_transform")
    kwargs = {"dks_params": params} if method == "DKS" else {"tat_params": params}
    return base.get_transformed_activations([name], method=method, subnet_max_func=_chain(depth), **kwargs)[name]


@pytest.mark.parametrize("activation, depth", [("tanh", 10), ("tanh", 50), ("softplus", 10), ("softplus", 50)])
def test_dks_matches_the_dks_package(activation, depth):
    theirs = _package_phi_hat(activation, "DKS", depth, c_slope_1_target=1.5)
    ours = _phi_hat_numpy(activation, transforms.solve(activation, "dks", depth, {"dks_slope": 1.5}))
    x = np.linspace(-5, 5, 41)
    np.testing.assert_allclose(ours(x), np.asarray(theirs(x), np.float64), rtol=1e-4, atol=1e-6)


def test_dks_relu_matches_the_dks_package():
    """ReLU's one free number (β/α). rtol 3e-4: the package integrates over the kink on a fixed grid,
    and its α differs from ours by 7e-5; the Monte Carlo check below sides with ours."""
    theirs = _package_phi_hat("relu", "DKS", 10, c_slope_1_target=1.5)
    k = transforms.solve("relu", "dks", 10)
    x = np.linspace(-5, 5, 41)
    ours = k.gamma * (np.maximum(k.alpha * x + k.beta, 0) + k.delta)
    np.testing.assert_allclose(ours, np.asarray(theirs(x), np.float64), rtol=3e-4, atol=1e-6)


def test_tat_leaky_relu_matches_the_dks_package():
    theirs = _package_phi_hat("leaky_relu", "TAT", 50, c_val_0_target=0.9)
    k = transforms.solve("leaky_relu", "tat", 50, {"tat_c0": 0.9})
    x = np.linspace(-5, 5, 41)
    ours = k.gamma * np.where(x >= 0, x, k.param * x)
    np.testing.assert_allclose(ours, np.asarray(theirs(x), np.float64), rtol=1e-4, atol=1e-6)


def test_tat_smooth_matches_the_dks_package():
    theirs = _package_phi_hat("softplus", "TAT", 50, c_curve_target=0.3)
    ours = _phi_hat_numpy("softplus", transforms.solve("softplus", "tat", 50, {"tat_curvature": 0.3}))
    x = np.linspace(-5, 5, 41)
    np.testing.assert_allclose(ours(x), np.asarray(theirs(x), np.float64), rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------- forward pass
def _last_correlations(activation, k, width, depth, seeds, n_inputs=32):
    """Per seed, the mean cosine over pairs of φ̂(h_L) (the readout's input) for ``n_inputs``
    orthogonal inputs of q = 1, at init."""
    arch = mlp.Architecture(width, 10, width, depth, activation, "gaussian", "scan")
    t = phi_hat.PhiTransform(k.alpha, k.beta, k.gamma, k.delta, np.nan if k.param is None else k.param)
    basis = np.linalg.qr(np.random.default_rng(0).standard_normal((width, n_inputs)))[0].T
    x = jnp.asarray(basis * math.sqrt(width), jnp.float32)

    @jax.jit
    @jax.vmap
    def mean_cosine(seed):
        graphdef, params = models.init_state(arch, jax.random.key(seed), 1.0, 0.0)
        h_last = nnx.merge(graphdef, params)(x, models.Context(phi=t)).preacts[-1]
        a = phi_hat.function(arch.activation, 0, t)(h_last)
        a = a / jnp.linalg.norm(a, axis=1, keepdims=True)
        return ((a @ a.T).sum() - n_inputs) / (n_inputs * (n_inputs - 1))

    return np.asarray(mean_cosine(jnp.arange(seeds)), np.float64)


def test_tat_net_output_correlation_is_the_target_eta():
    """Depth 50: orthogonal inputs come out with correlation C^∘50(0) = η = 0.9. Width 512, 8 seeds:
    at width 256 one net's mean cosine scatters by ±0.035 around η (finite width), at 512 by ±0.016
    (measured over 8 seeds; their means 0.904 and 0.895)."""
    k = transforms.solve("leaky_relu", "tat", 50, {"tat_c0": 0.9})
    assert _last_correlations("leaky_relu", k, 512, 50, 8).mean() == pytest.approx(0.9, abs=0.03)
    # the untransformed ReLU net (He scale) at the same depth has collapsed: every input looks alike
    relu = transforms.TransformConstants(gamma=math.sqrt(2.0))
    assert _last_correlations("relu", relu, 256, 50, 1)[0] > 0.97


def test_forward_pass_applies_the_transform_per_lane():
    """A net's logits with φ̂ in the context, against a numpy forward pass from the same weights."""
    k = transforms.solve("softplus", "dks", 4)
    arch = mlp.Architecture(12, 3, 16, 4, "softplus", "gaussian", "unroll")
    graphdef, params = models.init_state(arch, jax.random.key(3), 1.0, 0.1)
    model = nnx.merge(graphdef, params)
    x = np.random.default_rng(1).standard_normal((5, 12))
    f = _phi_hat_numpy("softplus", k)
    a = f(x @ np.asarray(model.w_in[...]) + np.asarray(model.b_in[...]))
    for w, b in zip(np.asarray(model.w_hidden[...]), np.asarray(model.b_hidden[...])):
        a = f(a @ w + b)
    expected = a @ np.asarray(model.w_out[...]) + np.asarray(model.b_out[...])
    t = phi_hat.PhiTransform(k.alpha, k.beta, k.gamma, k.delta)
    got = model(jnp.asarray(x, jnp.float32), models.Context(phi=t)).logits
    np.testing.assert_allclose(got, expected, rtol=2e-4, atol=2e-5)


def test_probes_use_the_transformed_phi_and_its_derivative():
    """act_mean/std are of φ̂(h); a leaky-ReLU lane's slope comes from phi_param (finite differences)."""
    arch = mlp.Architecture(64, 10, 32, 3, "leaky_relu", "gaussian", "scan")
    graphdef, params = models.init_state(arch, jax.random.key(0), 1.0, 0.0)
    ds = data.load("digits")
    x, y = jnp.asarray(ds.x_train[:64]), jnp.asarray(ds.y_train[:64])
    t = phi_hat.PhiTransform(1.0, 0.0, 1.3, 0.0, 0.4)
    out = jax.jit(probes.layer_probes, static_argnums=0)(graphdef, params, x, y, models.Context(phi=t))
    h = np.asarray(nnx.merge(graphdef, params)(x, models.Context(phi=t)).preacts, np.float64)
    acts = 1.3 * np.where(h >= 0, h, 0.4 * h)
    np.testing.assert_allclose(out["act_mean"], acts.mean(axis=(1, 2)), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(out["act_std"], acts.std(axis=(1, 2)), rtol=1e-4)
    d = phi_hat.derivative(arch.activation, 0, t)(jnp.asarray([-2.0, 3.0]))
    np.testing.assert_allclose(d, [1.3 * 0.4, 1.3], rtol=1e-6)


def test_a_plain_config_is_unchanged_by_a_transformed_program():
    """Identity constants (the fields' defaults) through the transformed code path give the plain
    path's numbers bit for bit: the defaults mean φ as named."""
    ds = data.load("digits")
    arrays = train.data_arrays(ds)
    # leaky ReLU: its parameter too passes through the transformed path (phi_param None: the name's)
    arch = mlp.Architecture(ds.n_in, ds.n_classes, 16, 3, "leaky_relu:0.2", "gaussian", "scan")
    lane = train.one_lane(arch, learning_rate=0.05, seed=3)
    records = []
    for method in ("none", "tat"):
        program = train.make_program(arch, steps=10, log_every=5, act_transform=method)
        records.append(jax.device_get(jax.jit(functools.partial(train.run, program))(lane, arrays)))
    assert records[0].train_loss[-1] < records[0].train_loss[0]  # it trained: the numbers are not trivial
    for a, b in zip(jax.tree.leaves(records[0]), jax.tree.leaves(records[1])):
        np.testing.assert_array_equal(a, b)


# -------------------------------------------------------------------------------- spec level
def _configs(fixed, grid=""):
    text = f"[experiment]\nname = \"t\"\n[fixed]\n{fixed}\n[grid]\n{grid}\n"
    return spec.parse(text).configs()


def test_spec_fills_the_constants_per_config_and_remedies_set_the_transform():
    configs = _configs("steps = 0", 'depth = [20, 50]\nremedy = ["none", "dks", "tat"]')
    by = {(c["remedy"], c["depth"]): c for c in configs}
    assert by[("none", 20)]["phi_alpha"] == 1.0 and by[("none", 20)]["phi_param"] is None
    assert by[("tat", 50)]["activation"] == "leaky_relu"
    assert by[("tat", 50)]["phi_param"] == pytest.approx(0.4305, abs=1e-3)
    assert by[("tat", 20)]["phi_param"] == pytest.approx(0.1814, abs=1e-3)
    dks = by[("dks", 50)]
    k = transforms.solve("tanh", "dks", 50)
    assert (dks["phi_alpha"], dks["phi_beta"], dks["phi_gamma"], dks["phi_delta"]) == (k.alpha, k.beta, k.gamma,
                                                                                        k.delta)
    assert dks["init"] == "gaussian" and dks["sigma_b2"] == 0.0


@pytest.mark.parametrize("fixed, message", [
    ('act_transform = "tat"\nactivation = "leaky_relu"\ndepth = 4', "tat_c0 = 0.9 is out of reach at depth 4"),
    ('act_transform = "tat"\nactivation = "relu"', "relu has no slope to tune"),
    ('phi_alpha = 2.0', "phi_alpha is filled from act_transform"),
    ('act_transform = "dks"\ndks_slope = 0.9', "dks_slope must be > 1"),
    ('act_transform = "magic"', "act_transform: unknown value 'magic'"),
])
def test_bad_transform_settings_are_one_line_spec_errors(fixed, message):
    with pytest.raises(spec.SpecError, match=message) as err:
        _configs(fixed)
    assert "\n" not in str(err.value)


def test_mean_field_columns_are_left_empty_for_transformed_nets():
    """The theory columns are the plain φ's: a transformed config gets NaN, its plain twin a number."""
    import pandas as pd

    from satbench import tables

    configs = _configs('activation = "tanh"\ndepth = 10\nsteps = 0', 'act_transform = ["none", "dks"]')
    frame = pd.DataFrame([{**c.values, "config_id": c.config_id} for c in configs])
    theory = tables.theory_columns(frame)
    chi1 = {c["act_transform"]: theory.loc[c.config_id, "chi1"] for c in configs}
    assert chi1["none"] == pytest.approx(1.0, abs=1e-6) and np.isnan(chi1["dks"])
