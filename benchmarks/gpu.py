"""satbench on one GPU in one prepared run (issue 17): ``bash benchmarks/gpu.sh``.

    python -m benchmarks.gpu [--scale gpu|tiny] [--out DIR] [--budget-s S] [--workloads small,init-only,...]
                             [--no-repro] [--data-dir DIR]

Stages, in priority order, each in its own process under a time budget (the run as a
whole stays within ``--budget-s``), so a slow stage costs its own numbers, not the run:

1. dependencies: satbench's runtime imports that are missing, one line each, and what is
   skipped (or stood in for) without them;
2. ``device``: jax.devices(), the float32 matmul peak at JAX's default precision and at
   "highest" (true float32 where the default is TF32), whether the default is TF32, one SVD's
   time, and the dataset arrays the PyTorch peers read;
3. the workloads of ``benchmarks/workloads.py`` at ``--scale`` (``gpu``: thousands of lanes;
   ``tiny``: the smoke grids): satbench through ``run_experiment`` (its default chunking and
   memory budget, a cold compilation cache), the PyTorch loop on a deterministic sample of
   configs extrapolated shape by shape, ``torch.func.vmap`` on every config;
4. ``repro``: schoenholz2017 at its full profile (MNIST from the data folder, else the bundled
   Fashion-MNIST subset, which has the same 784 inputs), interrupted at its budget; at ``tiny``
   a slice of its quick profile;
5. ``report.json`` and ``report.md`` in ``--out`` (``gpu_report``; each child's log under ``logs/``).

The driver itself never touches a JAX or CUDA device: every measurement runs in a child
process that exits before the next starts, so each has the device (and its memory) alone.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import importlib.util
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import gpu_report, workloads  # pure Python: the dependency check runs before numpy is imported

ROOT = Path(__file__).resolve().parent.parent
REPRO = gpu_report.REPRO
SYSTEMS = ("satbench", "torch-loop", "torch-vmap")
MIN_STAGE_S = 20  # a stage with less time left than this is skipped, not started
INTERRUPT_GRACE_S = 30  # after SIGINT, how long the reproduction may take to stop before SIGKILL

#: import name of each of satbench's dependencies (pyproject names) and what goes without it
WITHOUT = {
    "jax": ("jax", "everything"), "jaxlib": ("jaxlib", "everything"),
    "flax": ("flax", "satbench"), "optax": ("optax", "satbench"), "numpy": ("numpy", "everything"),
    "pandas": ("pandas", "satbench"), "pyarrow": ("pyarrow", "satbench (it writes Parquet)"),
    "seaborn": ("seaborn", "the reproduction's figures"), "matplotlib": ("matplotlib", "the reproduction's figures"),
    "scikit-learn": ("sklearn", "the digits dataset: the workloads read the generated `teacher` data instead"),
    "click": ("click", "satbench's CLI: not needed, this script calls the Python API"),
    "tqdm": ("tqdm", "satbench's progress bar: a no-op stand-in is put on the path"),
    "submitit": ("submitit", "`satbench submit`: not used here"),
    "torch": ("torch", "the PyTorch peers (skipped)"),
}
SATBENCH_NEEDS = ("jax", "jaxlib", "flax", "optax", "numpy", "pandas", "pyarrow")

#: vendor datasheet peaks in TFLOP/s: (float32 without tensor cores, TF32 tensor cores dense),
#: matched against the device kind, longest name first (H200/H100: the SXM parts)
NOMINAL_TFLOPS = {"H100 PCIe": (51.2, 378.0), "H200": (67.0, 494.7), "H100": (67.0, 494.7), "A100": (19.5, 156.0)}


@dataclasses.dataclass(frozen=True)
class Scale:
    """Everything a scale changes: the workloads' grids, budgets, sizes of the device probes."""

    name: str
    budget_s: float  # the driver's whole run
    caps: dict  # the most seconds one system may take on one workload
    loop_sample: int  # torch-loop configs per workload, spread over its shapes
    vmap_chunk: dict  # torch-vmap configs per call, by workload (0: a whole shape; absent: the CPU default)
    peak_n: int  # matmul side of the peak measurement
    svd_width: int
    repro_profile: str
    repro_overrides: dict  # fields over the profile (a slice); empty: the profile as shipped
    reserve_s: dict  # seconds kept back for each target stage (init-only, the reproduction) until it runs
    torch_threads: int  # 0: torch's default


