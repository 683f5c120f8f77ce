"""The loss of a task and what counts as a correct prediction, by the dataset's ``task``.

``classify``: softmax cross-entropy on integer labels; correct when the largest logit is the label.
``regress``: squared error of the network's one output; correct when it is within
``REGRESSION_TOLERANCE`` of the target (the adding problem's criterion, Hochreiter & Schmidhuber
1997), so "accuracy" is the fraction of sequences solved.
``classify_steps``: a label at every time step (outputs (batch, T, classes)); an example's loss is its
mean cross-entropy over the steps, its "correct" the fraction of steps whose largest logit is the label.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax.numpy as jnp
import optax

#: |output − target| below this counts as correct for a regression task
REGRESSION_TOLERANCE = 0.04
TASKS = ("classify", "regress", "classify_steps")


class Loss(NamedTuple):
    per_example: Callable  # (outputs (batch, [T,] n_out), targets (batch, [T])) -> (batch,)
    correct: Callable  # same arguments -> (batch,): 1 or 0 (a fraction of the steps for classify_steps)

    def mean(self, outputs, targets):
        return self.per_example(outputs, targets).mean()


def _squared_error(outputs, targets):
    return (outputs[..., 0] - targets) ** 2


def _within_tolerance(outputs, targets):
    return jnp.abs(outputs[..., 0] - targets) < REGRESSION_TOLERANCE


def _argmax_is_label(outputs, labels):
    return jnp.argmax(outputs, -1) == labels


def _mean_over_steps(fn):
    return lambda outputs, labels: fn(outputs, labels).mean(axis=-1)


LOSSES = {
    "classify": Loss(optax.softmax_cross_entropy_with_integer_labels, _argmax_is_label),
    "regress": Loss(_squared_error, _within_tolerance),
    "classify_steps": Loss(_mean_over_steps(optax.softmax_cross_entropy_with_integer_labels),
                           _mean_over_steps(_argmax_is_label)),
}


def for_task(task: str) -> Loss:
    try:
        return LOSSES[task]
    except KeyError:
        raise ValueError(f"unknown task {task!r}; allowed: {', '.join(TASKS)}") from None
