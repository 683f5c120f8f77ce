"""Readers for the formats the standard image datasets are distributed in:
IDX (MNIST, Fashion-MNIST; raw or gzipped), keras-style ``.npz``, and the
CIFAR-10 python batches (a folder of pickles or the original tarball).

Each reader checks structure as it goes (magic numbers, dimensions, counts,
complete bytes) and reports any problem as one ``DataError`` line naming
the file. Nothing here checks content against published checksums: none
could be verified offline, so none is claimed.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from satbench.data.base import DataError

IDX_UBYTE = 0x08
_READ_ERRORS = (EOFError, OSError, zlib.error, ValueError, zipfile.BadZipFile, tarfile.TarError,
                pickle.UnpicklingError, struct.error, KeyError, TypeError, AttributeError, IndexError)


def read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped if its name ends in .gz."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if path.suffix == ".gz" else raw
    except _READ_ERRORS as err:
        raise DataError(f"{path}: unreadable or truncated ({err}); replace it with a fresh copy") from None


def read_idx(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """An IDX file of unsigned bytes whose dimensions must equal ``shape``."""
    raw = read_bytes(path)
    ndim = len(shape)
    header = 4 + 4 * ndim
    if len(raw) < header or raw[:2] != b"\0\0" or raw[2] != IDX_UBYTE or raw[3] != ndim:
        magic = raw[:4].hex() if len(raw) >= 4 else "none"
        raise DataError(f"{path}: not an IDX file of {ndim}-d unsigned bytes (magic {magic}, "
                        f"expected 000008{ndim:02x})")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    if dims != tuple(shape):
        raise DataError(f"{path}: holds an array of shape {dims}, expected {tuple(shape)}")
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise DataError(f"{path}: {len(raw)} bytes after decompression, expected {expected}; "
                        "the file is truncated or damaged")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def write_idx(path: Path, array: np.ndarray) -> None:
    """``array`` (uint8) as an IDX file, gzipped if ``path`` ends in .gz (for tests and tools)."""
    array = np.ascontiguousarray(array, np.uint8)
    raw = bytes([0, 0, IDX_UBYTE, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    Path(path).write_bytes(gzip.compress(raw, compresslevel=1) if str(path).endswith(".gz") else raw)


def read_npz(path: Path, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """Arrays of a keras-style .npz (e.g. mnist.npz: x_train, y_train, x_test, y_test), checked
    against ``shapes`` and loaded without pickle."""
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = sorted(set(shapes) - set(f.files))
            if missing:
                raise DataError(f"{path}: has no array {missing[0]!r}; expected {', '.join(shapes)}")
            arrays = {k: f[k] for k in shapes}
    except _READ_ERRORS as err:
        raise DataError(f"{path}: unreadable or truncated ({err}); replace it with a fresh copy") from None
    for key, shape in shapes.items():
        if arrays[key].shape != tuple(shape) or arrays[key].dtype.kind not in "ui":
            raise DataError(f"{path}: {key} is {arrays[key].dtype} {arrays[key].shape}, "
                            f"expected integers of shape {tuple(shape)}")
    return arrays


class _ArraysOnly(pickle.Unpickler):
    """Unpickles dicts, lists, bytes and numpy arrays, nothing else: a data file cannot run code."""

    ALLOWED = {("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.numeric", "_frombuffer"),
               ("numpy._core.numeric", "_frombuffer")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST = "test_batch"
CIFAR_DIR = "cifar-10-batches-py"
CIFAR_TAR = "cifar-10-python.tar.gz"
CIFAR_FEATURES = 3 * 32 * 32  # rows are 1024 red, 1024 green, 1024 blue values


def read_cifar_batch(raw: bytes, where: str, n: int = 10_000) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch (a pickled dict with b'data' (n, 3072) uint8 and b'labels')."""
    try:
        batch = _ArraysOnly(io.BytesIO(raw), encoding="bytes").load()
        x = np.asarray(batch[b"data"])
        y = np.asarray(batch[b"labels"])
    except _READ_ERRORS as err:
        raise DataError(f"{where}: not a complete CIFAR-10 python batch ({err}); "
                        "replace it with a fresh copy") from None
    if x.shape != (n, CIFAR_FEATURES) or x.dtype != np.uint8 or y.shape != (n,):
        raise DataError(f"{where}: data {x.dtype} {x.shape} and {y.shape[0] if y.ndim else 0} labels, "
                        f"expected uint8 ({n}, {CIFAR_FEATURES}) and {n} labels")
    return x, y


def read_cifar10(source: Path, n_per_batch: int = 10_000):
    """(x_train, y_train, x_test, y_test) from ``cifar-10-batches-py/`` or ``cifar-10-python.tar.gz``."""
    source = Path(source)
    names = [*CIFAR_TRAIN, CIFAR_TEST]
    if source.is_dir():
        raws = {}
        for name in names:
            path = source / name
            if not path.is_file():
                raise DataError(f"{path}: missing; {source} must hold {', '.join(names)}")
            raws[name] = read_bytes(path)
        where = {name: str(source / name) for name in names}
    else:
        try:
            with tarfile.open(source, "r:gz") as tar:
                raws = {}
                for name in names:
                    member = tar.extractfile(f"{CIFAR_DIR}/{name}")
                    if member is None:
                        raise KeyError(name)
                    raws[name] = member.read()
        except KeyError as err:
            raise DataError(f"{source}: has no {CIFAR_DIR}/{err.args[0]}; is it cifar-10-python.tar.gz?") from None
        except _READ_ERRORS as err:
            raise DataError(f"{source}: unreadable or truncated ({err}); replace it with a fresh copy") from None
        where = {name: f"{source}:{CIFAR_DIR}/{name}" for name in names}
    parts = [read_cifar_batch(raws[name], where[name], n_per_batch) for name in names]
    x_train = np.concatenate([x for x, _ in parts[:-1]])
    y_train = np.concatenate([y for _, y in parts[:-1]])
    return x_train, y_train, parts[-1][0], parts[-1][1]


def check_labels(y: np.ndarray, n_classes: int, where: str) -> np.ndarray:
    """Labels as int32, each class in [0, n_classes) present."""
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise DataError(f"{where}: labels span [{y.min()}, {y.max()}], expected [0, {n_classes - 1}]")
    missing = sorted(set(range(n_classes)) - set(np.unique(y).tolist()))
    if missing:
        raise DataError(f"{where}: no example of class {missing[0]}; expected all {n_classes} classes")
    return y.astype(np.int32)
