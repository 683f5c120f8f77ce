"""Scalar inputs on a line, the setting of Balduzzi et al. (2017, Fig. 1): the first training
examples are an evenly spaced, sorted grid, so the probe batch (the first ``probe_batch``
training examples) sees how a network's input gradient g(x) = df/dx varies along x."""

from __future__ import annotations

import numpy as np

from satbench.data.base import Raw

LOW, HIGH = -2.0, 2.0
#: grid points at the head of the training set (the probe batch's default size)
GRID_POINTS = 256


def grid(points: int = GRID_POINTS) -> np.ndarray:
    """The sorted, evenly spaced grid on [LOW, HIGH] (float32) that the training set starts with."""
    return np.linspace(LOW, HIGH, points, dtype=np.float32)


def target(x: np.ndarray) -> np.ndarray:
    """A smooth target to regress, sin(πx): two periods on the line, so training has to bend f."""
    return np.sin(np.pi * x).astype(np.float32)


def line(n_train: int = 1024, n_test: int = 256, seed: int = 0) -> Raw:
    """The grid, then ``n_train`` − GRID_POINTS uniform points, as (n, 1) inputs; targets sin(πx);
    test points uniform from an independent stream."""
    rng = np.random.default_rng([seed, 0])
    x_train = np.concatenate([grid(), rng.uniform(LOW, HIGH, n_train - GRID_POINTS).astype(np.float32)])
    x_test = np.random.default_rng([seed, 1]).uniform(LOW, HIGH, n_test).astype(np.float32)
    meta = {"n_classes": 1, "source": f"evenly spaced grid + uniform points on [{LOW:g}, {HIGH:g}], seed {seed}"}
    return Raw(x_train[:, None], target(x_train), x_test[:, None], target(x_test), meta)
