"""Real images that come with the installation: scikit-learn's digits, and a
Fashion-MNIST subset bundled in ``bundled/`` (MIT; see its LICENSE and
PROVENANCE.md). Both load offline; the bundled file is checked against its
SHA-256 before use, so a damaged or swapped file fails loudly instead of
silently changing results."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from satbench.data import preprocess
from satbench.data.folder import FASHION_CLASSES
from satbench.data.base import DataError, Raw

BUNDLED = Path(__file__).resolve().parent / "bundled"
FASHION_SMALL = BUNDLED / "fashion_mnist_small.npz"
#: SHA-256 of the file, and of its arrays as ``array_digest`` hashes them (see PROVENANCE.md)
FASHION_SMALL_SHA256 = "942b7bf5fd743f9df94da07bbfc71f908778d9b8629779f1c23debe88de17322"
FASHION_SMALL_ARRAYS_SHA256 = "80deb4dd5a6e934bc2b656533036ced6ae55bb3c9562b387f647ed28fde3b6cd"


def array_digest(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over each array's name, dtype, shape and bytes, in name order:
    a checksum of the content that does not depend on how the file was compressed."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape}\n".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def digits() -> Raw:
    """scikit-learn's bundled 8×8 digits (1797 images, values 0–16, 10 classes), stratified 80/20 split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.data.astype(np.float64)
    y = bunch.target.astype(np.int32)
    x_tr, y_tr, x_te, y_te = preprocess.split(x, y, 0.2, seed=0)
    return Raw(x_tr, y_tr, x_te, y_te, {"n_classes": 10, "source": "sklearn.datasets.load_digits"})


def fashion_mnist_small(path: Path = FASHION_SMALL, sha256: str = FASHION_SMALL_SHA256) -> Raw:
    """The bundled Fashion-MNIST subset: 8000 training images (800 per class) from the
    official training set, 2000 test images (200 per class) from the official test set."""
    if not Path(path).is_file():
        raise DataError(f"{path}: bundled file missing; reinstall satbench")
    found = file_digest(path)
    if found != sha256:
        raise DataError(f"{path}: SHA-256 {found[:16]}… does not match {sha256[:16]}…; reinstall satbench")
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    meta = {"n_classes": 10, "classes": list(FASHION_CLASSES),
            "source": "Fashion-MNIST subset (Zalando SE, MIT), bundled"}
    return Raw(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], meta)
