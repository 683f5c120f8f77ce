"""Remedies: residual connections, BatchNorm/LayerNorm, gradient clipping, named bundles."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import optax
import pandas as pd
from flax import nnx

from satbench import data, mlp, models, probes, remedies, spec, train

DIGITS = data.load("digits")


def _lane(**values):
    base = dict(seed=0, sigma_w2=1.0, sigma_b2=0.0, learning_rate=0.05, target_loss=np.nan, depth=3,
                init_index=0, residual=False, residual_scale=1.0, activation_index=0, clip_norm=np.inf)
    base.update(values)
    dtypes = {"seed": jnp.uint32, "depth": jnp.int32, "init_index": jnp.int32, "activation_index": jnp.int32,
              "residual": jnp.bool_}
    return {k: jnp.asarray(v, dtypes.get(k, jnp.float32)) for k, v in base.items()}


def _run(program, lane):
    return jax.device_get(jax.jit(functools.partial(train.run, program))(lane, train.data_arrays(DIGITS)))


def _arch(depth, activation="sigmoid", init="standard", width=64, **options):
    return mlp.Architecture(DIGITS.n_in, DIGITS.n_classes, width, depth, activation, init, "scan", **options)


def _signal_decades(depth, residual):
    """log10 ‖∂L/∂h_1‖ / ‖∂L/∂h_L‖ at init on the probe batch."""
    graphdef, params = models.init_state(_arch(depth), jax.random.key(0), 1.0, 0.0)
    x, y = jnp.asarray(DIGITS.x_train[:128]), jnp.asarray(DIGITS.y_train[:128])
    ctx = models.Context(residual=residual)
    signal = np.asarray(probes.layer_probes(graphdef, params, x, y, ctx)["signal_norm"], np.float64)
    return np.log10(np.maximum(signal[0], 1e-300) / signal[-1])


def test_residual_signal_ratio_stays_bounded_with_depth_while_plain_vanishes():
    res16, res64 = _signal_decades(16, True), _signal_decades(64, True)
    plain16, plain64 = _signal_decades(16, False), _signal_decades(64, False)
    assert abs(res16) < 1.5 and abs(res64) < 1.5  # within ~30x at both depths
    assert abs(res64 - res16) < 1.0
    assert plain16 < -5  # the plain sigmoid net loses > 5 decades in 16 layers ...
    assert plain64 < plain16 - 10  # ... and keeps losing them as it deepens


def test_residual_layer_is_input_plus_scaled_branch():
    """Against a hand-written forward pass: h ← h + α·φ(W h + b) on layers 2..depth."""
    arch = _arch(3, activation="tanh", init="gaussian", width=8)
    graphdef, params = models.init_state(arch, jax.random.key(1), 1.0, 0.1)
    model = nnx.merge(graphdef, params)
    x = np.asarray(DIGITS.x_train[:5], np.float64)
    alpha = 0.3
    a = np.tanh(x @ np.asarray(model.w_in[...]) + np.asarray(model.b_in[...]))
    for w, b in zip(np.asarray(model.w_hidden[...]), np.asarray(model.b_hidden[...])):
        a = a + alpha * np.tanh(a @ w + b)
    expected = a @ np.asarray(model.w_out[...]) + np.asarray(model.b_out[...])
    got = model(jnp.asarray(x, jnp.float32), models.Context(residual=True, residual_scale=alpha)).logits
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_norms_normalise_as_defined():
    x = jnp.asarray(DIGITS.x_train[:32])
    for norm, axis in (("batchnorm", 0), ("layernorm", 1)):
        graphdef, params = models.init_state(_arch(3, norm=norm, init="gaussian"), jax.random.key(2), 4.0, 1.0)
        pre = np.asarray(nnx.merge(graphdef, params)(x).preacts)  # γ = 1, β = 0 at init
        np.testing.assert_allclose(pre.mean(axis=axis + 1), 0, atol=1e-4, err_msg=norm)
        np.testing.assert_allclose(pre.var(axis=axis + 1), 1, atol=1e-3, err_msg=norm)


def test_batchnorm_keeps_the_last_layer_input_band_steady_while_the_plain_net_drifts():
    """Ioffe & Szegedy Fig. 1(b, c): 3×100 sigmoid, one last-layer unit's 15–85th percentile band."""
    def band(norm):
        arch = mlp.Architecture(DIGITS.n_in, DIGITS.n_classes, 100, 3, "sigmoid", "gaussian", "unroll", norm=norm)
        program = train.make_program(arch, dataset="digits", batch_size=60, steps=400, log_every=50, probe_every=50)
        layers = _run(program, _lane(learning_rate=0.5)).layers
        return layers["unit_p85"][:, -1] - layers["unit_p15"][:, -1]

    bn, plain = band("batchnorm"), band("none")
    assert bn.max() / bn.min() < 1.6
    assert plain.max() / plain.min() > 5


