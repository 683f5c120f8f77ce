"""Learning-rate warmup: the update of every optimizer scaled step by step as the rule says, zero
warmup changing nothing, and lanes with different warmups sharing one program without mixing."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from satbench import mlp, plan, spec, train

PARAMS = {"w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4), "b": jnp.arange(3.0)}
GRADS = [jax.tree.map(lambda p, k=k: jnp.cos(p * (k + 2)) + 0.2 * k, PARAMS) for k in range(6)]


def _updates(name, warmup_steps, learning_rate=0.05):
    """The update of each step on the fixed gradients ``GRADS``, from ``PARAMS``."""
    opt = train.make_optimizer(name, learning_rate, 0.9, warmup_steps=warmup_steps)
    p, state, out = PARAMS, opt.init(PARAMS), []
    for g in GRADS:
        updates, state = opt.update(g, state, p)
        out.append(jax.device_get(updates))
        p = optax.apply_updates(p, updates)
    return out


def test_sgd_step_k_moves_by_k_plus_one_over_w_of_the_learning_rate():
    """SGD against a hand computation: step k's update is -lr · min(1, (k+1)/W) · g_k."""
    lr, w = 0.05, 4
    got = _updates("sgd", jnp.int32(w), lr)
    for k, (update, g) in enumerate(zip(got, GRADS)):
        scale = min(1.0, (k + 1) / w)
        for name in ("w", "b"):
            np.testing.assert_allclose(update[name], -lr * scale * np.asarray(g[name], np.float64), rtol=1e-6)
    assert not np.allclose(got[0]["w"], _updates("sgd", None, lr)[0]["w"])  # the first step is smaller


@pytest.mark.parametrize("name", spec.OPTIMIZERS)
def test_every_optimizer_warms_up_as_if_its_learning_rate_were_scaled(name):
    """The optimizers' state (momentum trace, moments) sees the raw gradients, so with warmup W each
    update is the plain optimizer's update times min(1, (k+1)/W), fed the same gradients."""
    w = 4
    warm, plain = _updates(name, jnp.int32(w)), _updates(name, None)
    for k, (a, b) in enumerate(zip(warm, plain)):
        scale = min(1.0, (k + 1) / w)
        jax.tree.map(lambda x, y, s=scale: np.testing.assert_allclose(x, s * y, rtol=2e-6, atol=1e-9), a, b)


def _data():
    rng = np.random.default_rng(1)
    return train.Data(jnp.asarray(rng.normal(size=(32, 6)), jnp.float32), jnp.asarray(rng.integers(0, 3, 32)),
                      jnp.asarray(rng.normal(size=(8, 6)), jnp.float32), jnp.asarray(rng.integers(0, 3, 8)))


def _setup(optimizer="sgd"):
    arch = mlp.Architecture(n_in=6, n_out=3, width=16, depth=3, activation="tanh", init="gaussian")
    program = train.make_program(arch, dataset="digits", optimizer=optimizer, steps=4, log_every=1,
                                 batch_size=8, probe_batch=16)
    lane = train.one_lane(arch, optimizer=optimizer, seed=0, sigma_w2=1.0, sigma_b2=0.0, learning_rate=0.4, depth=3)
    return program, lane


def _run(program, lane):
    return jax.jit(train.run, static_argnums=0)(program, lane, _data())


def test_zero_warmup_in_a_warmup_program_is_bit_identical_to_no_warmup_and_lanes_do_not_mix():
    """A lane with warmup_steps = 0 computes exactly what a program without warmup does; vmapped
    beside a lane with warmup 3, each lane equals itself alone, and the warmup changes the curve."""
    program, lane = _setup()
    warm_program = dataclasses.replace(program, warmup=True)
    plain, zero = _run(program, lane), _run(warm_program, lane)
    for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(zero)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    warmed = {**lane, "warmup_steps": jnp.int32(3)}
    alone = _run(warm_program, warmed)
    assert not np.allclose(np.asarray(alone.train_loss[1:]), np.asarray(plain.train_loss[1:]))
    lanes = jax.tree.map(lambda a, b: jnp.stack([a, b]), warmed, lane)
    both = jax.jit(jax.vmap(lambda ln: train.run(warm_program, ln, _data())))(lanes)
    for i, want in enumerate((alone, plain)):
        for a, b in zip(jax.tree.leaves(jax.tree.map(lambda v, i=i: v[i], both)), jax.tree.leaves(want)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_a_warmed_run_takes_its_first_step_at_lr_over_w():
    """Through train.run: after one step, warmup W at lr is the plain run at lr/W (its loss curve's
    second point); after that the two differ, since step 2 of the warmed run uses 2·lr/W."""
    program, lane = _setup()
    w = 4
    warm = _run(dataclasses.replace(program, warmup=True), {**lane, "warmup_steps": jnp.int32(w)})
    slow = _run(program, {**lane, "learning_rate": lane["learning_rate"] / w})
    np.testing.assert_allclose(np.asarray(warm.train_loss[:2]), np.asarray(slow.train_loss[:2]), rtol=1e-5)
    assert not np.allclose(np.asarray(warm.train_loss[2:]), np.asarray(slow.train_loss[2:]), rtol=1e-4)


def test_warmup_steps_is_a_lane_number_left_out_of_old_ids_and_must_not_be_negative():
    base = '[experiment]\nname = "w"\n[fixed]\nwidth = 4\ndepth = 2\nsteps = 2\n'
    (plain,) = spec.parse(base).configs()
    (zero,) = spec.parse(base + "warmup_steps = 0\n").configs()
    (some,) = spec.parse(base + "warmup_steps = 5\n").configs()
    assert plain.config_id == zero.config_id != some.config_id
    assert "warmup_steps" in spec.lane_fields()
    with pytest.raises(spec.SpecError, match="warmup_steps must be >= 0"):
        spec.parse(base + "warmup_steps = -1\n")


def test_a_sweep_over_warmup_plans_one_program_and_a_sweep_without_it_has_no_schedule():
    text = '[experiment]\nname = "w"\n[fixed]\nwidth = 4\ndepth = 2\nsteps = 2\n[grid]\nseed = [0, 1]\n'
    (swept,) = plan.make_plan(spec.parse(text + "warmup_steps = [0, 3, 10]\n").configs())
    (plain,) = plan.make_plan(spec.parse(text).configs())
    assert len(swept.configs) == 6 and swept.program.warmup
    assert not plain.program.warmup
