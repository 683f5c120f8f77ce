"""satbench against its peers, end to end: ``python -m benchmarks``.

For each workload: cross-check that the systems compute the same thing, then
measure every system in its own fresh process, alternating systems within each
repeat (satbench cold, satbench warm, JAX loop, PyTorch loop at each thread
count, PyTorch vmap at each thread count; then again), and report medians and
satbench/peer ratios. Then satbench's scaling curves. Writes ``report.json``,
``report.md`` and the figures to ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import machine, report, workloads

ROOT = Path(__file__).resolve().parent.parent
SYSTEMS = ("satbench", "jax-loop", "torch-loop", "torch-vmap")
TORCH_SYSTEMS = ("torch-loop", "torch-vmap")


def worker_env(extra: dict) -> dict:
    """The environment of a worker: this checkout first on the path, and ``extra``."""
    env = dict(os.environ)
    env.pop("SATBENCH_COMPILATION_CACHE", None)  # the harness turns it off for itself only
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    env.update(extra)
    return env


def run_worker(system: str, wl: str, scale: str, npz: Path, work: Path, threads: int | None, env: dict,
               extra_args: tuple = (), timeout: float | None = None) -> dict:
    """One measurement in a fresh process (which reports its own peak RSS); ``extra_args`` go to
    the worker, and past ``timeout`` seconds it is killed and reported as timed out."""
    work.mkdir(parents=True, exist_ok=True)
    result, log = work / "result.json", work / "worker.log"
    cmd = [sys.executable, "-m", "benchmarks.worker", system, wl, scale, "--data", str(npz),
           "--result", str(result), "--work", str(work)] + (["--threads", str(threads)] if threads else [])
    cmd += [str(a) for a in extra_args]
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        try:
            proc = subprocess.run(cmd, cwd=ROOT, env=worker_env(env), stdout=fh, stderr=subprocess.STDOUT,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:.0f} s (killed)", "timed_out": True,
                    "process_s": time.perf_counter() - t0}
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0 or not result.exists():
        tail = log.read_text().strip().splitlines()[-3:]
        return {"error": f"exit code {proc.returncode}: " + " | ".join(tail), "process_s": elapsed}
    out = json.loads(result.read_text())
    out["process_s"] = elapsed
    out["other_s"] = out["wall_s"] - (out.get("compile_s") or 0.0) - out["run_s"]
    return out


def split_system(entry: str) -> tuple[str, int | None]:
    """``"torch-loop@1"`` -> ("torch-loop", 1): a PyTorch peer pinned to one thread count."""
    name, _, threads = entry.partition("@")
    return name, int(threads) if threads.isdigit() else None


def known_system(entry: str) -> bool:
    """A system name, or a PyTorch peer pinned to a thread count (``torch-vmap@2``)."""
    name, pinned = split_system(entry)
    return entry in SYSTEMS or (name in TORCH_SYSTEMS and pinned is not None)


def schedule(systems: list[str], threads: list[int]) -> list[tuple[str, str, int | None, str]]:
    """One repeat's (label, system, torch threads, cache role) in the order they run."""
    order = []
    for entry in systems:
        system, pinned = split_system(entry)
        if system == "satbench":
            order += [("satbench-cold", "satbench", None, "cold"), ("satbench-warm", "satbench", None, "warm")]
        elif system in TORCH_SYSTEMS:
            order += [(f"{system}@{t}", system, t, "") for t in ([pinned] if pinned else threads)]
        else:
            order.append((system, system, None, ""))
    return order


def measure(wl_name: str, scale: str, systems, threads, repeats: int, npz: Path, tmp: Path) -> list[dict]:
    """Every system ``repeats`` times, alternating; a fresh compilation cache per repeat."""
    runs = []
    for r in range(repeats):
        cache = tmp / f"cache-{wl_name}-{r}"
        for label, system, t, role in schedule(systems, threads):
            env = {"SATBENCH_CACHE_DIR": str(cache)} if system == "satbench" else {}
            load = machine.load_average()
            res = run_worker(system, wl_name, scale, npz, tmp / f"{wl_name}-{r}-{label}", t, env)
            res.update(label=label, system=system, repeat=r, threads=t, load_average=load)
            runs.append(res)
            if res.get("error"):
                print(f"  [{r + 1}/{repeats}] {label:<16} FAILED: {res['error']}", flush=True)
            else:
                comp = "–" if res.get("compile_s") is None else f"{res['compile_s']:.1f}"
                print(f"  [{r + 1}/{repeats}] {label:<16} wall {res['wall_s']:7.2f} s  compile {comp:>6} s  "
                      f"run {res['run_s']:7.2f} s  peak RSS {res['peak_rss_kb'] / 1024:6.0f} MB  load {load}",
                      flush=True)
    return runs