SCALES = {
    "gpu": Scale("gpu", budget_s=465, caps={"satbench": 200, "torch-loop": 45, "torch-vmap": 75}, loop_sample=16,
                 vmap_chunk={"small": 0, "medium": 0, "cnn": 0, "init-only": 64}, peak_n=8192, svd_width=1000,
                 repro_profile="full", repro_overrides={}, reserve_s={"init-only": 90, REPRO: 150},
                 torch_threads=0),
    "tiny": Scale("tiny", budget_s=300, caps={"satbench": 120, "torch-loop": 60, "torch-vmap": 60}, loop_sample=4,
                  vmap_chunk={}, peak_n=1024, svd_width=128, repro_profile="quick",
                  repro_overrides={"depth": [20], "sigma_w2": [1.5, 3.0], "seed": [0], "steps": 40, "log_every": 20,
                                   "probe_every": 40},
                  reserve_s={"init-only": 30, REPRO: 60}, torch_threads=1),
}
ORDER = ("small", "init-only", REPRO, "medium", "cnn")  # the three targets first

TQDM_STAND_IN = '''"""A no-op stand-in for tqdm, written by benchmarks/gpu.py where tqdm is not installed."""
import sys


class tqdm:
    def __init__(self, iterable=None, *args, **kwargs):
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable or ())

    def update(self, n=1):
        pass

    def set_description(self, *args, **kwargs):
        pass

    def set_postfix(self, *args, **kwargs):
        pass

    def close(self):
        pass

    @staticmethod
    def write(text, file=None, **kwargs):
        print(text, file=file or sys.stdout)
'''


