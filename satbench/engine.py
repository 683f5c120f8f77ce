"""Run a planned sweep: compile each group once, run its chunks, store each chunk.

The config axis of a chunk is sharded over all local devices (no
collectives: lanes are independent); the padding lanes that make chunks
even are dropped before anything is stored. Chunks are sized to a memory
budget per device (``plan.chunk_size``); a chunk that still runs out of
memory is halved and retried. Ctrl-C keeps every finished part and marks
the manifest "interrupted"; the same command resumes.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import functools
import hashlib
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from satbench import __version__, data, executables, families, lock, plan, probes, spec, store, train
from satbench import distributed as dist

DEFAULT_MAX_CHUNK = {"cpu": 16}  # other platforms: memory bound, see plan
FALLBACK_MAX_CHUNK = 1024
DEFAULT_MEMORY_FRACTION = 0.5  # of a device's memory, when no --memory-budget is given


class OutputError(spec.SpecError):
    """The output folder cannot be used as asked (one line, exit code 2)."""


class OutOfMemory(RuntimeError):
    """A chunk of one config per device still ran out of device memory."""


class DiskFull(RuntimeError):
    """The results folder's disk filled up; finished parts are whole and a rerun resumes."""

    def __init__(self, out: Path, finished: int, total: int):
        super().__init__(f"--out {out}: disk full after {finished} of {total} configs finished; "
                         "free space and rerun the same command to resume")


def _n_finished(out: Path, configs: list) -> int:
    """How many of ``configs`` have a finished part in ``out`` (for the stop messages)."""
    return len({c.config_id for c in configs} & store.finished_ids(out))


@contextlib.contextmanager
def disk_full_is_one_line(out: Path, configs: list):
    """Turn a full disk anywhere in the sweep (a part, the manifest, the merge) into ``DiskFull``."""
    try:
        yield
    except OSError as err:
        if not store.is_disk_full(err):
            raise
        raise DiskFull(out, _n_finished(out, configs), len(configs)) from None


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a sweep; finished parts are kept. Carries what the CLI reports."""

    def __init__(self, out: Path, finished: int, total: int):
        super().__init__(f"interrupted: {finished} of {total} configs finished in {out}; "
                         "rerun the same command to resume")
        self.out, self.finished, self.total = out, finished, total


def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` is XLA running out of device memory (which a smaller chunk may avoid)."""
    if not isinstance(err, jax.errors.JaxRuntimeError):
        return False
    text = str(err)
    return "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower()


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


def version_note(old: str | None, new: str) -> str | None:
    """A one-line warning when results were written by another satbench major.minor."""
    if not old or old.split(".")[:2] == new.split(".")[:2]:
        return None
    return (f"results there were written by satbench {old}, this is {new}; "
            "a resumed sweep mixes both (use --fresh to recompute)")


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


@dataclasses.dataclass
class SweepSummary:
    out: Path
    n_configs: int
    n_skipped: int
    n_groups: int
    compile_s: float
    run_s: float


def enable_compilation_cache() -> Path | None:
    """Turn on JAX's persistent compilation cache, so a rerun of a sweep compiles nothing.

    Location: $SATBENCH_CACHE_DIR, else $XDG_CACHE_HOME/satbench/jax (~/.cache/...).
    SATBENCH_COMPILATION_CACHE=0 turns it off; a cache dir already configured is kept.
    """
    if os.environ.get("SATBENCH_COMPILATION_CACHE", "1") == "0":
        return None
    current = jax.config.jax_compilation_cache_dir
    if current:
        return Path(current)
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "satbench" / "jax"
    path = Path(os.environ.get("SATBENCH_CACHE_DIR", base))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # an unwritable home costs speed, not correctness
    jax.config.update("jax_compilation_cache_dir", str(path))
    return path


#: executables compiled in this process, newest last: a second sweep in one session (a notebook,
#: ``reproduce --all``, a test suite) over an identical program skips tracing and compiling
_COMPILED: collections.OrderedDict = collections.OrderedDict()
COMPILED_IN_MEMORY = 16


def forget_compiled() -> None:
    """Drop the executables kept in memory (``jax.clear_caches`` does not reach them)."""
    _COMPILED.clear()


