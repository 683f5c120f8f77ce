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
``folder`` (the data folder's layout).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from satbench.data import folder, preprocess, shapes, shipped, teacher_student
from satbench.data.base import DataError, Dataset, DatasetInfo, Raw
from satbench.data.preprocess import PREPROCESS

__all__ = ["DATASETS", "PREPROCESS", "DataError", "Dataset", "DatasetInfo", "Raw", "availability",
           "check_options", "clear_cache", "describe", "digits", "known_datasets", "load", "require", "shapeset",
           "teacher"]

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
)}


def known_datasets() -> list[str]:
    return list(DATASETS)


def describe(name: str) -> DatasetInfo:
    """Sizes and provenance of ``name`` without reading it."""
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(known_datasets())}") from None


def check_options(name: str, preprocess_kind: str, train_subset: int) -> str | None:
    """The problem with these options for ``name`` (None if they are fine), before any reading."""
    info = describe(name)
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


def load(name: str, *, preprocess: str = "auto", train_subset: int = 0, data_dir=None, **options) -> Dataset:
    """The dataset ``name``, preprocessed, optionally cut to a stratified ``train_subset``.

    preprocess: auto (the dataset's default, see ``describe``), standardise,
      center ([−0.5, 0.5]), binarise ({0, 1}) or none.
    data_dir: the data folder for mnist, fashion_mnist and cifar10 (default $SATBENCH_DATA).
    options: the generator's arguments (e.g. ``seed``, ``n_train`` for shapeset and teacher).
    """
    info = describe(name)
    problem = check_options(name, preprocess, train_subset)
    if problem:
        raise DataError(problem)
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
    arrays = [x_train, y_train.astype(np.int32), x_test, raw.y_test.astype(np.int32)]
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