class Clock:
    """The run's deadline, and progress lines stamped with the time and the seconds so far."""

    def __init__(self, budget_s: float):
        self.t0, self.budget_s = time.monotonic(), budget_s

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def timeout(self, cap: float, reserve: float = 0.0) -> float:
        """Seconds a stage may take: its cap, or what is left once ``reserve`` is kept back."""
        return min(cap, self.budget_s - self.elapsed() - reserve)

    def say(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')} +{self.elapsed():4.0f} s] {text}", flush=True)


# ------------------------------------------------------------------ dependencies
def dependencies() -> dict[str, dict]:
    """Each runtime dependency of satbench (pyproject's list) and torch: found, version, and
    what goes without it. Read from pyproject.toml so the list cannot drift."""
    import tomllib
    from importlib import metadata

    names = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = [n.split(">")[0].split("=")[0].split("<")[0].strip() for n in names] + ["torch"]
    out = {}
    for name in names:
        module, without = WITHOUT.get(name, (name.replace("-", "_"), "unknown"))
        found = importlib.util.find_spec(module) is not None
        try:
            version = metadata.version(name) if found else None
        except metadata.PackageNotFoundError:
            version = None
        out[name] = {"module": module, "found": found, "version": version, "without": without}
    return out


def stand_in_tqdm(folder: Path) -> Path:
    """A package folder holding a no-op ``tqdm`` (satbench's engine imports ``tqdm.auto``)."""
    pkg = folder / "tqdm"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text(TQDM_STAND_IN)
    (pkg / "auto.py").write_text("from tqdm import tqdm  # noqa: F401\n")
    return folder


# ------------------------------------------------------------------ child stages (run in their own process)
def nominal(kind: str) -> dict | None:
    """The datasheet float32 and TF32 peaks of a known GPU (None: not in the table)."""
    for key in sorted(NOMINAL_TFLOPS, key=len, reverse=True):
        if key.lower() in kind.lower():
            fp32, tf32 = NOMINAL_TFLOPS[key]
            return {"matched": key, "fp32_gflops": fp32 * 1e3, "tf32_gflops": tf32 * 1e3}
    return None


def default_precision_error(n: int = 1024) -> float:
    """Largest error of a float32 ``jnp.dot`` at JAX's default precision against float64, over the
    largest entry: ~1e-6 in float32, ~1e-3 where the default runs TF32 (10-bit mantissa)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    exact = a.astype(np.float64) @ b.astype(np.float64)
    got = np.asarray(jax.jit(jnp.dot)(a, b), np.float64)
    return float(np.abs(got - exact).max() / np.abs(exact).max())


def svd_seconds(width: int, batch: int = 8, repeats: int = 3) -> float:
    """Seconds per singular-value decomposition of a width² matrix, batched as satbench's
    Jacobian spectra are (not counted as FLOPs, so it lowers init-only's GFLOP/s)."""
    import jax
    import jax.numpy as jnp

    m = jax.random.normal(jax.random.key(0), (batch, width, width))
    svd = jax.jit(lambda x: jnp.linalg.svd(x, compute_uv=False))
    svd(m).block_until_ready()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        svd(m).block_until_ready()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) / batch


def device_stage(peak_n: int, svd_width: int, dataset: str, npz: Path) -> dict:
    """The device and its yardsticks, and the dataset arrays the PyTorch peers read."""
    import jax

    from benchmarks import machine

    devices = jax.devices()
    dev = devices[0]
    try:
        stats = dev.memory_stats() or {}
    except Exception:  # noqa: BLE001 - not every backend implements it
        stats = {}
    peaks = {"default": machine.matmul_peak(peak_n, 7), "highest": machine.matmul_peak(peak_n, 7, "highest")}
    err = default_precision_error()
    return {
        "platform": dev.platform, "device_kind": dev.device_kind, "devices": [str(d) for d in devices],
        "n_devices": len(devices), "bytes_limit": stats.get("bytes_limit"),
        "jax_default_matmul_precision": jax.config.jax_default_matmul_precision,
        "default_precision_rel_error": err, "tf32_by_default": err > 1e-4,
        "matmul_peak": peaks, "nominal": nominal(dev.device_kind) if dev.platform == "gpu" else None,
        "svd_width": svd_width, "svd_s": svd_seconds(svd_width),
        "dataset": machine.write_dataset(dataset, npz), "dataset_name": dataset,
    }


def torch_stage() -> dict:
    """torch's version and whether it sees a CUDA device."""
    import torch

    cuda = torch.cuda.is_available()
    return {"version": torch.__version__, "cuda": cuda, "cuda_version": torch.version.cuda,
            "device_name": torch.cuda.get_device_name(0) if cuda else None}


def map_source_packages() -> None:
    """Where satbench is not pip-installed (an old setuptools cannot build it), make
    ``satbench.figures`` and ``satbench.experiments`` importable from the checkout's figures/ and
    experiments/, as pyproject's package-dir maps them, so the reproduction still draws figures."""
    import satbench

    for folder in ("figures", "experiments"):
        name = f"satbench.{folder}"
        if importlib.util.find_spec(name) is None and (ROOT / folder / "__init__.py").exists():
            spec = importlib.util.spec_from_file_location(name, ROOT / folder / "__init__.py",
                                                          submodule_search_locations=[str(ROOT / folder)])
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
            setattr(satbench, folder, module)


def repro_experiment(profile: str, overrides: dict, dataset: str | None):
    """schoenholz2017 from the checkout's TOML, its ``profile`` with ``overrides`` and the dataset
    swapped where MNIST is missing (by path: works whether or not satbench is pip-installed)."""
    from satbench import spec

    exp = spec.load(str(ROOT / "experiments" / f"{REPRO}.toml"))
    table = {**exp.profiles[profile], **overrides, **({"dataset": dataset} if dataset else {})}
    return dataclasses.replace(exp, profiles={**exp.profiles, profile: table})


def training_flops(exp, profile: str) -> dict[int, float]:
    """6·steps·batch·ΣW of one config at each depth: the training steps only (evaluations and
    probes not counted)."""
    from satbench import data

    out = {}
    for cfg in exp.configs(profile):
        info = data.describe(cfg["dataset"])
        sigma_w = workloads.weights(info.n_in, cfg["width"], cfg["depth"], info.n_classes)
        out[cfg["depth"]] = 6.0 * cfg["steps"] * cfg["batch_size"] * sigma_w
    return out


def repro_stage(profile: str, overrides: dict, dataset: str | None, out: Path, data_dir: str | None,
                result: Path) -> None:
    """The reproduction through ``run_experiment``, its figures and (on the paper's data) its
    claims; writes ``plan.json`` first, so an interrupted run can still be extrapolated."""
    from satbench import engine, plots

    from benchmarks.worker import jax_device_memory

    map_source_packages()
    exp = repro_experiment(profile, overrides, dataset)
    configs = exp.configs(profile)
    flops = training_flops(exp, profile)
    out.mkdir(parents=True, exist_ok=True)
    plan = {"n_configs": len(configs), "flops_by_depth": flops,
            "depths": collections.Counter(c["depth"] for c in configs),
            "dataset": configs[0]["dataset"], "width": configs[0]["width"], "steps": configs[0]["steps"],
            "total_flops": sum(flops[c["depth"]] for c in configs)}
    (out / "plan.json").write_text(json.dumps(plan))
    doc = {"profile": profile, "overrides": overrides, **plan}
    t0 = time.perf_counter()
    try:
        summary = engine.run_experiment(exp, profile, out, progress=False, data_dir=data_dir)
    except engine.Interrupted as err:
        doc.update(interrupted=True, n_finished=err.finished, sweep_s=time.perf_counter() - t0)
        result.write_text(json.dumps({**doc, **jax_device_memory()}, default=float))
        return
    doc.update(sweep_s=time.perf_counter() - t0, compile_s=summary.compile_s, run_s=summary.run_s,
               n_groups=summary.n_groups, **jax_device_memory())
    result.write_text(json.dumps(doc, default=str))  # the sweep's numbers, should the figures be cut short
    t1 = time.perf_counter()
    try:
        doc["figures"] = [p.name for p in plots.make_figures(exp, out)]
        if not dataset and not overrides:  # the paper's claims hold on its data and grid, not a stand-in's
            doc["claims"] = plots.claims(exp, out)
    except Exception as err:  # noqa: BLE001 - a missing plotting library costs the figures only
        doc["figures_error"] = f"{type(err).__name__}: {err}"
    doc["figures_s"] = time.perf_counter() - t1
    result.write_text(json.dumps(doc, default=str))


# ------------------------------------------------------------------ the driver's steps
def child(args: list[str], log: Path, timeout: float, interrupt_first: bool = False, env: dict | None = None) -> dict:
    """``python -m benchmarks.gpu ARGS`` in its own process, output to ``log``; past ``timeout``
    it gets SIGINT first (``interrupt_first``: satbench then marks its manifest), then SIGKILL."""
    from benchmarks import harness

    cmd = [sys.executable, "-m", "benchmarks.gpu", *args]
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=harness.worker_env(env or {}), stdout=fh, stderr=subprocess.STDOUT)
        try:
            code = proc.wait(timeout=max(timeout, 1))
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
            if interrupt_first:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=INTERRUPT_GRACE_S)
                except subprocess.TimeoutExpired:
                    pass
            proc.kill()
            code = proc.wait()
    return {"returncode": code, "timed_out": timed_out, "seconds": time.perf_counter() - t0}