def compiled_sweep(program: train.Program, chunk: int, dataset: train.Data, sharding=None):
    """``jit(vmap(run))`` for one program, lowered and compiled for ``chunk`` lanes (or reused
    from this process, or loaded from ``satbench.executables`` when this exact program was
    compiled before on one device)."""
    memo = (executables.key(program, chunk, dataset), repr(sharding))
    if memo in _COMPILED:
        _COMPILED.move_to_end(memo)
        return _COMPILED[memo]
    fn = jax.jit(jax.vmap(functools.partial(train.run, program), in_axes=(0, None)))
    example = lanes_for([], program, chunk, sharding)
    compile_fn = lambda: fn.lower(example, dataset).compile()  # noqa: E731
    if sharding is not None:  # multi-device executables are not cached on disk
        compiled = compile_fn()
    else:
        compiled = executables.load_or_compile(program, chunk, dataset, compile_fn)
    _COMPILED[memo] = compiled
    while len(_COMPILED) > COMPILED_IN_MEMORY:
        _COMPILED.popitem(last=False)
    return compiled


def unfinished(groups: list, done: set) -> list:
    """The plan of the whole sweep with finished configs left out: a resumed sweep runs each
    config in the program and chunk size the uninterrupted sweep would have used (a plan of
    the unfinished configs alone could pad, scan or chunk them differently, which changes the
    last bits of their numbers, and chaotic training grows those)."""
    out = []
    for group in groups:
        todo = [c for c in group.configs if c.config_id not in done]
        if todo:
            out.append(dataclasses.replace(group, configs=todo))
    return out


def lanes_for(configs: list, program: train.Program, chunk: int, sharding=None) -> train.Lane:
    """The per-lane fields of ``configs`` as ``chunk`` lanes (padded by repetition; no configs:
    one config of defaults, for compiling)."""
    arch = program.arch
    rows = [c.values for c in configs] or [
        {**{k: f.default for k, f in spec.FIELDS.items()}, "depth": arch.depth, "init": arch.init[0],
         "activation": arch.activation[0]}]
    lane = train.lane_arrays(rows, arch, chunk)
    if sharding is None:
        return jax.tree.map(jnp.asarray, lane)
    return jax.device_put(lane, sharding)


