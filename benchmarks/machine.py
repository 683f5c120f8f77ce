"""What the numbers were measured on: the machine, its load, versions, the matmul peak,
and the dataset arrays every system reads."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def machine_info() -> dict:
    """nproc, affinity, CPU model, memory, load average: the context every timing needs."""
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    mem = None
    try:
        mem = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        pass
    return {"nproc": os.cpu_count(), "affinity": affinity, "cpu_model": cpu_model(), "memory_bytes": mem,
            "platform": platform.platform(), "load_average": load_average()}


def versions() -> dict:
    out = {"python": sys.version.split()[0]}
    for pkg in ("satbench", "jax", "jaxlib", "flax", "optax", "numpy", "torch"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    if out["satbench"] is None:  # a source checkout on PYTHONPATH, not installed
        import satbench

        out["satbench"] = satbench.__version__
    try:  # satbench.machine since the engine split; satbench.engine before it
        from satbench.machine import git_describe
    except ImportError:
        from satbench.engine import git_describe

    out["satbench_git"] = git_describe()
    return out


def matmul_peak(n: int = 2048, repeats: int = 7, precision: str | None = None) -> dict:
    """float32 GFLOP/s of a jitted ``jnp.dot`` of two n×n matrices (median of ``repeats``):
    the yardstick of every system's achieved GFLOP/s, measured in the same run. ``precision``
    ("highest": true float32 on a GPU, where the default may use TF32) goes to ``jnp.dot``."""
    import functools

    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    dot = jax.jit(functools.partial(jnp.dot, precision=precision))
    dot(a, b).block_until_ready()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        dot(a, b).block_until_ready()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"n": n, "repeats": repeats, "precision": precision, "median_s": med, "gflops": 2.0 * n**3 / med / 1e9,
            "best_gflops": 2.0 * n**3 / min(times) / 1e9}


def write_dataset(name: str, path: Path) -> dict:
    """satbench's arrays of ``name`` (preprocessed as satbench does) as an npz for the peers."""
    from satbench import data

    ds = data.load(name)
    arrays = {"x_train": np.asarray(ds.x_train, np.float32), "y_train": np.asarray(ds.y_train, np.int32),
              "x_test": np.asarray(ds.x_test, np.float32), "y_test": np.asarray(ds.y_test, np.int32),
              "n_classes": np.int32(data.describe(name).n_classes)}
    np.savez(path, **arrays)
    shape = data.describe(name).image_shape  # (H, W, C) of image rows (None: not images)
    return {"n_train": len(arrays["y_train"]), "n_test": len(arrays["y_test"]), "n_in": arrays["x_train"].shape[1],
            "n_classes": int(arrays["n_classes"]), "image_shape": list(shape) if shape else None}
