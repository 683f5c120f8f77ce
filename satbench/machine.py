"""What satbench reads off the machine it runs on: free memory per device, and versions.

Kept apart from the sweep so the engine holds no ``/proc`` parsing or subprocess calls.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from satbench import __version__


def host_available_bytes() -> int | None:
    """RAM the host can still give (Linux MemAvailable, else free pages), or None."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def device_memory_bytes(devices: list) -> int | None:
    """Memory of one of ``devices``: the allocator's limit on GPU/TPU; on CPU the host's
    available RAM, which all CPU devices share (so divided among them)."""
    try:
        stats = devices[0].memory_stats()
    except Exception:  # noqa: BLE001 - not every backend implements it
        stats = None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    if devices[0].platform == "cpu":
        available = host_available_bytes()
        return None if available is None else available // len(devices)
    return None


def budget_per_device(devices: list, budget: int | None, fraction: float) -> tuple[int | None, str]:
    """(bytes per device a chunk may take, where that number came from)."""
    if budget is not None:
        return int(budget), "--memory-budget"
    memory = device_memory_bytes(devices)
    if memory is None:
        return None, "unknown device memory: no budget"
    return int(fraction * memory), f"{fraction:g} of {devices[0].platform} memory ({memory} bytes)"


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. a SLURM allocation), not the
    machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def git_describe() -> str | None:
    """``git describe`` of the satbench checkout, if it is one."""
    try:
        proc = subprocess.run(["git", "-C", str(Path(__file__).parent), "describe", "--always", "--dirty"],
                              capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout.strip() or None


def versions() -> dict:
    """Versions of Python, the platform, satbench (and its git commit) and its main libraries."""
    out = {"python": sys.version.split()[0], "platform": platform.platform(), "satbench": __version__,
           "satbench_git": git_describe()}
    for pkg in ("jax", "jaxlib", "flax", "optax", "numpy", "pandas"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out
