"""Run one system on one workload in this process and write what it measured as JSON.

The harness starts one worker process per measurement, so each system's peak
RSS is its own and no JAX cache leaks from one system into the next. Peak RSS
is the kernel's high-water mark of this process's memory map (``VmHWM`` in
/proc/self/status), not ``ru_maxrss``: Linux carries ``ru_maxrss`` over an
exec, so a worker forked from the harness (jax and torch loaded) would report
the harness's size. Only the system's own framework is imported:
a PyTorch worker never imports jax or satbench.

    python -m benchmarks.worker SYSTEM WORKLOAD SCALE --data NPZ --result JSON [--threads T] [--work DIR]
                                [--device cuda] [--sample N] [--vmap-chunk N] [--matmul-precision high]
                                [--dataset NAME]

The options after ``--work`` are ``benchmarks/gpu.py``'s: the PyTorch peers on a CUDA device, a
sampled PyTorch loop, and the device's peak memory (``device_peak_bytes``; None on CPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import workloads

SYSTEMS = ("satbench", "jax-loop", "torch-loop", "torch-vmap")


def rss_now_kb() -> int:
    """Peak RSS of this process so far, KiB (VmHWM; ``ru_maxrss`` where /proc is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def load_arrays(path: Path) -> dict:
    with np.load(path) as npz:
        return {k: npz[k] for k in npz.files}


def jax_device_memory() -> dict:
    """Peak and limit of the first JAX device's allocator (None where the backend keeps no
    statistics, as on CPU)."""
    import jax

    dev = jax.local_devices()[0]
    try:
        stats = dev.memory_stats() or {}
    except Exception:  # noqa: BLE001 - not every backend implements it
        stats = {}
    return {"device_peak_bytes": stats.get("peak_bytes_in_use"), "device_bytes_limit": stats.get("bytes_limit"),
            "device": f"{dev.platform}:{dev.device_kind}",
            "jax_matmul_precision": jax.config.jax_default_matmul_precision}


def torch_device_memory(device: str) -> dict:
    """The CUDA caching allocator's peak (allocated and reserved) on ``device``; None on CPU."""
    import torch

    if not device.startswith("cuda"):
        return {"device_peak_bytes": None, "device": "cpu"}
    return {"device_peak_bytes": torch.cuda.max_memory_allocated(device),
            "device_reserved_peak_bytes": torch.cuda.max_memory_reserved(device),
            "device": f"cuda:{torch.cuda.get_device_name(device)}"}


def run_satbench(wl, work: Path) -> dict:
    """satbench end to end on the workload's TOML, into a fresh results folder under ``work``.

    ``SATBENCH_CACHE_DIR`` (set by the harness) picks the compilation cache: a fresh
    one for a cold run, the cold run's for a warm run.
    """
    from satbench import engine, spec

    toml = work / f"{wl.name}.toml"
    toml.write_text(workloads.experiment_toml(wl))
    exp = spec.load(str(toml))
    out = work / f"out-{os.getpid()}"
    base_kb = rss_now_kb()
    t0 = time.perf_counter()
    summary = engine.run_experiment(exp, None, out, progress=False)
    wall = time.perf_counter() - t0
    import pandas as pd

    runs = pd.read_parquet(out / "runs.parquet")
    manifest = json.loads((out / "manifest.json").read_text())
    keys = ["activation", "depth", "sigma_w2", "seed", "final_loss"]
    return {
        # compile_s: the compile time the sweep waited for; compile_total_s: the programs' own compile
        # seconds (they compile ahead, beside the runs, so the two overlap)
        "wall_s": wall, "compile_s": summary.compile_s, "compile_total_s": summary.compile_total_s,
        "run_s": summary.run_s, "rss_base_kb": base_kb,
        "n_groups": summary.n_groups, "groups": manifest["groups"], "cache_dir": manifest["compilation_cache"],
        "memory_budget": manifest["memory_budget"],
        "losses": runs[keys].to_dict("records"), **jax_device_memory(),
    }


def run_peer(system: str, wl, arrays: dict, threads: int, args=None) -> dict:
    """A peer's sweep, timed after its framework is imported and the data loaded.

    ``args`` (``benchmarks/gpu.py``'s options): ``--sample N`` runs N configs per shape of the loop
    (``workloads.sample_configs``) instead of all; then, and on a CUDA device, the PyTorch peers
    first run one short config per shape untimed (CUDA context, cuBLAS handles, first-call
    allocations), which an extrapolation would otherwise multiply."""
    extra, device, sample = {}, getattr(args, "device", "cpu"), getattr(args, "sample", 0)
    if system == "jax-loop":
        from benchmarks import peers_jax as peer

        fn = peer.run_workload
    else:
        import functools

        from benchmarks import peers_torch as peer

        extra = peer.setup(threads, getattr(args, "matmul_precision", None))
        if system == "torch-loop":
            configs = workloads.sample_configs(wl, sample) if sample else None
            fn = functools.partial(peer.run_loop, configs=configs, device=device)
        else:
            chunk = getattr(args, "vmap_chunk", None)
            fn = functools.partial(peer.run_vmap, chunk=peer.VMAP_CHUNK if chunk is None else chunk, device=device)
        if device != "cpu" or sample:
            short = dataclasses.replace(wl, steps=min(wl.steps, 3))
            peer.run_loop(short, arrays, configs=workloads.sample_configs(short, 1), device=device)
            extra["warmup"] = "one 3-step config per shape, untimed"
    base_kb = rss_now_kb()
    t0 = time.perf_counter()
    out = fn(wl, arrays)
    wall = time.perf_counter() - t0
    if system != "jax-loop":
        out.update(torch_device_memory(device))
    return {"wall_s": wall, "rss_base_kb": base_kb, **extra, **out}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("system", choices=SYSTEMS)
    parser.add_argument("workload", choices=workloads.WORKLOADS)
    parser.add_argument("scale", choices=workloads.SCALES)
    parser.add_argument("--data", type=Path, required=True, help="npz of the dataset arrays (harness-written)")
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (satbench's results)")
    parser.add_argument("--device", default="cpu", help="the PyTorch peers' device (cpu, cuda)")
    parser.add_argument("--sample", type=int, default=0, help="torch-loop: configs per shape (0: all)")
    parser.add_argument("--vmap-chunk", type=int, default=None,
                        help="torch-vmap: configs per call (0: a whole shape; default: peers_torch.VMAP_CHUNK)")
    parser.add_argument("--matmul-precision", default=None, help="torch.set_float32_matmul_precision (high: TF32)")
    parser.add_argument("--dataset", default=None, help="another dataset than the workload's (e.g. teacher)")
    args = parser.parse_args(argv)

    t_start = time.perf_counter()
    wl = workloads.get(args.workload, args.scale)
    if args.dataset:
        wl = dataclasses.replace(wl, dataset=args.dataset)
    if args.system == "satbench":
        result = run_satbench(wl, args.work)
    else:
        threads = args.threads or os.cpu_count()
        result = run_peer(args.system, wl, load_arrays(args.data), threads, args)
    result.update(system=args.system, workload=args.workload, scale=args.scale,
                  threads=args.threads or None, process_s=time.perf_counter() - t_start,
                  peak_rss_kb=rss_now_kb(), python=sys.version.split()[0])
    args.result.write_text(json.dumps(result, default=float))


if __name__ == "__main__":
    main()
