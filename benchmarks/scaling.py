"""How satbench's cost grows: wall time vs number of configs, compile time vs depth.

Both run satbench through ``engine.run_experiment`` in this process with the
persistent compilation cache off (``SATBENCH_COMPILATION_CACHE=0``, set by the
harness), so every point pays its own compile.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

from benchmarks import workloads

BASE = workloads.Workload("scaling", width=64, batch_size=64, depths=(8,), activations=("tanh",),
                          sigma_w2=(1.0,), seeds=(0,), steps=100)
COUNTS = {"tiny": (1, 8, 64), "full": (1, 4, 16, 64, 256, 1024)}
DEPTHS = {"tiny": (2, 4, 8), "full": (2, 4, 8, 16, 32, 64)}
STEPS = {"tiny": 20, "full": 100}
DEPTH_STEPS = 10


def run_satbench(wl, layers: str = "auto") -> dict:
    """One satbench sweep in a temp folder: wall, compile and run seconds, and its programs."""
    import jax

    from satbench import engine, spec

    jax.clear_caches()
    engine.forget_compiled()  # satbench keeps executables in memory too: each point pays its compile
    with tempfile.TemporaryDirectory(prefix="satbench-scaling-") as tmp:
        toml = Path(tmp) / "scaling.toml"
        toml.write_text(workloads.experiment_toml(wl, name="scaling", layers=layers))
        t0 = time.perf_counter()
        summary = engine.run_experiment(spec.load(str(toml)), None, Path(tmp) / "out", progress=False)
        wall = time.perf_counter() - t0
    return {"wall_s": wall, "compile_s": summary.compile_s, "run_s": summary.run_s, "n_groups": summary.n_groups}


def configs_sweep(scale: str) -> list[dict]:
    """Wall time vs number of configs (seeds) at fixed depth 8, width 64."""
    rows = []
    for n in COUNTS[scale]:
        wl = dataclasses.replace(BASE, seeds=tuple(range(n)), steps=STEPS[scale])
        rows.append({"n_configs": n, "steps": wl.steps, **run_satbench(wl)})
        print(f"  scaling: {n:5d} configs: {rows[-1]['wall_s']:.1f} s", flush=True)
    return rows


def depth_sweep(scale: str) -> list[dict]:
    """Compile time vs depth, layers forced to scan and to unroll (one config each)."""
    rows = []
    for layers in ("scan", "unroll"):
        for depth in DEPTHS[scale]:
            wl = dataclasses.replace(BASE, depths=(depth,), steps=DEPTH_STEPS)
            rows.append({"layers": layers, "depth": depth, **run_satbench(wl, layers)})
            print(f"  compile: {layers:6s} depth {depth:3d}: {rows[-1]['compile_s']:.1f} s", flush=True)
    return rows


def plot_configs(rows: list[dict], path: Path, title: str) -> Path:
    """Log-log wall and run time vs configs, with a linear reference through the last point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [r["n_configs"] for r in rows]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.plot(n, [r["wall_s"] for r in rows], "o-", label="wall (compile + run + I/O)")
    ax.plot(n, [r["run_s"] for r in rows], "s-", label="run")
    ax.plot(n, [r["compile_s"] for r in rows], "^--", label="compile")
    ax.plot(n, [rows[-1]["run_s"] * k / n[-1] for k in n], ":", color="grey", label="linear in configs")
    ax.set(xscale="log", yscale="log", xlabel="configs (seeds) in the sweep", ylabel="seconds", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_depth(rows: list[dict], path: Path, title: str) -> Path:
    """Compile seconds vs depth for scanned and unrolled layer stacks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for layers, marker in (("scan", "o-"), ("unroll", "s-")):
        sub = [r for r in rows if r["layers"] == layers]
        ax.plot([r["depth"] for r in sub], [r["compile_s"] for r in sub], marker, label=f"layers = {layers}")
    ax.set(xlabel="depth (hidden layers)", ylabel="compile seconds", title=title)
    ax.set_xticks(sorted({r["depth"] for r in rows}))
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv=None) -> None:
    """``python -m benchmarks.scaling [--scale full] [--out DIR]``: the scaling curves alone."""
    import argparse
    import json
    import os

    from benchmarks import harness, machine, report

    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=main.__doc__)
    parser.add_argument("--scale", choices=tuple(COUNTS), default="full")
    parser.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/<scale>-scaling")
    args = parser.parse_args(argv)
    out = args.out or harness.ROOT / "benchmarks" / "results" / f"{args.scale}-scaling"
    out.mkdir(parents=True, exist_ok=True)
    os.environ["SATBENCH_COMPILATION_CACHE"] = "0"  # every point pays its own compile
    info, started = machine.machine_info(), time.strftime("%Y-%m-%dT%H:%M:%S")
    sc = harness.run_scaling(args.scale, out)
    doc = {"scale": args.scale, "started": started, "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
           "machine": info, "load_average_end": machine.load_average(), "versions": machine.versions(),
           "scaling": sc}
    (out / "scaling.json").write_text(json.dumps(doc, indent=1, default=float))
    head = [f"# satbench scaling — scale `{args.scale}`", "",
            f"Machine: {info['nproc']} CPUs, {info['cpu_model']}; load average at start {info['load_average']}, "
            f"at end {doc['load_average_end']}. {started} – {doc['finished']}. Compilation cache off.", ""]
    (out / "scaling.md").write_text("\n".join(head + report.scaling_lines(sc)) + "\n")
    print(f"wrote {out / 'scaling.md'}", flush=True)


if __name__ == "__main__":
    main()