# slow (17-40 s on 2 cores): BatchNorm lanes against each config alone stay in the default run through
# test_norms_and_optimizers_share_one_program_and_match_each_config_alone and the regression seam
@pytest.mark.slow
def test_batchnorm_lane_under_vmap_equals_the_same_config_alone():
    arch = _arch(4, norm="batchnorm", init="gaussian", width=24)
    program = train.make_program(arch, dataset="digits", batch_size=32, steps=30, log_every=10, probe_every=10,
                            jacobian_samples=2)
    seeds, scales, rates = [0, 1, 2], [0.5, 2.0, 8.0], [0.01, 0.1, 0.05]
    lanes = jax.tree.map(lambda *v: jnp.stack(v), *[
        _lane(seed=s, sigma_w2=w, learning_rate=r, depth=4) for s, w, r in zip(seeds, scales, rates)
    ])
    swept = jax.device_get(jax.jit(jax.vmap(functools.partial(train.run, program), in_axes=(0, None)))(
        lanes, train.data_arrays(DIGITS)))
    for i in range(3):
        alone = _run(program, jax.tree.map(lambda a: a[i], lanes))
        np.testing.assert_allclose(swept.train_loss[i], alone.train_loss, rtol=1e-5)
        np.testing.assert_allclose(swept.test_accuracy[i], alone.test_accuracy, rtol=1e-6)
        np.testing.assert_allclose(swept.layers["signal_norm"][i], alone.layers["signal_norm"], rtol=1e-4)
        np.testing.assert_allclose(swept.tables["spectra"][i], alone.tables["spectra"], rtol=1e-4, atol=1e-6)


def test_batchnorm_with_given_statistics_does_not_depend_on_the_batch():
    """Evaluation mode: with running statistics, an example's logits are the same
    alone as inside a batch; with batch statistics they are not."""
    arch = _arch(3, norm="batchnorm", init="gaussian", width=32)
    graphdef, params = models.init_state(arch, jax.random.key(3), 1.0, 0.0)
    model = nnx.merge(graphdef, params)
    x = jnp.asarray(DIGITS.x_test[:16])
    stats = model(jnp.asarray(DIGITS.x_train[:256])).batch_stats
    ctx = models.Context(stats=stats)
    batched = model(x, ctx).logits
    single = jnp.concatenate([model(x[i : i + 1], ctx).logits for i in range(4)])
    np.testing.assert_allclose(batched[:4], single, rtol=1e-5, atol=1e-6)
    assert not np.allclose(model(x).logits[:4], model(x[:4]).logits, atol=1e-3)


def test_batchnorm_net_learns_and_is_evaluated_with_running_averages():
    """The test set is the training set shifted by +10 in every feature. A constant shift of the
    input shifts every unit of layer 1 by a constant, which the batch's own statistics remove
    exactly: evaluated with them, test accuracy would equal training accuracy. With the running
    averages (the training distribution's statistics) the shifted examples are far out and the
    net guesses. Blocks of 256 examples, no padding: 512 examples."""
    arch = _arch(3, norm="batchnorm", init="gaussian", width=32)
    program = train.make_program(arch, dataset="digits", batch_size=32, steps=50, log_every=50)
    x, y = jnp.asarray(DIGITS.x_train[:512]), jnp.asarray(DIGITS.y_train[:512])
    rec = jax.device_get(jax.jit(functools.partial(train.run, program))(_lane(learning_rate=0.1),
                                                                         train.Data(x, y, x + 10.0, y)))
    assert rec.train_accuracy[0] < 0.3 and rec.train_accuracy[-1] > 0.6  # it learns
    assert rec.test_accuracy[-1] < 0.3  # and is evaluated with statistics that do not follow the batch


