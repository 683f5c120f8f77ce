"""Full datasets from a folder the user provides (``--data-dir`` or $SATBENCH_DATA).

satbench never downloads. Put the files you have in one folder, one
subfolder per dataset, with the names they are distributed under::

    DATA/mnist/          train-images-idx3-ubyte[.gz]  train-labels-idx1-ubyte[.gz]
                         t10k-images-idx3-ubyte[.gz]   t10k-labels-idx1-ubyte[.gz]
                         (or instead: mnist.npz with x_train, y_train, x_test, y_test)
    DATA/fashion_mnist/  the same four IDX names (or fashion_mnist.npz)
    DATA/cifar10/        cifar-10-python.tar.gz, or the extracted cifar-10-batches-py/

Files are validated by structure (IDX magic numbers and dimensions, 60000 /
10000 or 50000 / 10000 examples, complete bytes, 10 classes present), not
by published checksums, which could not be verified offline.
"""

from __future__ import annotations

import os
from pathlib import Path

from satbench.data import formats
from satbench.data.base import DataError, Raw

ENV = "SATBENCH_DATA"
IDX_FILES = {  # array -> (file name without .gz, shape per example)
    "x_train": ("train-images-idx3-ubyte", (28, 28)),
    "y_train": ("train-labels-idx1-ubyte", ()),
    "x_test": ("t10k-images-idx3-ubyte", (28, 28)),
    "y_test": ("t10k-labels-idx1-ubyte", ()),
}
LAYOUT = {
    "idx": ", ".join(f"{name}[.gz]" for name, _ in IDX_FILES.values()),
    "cifar10": f"{formats.CIFAR_TAR} or the extracted {formats.CIFAR_DIR}/ "
               f"({', '.join(formats.CIFAR_TRAIN)}, {formats.CIFAR_TEST})",
}
#: subfolder -> the files it must hold, as one phrase for error messages
FILES = {
    "mnist": f"{LAYOUT['idx']} (or mnist.npz)",
    "fashion_mnist": f"{LAYOUT['idx']} (or fashion_mnist.npz)",
    "cifar10": LAYOUT["cifar10"],
}
MNIST_CLASSES = tuple(str(d) for d in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                   "Bag", "Ankle boot")
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def resolve_dir(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The data folder: the one given, else $SATBENCH_DATA, else None."""
    if data_dir is None:
        data_dir = os.environ.get(ENV) or None
    return None if data_dir is None else Path(data_dir).expanduser()


def locate(name: str, subfolder: str, data_dir=None) -> Path:
    """``DATA/subfolder`` if it holds the dataset's files (by name; contents are checked
    when read), else a DataError saying which files to put where."""
    what = FILES[subfolder]
    root = resolve_dir(data_dir)
    if root is None:
        raise DataError(f"dataset {name!r} needs a data folder: pass --data-dir DIR or set {ENV}=DIR, "
                        f"with DIR/{subfolder}/ holding {what}")
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist (from --data-dir or {ENV}); "
                        f"create it with {subfolder}/ holding {what}")
    folder = root / subfolder
    if not folder.is_dir():
        raise DataError(f"dataset {name!r}: no folder {folder}; put {what} there")
    if subfolder == "cifar10":
        _cifar_source(folder)
    else:
        _mnist_sources(folder, f"{subfolder}.npz")
    return folder


def _idx_path(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _mnist_sources(folder: Path, npz: str) -> dict[str, Path] | Path:
    """The four IDX files of ``folder`` (preferred), else its ``npz``."""
    paths = {key: _idx_path(folder, name) for key, (name, _) in IDX_FILES.items()}
    if all(paths.values()):
        return paths
    if (folder / npz).is_file():
        return folder / npz
    absent = [f"{name}[.gz]" for key, (name, _) in IDX_FILES.items() if paths[key] is None]
    if len(absent) < len(IDX_FILES):
        raise DataError(f"{folder}: missing {', '.join(absent)}; put it there (or {npz} instead of all four)")
    raise DataError(f"{folder}: holds none of {LAYOUT['idx']} nor {npz}; put them there")


def read_mnist_like(folder: Path, npz: str, n_train: int = 60_000, n_test: int = 10_000) -> tuple:
    """(x_train, y_train, x_test, y_test) uint8 from the four IDX files in ``folder``, else from ``npz``."""
    counts = {"x_train": n_train, "y_train": n_train, "x_test": n_test, "y_test": n_test}
    shapes = {k: (counts[k], *IDX_FILES[k][1]) for k in IDX_FILES}
    source = _mnist_sources(folder, npz)
    if isinstance(source, dict):
        return tuple(formats.read_idx(source[k], shapes[k]) for k in IDX_FILES)
    arrays = formats.read_npz(source, shapes)
    return tuple(arrays[k] for k in IDX_FILES)


def _raw(arrays: tuple, folder: Path, classes: tuple[str, ...], source: str) -> Raw:
    x_train, y_train, x_test, y_test = arrays
    y_train = formats.check_labels(y_train, len(classes), f"{folder} (training labels)")
    y_test = formats.check_labels(y_test, len(classes), f"{folder} (test labels)")
    meta = {"n_classes": len(classes), "classes": list(classes), "source": f"{source} from {folder}"}
    return Raw(x_train, y_train, x_test, y_test, meta)


def mnist(folder: Path, **counts) -> Raw:
    """MNIST (LeCun, Cortes & Burges): 28×28 digits, 60000 + 10000."""
    return _raw(read_mnist_like(folder, "mnist.npz", **counts), folder, MNIST_CLASSES, "MNIST")


def fashion_mnist(folder: Path, **counts) -> Raw:
    """Fashion-MNIST (Xiao, Rasul & Vollgraf 2017; MIT): 28×28 clothing, 60000 + 10000."""
    arrays = read_mnist_like(folder, "fashion_mnist.npz", **counts)
    return _raw(arrays, folder, FASHION_CLASSES, "Fashion-MNIST")


def _cifar_source(folder: Path) -> Path:
    for source in (folder / formats.CIFAR_DIR, folder / formats.CIFAR_TAR):
        if source.exists():
            return source
    raise DataError(f"{folder}: holds neither {formats.CIFAR_TAR} nor {formats.CIFAR_DIR}/; "
                    f"put {LAYOUT['cifar10']} there")


def cifar10(folder: Path, n_per_batch: int = 10_000) -> Raw:
    """CIFAR-10 (Krizhevsky 2009): 32×32 colour, 50000 + 10000, features in channel-major order."""
    source = _cifar_source(folder)
    return _raw(formats.read_cifar10(source, n_per_batch), folder, CIFAR_CLASSES, "CIFAR-10")