def workload_meta(wl, ds: dict) -> dict:
    if wl.model == "cnn":
        if tuple(ds["image_shape"] or ()) != tuple(wl.image_shape):
            raise ValueError(f"workload {wl.name}: images {wl.image_shape}, dataset {ds['image_shape']}")
        h, w, c = wl.image_shape
        net = (f"cnn {h}×{w}×{c} images, {wl.channels} channels, {wl.kernel_size}×{wl.kernel_size} "
               f"{wl.padding} convolutions")
    else:
        net = f"width {wl.width}"
    desc = (f"{net}, batch {wl.batch_size}, depths {list(wl.depths)}, {'/'.join(wl.activations)}, "
            f"{len(wl.sigma_w2)} σ_w² × {len(wl.seeds)} seeds, {wl.steps} steps"
            + (f", Jacobian samples {wl.jacobian_samples}, probe batch {wl.probe_batch}" if wl.init_only else "")
            + f", {wl.dataset}")
    return {"n_configs": wl.n_configs, "steps": wl.steps, "description": desc, "workload": dataclasses.asdict(wl),
            "flops": workloads.workload_flops(wl, ds["n_in"], ds["n_classes"], ds["n_train"], ds["n_test"])}


def run_workload(name: str, args, systems, npz: Path, ds: dict, arrays: dict, tmp: Path, torch_ok: bool) -> dict:
    wl = workloads.get(name, args.scale)
    meta = workload_meta(wl, ds)
    print(f"\n== {name}: {meta['n_configs']} configs; {meta['description']}", flush=True)
    cc = None
    if not args.no_crosscheck:
        from benchmarks import crosscheck

        cc = crosscheck.crosscheck(wl, arrays, torch_ok)
        print(f"  cross-check {'passed' if cc['passed'] else 'FAILED'}: "
              + ", ".join(f"{k} {v:.1e}" for k, v in cc["max_rel_err"].items()), flush=True)
    runs = measure(name, args.scale, systems, args.threads, args.repeats, npz, tmp)
    return {"meta": meta, "repeats": args.repeats, "crosscheck": cc, "runs": runs}


def summarize(w: dict, peak_gflops: float) -> dict:
    """Medians, rates, ratios, warm-cache and memory findings of one workload's raw runs."""
    runs = w["runs"]
    by_label: dict[str, list] = {}
    for r in runs:
        by_label.setdefault(r["label"], []).append(r)
    summary = {label: report.summarize_label(rs, w["meta"], peak_gflops) for label, rs in by_label.items()}
    best = report.best_threads(summary)
    out = {**w, "summary": summary, "best_threads": best, "ratios": report.ratios(summary, best),
           "warm_cache": report.warm_cache(summary), "memory": report.memory(by_label.get("satbench-cold", [])),
           "final_loss": report.final_loss_medians([r for r in runs if r["repeat"] == 0])}
    out["runs"] = [{k: v for k, v in r.items() if k != "losses"} for r in runs]  # raw, without per-config rows
    return out


