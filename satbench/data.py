"""Datasets as plain arrays, generated or bundled, never downloaded.

``load(name)`` returns a ``Dataset``; the arrays go to the device once and
minibatches are drawn inside the jitted run. Each dataset is deterministic:
every config of a sweep sees the same data.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import numpy as np


@dataclasses.dataclass(frozen=True)
class Dataset:
    x_train: np.ndarray  # (n_train, n_in) float32
    y_train: np.ndarray  # (n_train,) int32
    x_test: np.ndarray
    y_test: np.ndarray
    meta: dict

    @property
    def n_in(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def n_classes(self) -> int:
        return int(self.meta["n_classes"])


def _standardise(x_train, x_test):
    """Zero mean, unit variance per feature, with the training set's statistics."""
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return ((x_train - mean) / std).astype(np.float32), ((x_test - mean) / std).astype(np.float32)


def _split(x, y, test_fraction, seed):
    """Stratified train/test split with a fixed permutation per class."""
    rng = np.random.default_rng(seed)
    train_idx, test_idx = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test = int(round(test_fraction * len(idx)))
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    train_idx = rng.permutation(np.concatenate(train_idx))
    test_idx = rng.permutation(np.concatenate(test_idx))
    return x[train_idx], y[train_idx], x[test_idx], y[test_idx]


def digits() -> Dataset:
    """scikit-learn's bundled 8×8 digits (1797 images, 10 classes), standardised, 80/20 split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.data.astype(np.float64)
    y = bunch.target.astype(np.int32)
    x_tr, y_tr, x_te, y_te = _split(x, y, 0.2, seed=0)
    x_tr, x_te = _standardise(x_tr, x_te)
    meta = {"name": "digits", "n_classes": 10, "source": "sklearn.datasets.load_digits"}
    return Dataset(x_tr, y_tr, x_te, y_te, meta)


def teacher(n_train: int = 4096, n_test: int = 1024, n_in: int = 32, n_classes: int = 10,
            teacher_width: int = 64, seed: int = 0) -> Dataset:
    """Gaussian inputs labelled by the argmax of a random one-hidden-layer tanh teacher."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(size=(n_in, teacher_width)) / np.sqrt(n_in)
    w2 = rng.normal(size=(teacher_width, n_classes)) / np.sqrt(teacher_width)
    x = rng.normal(size=(n_train + n_test, n_in))
    y = np.argmax(np.tanh(x @ w1 * 2.0) @ w2, axis=1).astype(np.int32)
    x = x.astype(np.float32)
    meta = {"name": "teacher", "n_classes": n_classes, "source": f"random tanh teacher, seed {seed}"}
    return Dataset(x[:n_train], y[:n_train], x[n_train:], y[n_train:], meta)


DATASETS: dict[str, Callable[[], Dataset]] = {"digits": digits, "teacher": teacher}


def known_datasets() -> list[str]:
    return sorted(DATASETS)


@functools.lru_cache(maxsize=None)
def load(name: str) -> Dataset:
    """The dataset called ``name`` (cached per process)."""
    try:
        factory = DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(known_datasets())}") from None
    return factory()
