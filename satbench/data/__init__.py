"""Datasets as plain arrays: generated, shipped with the package, or read from
the user's data folder. Never downloaded.

``load(name, preprocess=..., train_subset=..., data_dir=..., **options)``
returns a ``Dataset`` of float32 (n, features) inputs and int32 labels; the
arrays go to the device once and minibatches are drawn inside the jitted
run. Every dataset is deterministic, so every config of a sweep sees the
same data, and each (name, options) is read and preprocessed once per
process. Modules: ``base`` (containers, ``DataError``), ``preprocess``,
``teacher_student``, ``shapes`` (Shapeset-3×2), ``shipped`` (digits, the
bundled Fashion-MNIST subset), ``formats`` (IDX, npz, CIFAR batches),
``folder`` (the data folder's layout), ``sequences`` (adding problem, copy, sort, digits as sequences),
``line`` (scalar inputs on a grid).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from satbench.data import folder, line, preprocess, sequences, shapes, shipped, teacher_student
from satbench.data.base import DataError, Dataset, DatasetInfo, Raw, Sequence
from satbench.data.preprocess import PREPROCESS

__all__ = ["DATASETS", "PREPROCESS", "DataError", "Dataset", "DatasetInfo", "Raw", "Sequence", "availability",
           "check_options", "clear_cache", "describe", "digits", "known_datasets", "load", "require", "seq_len_of",
           "shapeset", "teacher"]

#: the adding problem's default length (Le et al. 2015 and Arjovsky et al. 2016 start their sweeps near it)
ADDING_DEFAULT_LEN = 50
#: the sort task's default length: short sequences, as transformers' toy tasks use
SORT_DEFAULT_LEN = 8
#: the copy task's default length: a delay of 40 steps between the symbols and their recall
COPY_DEFAULT_LEN = 60

#: in the order ``satbench list`` shows them: offline first, then the data-folder ones
DATASETS: dict[str, DatasetInfo] = {info.name: info for info in (
    DatasetInfo("digits", shipped.digits, 1438, 359, 64, 10, "standardise", (0.0, 16.0),
                "scikit-learn's 8×8 digits, stratified 80/20 split (ships with scikit-learn, BSD-3-Clause)",
                origin="bundled", image_shape=(8, 8, 1)),
    DatasetInfo("teacher", teacher_student.teacher, 4096, 1024, 32, 10, "none", None,
                "Gaussian inputs labelled by a random tanh teacher (generated)"),
    DatasetInfo("shapeset", shapes.shapeset, 10_000, 2_000, 1024, 9, "standardise", (0.0, 1.0),
                "Shapeset-3×2 of Glorot & Bengio 2010, 32×32 grey (generated)", image_shape=(32, 32, 1)),
    DatasetInfo("fashion_mnist_small", shipped.fashion_mnist_small, 8_000, 2_000, 784, 10, "center",
                (0.0, 255.0), "Fashion-MNIST subset, 800 + 200 per class (bundled; Zalando SE, MIT)",
                origin="bundled", image_shape=(28, 28, 1)),
    DatasetInfo("mnist", folder.mnist, 60_000, 10_000, 784, 10, "center", (0.0, 255.0),
                "MNIST (LeCun, Cortes & Burges), from the data folder", origin="folder", folder="mnist",
                image_shape=(28, 28, 1)),
    DatasetInfo("fashion_mnist", folder.fashion_mnist, 60_000, 10_000, 784, 10, "center", (0.0, 255.0),
                "Fashion-MNIST (Zalando SE, MIT), from the data folder", origin="folder", folder="fashion_mnist",
                image_shape=(28, 28, 1)),
    DatasetInfo("cifar10", folder.cifar10, 50_000, 10_000, 3072, 10, "center", (0.0, 255.0),
                "CIFAR-10 (Krizhevsky 2009), from the data folder", origin="folder", folder="cifar10",
                image_shape=(32, 32, 3), channels_first=True),
    DatasetInfo("adding", sequences.adding, 10_000, 1_000, 2 * ADDING_DEFAULT_LEN, 1, "none", None,
                "adding problem: T steps of (U[0,1] value, marker), target the sum of the two marked values "
                "(generated; Hochreiter & Schmidhuber 1997)", task="regress",
                sequence=Sequence(ADDING_DEFAULT_LEN, lambda t: 2)),
    DatasetInfo("copy", sequences.copy, 10_000, 1_000, COPY_DEFAULT_LEN * 10, 10, "none", None,
                "copy task: 10 symbols, a delay, a delimiter; write the symbols back in the last 10 steps, a label "
                "at every step (generated; Hochreiter & Schmidhuber 1997, Arjovsky et al. 2016)",
                task="classify_steps", sequence=Sequence(COPY_DEFAULT_LEN, lambda t: 10, minimum=22)),
    DatasetInfo("sort", sequences.sort, 10_000, 1_000, SORT_DEFAULT_LEN * sequences.SORT_SYMBOLS,
                sequences.SORT_SYMBOLS, "none", None,
                "sort task: T symbols uniform from 10, one-hot; the label at step t is the t-th smallest symbol "
                "(generated; the sorting task of transformer studies such as Dong et al. 2021)",
                task="classify_steps", sequence=Sequence(SORT_DEFAULT_LEN, lambda t: sequences.SORT_SYMBOLS)),
    DatasetInfo("seq_digits", sequences.seq_digits, 1438, 359, 64, 10, "standardise", (0.0, 16.0),
                "digits read as a sequence: 8 rows of 8 pixels (seq_len 8) or 64 single pixels (seq_len 64)",
                origin="bundled", sequence=Sequence(8, lambda t: 64 // t, lengths=(8, 64))),
    DatasetInfo("permuted_seq_digits", sequences.permuted_seq_digits, 1438, 359, 64, 10, "standardise", (0.0, 16.0),
                "digits as 64 single pixels in a fixed random order (permuted pixel MNIST at 8×8)",
                origin="bundled", sequence=Sequence(64, lambda t: 1, lengths=(64,))),
    DatasetInfo("seq_mnist", sequences.seq_mnist, 60_000, 10_000, 784, 10, "center", (0.0, 255.0),
                "MNIST read pixel by pixel, 784 steps (Le et al. 2015), from the data folder", origin="folder",
                folder="mnist", sequence=Sequence(784, lambda t: 1, lengths=(784,))),
    DatasetInfo("permuted_mnist", sequences.permuted_mnist, 60_000, 10_000, 784, 10, "center", (0.0, 255.0),
                "MNIST's pixels one per step in a fixed random order (Le et al. 2015), from the data folder",
                origin="folder", folder="mnist", sequence=Sequence(784, lambda t: 1, lengths=(784,))),
    DatasetInfo("line", line.line, 1024, 256, 1, 1, "none", (line.LOW, line.HIGH),
                "scalar x: a sorted grid of 256 points on [−2, 2] (the probe batch), then uniform points; "
                "target sin(πx) (generated; Balduzzi et al. 2017's 1-D setting)", task="regress"),
)}


def known_datasets() -> list[str]:
    return list(DATASETS)


def describe(name: str) -> DatasetInfo:
    """Sizes and provenance of ``name`` without reading it."""
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(known_datasets())}") from None


def check_options(name: str, preprocess_kind: str, train_subset: int, seq_len: int = 0) -> str | None:
    """The problem with these options for ``name`` (None if they are fine), before any reading."""
    info = describe(name)
    if info.sequence is None and seq_len:
        sequences_ = ", ".join(n for n in DATASETS if DATASETS[n].sequence is not None)
        return f"seq_len ({seq_len}) needs a sequence task; {name} is not one (sequence tasks: {sequences_})"
    if info.sequence is not None and info.sequence.problem(seq_len):
        return f"seq_len of {name} {info.sequence.problem(seq_len)}, got {seq_len}"
    if train_subset and info.task != "classify":
        return f"train_subset needs one class label per example; {name} has {info.task.replace('_', ' ')} targets"
    if preprocess_kind not in PREPROCESS:
        return f"unknown preprocess {preprocess_kind!r}; allowed: {', '.join(PREPROCESS)}"
    if preprocess_kind in ("center", "binarise") and info.value_range is None:
        return f"preprocess {preprocess_kind!r} needs bounded raw values, which {name} lacks; use standardise or none"
    if train_subset > info.n_train:
        return f"train_subset ({train_subset}) exceeds the {info.n_train} training examples of {name}"
    return None


def require(name: str, data_dir=None) -> None:
    """Raise a DataError naming the files to put where if ``name`` cannot be read now
    (file names only: contents are checked when read)."""
    info = describe(name)
    if info.folder is not None:
        folder.locate(name, info.folder, data_dir)


def availability(name: str, data_dir=None) -> tuple[bool, str]:
    """Whether ``name`` can be read now, and whence (or what it still needs)."""
    info = describe(name)
    if info.folder is None:
        return True, info.origin
    try:
        return True, f"found in {folder.locate(name, info.folder, data_dir)}"
    except DataError as err:
        return False, str(err)


def seq_len_of(name: str, seq_len: int = 0) -> int:
    """The length a config of dataset ``name`` runs at: ``seq_len``, or the task's default for 0
    (0 for a dataset that is not a sequence)."""
    info = describe(name)
    return 0 if info.sequence is None else (seq_len or info.sequence.default_len)


def load(name: str, *, preprocess: str = "auto", train_subset: int = 0, data_dir=None, seq_len: int = 0,
         **options) -> Dataset:
    """The dataset ``name``, preprocessed, optionally cut to a stratified ``train_subset``.

    preprocess: auto (the dataset's default, see ``describe``), standardise,
      center ([−0.5, 0.5]), binarise ({0, 1}) or none.
    data_dir: the data folder for mnist, fashion_mnist and cifar10 (default $SATBENCH_DATA).
    seq_len: a sequence task's length (0: its default).
    options: the generator's arguments (e.g. ``seed``, ``n_train`` for shapeset and teacher).
    """
    info = describe(name)
    problem = check_options(name, preprocess, train_subset, seq_len)
    if problem:
        raise DataError(problem)
    if info.sequence is not None:
        options = {**options, "seq_len": seq_len_of(name, seq_len)}
    where = str(folder.locate(name, info.folder, data_dir)) if info.folder else None
    return _load(name, preprocess, train_subset, where, tuple(sorted(options.items())))


@functools.lru_cache(maxsize=None)
def _read(name: str, where: str | None, options: tuple) -> Raw:
    info = DATASETS[name]
    return info.read(Path(where), **dict(options)) if where else info.read(**dict(options))


@functools.lru_cache(maxsize=None)
def _load(name: str, preprocess_kind: str, train_subset: int, where: str | None, options: tuple) -> Dataset:
    info = DATASETS[name]
    raw = _read(name, where, options)
    x_train, y_train = raw.x_train, raw.y_train
    if train_subset:
        keep = preprocess.stratified_subset(y_train, train_subset)
        x_train, y_train = x_train[keep], y_train[keep]
    kind = info.preprocess if preprocess_kind == "auto" else preprocess_kind
    x_train, x_test = preprocess.apply(kind, x_train, raw.x_test, info.value_range, name)
    meta = {**raw.meta, "name": name, "preprocess": kind, "train_subset": train_subset}
    labels = np.float32 if info.task == "regress" else np.int32
    arrays = [x_train, y_train.astype(labels), x_test, raw.y_test.astype(labels)]
    for a in arrays:
        a.flags.writeable = False  # shared by every caller of the cache
    return Dataset(*arrays, meta)


def clear_cache() -> None:
    """Forget every dataset read in this process (frees memory; the next ``load`` reads again)."""
    _load.cache_clear()
    _read.cache_clear()


def digits() -> Dataset:
    """scikit-learn's 8×8 digits, standardised (see ``load``)."""
    return load("digits")


def teacher(**options) -> Dataset:
    """Teacher–student Gaussian data (options of ``teacher_student.teacher``)."""
    return load("teacher", **options)


def shapeset(**options) -> Dataset:
    """Shapeset-3×2, standardised (options of ``shapes.shapeset``)."""
    return load("shapeset", **options)