def test_tiny_clip_norm_fires_every_step_and_bounds_each_update():
    arch = _arch(3, activation="tanh", init="gaussian", width=16)
    program = train.make_program(arch, dataset="digits", batch_size=32, steps=20, log_every=10)
    clipped = _run(program, _lane(clip_norm=1e-3))
    free = _run(program, _lane())
    loose = _run(program, _lane(clip_norm=1e6))
    assert clipped.clip_rate == pytest.approx(1.0)
    assert free.clip_rate == 0 and loose.clip_rate == 0
    np.testing.assert_array_equal(free.train_loss, loose.train_loss)  # a loose clip changes nothing
    assert free.max_grad_norm > 1e-3

    # one SGD step with a clip of c moves the parameters by exactly lr·c
    graphdef, params = models.init_state(arch, jax.random.key(0), 1.0, 0.0)
    opt = train.make_optimizer("sgd", 0.05, 0.9, clip_norm=1e-3)
    x, y = jnp.asarray(DIGITS.x_train[:32]), jnp.asarray(DIGITS.y_train[:32])
    grads = jax.grad(lambda p: probes.cross_entropy(nnx.merge(graphdef, p)(x).logits, y))(params)
    updates, _ = opt.update(grads, opt.init(params), params)
    moved = np.sqrt(sum(float(jnp.sum(u**2)) for u in jax.tree.leaves(updates)))
    assert moved == pytest.approx(0.05 * 1e-3, rel=1e-4)


def test_remedy_bundles_expand_and_deduplicate():
    text = """
[experiment]
name = "r"
[fixed]
steps = 10
[grid]
activation = ["sigmoid", "tanh"]
remedy = ["none", "batchnorm", "selu"]
"""
    configs = spec.parse(text).configs()
    # selu replaces the activation, so sigmoid×selu and tanh×selu are one config
    assert len(configs) == 5
    by = {(c["activation"], c["remedy"]): c for c in configs}
    assert by[("sigmoid", "batchnorm")]["norm"] == "batchnorm"
    assert by[("sigmoid", "none")]["init"] == "standard"
    assert by[("selu", "selu")]["init"] == "gaussian" and by[("selu", "selu")]["sigma_w2"] == 1.0
    assert set(remedies.known_remedies()) >= {"none", "glorot", "he", "orthogonal", "batchnorm", "layernorm",
                                              "residual", "selu"}


