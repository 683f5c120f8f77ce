"""Make fashion_mnist_small.npz: a stratified Fashion-MNIST subset small enough to ship.

800 images per class from the official training set and 200 per class from
the official test set (8000 + 2000, uint8), chosen with a fixed seed and
stored with their indices into the official files. The zip is written with
fixed timestamps, so rerunning this on the same input reproduces the file
byte for byte. Run from the repository root:

    apt-get install dataset-fashion-mnist
    PYTHONPATH=. python satbench/data/bundled/make_fashion_subset.py \
        --source /usr/share/datasets/fashion-mnist
"""

from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

import numpy as np

from satbench.data import formats
from satbench.data.shipped import FASHION_SMALL, array_digest, file_digest

SEED = 0
PER_CLASS = {"train": 800, "test": 200}
FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60_000),
         "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10_000)}


def stratified(y: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """``per_class`` indices of each class, drawn without replacement, in shuffled order."""
    picks = [rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in range(10)]
    return rng.permutation(np.concatenate(picks))


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An .npz (what np.load reads) with fixed zip timestamps: reproducible bytes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, array in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue(), compresslevel=9)


def subset(source: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(SEED)
    out = {}
    for split, (images, labels, n) in FILES.items():
        x = formats.read_idx(source / images, (n, 28, 28))
        y = formats.read_idx(source / labels, (n,))
        idx = stratified(y, PER_CLASS[split], rng)
        out[f"x_{split}"], out[f"y_{split}"], out[f"{split}_index"] = x[idx], y[idx], idx.astype(np.uint16)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--out", type=Path, default=FASHION_SMALL)
    args = parser.parse_args()
    arrays = subset(args.source)
    write_npz(args.out, arrays)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")
    print(f"file SHA-256:   {file_digest(args.out)}")
    shipped_arrays = {k: arrays[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    print(f"arrays SHA-256: {array_digest(shipped_arrays)}  (x_train, y_train, x_test, y_test)")


if __name__ == "__main__":
    main()
