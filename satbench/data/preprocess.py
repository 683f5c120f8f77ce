"""Preprocessing and subsetting: raw arrays in, float32 features out.

Statistics come from the training split only, so the test split is
transformed exactly as a new example would be. Work is done in blocks so a
60000 × 3072 uint8 array never needs a float64 copy of itself.
"""

from __future__ import annotations

import numpy as np

from satbench.data.base import DataError

#: preprocess values an experiment may name; "auto" is each dataset's documented default
PREPROCESS = ("auto", "standardise", "center", "binarise", "none")
_BLOCK = 4096


def _blocked(x: np.ndarray, fn) -> np.ndarray:
    """``fn`` applied to row blocks of ``x``, gathered as float32."""
    out = np.empty(x.shape, np.float32)
    for i in range(0, len(x), _BLOCK):
        out[i : i + _BLOCK] = fn(x[i : i + _BLOCK])
    return out


def standardise(x_train: np.ndarray, x_test: np.ndarray):
    """Zero mean, unit variance per feature, with the training set's statistics
    (a constant feature is only centred)."""
    mean = np.empty(x_train.shape[1])
    std = np.empty(x_train.shape[1])
    for j in range(0, x_train.shape[1], 256):  # column blocks bound the float64 temporaries
        cols = x_train[:, j : j + 256]
        mean[j : j + 256] = cols.mean(axis=0)
        std[j : j + 256] = cols.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return tuple(_blocked(x, lambda b: (b - mean) / std) for x in (x_train, x_test))


def center(x_train: np.ndarray, x_test: np.ndarray, value_range: tuple[float, float]):
    """The raw range mapped onto [−0.5, 0.5] (MNIST pixels: x/255 − 0.5, as Schoenholz et al. 2017)."""
    lo, hi = value_range
    scale = np.float32(1.0 / (hi - lo))
    return tuple(_blocked(x, lambda b: (b.astype(np.float32) - np.float32(lo)) * scale - 0.5)
                 for x in (x_train, x_test))


def binarise(x_train: np.ndarray, x_test: np.ndarray, value_range: tuple[float, float]):
    """1 above the middle of the raw range, else 0."""
    mid = (value_range[0] + value_range[1]) / 2
    return tuple(_blocked(x, lambda b: b > mid) for x in (x_train, x_test))


def apply(kind: str, x_train: np.ndarray, x_test: np.ndarray, value_range, name: str):
    """Flattened (n, features) float32 train and test arrays after ``kind``."""
    x_train = x_train.reshape(len(x_train), -1)
    x_test = x_test.reshape(len(x_test), -1)
    if kind == "standardise":
        return standardise(x_train, x_test)
    if kind == "none":
        return tuple(_blocked(x, lambda b: b) for x in (x_train, x_test))
    if value_range is None:
        raise DataError(f"{name}: preprocess {kind!r} needs bounded raw values; use standardise or none")
    if kind == "center":
        return center(x_train, x_test, value_range)
    if kind == "binarise":
        return binarise(x_train, x_test, value_range)
    raise DataError(f"unknown preprocess {kind!r}; allowed: {', '.join(PREPROCESS)}")


def stratified_subset(y: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Indices of ``n`` examples with the class proportions of ``y``, in their original order.

    Each class is shuffled once (fixed seed), and examples are taken in order
    of their rank within their class relative to the class size, so every
    prefix is as close to proportional as whole examples allow.
    """
    if not 0 < n <= len(y):
        raise DataError(f"train_subset must be in [1, {len(y)}], got {n}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    key = np.empty(len(y))
    for c in np.unique(y):
        members = order[y[order] == c]  # this class, shuffled
        key[members] = (np.arange(len(members)) + 0.5) / len(members)
    chosen = order[np.argsort(key[order], kind="stable")[:n]]
    return np.sort(chosen)


def split(x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int):
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
