"""Sequence tasks for recurrent nets, generated or derived offline and deterministic.

Every reader takes ``seq_len`` (T) and returns rows of T·F numbers, time-major (step 1's F
features first); ``satbench.train.data_arrays`` reshapes them to (T, F).

``adding``  the adding problem (Hochreiter & Schmidhuber 1997, in the U[0, 1] form of Le et al.
            2015 and Arjovsky et al. 2016): each step is (value, marker), values uniform in [0, 1],
            exactly two markers, one in each half of the sequence; the target is the sum of the two
            marked values. Predicting the constant 1 has mean squared error Var(U₁ + U₂) = 1/6.
``seq_digits``  scikit-learn's 8×8 digits read row by row (T = 8 steps of 8 pixels) or pixel by
            pixel (T = 64 steps of 1), the classic "sequential MNIST" at a CPU's scale.
``permuted_seq_digits``  the same pixels, one per step, in one fixed random order (the
            "permuted MNIST" of Le et al. 2015): neighbouring pixels end up far apart in time.
``copy``    the copy task (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016): 10 symbols from 8,
            a delay of blanks, a delimiter, then 10 blanks during which the net must write the 10
            symbols back; a target at every step (blank until the last 10). T = seq_len steps in all
            (delay T − 20); a net without memory scores cross-entropy 10·ln 8 / T, per step on average.
``sort``    sorting (the short symbol tasks transformers are trained on, e.g. by Dong et al. 2021):
            T symbols drawn uniformly from 10, one-hot; the label of step t is the t-th smallest
            symbol, so the labels are the input sorted. Every label depends on the whole input: a
            net that reads left to right cannot know step 1's label before the last step.
``seq_mnist``, ``permuted_mnist``  MNIST from the data folder, 784 pixels one per step (in reading
            order, or in one fixed random order): Le et al.'s pixel-by-pixel tasks at full scale.
"""

from __future__ import annotations

import numpy as np

from satbench.data import folder, shipped
from satbench.data.base import Raw

#: the seed of the fixed pixel order of permuted_seq_digits (changing it changes every result)
PERMUTATION_SEED = 1234
#: the sort task's alphabet (symbols 0..9, which are also its classes)
SORT_SYMBOLS = 10
#: the copy task: symbols to remember, the alphabet they come from, and the blank and delimiter codes
COPY_SYMBOLS, COPY_ALPHABET, COPY_BLANK, COPY_DELIMITER = 10, 8, 8, 9
COPY_CLASSES = 10


def adding(seq_len: int, n_train: int = 10_000, n_test: int = 1_000, seed: int = 0) -> Raw:
    """The adding problem of length ``seq_len``: (n, T·2) rows of (value, marker) pairs and float
    targets. Train and test come from independent streams of one seed."""
    x_train, y_train = _adding_examples(np.random.default_rng([seed, 0]), n_train, seq_len)
    x_test, y_test = _adding_examples(np.random.default_rng([seed, 1]), n_test, seq_len)
    meta = {"n_classes": 1, "seq_len": seq_len, "features": 2,
            "source": f"adding problem, T = {seq_len}, seed {seed}"}
    return Raw(x_train, y_train, x_test, y_test, meta)


def _adding_examples(rng, n: int, seq_len: int):
    values = rng.uniform(0.0, 1.0, size=(n, seq_len))
    half = seq_len // 2
    first = rng.integers(0, half, size=n)  # one marker in each half
    second = rng.integers(half, seq_len, size=n)
    markers = np.zeros((n, seq_len))
    rows = np.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    target = values[rows, first] + values[rows, second]
    x = np.stack([values, markers], axis=-1).reshape(n, 2 * seq_len)
    return x.astype(np.float32), target.astype(np.float32)


def copy(seq_len: int, n_train: int = 10_000, n_test: int = 1_000, seed: int = 0) -> Raw:
    """The copy task in ``seq_len`` steps: one-hot inputs (n, T·10), time-major, and a label for every
    step (n, T)."""
    x_train, y_train = _copy_examples(np.random.default_rng([seed, 0]), n_train, seq_len)
    x_test, y_test = _copy_examples(np.random.default_rng([seed, 1]), n_test, seq_len)
    meta = {"n_classes": COPY_CLASSES, "seq_len": seq_len, "features": COPY_CLASSES,
            "memoryless_loss": copy_baseline(seq_len), "source": f"copy task, T = {seq_len}, seed {seed}"}
    return Raw(x_train, y_train, x_test, y_test, meta)


