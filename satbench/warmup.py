"""Linear learning-rate warmup, per lane (Goyal et al. 2017; Xiong et al. 2020 on Post-LN transformers).

The rule: step k (counted from 0) uses ``min(1, (k + 1) / W)`` of the lane's learning rate, so the
first step takes lr/W, step W − 1 the full lr, and every later step is untouched. W = 0 (and W = 1)
multiply by exactly 1, so such a lane's steps are the bits of a run without warmup.

The warmed rate is an optax schedule (a function of the optimizer's step count) given to the
optimizer in place of the number: every optax optimizer takes one, and keeps its state (momentum
trace, moment estimates) before the learning rate, so the update of step k is the plain optimizer's
times the factor. ``optax.warmup_constant_schedule`` cannot be used: it branches in Python on
``warmup_steps``, which here is a traced per-lane number.
"""

from __future__ import annotations

import jax.numpy as jnp


def factor(count, warmup_steps):
    """The share of the learning rate at step ``count`` (0-based) under a warmup of ``warmup_steps``."""
    steps = jnp.maximum(warmup_steps, 1).astype(jnp.float32)
    return jnp.minimum(1.0, (count + 1).astype(jnp.float32) / steps)


def schedule(learning_rate, warmup_steps):
    """The learning rate as a function of the step count (an ``optax.Schedule``); both may be traced."""
    return lambda count: learning_rate * factor(count, warmup_steps)
