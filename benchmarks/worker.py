"""Run one system on one workload in this process and write what it measured as JSON.

The harness starts one worker process per measurement, so each system's peak
RSS is its own and no JAX cache leaks from one system into the next. Peak RSS
is the kernel's high-water mark of this process's memory map (``VmHWM`` in
/proc/self/status), not ``ru_maxrss``: Linux carries ``ru_maxrss`` over an
exec, so a worker forked from the harness (jax and torch loaded) would report
the harness's size. Only the system's own framework is imported:
a PyTorch worker never imports jax or satbench.

    python -m benchmarks.worker SYSTEM WORKLOAD SCALE --data NPZ --result JSON [--threads T] [--work DIR]
"""

from __future__ import annotations

import argparse
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
        "wall_s": wall, "compile_s": summary.compile_s, "run_s": summary.run_s, "rss_base_kb": base_kb,
        "n_groups": summary.n_groups, "groups": manifest["groups"], "cache_dir": manifest["compilation_cache"],
        "memory_budget": manifest["memory_budget"],
        "losses": runs[keys].to_dict("records"),
    }


def run_peer(system: str, wl, arrays: dict, threads: int) -> dict:
    """A peer's sweep, timed after its framework is imported and the data loaded."""
    extra = {}
    if system == "jax-loop":
        from benchmarks import peers_jax as peer

        fn = peer.run_workload
    else:
        from benchmarks import peers_torch as peer

        extra = peer.setup(threads)
        fn = peer.run_loop if system == "torch-loop" else peer.run_vmap
    base_kb = rss_now_kb()
    t0 = time.perf_counter()
    out = fn(wl, arrays)
    return {"wall_s": time.perf_counter() - t0, "rss_base_kb": base_kb, **extra, **out}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("system", choices=SYSTEMS)
    parser.add_argument("workload", choices=workloads.WORKLOADS)
    parser.add_argument("scale", choices=workloads.SCALES)
    parser.add_argument("--data", type=Path, required=True, help="npz of the dataset arrays (harness-written)")
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (satbench's results)")
    args = parser.parse_args(argv)

    t_start = time.perf_counter()
    wl = workloads.get(args.workload, args.scale)
    if args.system == "satbench":
        result = run_satbench(wl, args.work)
    else:
        threads = args.threads or os.cpu_count()
        result = run_peer(args.system, wl, load_arrays(args.data), threads)
    result.update(system=args.system, workload=args.workload, scale=args.scale,
                  threads=args.threads or None, process_s=time.perf_counter() - t_start,
                  peak_rss_kb=rss_now_kb(), python=sys.version.split()[0])
    args.result.write_text(json.dumps(result, default=float))


if __name__ == "__main__":
    main()
