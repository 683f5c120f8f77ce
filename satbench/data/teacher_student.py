"""Teacher–student data: Gaussian inputs labelled by a random network, so the task
is learnable by construction and its size is a free choice."""

from __future__ import annotations

import numpy as np

from satbench.data.base import Raw


def teacher(n_train: int = 4096, n_test: int = 1024, n_in: int = 32, n_classes: int = 10,
            teacher_width: int = 64, seed: int = 0) -> Raw:
    """Gaussian inputs labelled by the argmax of a random one-hidden-layer tanh teacher."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(size=(n_in, teacher_width)) / np.sqrt(n_in)
    w2 = rng.normal(size=(teacher_width, n_classes)) / np.sqrt(teacher_width)
    x = rng.normal(size=(n_train + n_test, n_in))
    y = np.argmax(np.tanh(x @ w1 * 2.0) @ w2, axis=1).astype(np.int32)
    x = x.astype(np.float32)
    meta = {"n_classes": n_classes, "source": f"random tanh teacher, seed {seed}"}
    return Raw(x[:n_train], y[:n_train], x[n_train:], y[n_train:], meta)
