import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

from satbench import activations, inits, mlp, models, plugins


def test_sigmoid_derivative_peaks_at_a_quarter_and_tanh_at_one():
    assert activations.max_abs_derivative("sigmoid") == pytest.approx(0.25, abs=1e-7)
    assert activations.max_abs_derivative("tanh") == pytest.approx(1.0, abs=1e-7)
    # relu's derivative is 0 or 1
    d = activations.derivative("relu")(jnp.linspace(-3, 3, 101))
    assert set(np.unique(np.asarray(d))) == {0.0, 1.0}


def test_registry_has_the_required_activations():
    required = {"sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "gelu", "silu", "softplus",
                "softsign", "hard_tanh", "erf", "linear"}
    assert required <= set(activations.known_activations())


_SELU_LAMBDA, _SELU_ALPHA = 1.0507009873554804934193349852946, 1.6732632423543772848170429916717


def _sig(x):
    return 1 / (1 + np.exp(-x))


#: φ' in closed form, written independently of satbench (numpy, float64)
CLOSED_FORM_DERIVATIVES = {
    "sigmoid": lambda x: _sig(x) * _sig(-x),  # σ(1 − σ), without cancelling in the tail
    "tanh": lambda x: 1 / np.cosh(x) ** 2,  # 1 − tanh²
    "relu": lambda x: (x > 0).astype(float),
    "leaky_relu": lambda x: np.where(x >= 0, 1.0, 0.01),
    "leaky_relu:0.2": lambda x: np.where(x >= 0, 1.0, 0.2),
    "elu": lambda x: np.where(x > 0, 1.0, np.exp(x)),
    "selu": lambda x: _SELU_LAMBDA * np.where(x > 0, 1.0, _SELU_ALPHA * np.exp(x)),
    "gelu": lambda x: scipy.special.ndtr(x) + x * np.exp(-x**2 / 2) / np.sqrt(2 * np.pi),  # Φ(x) + x·φ(x)
    "silu": lambda x: _sig(x) * (1 + x * _sig(-x)),
    "softplus": _sig,
    "softsign": lambda x: 1 / (1 + np.abs(x)) ** 2,
    "hard_tanh": lambda x: (np.abs(x) < 1).astype(float),
    "erf": lambda x: 2 / np.sqrt(np.pi) * np.exp(-x**2),
    "linear": lambda x: np.ones_like(x),
}


@pytest.mark.parametrize("name", sorted(CLOSED_FORM_DERIVATIVES))
def test_derivatives_equal_closed_forms(name):
    """``activations.derivative`` (autodiff) against φ' written out by hand, in float64 on a grid
    that avoids the kinks (0, ±1), and in float32 as probes use it, tails included."""
    x = np.concatenate([np.linspace(-4.05, 3.95, 81), [-30.0, -12.0, -8.0, 8.0, 12.0, 30.0]])
    expected = CLOSED_FORM_DERIVATIVES[name](x)
    with jax.enable_x64(True):
        got = np.asarray(activations.derivative(name)(jnp.asarray(x, jnp.float64)))
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-15)  # autodiff: 1 − tanh² etc. in the tails
    got32 = np.asarray(activations.derivative(name)(jnp.asarray(x, jnp.float32)))
    np.testing.assert_allclose(got32, expected, rtol=1e-5, atol=5e-7)  # a few float32 ulps of 1


def test_every_built_in_activation_has_a_closed_form_derivative_test():
    built_in = {n for n in activations.known_activations()
                if activations.get_entry(n).fn.__module__ == activations.__name__}
    assert built_in == {n.partition(":")[0] for n in CLOSED_FORM_DERIVATIVES}


def test_leaky_relu_slope_defaults_to_0_01_and_is_configurable():
    assert float(activations.get_activation("leaky_relu")(-2.0)) == pytest.approx(-0.02)
    assert float(activations.get_activation("leaky_relu:0.2")(-2.0)) == pytest.approx(-0.4)


def test_unknown_activation_lists_known_ones():
    with pytest.raises(ValueError, match="unknown activation 'swishy'; known: .*sigmoid.*tanh"):
        activations.get_activation("swishy")


def test_register_activation_adds_one_function():
    activations.register_activation("test_cube_root")(lambda x: jnp.cbrt(x))
    assert "test_cube_root" in activations.known_activations()
    assert float(activations.get_activation("test_cube_root")(8.0)) == pytest.approx(2.0)


def test_entry_point_plugins_are_loaded(monkeypatch):
    class EP:
        name = "test_plugin_act"

        def load(self):
            return lambda x: 3 * x

    monkeypatch.setattr(plugins, "_loaded", set())
    monkeypatch.setattr(plugins.metadata, "entry_points",
                        lambda group: [EP()] if group == activations.ENTRY_POINT_GROUP else [])
    assert "test_plugin_act" in activations.known_activations()
    assert float(activations.get_activation("test_plugin_act")(2.0)) == 6.0


@pytest.mark.parametrize("name, variance", [
    ("gaussian", lambda fi, fo: 1 / fi), ("lecun", lambda fi, fo: 1 / fi), ("he", lambda fi, fo: 2 / fi),
    ("glorot_normal", lambda fi, fo: 2 / (fi + fo)), ("glorot_uniform", lambda fi, fo: 2 / (fi + fo)),
    ("standard", lambda fi, fo: 1 / (3 * fi)),
])
def test_init_variances(name, variance):
    fan_in, fan_out, s = 300, 500, 1.7
    w = np.asarray(inits.sample(name, jax.random.key(0), (fan_in, fan_out), s))
    assert w.var() == pytest.approx(s * variance(fan_in, fan_out), rel=0.02)