def log_tail(path: Path, n: int = 3) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-n:])
    except OSError:
        return ""


def extrapolate_loop(res: dict, wl) -> None:
    """A sampled PyTorch loop's whole-grid estimate: per (activation, depth) shape, the mean
    seconds of its sampled configs × the shape's configs (σ_w² and the seed do not change a
    config's work). The measured seconds stay under ``sample``."""
    by_shape = collections.defaultdict(list)
    for row in res["losses"]:
        by_shape[(row["activation"], row["depth"])].append(row["seconds"])
    if len(res["losses"]) >= wl.n_configs:
        return
    per_shape = len(wl.sigma_w2) * len(wl.seeds)
    estimate = sum(statistics.mean(v) * per_shape for v in by_shape.values())
    res["sample"] = {"configs_run": len(res["losses"]), "configs": wl.n_configs,
                     "per_shape": len(res["losses"]) // max(len(by_shape), 1),
                     "measured_run_s": res["run_s"], "measured_wall_s": res["wall_s"]}
    res["other_s"] = res["wall_s"] - res["run_s"]
    res["run_s"] = estimate
    res["wall_s"] = estimate + res["other_s"]


def worker_args(system: str, name: str, scale: Scale, ctx: dict) -> list:
    """The worker's options for one system on this device."""
    args = ["--dataset", ctx["dataset"]] if ctx["dataset"] != "digits" else []
    if system == "torch-loop":
        wl = workloads.get(name, scale.name)
        args += ["--sample", max(1, scale.loop_sample // len(wl.shapes())), "--device", ctx["torch_device"]]
    if system == "torch-vmap":
        args += ["--device", ctx["torch_device"]]
        if name in scale.vmap_chunk:
            args += ["--vmap-chunk", scale.vmap_chunk[name]]
    if system != "satbench" and ctx.get("torch_precision"):
        args += ["--matmul-precision", ctx["torch_precision"]]
    return args


def run_one_workload(name: str, scale: Scale, ctx: dict, clock: Clock, reserve: float) -> dict:
    """satbench, the sampled PyTorch loop and torch.func.vmap on one workload, each in a fresh
    worker under its time cap; the loop's time extrapolated to the whole grid."""
    from benchmarks import harness

    wl = workloads.get(name, scale.name)
    if ctx["dataset"] != "digits":
        wl = dataclasses.replace(wl, dataset=ctx["dataset"])
    meta = harness.workload_meta(wl, ctx["ds"])
    clock.say(f"== {name}: {meta['n_configs']} configs; {meta['description']}")
    runs = []
    for system in ctx["systems"]:
        timeout = clock.timeout(scale.caps[system], reserve)
        if timeout < MIN_STAGE_S:
            clock.say(f"   {system:<10} skipped: {max(timeout, 0):.0f} s left for it")
            runs.append({"label": system, "system": system, "repeat": 0, "error": "skipped: no time left"})
            continue
        work = ctx["tmp"] / f"{name}-{system}"
        env = {"SATBENCH_CACHE_DIR": str(ctx["tmp"] / f"cache-{name}")} if system == "satbench" else {}
        threads = scale.torch_threads if system != "satbench" else None
        res = harness.run_worker(system, name, scale.name, ctx["npz"], work, threads or None, env,
                                 worker_args(system, name, scale, ctx), timeout)
        if (work / "worker.log").exists():
            shutil.copy(work / "worker.log", ctx["out"] / "logs" / f"{name}-{system}.log")
        res.update(label=system, system=system, repeat=0, threads=threads)
        if system == "torch-loop" and not res.get("error"):
            extrapolate_loop(res, wl)
        runs.append(res)
        if res.get("error"):
            clock.say(f"   {system:<10} FAILED: {res['error']}")
        else:
            sampled = f" (sampled {res['sample']['configs_run']} of {wl.n_configs}, extrapolated)" \
                if res.get("sample") else ""
            clock.say(f"   {system:<10} wall {res['wall_s']:8.2f} s  run {res['run_s']:8.2f} s{sampled}  "
                      f"device peak {gpu_report.mb(res.get('device_peak_bytes'))} MB")
    return {"meta": meta, "runs": runs}


def run_repro(scale: Scale, ctx: dict, clock: Clock, timeout: float) -> dict:
    """schoenholz2017 in a child process; interrupted at ``timeout``, then estimated from the
    finished programs' share of the training FLOPs."""
    out = ctx["tmp"] / "repro"
    dataset, why = repro_dataset(scale, ctx)
    what = (f"{REPRO} --profile {scale.repro_profile}" + (f" sliced {scale.repro_overrides}" if scale.repro_overrides
                                                          else "")
            + (f" on {dataset} ({why})" if dataset else ""))
    clock.say(f"== reproduction: {what}; budget {timeout:.0f} s")
    args = ["repro", "--profile", scale.repro_profile, "--out", str(out), "--result", str(ctx["tmp"] / "repro.json"),
            "--overrides", json.dumps(scale.repro_overrides)]
    args += ["--dataset", dataset] if dataset else []
    args += ["--data-dir", ctx["data_dir"]] if ctx["data_dir"] else []
    proc = child(args, ctx["out"] / "logs" / "repro.log", timeout, interrupt_first=True,
                 env={"SATBENCH_CACHE_DIR": str(ctx["tmp"] / "cache-repro")})  # cold, as on a fresh machine
    path = ctx["tmp"] / "repro.json"
    doc = json.loads(path.read_text()) if path.exists() else {}
    doc.update(what=what, process_s=proc["seconds"], timed_out=proc["timed_out"], returncode=proc["returncode"],
               budget_s=timeout)
    if proc["returncode"] != 0 and not proc["timed_out"]:
        doc["error"] = f"exit code {proc['returncode']}: {log_tail(ctx['out'] / 'logs' / 'repro.log')}"
    if doc.get("run_s") is not None and proc["timed_out"]:  # the sweep finished, its figures did not
        doc["figures_error"] = "interrupted at the budget while drawing"
        doc["timed_out"] = False
    elif proc["timed_out"] or doc.get("interrupted"):
        doc.update(partial_estimate(out, proc["seconds"]))
    keep = ctx["out"] / "repro"
    keep.mkdir(exist_ok=True)
    for p in [*out.glob("figures/*.png"), *out.glob("manifest*.json"), *out.glob("plan.json"), path]:
        if p.exists():
            shutil.copy(p, keep / p.name)
    state = ("interrupted at its budget" if proc["timed_out"] else "failed" if doc.get("error") else "finished")
    clock.say(f"   reproduction {state} after {proc['seconds']:.0f} s")
    return doc


def repro_dataset(scale: Scale, ctx: dict) -> tuple[str | None, str]:
    """The dataset standing in for the profile's where it cannot be read here (None: none needed)."""
    if scale.repro_profile == "full" and not ctx["mnist"]:
        return "fashion_mnist_small", "no MNIST in the data folder; the bundled subset has the same 784 inputs"
    if scale.repro_profile != "full" and ctx["dataset"] != "digits":
        return ctx["dataset"], "digits needs scikit-learn"
    return None, ""


def partial_estimate(out: Path, seconds: float) -> dict:
    """The whole sweep's time estimated from the programs that finished before the interrupt:
    seconds so far × total training FLOPs / the finished programs' FLOPs (an estimate, linear
    in FLOPs; compile time included in both)."""
    try:
        plan = json.loads((out / "plan.json").read_text())
        groups = json.loads((out / "manifest.json").read_text()).get("groups", [])
    except (OSError, ValueError):
        return {"estimate": None}
    flops = {int(k): v for k, v in plan["flops_by_depth"].items()}
    done = sum(g["n_configs"] / len(g["depths"]) * sum(flops[d] for d in g["depths"]) for g in groups)
    finished = sum(g["n_configs"] for g in groups)
    est = seconds * plan["total_flops"] / done if done else None
    return {"n_finished_programs": len(groups), "n_finished_configs": finished, "finished_flops": done,
            "estimate_total_s": est, "groups": groups}


# ------------------------------------------------------------------ main
def prepare(args, clock: Clock) -> dict | None:
    """Dependencies, the device stage and torch's status: the context every later stage needs
    (None: nothing can run)."""
    deps = dependencies()
    for name, d in deps.items():
        if not d["found"]:
            clock.say(f"missing: {name} (import {d['module']}) — without it: {d['without']}")
    if not all(deps[n]["found"] for n in ("jax", "jaxlib", "numpy")):
        clock.say("cannot run without jax and numpy")
        return None
    tmp = Path(tempfile.mkdtemp(prefix="satbench-gpu-"))
    if not deps["tqdm"]["found"]:
        stubs = stand_in_tqdm(tmp / "stand-ins")
        os.environ["PYTHONPATH"] = os.pathsep.join([str(stubs)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    dataset = "digits" if deps["scikit-learn"]["found"] else "teacher"
    (args.out / "logs").mkdir(parents=True, exist_ok=True)
    ctx = {"deps": deps, "tmp": tmp, "out": args.out, "npz": tmp / "data.npz", "dataset": dataset,
           "data_dir": args.data_dir or os.environ.get("SATBENCH_DATA"),
           "satbench_ok": all(deps[n]["found"] for n in SATBENCH_NEEDS)}
    clock.say("device: jax.devices(), float32 matmul peaks, SVD time, dataset arrays")
    res = child(["device", "--result", str(tmp / "device.json"), "--npz", str(ctx["npz"]), "--dataset", dataset,
                 "--peak-n", str(args.scale.peak_n), "--svd-width", str(args.scale.svd_width)],
                args.out / "logs" / "device.log", 120)
    if res["returncode"] != 0:
        clock.say(f"device stage failed: {log_tail(args.out / 'logs' / 'device.log')}")
        return None
    dev = ctx["device"] = json.loads((tmp / "device.json").read_text())
    if args.scale.name == "gpu" and dev["platform"] == "cpu":
        clock.say("WARNING: JAX sees no GPU (platform cpu): the gpu-scale stages will mostly time out")
    ctx["ds"] = dev["dataset"]
    pk = dev["matmul_peak"]
    clock.say(f"   {dev['n_devices']} × {dev['platform']} {dev['device_kind']}; matmul {pk['default']['gflops']:.0f} "
              f"GFLOP/s at JAX's default precision ({dev['jax_default_matmul_precision']}; TF32: "
              f"{dev['tf32_by_default']}), {pk['highest']['gflops']:.0f} at \"highest\"; nominal {dev['nominal']}")
    ctx["torch"] = torch_status(deps, dev, tmp, args.out, clock)
    ctx["torch_device"], ctx["torch_precision"] = ctx["torch"].get("device"), ctx["torch"].get("precision")
    ctx["systems"] = ([s for s in SYSTEMS if s != "satbench" or ctx["satbench_ok"]] if ctx["torch_device"]
                      else ["satbench"] if ctx["satbench_ok"] else [])
    try:
        from satbench import data

        ctx["mnist"] = data.availability("mnist", ctx["data_dir"])[0]
    except Exception:  # noqa: BLE001 - satbench not importable: the reproduction is skipped anyway
        ctx["mnist"] = False
    return ctx


def torch_status(deps: dict, dev: dict, tmp: Path, out: Path, clock: Clock) -> dict:
    """Where the PyTorch peers run (None: skipped) and at which float32 matmul precision: the
    GPU when JAX is on one (a CPU PyTorch would be no GPU peer), TF32 where JAX's default is."""
    if not deps["torch"]["found"]:
        clock.say("torch is not installed: skipping the PyTorch peers")
        return {"device": None, "note": "not installed; peers skipped."}
    res = child(["torch-info", "--result", str(tmp / "torch.json")], out / "logs" / "torch.log", 60)
    if res["returncode"] != 0:
        clock.say(f"torch does not import: {log_tail(out / 'logs' / 'torch.log')}; skipping the PyTorch peers")
        return {"device": None, "note": "does not import; peers skipped."}
    info = json.loads((tmp / "torch.json").read_text())
    if dev["platform"] == "gpu" and not info["cuda"]:
        clock.say(f"torch {info['version']} has no CUDA device: skipping the PyTorch peers")
        return {**info, "device": None, "note": f"{info['version']} without CUDA; peers skipped."}
    device = "cuda" if dev["platform"] == "gpu" else "cpu"
    precision = ("high" if dev["tf32_by_default"] else "highest") if device == "cuda" else None
    note = (f"{info['version']} on {device}" + (f" ({info['device_name']})" if device == "cuda" else "")
            + (f"; float32 matmul precision \"{precision}\" to match JAX's default (TF32: {dev['tf32_by_default']})"
               if precision else "") + ".")
    clock.say(f"torch {note}")
    return {**info, "device": device, "precision": precision, "note": note}


def main_run(args) -> int:
    """The driver: every stage in priority order under the deadline, then the report."""
    clock = Clock(args.budget_s or args.scale.budget_s)
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    clock.say(f"benchmarks.gpu: scale {args.scale.name}, budget {clock.budget_s:.0f} s, out {args.out}")
    if sys.version_info < (3, 11):
        clock.say(f"satbench needs Python >= 3.11 (tomllib); this is {sys.version.split()[0]}")
        return 1
    ctx = prepare(args, clock)
    if ctx is None:
        return 1
    from benchmarks import machine
    order = [n for n in ORDER if n in args.workloads or (n == REPRO and args.repro)]
    results, repro = {}, None
    for i, name in enumerate(order):
        reserve = sum(args.scale.reserve_s.get(later, 0.0) for later in order[i + 1:])
        if name == REPRO:
            timeout = clock.timeout(clock.budget_s) - INTERRUPT_GRACE_S  # its SIGINT grace within the budget
            if not ctx["satbench_ok"] or timeout < MIN_STAGE_S:
                why = "satbench cannot import" if not ctx["satbench_ok"] else "no time left"
                clock.say(f"== reproduction skipped: {why}")
                continue
            repro = run_repro(args.scale, ctx, clock, timeout)
        elif name == "cnn" and ctx["dataset"] != "digits":
            clock.say("== cnn skipped: it needs the digits images (scikit-learn)")
        else:
            results[name] = run_one_workload(name, args.scale, ctx, clock, reserve)
    dev = ctx["device"]
    doc = {"scale": args.scale.name, "started": started, "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
           "wall_s": clock.elapsed(), "budget_s": clock.budget_s, "machine": machine.machine_info(),
           "versions": {**{k: v["version"] for k, v in ctx["deps"].items() if v["found"]}, **machine.versions()},
           "dependencies": ctx["deps"], "device": dev, "torch": ctx["torch"], "dataset": ctx["dataset"],
           "workloads": {n: gpu_report.summarize_workload(w, dev) for n, w in results.items()}, "repro": repro}
    doc["targets"] = gpu_report.targets(doc)
    (args.out / "report.json").write_text(json.dumps(doc, indent=1, default=str))
    (args.out / "report.md").write_text(gpu_report.markdown(doc))
    clock.say(f"wrote {args.out / 'report.md'} and report.json")
    shutil.rmtree(ctx["tmp"], ignore_errors=True)
    return 0


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="stage")
    parser.add_argument("--scale", choices=SCALES, default="gpu")
    parser.add_argument("--out", type=Path, default=None, help="default: $OUT, else benchmarks/results/gpu-<scale>")
    parser.add_argument("--budget-s", type=float, default=None, help="the whole run (default: the scale's)")
    parser.add_argument("--workloads", default=",".join(workloads.DEFAULT_WORKLOADS))
    parser.add_argument("--no-repro", dest="repro", action="store_false", help=f"skip {REPRO}")
    parser.add_argument("--data-dir", default=None, help="folder holding mnist/ (default $SATBENCH_DATA)")
    dev = sub.add_parser("device")
    dev.add_argument("--result", type=Path, required=True)
    dev.add_argument("--npz", type=Path, required=True)
    dev.add_argument("--dataset", default="digits")
    dev.add_argument("--peak-n", type=int, default=8192)
    dev.add_argument("--svd-width", type=int, default=1000)
    tor = sub.add_parser("torch-info")
    tor.add_argument("--result", type=Path, required=True)
    rep = sub.add_parser("repro")
    rep.add_argument("--profile", default="full")
    rep.add_argument("--out", dest="repro_out", type=Path, required=True)
    rep.add_argument("--result", type=Path, required=True)
    rep.add_argument("--overrides", default="{}")
    rep.add_argument("--dataset", default=None)
    rep.add_argument("--data-dir", dest="repro_data_dir", default=None)
    args = parser.parse_args(argv)
    args.scale = SCALES[args.scale]
    args.workloads = [w for w in args.workloads.split(",") if w]
    bad = [w for w in args.workloads if w not in workloads.GPU]
    if bad:
        parser.error(f"unknown workload: {', '.join(bad)}")
    default_out = os.environ.get("OUT") or ROOT / "benchmarks" / "results" / f"gpu-{args.scale.name}"
    args.out = Path(args.out or default_out).resolve()
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.stage == "device":
        args.result.write_text(json.dumps(device_stage(args.peak_n, args.svd_width, args.dataset, args.npz)))
    elif args.stage == "torch-info":
        args.result.write_text(json.dumps(torch_stage()))
    elif args.stage == "repro":
        repro_stage(args.profile, json.loads(args.overrides), args.dataset, args.repro_out, args.repro_data_dir,
                    args.result)
    else:
        sys.exit(main_run(args))


if __name__ == "__main__":
    main()
