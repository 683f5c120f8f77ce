"""The automatic log interval: evaluations within 10 % of the training's FLOPs, as often as that allows."""

import pytest

from satbench import data, schedule, spec


def _evaluation_share(steps, log_every, batch, dataset, subset=0):
    """Evaluation FLOPs over training FLOPs, counted from scratch: per evaluation a forward
    (2 FLOPs per weight) over the train and test slices, per step forward + backward (6 FLOPs
    per weight) over the batch; the weights cancel."""
    info = data.describe(dataset)
    n_train = subset or info.n_train
    per_eval = 2 * (min(2048, n_train) + min(2048, info.n_test))
    return (steps // log_every) * per_eval / (steps * 6 * batch)


@pytest.mark.parametrize("steps,batch,dataset", [(2000, 64, "digits"), (500, 64, "digits"), (3000, 16, "digits"),
                                                 (2000, 128, "mnist"), (1200, 32, "fashion_mnist")])
def test_auto_interval_is_the_shortest_divisor_within_the_budget(steps, batch, dataset):
    every = schedule.auto_log_every(steps, 0, batch, dataset, 0)
    assert steps % every == 0
    assert _evaluation_share(steps, every, batch, dataset) <= 0.10 + 1e-12
    shorter = [d for d in range(1, every) if steps % d == 0]
    assert all(_evaluation_share(steps, d, batch, dataset) > 0.10 for d in shorter)


def test_auto_interval_divides_probe_every_and_falls_back_to_one_evaluation_per_segment():
    every = schedule.auto_log_every(2000, 250, 64, "digits", 0)
    assert 250 % every == 0 and 2000 % every == 0 and every == 125  # 50 would cost 19 %
    # 55 steps: no divisor is cheap enough, so the curve is step 0 and the last step
    assert schedule.auto_log_every(55, 0, 64, "digits", 0) == 55
    # a smaller training set is cheaper to evaluate
    assert schedule.auto_log_every(2000, 0, 64, "digits", 200) < schedule.auto_log_every(2000, 0, 64, "digits", 0)


def test_the_default_is_auto_and_an_explicit_interval_is_kept():
    exp = spec.parse("""
[experiment]
name = "sched"
[fixed]
steps = 2000
[grid]
log_every = [0, 10]
""")
    assert sorted(c["log_every"] for c in exp.configs()) == [10, 100]
    assert spec.FIELDS["log_every"].default == 0


def test_init_only_configs_keep_their_ids_under_the_automatic_default():
    """At steps = 0 the interval changes nothing; the automatic one is the earlier default,
    so results stored by earlier versions are found again."""
    text = """
[experiment]
name = "init_only"
[fixed]
steps = 0
{extra}
"""
    auto = spec.parse(text.format(extra="")).configs()[0]
    explicit = spec.parse(text.format(extra="log_every = 10")).configs()[0]
    assert auto.config_id == explicit.config_id


def _tiny_run(**settings):
    """One jitted run of a small tanh MLP on 8 random examples, with its program."""
    import jax
    import jax.numpy as jnp

    from satbench import mlp, train

    arch = mlp.Architecture(n_in=6, n_out=3, width=8, depth=3, activation="tanh", init="gaussian")
    program = train.make_program(arch, dataset="digits", batch_size=4, jacobian_samples=1, **settings)
    x = jax.random.normal(jax.random.key(0), (8, 6))
    data = train.Data(x, jnp.arange(8) % 3, x[:4], jnp.arange(4) % 3)
    lane = train.one_lane(arch, seed=3, sigma_w2=1.5, sigma_b2=0.1, learning_rate=0.2, depth=3)
    count = lambda jaxpr: sum(e.primitive.name == "svd" for e in jaxpr.eqns) + sum(  # noqa: E731
        count(getattr(p, "jaxpr", p)) for e in jaxpr.eqns for p in e.params.values()
        for p in (p if isinstance(p, tuple) else (p,)) if hasattr(p, "jaxpr") or hasattr(p, "eqns"))
    svds = count(jax.make_jaxpr(lambda ln: train.run(program, ln, data))(lane).jaxpr)
    return jax.jit(lambda ln: train.run(program, ln, data))(lane), svds


def test_probes_land_at_their_steps_and_the_probe_is_traced_once_whatever_the_schedule():
    """The run is one loop over log steps with the probe inside (a copy per schedule point would
    be compiled again). Probes at 0, 4, 6: the row at step 4 equals the last probe of a run that
    stops at step 4, the evaluations up to there are the same, and each program holds one SVD."""
    import numpy as np

    longer, svds_longer = _tiny_run(steps=6, log_every=2, probe_every=4)
    shorter, svds_shorter = _tiny_run(steps=4, log_every=2)
    assert longer.layers["grad_norm"].shape[0] == 3 and shorter.layers["grad_norm"].shape[0] == 2
    for name, column in shorter.layers.items():
        np.testing.assert_allclose(longer.layers[name][:2], column, rtol=1e-6, err_msg=name)
    np.testing.assert_allclose(longer.tables["spectra"][:2], shorter.tables["spectra"], rtol=1e-6)
    np.testing.assert_allclose(longer.train_loss[:3], shorter.train_loss, rtol=1e-6)
    assert not np.allclose(longer.layers["grad_norm"][2], longer.layers["grad_norm"][1])  # it trained on
    assert svds_longer == svds_shorter == 1
