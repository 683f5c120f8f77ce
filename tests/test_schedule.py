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