def run_scaling(scale: str, out: Path) -> dict:
    from benchmarks import scaling

    print("\n== scaling (satbench, compilation cache off)", flush=True)
    configs = scaling.configs_sweep(scale)
    depth = scaling.depth_sweep(scale)
    title = f"satbench, tanh width 64 ({scale})"
    scaling.plot_configs(configs, out / "scaling_configs.png", f"{title}, depth 8")
    scaling.plot_depth(depth, out / "compile_vs_depth.png", title)
    return {"configs": configs, "depth": depth, "configs_png": "scaling_configs.png",
            "depth_png": "compile_vs_depth.png"}


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default=",".join(workloads.DEFAULT_WORKLOADS),
                        help=f"comma-separated, of {', '.join(workloads.WORKLOADS)}")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scale", choices=workloads.SCALES, default="full")
    parser.add_argument("--systems", default=",".join(SYSTEMS),
                        help=f"comma-separated, of {', '.join(SYSTEMS)}; a PyTorch peer as NAME@T runs at T threads only")
    parser.add_argument("--threads", default="1,2", help="PyTorch thread counts to try (the faster is reported)")
    parser.add_argument("--out", type=Path, default=None, help="default: benchmarks/results/<scale>")
    parser.add_argument("--label", default="", help="a line printed at the top of the report (e.g. the load)")
    parser.add_argument("--no-crosscheck", action="store_true")
    parser.add_argument("--no-scaling", action="store_true")
    args = parser.parse_args(argv)
    args.workloads = [w for w in args.workloads.split(",") if w]
    args.systems = [s for s in args.systems.split(",") if s]
    args.threads = [int(t) for t in args.threads.split(",") if t]
    bad = [w for w in args.workloads if w not in workloads.WORKLOADS] + [s for s in args.systems if not known_system(s)]
    if bad:
        parser.error(f"unknown workload or system: {', '.join(bad)}")
    args.out = args.out or ROOT / "benchmarks" / "results" / args.scale
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    # the harness's own satbench runs (cross-checks, scaling) compile afresh and leave ~/.cache alone
    os.environ["SATBENCH_COMPILATION_CACHE"] = "0"
    torch_ok = importlib.util.find_spec("torch") is not None
    systems = args.systems
    if not torch_ok and any(split_system(s)[0] in TORCH_SYSTEMS for s in systems):
        print("benchmarks: torch is not installed (pip install 'satbench[bench]'); skipping the PyTorch peers",
              file=sys.stderr)
        systems = [s for s in systems if split_system(s)[0] not in TORCH_SYSTEMS]
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    info, vers = machine.machine_info(), machine.versions()
    print(f"machine: {info['nproc']} CPUs, affinity {info['affinity']}, {info['cpu_model']}, "
          f"load {info['load_average']}\nversions: {vers}", flush=True)
    peak_start = machine.matmul_peak()
    print(f"float32 matmul peak: {peak_start['gflops']:.1f} GFLOP/s", flush=True)

    with tempfile.TemporaryDirectory(prefix="satbench-bench-") as tmp:
        tmp = Path(tmp)
        npz = tmp / "data.npz"
        names = {workloads.get(w, args.scale).dataset for w in args.workloads}
        assert names == {"digits"}, "every workload reads digits"
        ds = machine.write_dataset("digits", npz)
        from benchmarks.worker import load_arrays

        arrays = load_arrays(npz)
        results = {name: run_workload(name, args, systems, npz, ds, arrays, tmp, torch_ok) for name in args.workloads}
    scaling = None if args.no_scaling else run_scaling(args.scale, args.out)
    peak_end = machine.matmul_peak()
    # the better of the two medians: what the cores can do; other tenants only ever lower it
    peak = dict(peak_start, gflops=max(peak_start["gflops"], peak_end["gflops"]),
                start_gflops=peak_start["gflops"], end_gflops=peak_end["gflops"])
    results = {name: summarize(w, peak["gflops"]) for name, w in results.items()}
    doc = {"scale": args.scale, "label": args.label, "started": started, "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
           "machine": info, "load_average_end": machine.load_average(), "versions": vers, "matmul_peak": peak,
           "systems": systems, "threads": args.threads, "dataset": ds, "workloads": results, "scaling": scaling}
    (args.out / "report.json").write_text(json.dumps(doc, indent=1, default=float))
    (args.out / "report.md").write_text(report.markdown(doc))
    print(f"\nwrote {args.out / 'report.md'} and report.json", flush=True)
    failed = [name for name, w in results.items() if w["crosscheck"] and not w["crosscheck"]["passed"]]
    if failed:  # the timings are kept, but a disagreement must not pass unnoticed
        sys.exit(f"benchmarks: cross-check FAILED for {', '.join(failed)} (see report.md)")
