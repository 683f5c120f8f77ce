"""When a run evaluates its loss and accuracy: the automatic log interval.

An evaluation is a forward pass over up to ``EVAL_SIZE`` training and ``EVAL_SIZE`` test
examples; a training step is a forward and backward pass (about 3x a forward) over one
minibatch. Evaluating every 10 steps of a 64-example batch on digits (1,797 examples) costs
as much as the training itself, so the default interval (``log_every = 0``, "auto") is the
shortest one whose evaluations cost at most ``EVAL_BUDGET`` of the training, whatever
``steps`` and the dataset are.
"""

from __future__ import annotations

import math

from satbench import data

#: examples of the train and test sets that each evaluation uses (at most)
EVAL_SIZE = 2048
#: evaluations may cost at most this fraction of the training FLOPs (automatic interval)
EVAL_BUDGET = 0.10
#: a step's FLOPs over a forward pass of the same examples (forward + backward ≈ 3 forwards)
STEP_OVER_FORWARD = 3.0
#: the interval of an automatic schedule without training steps: nothing is logged after step 0,
#: so any number would do; this one (the default of earlier versions) keeps those configs' ids
NO_STEPS_INTERVAL = 10


def eval_examples(dataset: str, train_subset: int, eval_size: int = EVAL_SIZE) -> int:
    """Examples one evaluation passes forward: its train slice plus its test slice."""
    info = data.describe(dataset)
    n_train = train_subset or info.n_train
    return min(eval_size, n_train) + min(eval_size, info.n_test)


def eval_cost_fraction(log_every: int, batch_size: int, examples: int) -> float:
    """Evaluation FLOPs over training FLOPs at one evaluation per ``log_every`` steps."""
    return examples / (STEP_OVER_FORWARD * batch_size * log_every)


def auto_log_every(steps: int, probe_every: int, batch_size: int, dataset: str, train_subset: int) -> int:
    """The smallest interval that divides ``steps`` (and ``probe_every``, where set) with
    evaluations within ``EVAL_BUDGET`` of the training; the largest such divisor (one
    evaluation at the end) when none is that cheap."""
    if steps == 0:
        return NO_STEPS_INTERVAL
    span = math.gcd(steps, probe_every) if probe_every else steps
    examples = eval_examples(dataset, train_subset)
    for d in range(1, span + 1):
        if span % d == 0 and eval_cost_fraction(d, batch_size, examples) <= EVAL_BUDGET:
            return d
    return span


def resolve_log_every(values: dict) -> dict:
    """``values`` with ``log_every = 0`` (auto) replaced by ``auto_log_every``."""
    if values["log_every"]:
        return values
    interval = auto_log_every(values["steps"], values["probe_every"], values["batch_size"], values["dataset"],
                              values["train_subset"])
    return {**values, "log_every": interval}
