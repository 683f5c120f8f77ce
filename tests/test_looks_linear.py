"""The looks-linear init (Balduzzi et al. 2017): a ReLU MLP of mirrored unit pairs that is exactly
affine at initialisation, checked against the product of its blocks computed in numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from satbench import mlp, models, spec

jax.config.update("jax_platforms", "cpu")


def _net(depth=20, width=16, sigma_w2=1.0, sigma_b2=0.0, init="looks_linear", seed=0):
    arch = mlp.Architecture(n_in=3, n_out=2, width=width, depth=depth, activation="relu", init=init)
    graphdef, params = models.init_state(arch, jax.random.key(seed), sigma_w2, sigma_b2)
    return nnx.merge(graphdef, params), params


def _blocks(params, m):
    """The A blocks of every weight, as float64 numpy arrays."""
    w_in, w_hidden, w_out = (np.asarray(params[k][...], np.float64) for k in ("w_in", "w_hidden", "w_out"))
    return w_in[:, :m], [w[:m, :m] for w in w_hidden], w_out[:m]


def test_weights_are_mirrored_orthogonal_blocks():
    _, params = _net(sigma_w2=2.0)
    m = 8
    a_in, hidden, b = _blocks(params, m)
    np.testing.assert_array_equal(np.asarray(params["w_in"][...])[:, m:], -a_in.astype(np.float32))
    np.testing.assert_array_equal(np.asarray(params["w_out"][...])[m:], -b.astype(np.float32))
    for w, a in zip(np.asarray(params["w_hidden"][...]), hidden):
        a32 = a.astype(np.float32)
        for block, sign in ((w[:m, m:], -1), (w[m:, :m], -1), (w[m:, m:], 1)):
            np.testing.assert_array_equal(block, sign * a32)
        np.testing.assert_allclose(a @ a.T, 2.0 * np.eye(m), atol=1e-5)  # σ_w·(orthogonal)


def test_deep_relu_net_equals_the_product_of_its_blocks():
    """Depth 20, no biases: f(x) = x A_in A_2 ⋯ A_20 B exactly (up to float32 rounding)."""
    model, params = _net(depth=20)
    a_in, hidden, b = _blocks(params, 8)
    product = a_in
    for a in hidden:
        product = product @ a
    product = product @ b
    x = np.asarray(jax.random.normal(jax.random.key(1), (32, 3)))
    np.testing.assert_allclose(np.asarray(model(jnp.asarray(x)).logits), x @ product, atol=1e-5)
    assert np.abs(x @ product).max() > 0.1  # not trivially zero


@pytest.mark.parametrize("residual", [False, True])
def test_forward_is_affine_with_mirrored_biases(residual):
    """f(x + y) = f(x) + f(y) − f(0) with random biases (mirrored), plain and residual; a He-init ReLU
    net of the same shape is far from it."""
    ctx = models.Context(residual=residual, residual_scale=0.5)
    x, y = (jax.random.normal(jax.random.key(k), (16, 3)) for k in (1, 2))

    def defect(model):
        f = lambda v: model(v, ctx).logits  # noqa: E731
        scale = np.abs(np.asarray(f(x))).max()
        return np.abs(np.asarray(f(x + y) - f(x) - f(y) + f(jnp.zeros_like(x)))).max() / scale

    assert defect(_net(sigma_b2=0.5)[0]) < 1e-5
    assert defect(_net(sigma_b2=0.5, init="he")[0]) > 1e-2


EXPERIMENT = """
[experiment]
name = "ll"
[fixed]
init = "looks_linear"
depth = 3
steps = 10
log_every = 10
"""


@pytest.mark.parametrize("extra, message", [
    ("width = 15", "width must be even for init looks_linear (units in mirrored pairs), got 15"),
    ('model = "cnn"\ndataset = "digits"', "init looks_linear needs model mlp"),
    ('model = "rnn"\ninit = "gaussian"\nrecurrent_init = "looks_linear"',
     "recurrent_init looks_linear needs model mlp"),
])
def test_configs_it_does_not_apply_to_are_one_line_errors(extra, message):
    text = EXPERIMENT.replace('init = "looks_linear"\n', "") if "init =" in extra else EXPERIMENT
    with pytest.raises(spec.SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        spec.parse(text + extra + "\n")


def test_mean_field_theory_is_not_claimed():
    from satbench import families

    values = dict(norm="none", residual=False, init="looks_linear")
    assert not families.get("mlp").has_mean_field(values)
    assert families.get("mlp").has_mean_field({**values, "init": "he"})
