"""Fresh-process timing shared by the recurrent and transformer benchmarks.

Each system is timed as one fresh ``python -m <module> --system S --workload W`` process, so imports,
data loading and compiles count as a user pays them. Within each repeat the systems run in turn (A B A B,
not A A B B) so drifts in machine load fall on all of them alike. ``satbench`` starts from an empty
compilation cache, and ``satbench-warm``, which runs after it in the same repeat, reuses that cache.
The worker side reads its results folder from $SATBENCH_BENCH_OUT and writes the phases it timed itself
(a JSON dict, possibly empty) to the file named by $SATBENCH_BENCH_PHASES.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

OUT_ENV = "SATBENCH_BENCH_OUT"
PHASES_ENV = "SATBENCH_BENCH_PHASES"
WARM = "-warm"  # a system named "<system>-warm" runs <system> on the cache its cold run left


def out_dir() -> Path:
    """Worker side: the fresh results folder the driver gave this process."""
    return Path(os.environ[OUT_ENV])


def write_phases(phases: dict) -> None:
    """Worker side: hand the driver the seconds this process timed inside itself (compile, run, ...).
    A worker started by hand, with no driver to read them, writes nothing."""
    if PHASES_ENV in os.environ:
        Path(os.environ[PHASES_ENV]).write_text(json.dumps(phases))


def time_system(module: str, system: str, workload: str, env: dict, phases: Path, extra=()) -> dict:
    """Wall seconds of one fresh ``python -m module --system system --workload workload *extra``
    process, with the phases it wrote. The phases file is removed first, so a worker that exits
    without writing one fails here instead of passing off the previous run's phases as its own."""
    phases.unlink(missing_ok=True)
    command = [sys.executable, "-m", module, "--system", system, "--workload", workload, *extra]
    start = time.perf_counter()
    subprocess.run(command, check=True, env={**env, PHASES_ENV: str(phases)})
    return {"wall_s": time.perf_counter() - start, **json.loads(phases.read_text())}


def rounds(module: str, systems, workload: str, repeats: int, tmp: Path, extra=()) -> dict[str, list[dict]]:
    """Every system once per repeat, in the given order (a ``-warm`` system after its cold one); per
    system, the runs in repeat order, each with the 1/5/15-minute load average at its end. Results
    folders and caches go under ``tmp``; each repeat gets a new, empty compilation cache."""
    # imported by the driver only: a worker's own imports count in its wall seconds
    from benchmarks.machine import load_average

    runs = {s: [] for s in systems}
    for repeat in range(repeats):
        for system in systems:
            env = {**os.environ, OUT_ENV: str(tmp / system), "SATBENCH_CACHE_DIR": str(tmp / "cache" / str(repeat))}
            run = time_system(module, system.removesuffix(WARM), workload, env, tmp / "phases", extra)
            runs[system].append({**run, "load_average": load_average()})
    return runs


def summarise(runs: dict) -> dict:
    """Medians over repeats of each system's wall seconds and of its numeric phases (medians, since a
    single run slowed by another job on the machine should not move the reading)."""
    out = {}
    for system, rows in runs.items():
        keys = [k for k, v in rows[0].items() if isinstance(v, (int, float))]
        out[system] = {k: statistics.median(r[k] for r in rows) for k in keys}
    return out
