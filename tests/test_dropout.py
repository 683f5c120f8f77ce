"""Dropout: the masks' statistics, a zero rate that changes nothing, lanes that do not mix."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from satbench import mlp, models, train


def test_masks_drop_the_rate_and_keep_the_mean():
    ctx = models.Context(lane={"dropout": jnp.float32(0.3)}, dropout_key=jax.random.key(0))
    a = jnp.ones((400, 500))
    out = np.asarray(models.dropout(a, ctx, 3))
    assert abs((out == 0).mean() - 0.3) < 0.005  # 200k draws: σ ≈ 0.001
    assert abs(out.mean() - 1.0) < 0.01
    np.testing.assert_array_equal(np.unique(out), [0.0, np.float32(1 / 0.7)])
    other = np.asarray(models.dropout(a, ctx, 4))
    assert ((out == 0) != (other == 0)).mean() > 0.3  # each layer its own mask
    np.testing.assert_array_equal(np.asarray(models.dropout(a, ctx._replace(dropout_key=None), 3)), a)


def _data():
    rng = np.random.default_rng(0)
    return train.Data(jnp.asarray(rng.normal(size=(32, 6)), jnp.float32), jnp.asarray(rng.integers(0, 3, 32)),
                      jnp.asarray(rng.normal(size=(8, 6)), jnp.float32), jnp.asarray(rng.integers(0, 3, 8)))


def _run(program, lane):
    return jax.jit(train.run, static_argnums=0)(program, lane, _data())


def test_a_zero_rate_in_a_dropout_program_equals_no_dropout_and_lanes_do_not_mix():
    arch = mlp.Architecture(n_in=6, n_out=3, width=16, depth=4, activation="tanh", init="gaussian")
    program = train.make_program(arch, dataset="digits", steps=6, log_every=2, batch_size=8, probe_batch=16)
    lane = train.one_lane(arch, seed=0, sigma_w2=1.0, sigma_b2=0.0, learning_rate=0.3, depth=4)
    with_masks = dataclasses.replace(program, dropout=True)
    plain, zero = _run(program, lane), _run(with_masks, lane)
    for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(zero)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    dropped = {**lane, "dropout": jnp.float32(0.5)}
    alone = _run(with_masks, dropped)
    assert not np.allclose(np.asarray(alone.train_loss[1:]), np.asarray(plain.train_loss[1:]))
    # vmapped beside a lane without dropout, each lane computes what it computes alone
    lanes = jax.tree.map(lambda a, b: jnp.stack([a, b]), dropped, lane)
    both = jax.jit(jax.vmap(lambda ln: train.run(with_masks, ln, _data())))(lanes)
    for got, want in ((jax.tree.map(lambda v: v[0], both), alone), (jax.tree.map(lambda v: v[1], both), plain)):
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


DROPOUT_SWEEP = """
[experiment]
name = "dropout_theory"
[fixed]
activation = "tanh"
sigma_b2 = 0.05
width = 384
depth = 30
steps = 0
probe_batch = 128
pair_samples = 64
layers = "scan"
[grid]
sigma_w2 = [1.76, 3.0]
dropout = [0.1, 0.3]
seed = [0, 1]
"""


@pytest.mark.slow
def test_nets_with_dropout_follow_the_theory_with_masks(tmp_path):
    """tanh at σ_b² = 0.05 with dropout 0.1 and 0.3, probed as it trains (masks on), at init:
    the per-layer factor of ‖∂L/∂W_l‖² is χ₁ at σ_w²/ρ (measured within 1 %, asked 3 %), and the pairs'
    cosine settles at the c* < 1 of the c-map with masks (measured within 0.025, asked 0.05), even at
    σ_w² = 1.76, where the net without dropout is critical (c* = 1, ξ_c ≈ 5000) and with dropout ξ_c
    is finite: dropout has no critical point (Schoenholz et al. 2017). Seeds 0–1, width 384."""
    from satbench import engine, spec, store, theory

    engine.run_experiment(spec.parse(DROPOUT_SWEEP, "dropout.toml"), None, tmp_path, progress=False)
    results = store.load_results(tmp_path)
    layers = results.with_config("layers")
    settled = layers[layers["layer"] > 20].groupby("config_id")["pair_cosine"].mean().rename("c_measured")
    runs = results.runs.join(settled, on="config_id")
    keep = 1 - runs["dropout"].to_numpy()
    want = theory.dropout_summaries("tanh", runs["sigma_w2"], 0.05, keep)
    np.testing.assert_allclose(runs["chi1"], want["chi1"])
    per_cell = runs.assign(c_star=want["c_star"]).groupby(["sigma_w2", "dropout"]).agg(
        factor=("grad_decay", lambda v: np.exp(np.log(v).mean())), chi1=("chi1", "first"),
        c_measured=("c_measured", "mean"), c_star=("c_star", "first"), xi_c=("xi_c", "first"))
    assert ((per_cell["factor"] / per_cell["chi1"] - 1).abs() < 0.03).all(), per_cell
    assert ((per_cell["c_measured"] - per_cell["c_star"]).abs() < 0.05).all(), per_cell
    assert (per_cell["c_star"] < 0.5).all() and (per_cell["xi_c"] < 10).all(), per_cell
    assert theory.summary("tanh", 1.76, 0.05)["xi_c"] > 1000  # without dropout: critical
