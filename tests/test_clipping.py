"""Adaptive gradient clipping against a numpy loop over units, and its per-lane ratio in a sweep."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from satbench import clipping, engine, mlp, models, spec, store, train


def _numpy_agc(grad, weight, ratio, axes):
    """Each unit (the slice over ``axes`` at one index of the others) rescaled to at most
    ratio · max(‖w‖, 1e-3), written out unit by unit."""
    grad, weight = np.asarray(grad, np.float64), np.asarray(weight, np.float64)
    keep = [a for a in range(grad.ndim) if a not in axes]
    out = grad.copy()
    for index in np.ndindex(*[grad.shape[a] for a in keep]):
        where = [slice(None)] * grad.ndim
        for a, i in zip(keep, index):
            where[a] = i
        g, w = grad[tuple(where)], weight[tuple(where)]
        limit = ratio * max(np.linalg.norm(w), 1e-3)
        if np.linalg.norm(g) >= limit:
            out[tuple(where)] = g * limit / np.linalg.norm(g)
    return out


def test_each_unit_is_clipped_as_a_numpy_loop_does_and_the_readout_is_not():
    arch = mlp.Architecture(n_in=5, n_out=3, width=6, depth=4, activation="tanh", init="gaussian")
    _, params = models.init_state(arch, jax.random.key(0), 1.0, 0.3)
    grads = jax.tree.map(lambda p: 3.0 * jax.random.normal(jax.random.key(7), p.shape), params)
    ratio = 0.05
    agc = clipping.adaptive_clip(ratio, models.LayerStack.stacked_params)
    clipped, _ = agc.update(grads, agc.init(params), params)
    g, p, c = (nnx.to_pure_dict(t) for t in (grads, params, clipped))
    units = {"w_in": (0,), "b_in": (0,), "w_hidden": (1,), "b_hidden": (1,)}  # a layer's column; its vector
    for name, axes in units.items():
        want = _numpy_agc(g[name], p[name], ratio, axes)
        np.testing.assert_allclose(np.asarray(c[name]), want, rtol=1e-5, atol=1e-7)
        assert not np.allclose(want, g[name])  # the gradients were large: something was clipped
    for name in ("w_out", "b_out"):
        np.testing.assert_array_equal(np.asarray(c[name]), np.asarray(g[name]))


def test_an_infinite_ratio_changes_nothing():
    arch = mlp.Architecture(n_in=5, n_out=3, width=6, depth=3, activation="tanh", init="gaussian")
    _, params = models.init_state(arch, jax.random.key(0), 1.0, 0.3)
    grads = jax.tree.map(lambda v: 1e3 * jnp.ones_like(v), params)
    agc = clipping.adaptive_clip(jnp.inf, models.LayerStack.stacked_params)
    clipped, _ = agc.update(grads, agc.init(params), params)
    for a, b in zip(jax.tree.leaves(clipped), jax.tree.leaves(grads)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


SWEEP = """
[experiment]
name = "agc"
[fixed]
activation = "relu"
init = "he"
width = 8
depth = 4
steps = 20
log_every = 10
learning_rate = 0.5
[grid]
agc = [0.01, 0.1]
seed = [0, 1]
"""


def test_agc_ratios_share_a_program_and_equal_each_config_alone(tmp_path):
    """Two ratios × two seeds run as one program, and each config equals itself run alone (vmapped
    lanes with different ratios do not mix). The smaller ratio moves the weights less."""
    exp = spec.parse(SWEEP, "agc.toml")
    summary = engine.run_experiment(exp, None, tmp_path / "sweep", progress=False)
    assert summary.n_groups == 1
    engine.run_experiment(exp, None, tmp_path / "alone", progress=False, max_chunk=1)
    got, want = (store.load_results(tmp_path / d).runs.set_index("config_id").sort_index() for d in ("sweep", "alone"))
    np.testing.assert_allclose(got["final_loss"], want["final_loss"], rtol=1e-5)
    layers = store.load_results(tmp_path / "sweep").with_config("layers")
    moved = layers.groupby(["agc", "layer", "step"])["preact_rms"].mean().unstack("step")
    change = (moved.iloc[:, -1] / moved.iloc[:, 0] - 1).abs().groupby("agc").mean()
    assert change[0.01] < change[0.1], change


def _small_run_parts(data_seed: int):
    """A 3-layer tanh MLP, a 6-step program, random data drawn from ``data_seed`` and a jitted
    ``train.run``: what the tests comparing one lane under two programs share."""
    arch = mlp.Architecture(n_in=6, n_out=3, width=8, depth=3, activation="tanh", init="gaussian")
    program = train.make_program(arch, dataset="digits", steps=6, log_every=2, batch_size=4, probe_batch=8)
    rng = np.random.default_rng(data_seed)
    data = train.Data(jnp.asarray(rng.normal(size=(16, 6)), jnp.float32), jnp.asarray(rng.integers(0, 3, 16)),
                      jnp.asarray(rng.normal(size=(8, 6)), jnp.float32), jnp.asarray(rng.integers(0, 3, 8)))
    return arch, program, data, jax.jit(train.run, static_argnums=0)


def test_a_lane_without_agc_in_an_agc_program_is_unchanged():
    """A lane whose ratio is None (inf in the lane) computes exactly what a program without AGC
    does: ``Program.adaptive_clip`` changes the program, never a plain lane's numbers."""
    import dataclasses

    arch, program, data, run = _small_run_parts(data_seed=0)
    lane = train.one_lane(arch, seed=0, sigma_w2=1.0, sigma_b2=0.0, learning_rate=0.5, depth=3)
    plain = run(program, lane, data)
    beside = run(dataclasses.replace(program, adaptive_clip=True), lane, data)
    clipped = run(dataclasses.replace(program, adaptive_clip=True), {**lane, "agc": jnp.float32(0.01)}, data)
    for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(beside)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.allclose(np.asarray(plain.train_loss[1:]), np.asarray(clipped.train_loss[1:]))


def test_agc_must_be_positive():
    with pytest.raises(spec.SpecError, match="agc"):
        spec.parse(SWEEP.replace("agc = [0.01, 0.1]", "agc = [0.0]"))


def test_a_program_without_clipping_gives_an_unclipped_lane_the_same_numbers_and_the_planner_drops_it():
    """At an infinite threshold the global-norm clip changes no update, so the planner leaves it out
    of programs where no lane clips (a pass over the gradients, 4-7 % of a width-256 step): the
    numbers must be the same bit for bit, and a lane with a threshold must keep its clip."""
    import dataclasses

    from satbench import plan

    arch, program, data, run = _small_run_parts(data_seed=1)
    lane = train.one_lane(arch, seed=0, sigma_w2=2.0, sigma_b2=0.0, learning_rate=0.5, depth=3)
    with_clip = run(program, lane, data)
    without = run(dataclasses.replace(program, clipping=False), lane, data)
    for a, b in zip(jax.tree.leaves(with_clip), jax.tree.leaves(without)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    clipped = run(program, {**lane, "clip_norm": jnp.float32(1e-3)}, data)
    assert not np.allclose(np.asarray(with_clip.train_loss[1:]), np.asarray(clipped.train_loss[1:]))

    base = "[experiment]\nname = 'c'\n[fixed]\ndataset = 'digits'\nwidth = 8\ndepth = 2\nsteps = 2\n"
    plain = plan.make_plan(spec.parse(base).configs())
    mixed = plan.make_plan(spec.parse(base).configs() + spec.parse(base + "clip_norm = 1.0\n").configs())
    assert [g.program.clipping for g in plain] == [False] and [g.program.clipping for g in mixed] == [True]