def test_uniform_inits_are_uniform_on_their_interval():
    w = np.asarray(inits.sample("standard", jax.random.key(1), (400, 400), 1.0))
    limit = 1 / np.sqrt(400)
    assert np.abs(w).max() <= limit
    hist, _ = np.histogram(w, bins=10, range=(-limit, limit))
    assert hist.min() > 0.9 * hist.mean()


def test_orthogonal_is_orthogonal_times_sigma_w():
    for shape in [(64, 64), (32, 64), (64, 32)]:
        w = np.asarray(inits.sample("orthogonal", jax.random.key(2), shape, 4.0))
        gram = w.T @ w if shape[0] >= shape[1] else w @ w.T
        np.testing.assert_allclose(gram, 4.0 * np.eye(min(shape)), atol=1e-4)


def test_unknown_init_lists_known_ones():
    with pytest.raises(ValueError, match="unknown init 'xavier'; known: .*gaussian"):
        inits.get_init("xavier")


def _svd_ancestry(jaxpr, inputs, found):
    """Append to ``found`` one (token, ancestors) pair per svd of ``jaxpr``, nested calls inlined:
    ancestors are the tokens of the svds its input depends on. ``inputs``: the svd tokens each
    invar depends on. Returns the tokens each outvar depends on."""
    env = dict(zip(jaxpr.invars, inputs))
    read = lambda v: frozenset() if hasattr(v, "val") else env.get(v, frozenset())  # noqa: E731
    for eqn in jaxpr.eqns:
        deps = frozenset().union(*(read(v) for v in eqn.invars))
        inner = [getattr(p, "jaxpr", p) for p in eqn.params.values() if hasattr(p, "jaxpr") or hasattr(p, "eqns")]
        if eqn.primitive.name == "optimization_barrier":  # XLA:CPU expands it away: no ordering
            out = [read(v) for v in eqn.invars]
        elif eqn.primitive.name == "svd":
            token = object()
            found.append((token, deps))
            out = [deps | {token}] * len(eqn.outvars)
        elif len(inner) == 1 and len(inner[0].invars) == len(eqn.invars):  # a call or a loop body: inline it
            out = _svd_ancestry(inner[0], [read(v) for v in eqn.invars], found)
        elif eqn.primitive.name == "cond":  # either branch may run: its outputs depend on both
            operands = [read(v) for v in eqn.invars[1:]]
            outs = [_svd_ancestry(b.jaxpr, operands, found) for b in eqn.params["branches"]]
            out = [read(eqn.invars[0]).union(*parts) for parts in zip(*outs)]
        else:
            out = [deps] * len(eqn.outvars)
        env.update(zip(eqn.outvars, out))
    return [read(v) for v in jaxpr.outvars]


def test_orthogonal_init_makes_its_svds_one_after_the_other():
    """Regression: the three orthogonal SVDs (input, hidden, readout weights) were independent, so
    XLA:CPU ran them side by side; on 2 cores jaxlib 0.10's batched LAPACK calls then held both
    intra-op threads while waiting for each other's batches (a sweep of saxe2014 hung). Each SVD
    must depend on the previous one through data (an optimization_barrier is not kept by XLA)."""
    arch = mlp.Architecture(n_in=5, n_out=3, width=8, depth=3, activation="linear", init="orthogonal")
    fn = jax.vmap(lambda seed: models.init_state(arch, jax.random.key(seed), 1.0, 0.0)[1]["w_out"][...])
    jaxpr = jax.make_jaxpr(fn)(jnp.arange(4)).jaxpr
    found = []
    _svd_ancestry(jaxpr, [frozenset()] * len(jaxpr.invars), found)
    assert len(found) == 3
    assert sorted(len(ancestors) for _, ancestors in found) == [0, 1, 2]  # a chain


@pytest.mark.parametrize("earlier", [jnp.nan, jnp.inf, -3.0])
def test_waiting_for_an_earlier_value_leaves_the_value_unchanged(earlier):
    """Regression: the dependency used to replace ``x`` by NaN when ``earlier`` started with NaN, so a
    lane whose first Jacobian spectrum was NaN started training from NaN weights."""
    x = {"w": jnp.array([[1.5, -0.0], [jnp.inf, -2.0]]), "b": jnp.array([3.0])}
    out = jax.jit(models.after)(x, jnp.array([earlier, 1.0]))
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), out, x)


def test_no_two_svds_of_a_training_run_can_run_side_by_side():
    """Regression: the first probe's Jacobian SVD and the last probe's (inside the training scan)
    depended only on the initial parameters, so XLA:CPU could run them together and deadlock as
    above (saxe2014 hung again). Every SVD of a run (3 for the orthogonal init, then the probe's,
    traced once inside the loop over log steps, whose iterations run one after another) must
    depend on the one before."""
    from satbench import train

    arch = mlp.Architecture(n_in=6, n_out=3, width=8, depth=3, activation="tanh", init="orthogonal")
    program = train.make_program(arch, dataset="digits", steps=4, log_every=2, jacobian_samples=1, batch_size=4)
    data = train.Data(jnp.ones((8, 6)), jnp.zeros(8, jnp.int32), jnp.ones((4, 6)), jnp.zeros(4, jnp.int32))
    lane = train.one_lane(arch, seed=0, sigma_w2=1.0, sigma_b2=0.0, learning_rate=0.1, depth=3)
    jaxpr = jax.make_jaxpr(lambda lanes: jax.vmap(lambda ln: train.run(program, ln, data))(lanes))(
        jax.tree.map(lambda v: jnp.stack([v, v]), lane)).jaxpr
    found = []
    _svd_ancestry(jaxpr, [frozenset()] * len(jaxpr.invars), found)
    assert len(found) == 4
    assert sorted(len(ancestors) for _, ancestors in found) == [0, 1, 2, 3]