def copy_baseline(seq_len: int) -> float:
    """Mean per-step cross-entropy of the best net without memory: blanks right, then a uniform
    guess among the 8 symbols for each of the last 10 steps."""
    return COPY_SYMBOLS * float(np.log(COPY_ALPHABET)) / seq_len


def _copy_examples(rng, n: int, seq_len: int):
    symbols = rng.integers(0, COPY_ALPHABET, size=(n, COPY_SYMBOLS))
    codes = np.full((n, seq_len), COPY_BLANK)
    codes[:, :COPY_SYMBOLS] = symbols
    codes[:, seq_len - COPY_SYMBOLS - 1] = COPY_DELIMITER
    labels = np.full((n, seq_len), COPY_BLANK)
    labels[:, seq_len - COPY_SYMBOLS :] = symbols
    x = np.eye(COPY_CLASSES, dtype=np.float32)[codes].reshape(n, seq_len * COPY_CLASSES)
    return x, labels.astype(np.int32)


def sort(seq_len: int, n_train: int = 10_000, n_test: int = 1_000, seed: int = 0) -> Raw:
    """The sort task in ``seq_len`` steps: one-hot symbols (n, T·10), time-major, and at every step
    the label the sorted sequence has there (n, T). Train and test from independent streams."""
    x_train, y_train = _sort_examples(np.random.default_rng([seed, 0]), n_train, seq_len)
    x_test, y_test = _sort_examples(np.random.default_rng([seed, 1]), n_test, seq_len)
    meta = {"n_classes": SORT_SYMBOLS, "seq_len": seq_len, "features": SORT_SYMBOLS,
            "source": f"sort task, T = {seq_len}, {SORT_SYMBOLS} symbols, seed {seed}"}
    return Raw(x_train, y_train, x_test, y_test, meta)


def _sort_examples(rng, n: int, seq_len: int):
    symbols = rng.integers(0, SORT_SYMBOLS, size=(n, seq_len))
    x = np.eye(SORT_SYMBOLS, dtype=np.float32)[symbols].reshape(n, seq_len * SORT_SYMBOLS)
    return x, np.sort(symbols, axis=1).astype(np.int32)


def seq_digits(seq_len: int = 8) -> Raw:
    """The digits' pixels in reading order: rows of 8 (T = 8) or single pixels (T = 64) are the
    same numbers, so the rows are the digits' own (only the reshape differs)."""
    raw = shipped.digits()
    return raw._replace(meta={**raw.meta, "seq_len": seq_len, "features": 64 // seq_len})


def permuted_seq_digits(seq_len: int = 64) -> Raw:
    """The digits' 64 pixels one per step, in a fixed random order."""
    raw = shipped.digits()
    return _permuted(raw._replace(meta={**raw.meta, "seq_len": seq_len, "features": 1}), 64)


def _permuted(raw: Raw, n_pixels: int) -> Raw:
    """``raw`` with its pixel columns in the fixed random order of ``PERMUTATION_SEED``."""
    order = np.random.default_rng(PERMUTATION_SEED).permutation(n_pixels)
    meta = {**raw.meta, "permutation_seed": PERMUTATION_SEED}
    return Raw(raw.x_train[:, order], raw.y_train, raw.x_test[:, order], raw.y_test, meta)


def seq_mnist(where, seq_len: int = 784, **counts) -> Raw:
    """MNIST's 784 pixels in reading order, one per step (read from the data folder)."""
    raw = folder.mnist(where, **counts)
    flat = raw._replace(x_train=raw.x_train.reshape(len(raw.x_train), -1), x_test=raw.x_test.reshape(len(raw.x_test), -1))
    return flat._replace(meta={**raw.meta, "seq_len": seq_len, "features": 1})


def permuted_mnist(where, seq_len: int = 784, **counts) -> Raw:
    """MNIST's 784 pixels one per step in a fixed random order (read from the data folder)."""
    return _permuted(seq_mnist(where, seq_len, **counts), 784)