def record_tables(program: train.Program, configs: list, record: train.Record, experiment: str,
                  chunk_seconds: float, theory_rows: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Long-form runs/layers/curves rows of one chunk (padding lanes dropped);
    ``theory_rows`` (from ``theory_columns``) supplies the mean-field columns."""
    n = len(configs)
    rec = jax.tree.map(lambda a: np.asarray(a)[:n], record)
    ids = [c.config_id for c in configs]
    depths = np.array([c["depth"] for c in configs])
    probe_steps = program.probe_steps()
    log_steps = program.log_steps()

    # layers: (n, probes, depth) -> rows, dropping masked layers beyond a config's depth
    n_probes, dmax = len(probe_steps), program.arch.depth
    cfg_idx, probe_idx, layer_idx = np.meshgrid(np.arange(n), np.arange(n_probes), np.arange(dmax), indexing="ij")
    keep = (layer_idx < depths[:, None, None]).ravel()
    layers = pd.DataFrame({
        "config_id": np.asarray(ids)[cfg_idx.ravel()][keep],
        "step": probe_steps[probe_idx.ravel()][keep],
        "layer": (layer_idx.ravel() + 1)[keep],
        **{k: rec.layers[k].reshape(-1)[keep].astype(np.float64) for k in probes.LAYER_FIELDS},
    })

    curves = pd.DataFrame({
        "config_id": np.repeat(ids, len(log_steps)),
        "step": np.tile(log_steps, n),
        "train_loss": rec.train_loss.reshape(-1).astype(np.float64),
        "train_accuracy": rec.train_accuracy.reshape(-1).astype(np.float64),
        "test_accuracy": rec.test_accuracy.reshape(-1).astype(np.float64),
    })

    tables = {"layers": layers, "curves": curves}
    jac = None
    if rec.spectra is not None:
        sv = rec.spectra.astype(np.float64)  # (n, probes, samples, units)
        _, n_p, n_s, width = sv.shape
        c, p, s_, k = np.meshgrid(np.arange(n), np.arange(n_p), np.arange(n_s), np.arange(width), indexing="ij")
        tables["spectra"] = pd.DataFrame({
            "config_id": np.asarray(ids)[c.ravel()], "step": probe_steps[p.ravel()],
            "sample": s_.ravel(), "index": k.ravel(), "singular_value": sv.reshape(-1),
        })
        s2 = sv[:, 0] ** 2  # at initialisation
        jac = {"jac_mean_s2": s2.mean(axis=(1, 2)), "jac_var_s2": s2.var(axis=(1, 2)), "jac_s_max": sv[:, 0].max(axis=(1, 2))}

    if rec.histograms is not None:
        tables["histograms"] = histogram_rows(ids, depths, probe_steps, rec.histograms)

    rows = []
    for i, cfg in enumerate(configs):
        d = cfg["depth"]
        rows.append({
            "config_id": ids[i],
            "experiment": experiment,
            **{k: cfg[k] for k in spec.FIELDS},
            "final_loss": float(rec.train_loss[i, -1]),
            "final_train_accuracy": float(rec.train_accuracy[i, -1]),
            "final_test_accuracy": float(rec.test_accuracy[i, -1]),
            "diverged": bool(rec.diverged[i]),
            "diverged_step": int(rec.diverged_step[i]) if rec.diverged[i] else pd.NA,
            "last_finite_loss": float(rec.last_finite_loss[i]),
            "steps_to_target": int(rec.steps_to_target[i]) if rec.steps_to_target[i] >= 0 else pd.NA,
            "clip_rate": float(rec.clip_rate[i]),
            "max_grad_norm": float(rec.max_grad_norm[i]),
            "grad_decay": probes.decay_rate(rec.layers["grad_norm"][i, 0, :d]),
            "time_per_step_s": chunk_seconds / max(cfg["steps"], 1),
            "chunk_lanes": n,
            "program_depth": dmax,
            "layers_mode": program.arch.layers,
            **({k: float(v[i]) for k, v in jac.items()} if jac else {}),
        })
    runs = pd.DataFrame(rows).join(theory_rows, on="config_id")
    for col in ("diverged_step", "steps_to_target"):
        runs[col] = runs[col].astype("Int64")
    for col in ("target_loss", "clip_norm"):
        runs[col] = runs[col].astype("float64")
    tables["runs"] = runs  # written last: a part's runs rows mark its configs finished
    return tables


def histogram_rows(ids, depths, probe_steps, hist: dict) -> pd.DataFrame:
    """Long-form histogram rows (config_id, step, quantity, layer, bin, lo, hi, count): one per
    bin, with the bin's own edges, dropping layers beyond a config's depth."""
    counts = np.asarray(hist["counts"])  # (n, probes, quantities, depth, bins)
    n, n_p, n_q, dmax, bins = counts.shape
    c, p, q, layer, b = np.meshgrid(*(np.arange(k) for k in counts.shape), indexing="ij")
    keep = (layer < np.asarray(depths)[:, None, None, None, None]).ravel()
    lo = np.asarray(hist["lo"], np.float64)[c, p, q]
    width = (np.asarray(hist["hi"], np.float64)[c, p, q] - lo) / bins
    return pd.DataFrame({
        "config_id": np.asarray(ids)[c.ravel()], "step": probe_steps[p.ravel()],
        "quantity": np.asarray(probes.HISTOGRAM_QUANTITIES)[q.ravel()], "layer": layer.ravel() + 1,
        "bin": b.ravel(), "lo": (lo + b * width).ravel(), "hi": (lo + (b + 1) * width).ravel(),
        "count": counts.ravel().astype(np.int64),
    })[keep].reset_index(drop=True)


THEORY_COLUMNS = ("mf_sigma_w2", "q_star", "chi1", "xi_c", "phase", "jac_mean_s2_theory", "jac_var_s2_theory")


def theory_columns(configs: pd.DataFrame) -> pd.DataFrame:
    """Mean-field prediction for each config's (activation, σ_w², σ_b²), indexed by
    config_id, so figures can overlay theory without recomputing: mf_sigma_w2,
    q_star, chi1, xi_c, phase, and the Jacobian spectrum's predicted mean and
    variance of s² where spectra are probed. One vmapped call per activation, over
    its distinct (σ_w², σ_b²) pairs.
    The theory is that of the plain MLP, filled where a config's family says it applies
    (``Family.mean_field``: plain MLPs, circular-padded plain CNNs with fan-in k²·C); other
    configs get NaN. The Jacobian's moments are the MLP's and are left NaN for other families."""
    from satbench import inits, theory

    if configs.empty:
        return pd.DataFrame(columns=list(THEORY_COLUMNS), index=pd.Index([], name="config_id"))
    runs = configs.copy()
    runs["mf_sigma_w2"] = [inits.mean_field_sigma_w2(i, s) for i, s in zip(runs["init"], runs["sigma_w2"])]
    for col in ("q_star", "chi1", "xi_c", "jac_mean_s2_theory", "jac_var_s2_theory"):
        runs[col] = np.nan
    runs["phase"] = ""
    applies = [families.get(row["model"]).has_mean_field(row) for row in runs.to_dict("records")]
    plain = runs[np.asarray(applies, bool)]
    for act, idx in plain.groupby("activation").groups.items():
        # seeds and other axes repeat (σ_w², σ_b²) pairs: solve each pair once (≈ 10–40 ms each)
        pairs = runs.loc[idx, ["mf_sigma_w2", "sigma_b2"]].to_numpy(np.float64)
        unique, row_of = np.unique(pairs, axis=0, return_inverse=True)
        row_of = row_of.ravel()  # numpy 2 keeps the axis's shape
        t = theory.summaries(act, unique[:, 0], unique[:, 1])
        for col in ("q_star", "chi1", "xi_c", "phase"):
            runs.loc[idx, col] = t[col][row_of]
    probed = plain[(plain["jacobian_samples"] > 0) & (plain["model"] == "mlp")]
    weights = np.where(probed["init"] == "orthogonal", "orthogonal", "gaussian")
    keys = ["activation", "mf_sigma_w2", "sigma_b2", "depth"]
    for (act, sw2, sb2, depth, kind), idx in probed.assign(weights=weights).groupby(keys + ["weights"]).groups.items():
        with jax.enable_x64(True):  # ∂h_L/∂h_1 is a product of depth − 1 layer Jacobians
            mean, var = theory.jacobian_moments(act, sw2, sb2, int(depth) - 1, kind)
        runs.loc[idx, ["jac_mean_s2_theory", "jac_var_s2_theory"]] = [float(mean), float(var)]
    return runs.set_index("config_id")[list(THEORY_COLUMNS)]


def program_label(program: train.Program) -> str:
    """A short human name of a compiled program, for progress bars and the manifest."""
    arch = program.arch
    extras = [arch.norm] if getattr(arch, "norm", "none") != "none" else []
    extras += ["residual"] if getattr(arch, "residual", False) else []
    model = "" if arch.model == "mlp" else f"{arch.model} "
    site = "×".join(map(str, arch.site_shape))
    return model + "/".join(["|".join(arch.activation), "|".join(arch.init), *extras]) + f" d={arch.depth} w={site}"


def data_key(values) -> tuple[str, str, int]:
    """What a config's data depends on: name and the options that change the arrays."""
    return values["dataset"], values["preprocess"], values["train_subset"]


def load_datasets(configs: list, data_dir=None) -> dict[tuple, data.Dataset]:
    """Every dataset ``configs`` use, read and validated up front: a missing or damaged
    file fails here, before anything compiles or is written."""
    keys = sorted({data_key(c.values) for c in configs}, key=str)
    return {k: data.load(k[0], preprocess=k[1], train_subset=k[2], data_dir=data_dir) for k in keys}


def _dataset_records(datasets: dict) -> dict:
    """Where each dataset came from and how it was prepared, for the manifest."""
    return {"|".join(map(str, key)): {"source": ds.meta.get("source"), "preprocess": ds.meta["preprocess"],
                                      "n_train": len(ds.y_train), "n_test": len(ds.y_test)}
            for key, ds in datasets.items()}


def _part_id(configs: list) -> str:
    return hashlib.sha1(",".join(sorted(c.config_id for c in configs)).encode()).hexdigest()[:16]


def _versions() -> dict:
    out = {"python": sys.version.split()[0], "platform": platform.platform(), "satbench": __version__,
           "satbench_git": git_describe()}
    for pkg in ("jax", "jaxlib", "flax", "optax", "numpy", "pandas"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def ensure_folder(out: Path) -> None:
    """Create ``out`` if needed and check that it can be written, before any work."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe_file = out / ".satbench-write-test"
        probe_file.write_text("")
        probe_file.unlink()
    except OSError as err:
        raise OutputError(f"--out {out}: not writable ({err.strerror})") from None


def prepare_output(out: Path, exp: spec.Experiment, profile: str | None, fresh: bool) -> None:
    """Refuse a changed spec over old results; set aside parts damaged on disk (their configs are
    computed again). Runs under the folder's lock."""
    try:
        manifest = store.read_manifest(out)
    except store.CorruptManifest as err:
        if not fresh:
            raise OutputError(str(err)) from None
        manifest = None
    has_results = bool(store.part_dirs(out)) or (out / "runs.parquet").exists()
    if not fresh and has_results and manifest is not None:
        if manifest.get("spec_hash") != exp.spec_hash(profile) or manifest.get("experiment") != exp.name:
            raise OutputError(
                f"--out {out}: holds results of a different spec "
                f"({manifest.get('experiment')}, profile {manifest.get('profile')}); "
                "use --fresh to replace them or choose another --out"
            )
        note = version_note(manifest.get("versions", {}).get("satbench"), __version__)
        if note:
            tqdm.write(f"satbench: warning: --out {out}: {note}", file=sys.stderr)
    store.remove_unfinished(out)
    if fresh:
        store.clear(out)
    for note in store.quarantine_corrupt_parts(out):
        tqdm.write(f"satbench: warning: {note}", file=sys.stderr)


def _old_manifest(path: Path) -> dict | None:
    """This slice's manifest from an earlier run (None if none); a damaged one is one line."""
    try:
        return store.read_json(path) if path.exists() else None
    except store.CorruptManifest as err:
        raise OutputError(str(err)) from None


def run_experiment(exp: spec.Experiment, profile: str | None, out: Path, *, max_chunk: int | None = None,
                   fresh: bool = False, progress: bool = True, bucketing: bool = True,
                   shard: tuple[int, int] | None = None, memory_budget: int | None = None,
                   memory_fraction: float = DEFAULT_MEMORY_FRACTION, distributed: bool = False,
                   data_dir=None) -> SweepSummary:
    """Run every unfinished config of ``exp`` under ``profile`` into ``out``.

    shard: (i, n) runs only the i-th of n disjoint, cost-balanced slices (job arrays);
      shards may share ``out``: their parts merge on read.
    data_dir: the folder of mnist/, fashion_mnist/, cifar10/ (default $SATBENCH_DATA).
    memory_budget: bytes per device a chunk may take (estimate: ``plan.config_bytes``);
      None: ``memory_fraction`` of the device's memory. ``max_chunk`` caps it further.
    distributed: run this process's slice of a ``jax.distributed`` job (see
      ``satbench.distributed``; ``jax.distributed.initialize`` must have run).
    Ctrl-C raises ``Interrupted`` after marking the manifest; finished parts stay.
    """
    out = Path(out)
    process = dist.process_slice() if distributed else None
    if process is not None:
        if shard is not None:
            raise OutputError("--shard and --distributed both split the sweep; use one of them")
        shard = process
    configs = exp.configs(profile)
    if shard is not None:
        if fresh:
            raise OutputError("--fresh with --shard would delete other shards' results; clear --out first")
        configs = plan.shard_slice(configs, *shard)
    datasets = load_datasets(configs, data_dir)
    ensure_folder(out)
    with lock.hold(out, shard), disk_full_is_one_line(out, configs):
        prepare_output(out, exp, profile, fresh)
        cache_dir = enable_compilation_cache()
        done = store.finished_ids(out)
        todo = [c for c in configs if c.config_id not in done]

        devices = jax.local_devices()
        n_dev = len(devices)
        platform_name = devices[0].platform
        if max_chunk is None:
            max_chunk = DEFAULT_MAX_CHUNK.get(platform_name, FALLBACK_MAX_CHUNK)
        budget, budget_source = budget_per_device(devices, memory_budget, memory_fraction)
        groups = unfinished(plan.make_plan(configs, max_chunk=max_chunk, n_devices=n_dev, bucketing=bucketing,
                                           memory_budget=budget), done)
        sharding = replicated = None
        if n_dev > 1:
            mesh = Mesh(np.array(devices), ("config",))
            sharding = NamedSharding(mesh, PartitionSpec("config"))
            replicated = NamedSharding(mesh, PartitionSpec())

        manifest = {
            "experiment": exp.name,
            "source": exp.source,
            "profile": profile,
            "shard": list(shard) if shard else None,
            "process": list(process) if process else None,
            "spec_hash": exp.spec_hash(profile),
            "spec": {"fixed": exp.resolve(profile)[0], "grid": exp.resolve(profile)[1]},
            "n_configs": len(configs),
            "versions": _versions(),
            "devices": [str(d) for d in devices],
            "datasets": _dataset_records(datasets),
            "memory_budget": {"bytes_per_device": budget, "source": budget_source},
            "max_chunk": max_chunk,
            "compilation_cache": str(cache_dir) if cache_dir else None,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "status": "running",
            "groups": [],
        }
        manifest_path = out / store.manifest_name(shard)
        old = _old_manifest(manifest_path)
        if old and not fresh and old.get("spec_hash") == manifest["spec_hash"]:
            manifest["groups"] = old.get("groups", [])
        store.atomic_write_json(manifest, manifest_path)

        total_compile = total_run = 0.0
        bar = tqdm(total=len(todo), unit="config", disable=not progress, dynamic_ncols=True)
        background = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        try:
            # the mean-field solve compiles its own programs (seconds per activation): a second
            # thread does it while the first sweep program compiles (XLA releases the GIL)
            mean_field = background.submit(theory_columns,
                                       pd.DataFrame([{"config_id": c.config_id, **c.values} for c in todo]))
            for gi, group in enumerate(groups):
                prog = group.program
                label = program_label(prog)
                dataset = train.data_arrays(datasets[(prog.dataset, prog.preprocess, prog.train_subset)],
                                            data.describe(prog.dataset))
                if replicated is not None:
                    dataset = jax.device_put(dataset, replicated)
                size, compiled, halvings, n_chunks = group.chunk_size, None, 0, 0
                compile_s = run_s = 0.0
                remaining = list(group.configs)
                while remaining:
                    chunk = remaining[:size]
                    try:
                        if compiled is None:
                            bar.set_description(f"[{gi + 1}/{len(groups)}] compile {label}")
                            t0 = time.perf_counter()
                            compiled = compiled_sweep(prog, size, dataset, sharding)
                            compile_s += time.perf_counter() - t0
                            bar.set_description(f"[{gi + 1}/{len(groups)}] run {label}")
                        lanes = lanes_for(chunk, prog, size, sharding)
                        t1 = time.perf_counter()
                        record = jax.device_get(compiled(lanes, dataset))
                    except Exception as err:  # noqa: BLE001 - only out-of-memory is handled
                        if not is_out_of_memory(err):
                            raise
                        smaller = plan.halve_chunk(size, n_dev)
                        if smaller is None:
                            raise OutOfMemory(f"{label}: out of device memory even at {size} config(s) per call on "
                                              f"{n_dev} device(s); lower width, batch_size or probe_batch") from err
                        tqdm.write(f"satbench: {label}: out of memory at {size} configs per call; "
                                   f"recompiling for {smaller}", file=sys.stderr)
                        size, compiled, halvings = smaller, None, halvings + 1
                        continue
                    seconds = time.perf_counter() - t1
                    run_s += seconds
                    tables = record_tables(prog, chunk, record, exp.name, seconds, mean_field.result())
                    store.write_part(out, _part_id(chunk), tables)
                    remaining = remaining[len(chunk):]
                    n_chunks += 1
                    bar.update(len(chunk))
                    bar.set_postfix(configs_per_s=f"{len(chunk) / max(seconds, 1e-9):.1f}")
                total_compile += compile_s
                total_run += run_s
                manifest["groups"].append({
                    "program": label, "layers": prog.arch.layers, "masked": prog.masked,
                    "depths": sorted({c["depth"] for c in group.configs}),
                    "n_configs": len(group.configs), "chunk_size": size, "chunks": n_chunks,
                    "planned_chunk_size": group.chunk_size, "oom_halvings": halvings,
                    "bytes_per_config": group.config_bytes, "fixed_bytes": group.fixed_bytes,
                    "budget_bytes": group.budget_bytes,
                    "compile_s": round(compile_s, 3), "run_s": round(run_s, 3),
                })
                store.atomic_write_json(manifest, manifest_path)
        except KeyboardInterrupt:
            finished = _n_finished(out, configs)
            manifest.update(status="interrupted", interrupted=time.strftime("%Y-%m-%dT%H:%M:%S"), n_finished=finished)
            store.atomic_write_json(manifest, manifest_path)
            raise Interrupted(out, finished, len(configs)) from None
        finally:
            background.shutdown(wait=True, cancel_futures=True)
            bar.close()

        if process is not None:  # every slice is written: the first process merges them all
            dist.barrier("satbench-sweep-finished")
            if process[0] == 0:
                store.consolidate(out)
        elif shard is None:  # shards leave the merge to load_results (others may still be running)
            store.consolidate(out)
        manifest.update(status="finished", finished=time.strftime("%Y-%m-%dT%H:%M:%S"),
                        compile_s=round(total_compile, 3), run_s=round(total_run, 3))
        store.atomic_write_json(manifest, manifest_path)
        return SweepSummary(out, len(configs), len(configs) - len(todo), len(groups), total_compile, total_run)