@pytest.mark.parametrize("fields, message", [
    ("residual = true\ndepth = 1", "residual needs depth >= 2"),
    ('norm = "groupnorm"', "norm: unknown value 'groupnorm'; allowed: none, batchnorm, layernorm"),
    ('residual = "yes"', "residual must be bool"),
    ("clip_norm = 0.0", "clip_norm must be > 0"),
    ('norm = "batchnorm"\nbatch_size = 1', "batchnorm needs batch_size and probe_batch >= 2"),
    ('remedy = "dropout"', "remedy: unknown value 'dropout'; allowed: none, glorot"),
])
def test_invalid_remedy_settings_are_one_line_errors(fields, message):
    with pytest.raises(spec.SpecError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        spec.parse(f'[experiment]\nname = "r"\n[fixed]\n{fields}\n')
    assert "\n" not in str(err.value)


def test_unrolled_and_scanned_layers_agree_with_norms_and_skips():
    x, y = jnp.asarray(DIGITS.x_train[:32]), jnp.asarray(DIGITS.y_train[:32])
    for options, residual in (({"norm": "batchnorm"}, False), ({"norm": "layernorm"}, True)):
        outs = []
        for layers in ("scan", "unroll"):
            arch = mlp.Architecture(DIGITS.n_in, DIGITS.n_classes, 16, 5, ("tanh", "relu"), "gaussian", layers,
                                       **options)
            graphdef, params = models.init_state(arch, jax.random.key(4), 1.5, 0.1)
            ctx = models.Context(residual=residual, residual_scale=0.5, activation_index=1)
            outs.append(probes.layer_probes(graphdef, params, x, y, ctx))
        for k in ("grad_norm", "signal_norm", "preact_rms", "unit_p50"):
            np.testing.assert_allclose(outs[0][k], outs[1][k], rtol=1e-5, atol=1e-6, err_msg=f"{options} {k}")


# --- norm and optimizer as lane data ---------------------------------------------------------------

ALL_NORMS = ("batchnorm", "layernorm", "none")


@pytest.mark.parametrize("norm", ALL_NORMS)
def test_a_lane_of_a_program_with_every_norm_computes_its_own_norm_exactly(norm):
    """Every norm computed, the lane's selected: its pre-activations and the gradient with respect
    to them are bit for bit those of a program of its norm alone (a "none" lane's h passes
    untouched; its γ and β get no gradient)."""
    x, y = jnp.asarray(DIGITS.x_train[:32]), jnp.asarray(DIGITS.y_train[:32])

    def forward_and_signal(norms, index):
        arch = _arch(3, activation="tanh", init="gaussian", width=16, norm=norms)
        graphdef, params = models.init_state(arch, jax.random.key(0), 1.5, 0.1)
        taps = jnp.zeros((3, 32, 16))

        def loss(t):
            fwd = nnx.merge(graphdef, params)(x, models.Context(norm_index=index), taps=t)
            return probes.cross_entropy(fwd.logits, y), fwd.preacts

        (_, preacts), signal = jax.value_and_grad(loss, has_aux=True)(taps)
        return jax.device_get(jax.jit(lambda: (preacts, signal))())

    alone = forward_and_signal((norm,), 0)
    mixed = forward_and_signal(ALL_NORMS, ALL_NORMS.index(norm))
    np.testing.assert_array_equal(mixed[0], alone[0])
    np.testing.assert_allclose(mixed[1], alone[1], rtol=1e-6, atol=1e-9)
    if norm != "none":  # and the norm does something
        assert not np.allclose(forward_and_signal(("none",), 0)[0], alone[0], atol=1e-3)


@pytest.mark.parametrize("name", spec.OPTIMIZERS)
def test_an_optimizer_picked_per_lane_updates_exactly_as_it_does_alone(name):
    """pick_per_lane runs every optimizer's update and selects one: three steps on fixed gradients
    give bit for bit the parameters of that optimizer alone."""
    params = {"w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4), "b": jnp.arange(3.0)}
    grads = [jax.tree.map(lambda p, k=k: jnp.sin(p * (k + 1)) + 0.1 * k, params) for k in range(3)]

    def three_steps(names, index):
        opt = train.make_optimizer(names, 0.05, 0.9, clip_norm=1.0, index=index)
        p, state = params, opt.init(params)
        for g in grads:
            updates, state = opt.update(g, state, p)
            p = optax.apply_updates(p, updates)
        return jax.device_get(p)

    alone = jax.jit(lambda: three_steps(name, 0))()
    mixed = jax.jit(lambda i: three_steps(spec.OPTIMIZERS, i))(spec.OPTIMIZERS.index(name))
    jax.tree.map(np.testing.assert_array_equal, mixed, alone)
    others = [jax.jit(lambda: three_steps(o, 0))() for o in spec.OPTIMIZERS if o != name]
    assert all(not np.allclose(o["w"], alone["w"]) for o in others)  # the choice matters


def test_norms_and_optimizers_share_one_program_and_match_each_config_alone(tmp_path):
    """A grid over norm x optimizer plans one program (12 lanes); each config's numbers equal its
    own single-norm, single-optimizer program's to float32 rounding (README: programs of
    different shape may round the last bit differently; training may grow it)."""
    from satbench import engine, store

    text = """
[experiment]
name = "lanes"
[fixed]
width = 16
depth = 3
steps = 10
log_every = 10
activation = "tanh"
{grid}
"""
    grid = '[grid]\nnorm = ["none", "batchnorm", "layernorm"]\noptimizer = ["sgd", "momentum", "adam", "rmsprop"]'
    engine.run_experiment(spec.parse(text.format(grid=grid)), None, tmp_path / "mixed", progress=False)
    (group,) = store.read_manifest(tmp_path / "mixed")["groups"]
    assert group["n_configs"] == 12
    mixed = store.load_results(tmp_path / "mixed")
    cols = ["final_loss", "grad_decay", "max_grad_norm"]
    for norm, optimizer in [("batchnorm", "momentum"), ("layernorm", "rmsprop")]:
        one = text.format(grid=f'norm = "{norm}"\noptimizer = "{optimizer}"')  # fixed, not a grid
        out = tmp_path / f"{norm}-{optimizer}"
        engine.run_experiment(spec.parse(one), None, out, progress=False)
        alone = store.load_results(out).runs.set_index("config_id")
        pd.testing.assert_frame_equal(mixed.runs.set_index("config_id").loc[alone.index, cols], alone[cols], rtol=1e-5)
        steps0 = mixed.layers[(mixed.layers["config_id"].isin(alone.index)) & (mixed.layers["step"] == 0)]
        want = store.load_results(out).layers.query("step == 0")
        np.testing.assert_allclose(steps0.sort_values("layer")["signal_norm"], want.sort_values("layer")["signal_norm"],
                                   rtol=1e-6)
