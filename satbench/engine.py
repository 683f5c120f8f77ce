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
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from satbench import __version__, data, executables, lock, machine, manifest, plan, spec, store, tables, train
from satbench import distributed as dist

#: most lanes per call on CPU: small calls stay in cache (the `small` benchmark's depth-16 group,
#: 96 configs at width 64, ran 11.9 / 8.3 / 6.9 / 7.4 / 8.8 s at 16 / 8 / 4 / 2 / 1 lanes, two calls
#: at once; at width 256, 4 lanes ran as fast as 16); other platforms: memory bound, see plan
DEFAULT_MAX_CHUNK = {"cpu": 4}
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


@dataclasses.dataclass
class SweepSummary:
    """compile_s: seconds the sweep waited for compiles (programs compile ahead, beside the runs);
    compile_total_s: the compiles' own seconds, summed; run_s: seconds running programs."""

    out: Path
    n_configs: int
    n_skipped: int
    n_groups: int
    compile_s: float
    run_s: float
    compile_total_s: float = 0.0


def enable_compilation_cache() -> Path | None:
    """Turn on JAX's persistent compilation cache, so a rerun of a sweep compiles nothing.

    Location: $SATBENCH_CACHE_DIR, else $XDG_CACHE_HOME/satbench/jax (~/.cache/...).
    SATBENCH_COMPILATION_CACHE=0 turns it off; a cache dir already configured is kept.
    """
    if executables.turned_off():
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
    example = lanes_for([], program, chunk, sharding)
    fn = jax.jit(jax.vmap(functools.partial(train.run, program), in_axes=(train.lane_axes(program, example), None)))
    compile_fn = lambda: fn.lower(example, dataset).compile(executables.compiler_options(program))  # noqa: E731
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
    one config of defaults, for compiling); the index of each of the program's ``per_call`` fields
    as one scalar, which every config of the call shares (``plan.call_chunks``)."""
    rows = [c.values for c in configs] or [train.default_row(program.arch, program.optimizer)]
    lane = train.lane_arrays(rows, program.arch, chunk, program.optimizer)
    for name in program.per_call:
        index = lane[f"{name}_index"]
        if (index != index[0]).any():
            raise ValueError(f"one call holds configs of several {name} values, but its program takes {name} "
                             f"per call: {sorted({r[name] for r in rows})}")
        lane[f"{name}_index"] = index[0]
    if sharding is None:
        return jax.tree.map(jnp.asarray, lane)
    replicated = NamedSharding(sharding.mesh, PartitionSpec())
    return {k: jax.device_put(v, sharding if v.ndim else replicated) for k, v in lane.items()}


def program_label(program: train.Program) -> str:
    """A short human name of a compiled program, for progress bars and the manifest."""
    arch = program.arch
    choices = train.lane_choices(arch, program.optimizer)
    extras = ["|".join(choices[name]) for name, plain in (("norm", "none"), ("optimizer", "sgd"))
              if choices[name] != (plain,)]
    model = "" if arch.model == "mlp" else f"{arch.model} "
    site = "×".join(map(str, arch.site_shape))
    return model + "/".join(["|".join(arch.activation), "|".join(arch.init), *extras]) + f" d={arch.depth} w={site}"


def data_key(values) -> tuple[str, str, int, int]:
    """What a config's (or a program's) data depends on: name and the options that change the arrays."""
    if isinstance(values, train.Program):
        return values.dataset, values.preprocess, values.train_subset, values.seq_len
    return values["dataset"], values["preprocess"], values["train_subset"], values["seq_len"]


def load_datasets(configs: list, data_dir=None) -> dict[tuple, data.Dataset]:
    """Every dataset ``configs`` use, read and validated up front: a missing or damaged
    file fails here, before anything compiles or is written."""
    keys = sorted({data_key(c.values) for c in configs}, key=str)
    return {k: data.load(k[0], preprocess=k[1], train_subset=k[2], seq_len=k[3], data_dir=data_dir) for k in keys}


def _part_id(configs: list) -> str:
    return hashlib.sha1(",".join(sorted(c.config_id for c in configs)).encode()).hexdigest()[:16]


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
        found = store.read_manifest(out)
    except store.CorruptManifest as err:
        if not fresh:
            raise OutputError(str(err)) from None
        found = None
    has_results = bool(store.part_dirs(out)) or (out / "runs.parquet").exists()
    if not fresh and has_results and found is not None:
        if found.get("spec_hash") != exp.spec_hash(profile) or found.get("experiment") != exp.name:
            raise OutputError(
                f"--out {out}: holds results of a different spec "
                f"({found.get('experiment')}, profile {found.get('profile')}); "
                "use --fresh to replace them or choose another --out"
            )
        note = manifest.version_note(found.get("versions", {}).get("satbench"), __version__)
        if note:
            tqdm.write(f"satbench: warning: --out {out}: {note}", file=sys.stderr)
    store.remove_unfinished(out)
    if fresh:
        store.clear(out)
    for note in store.quarantine_corrupt_parts(out):
        tqdm.write(f"satbench: warning: {note}", file=sys.stderr)


@dataclasses.dataclass(frozen=True)
class Options:
    """How a sweep runs; none of it changes a number.

    max_chunk: most lanes per program call (default: ``DEFAULT_MAX_CHUNK`` per platform).
    fresh: delete earlier results in the folder first. progress: show a progress bar.
    bucketing: let depths share padded programs (``plan``).
    shard: (i, n) runs only the i-th of n disjoint, cost-balanced slices (job arrays); shards
      may share the folder: their parts merge on read.
    memory_budget: bytes per device a chunk may take (estimate: ``plan.config_bytes``);
      None: ``memory_fraction`` of the device's memory. ``max_chunk`` caps it further.
    distributed: run this process's slice of a ``jax.distributed`` job (see ``satbench.distributed``).
    data_dir: the folder of mnist/, fashion_mnist/, cifar10/ (default $SATBENCH_DATA).
    concurrent: program calls run at once (default: on CPU one per usable core and device,
      elsewhere 1); each call is whole, so the numbers are the same at any value.
    """

    max_chunk: int | None = None
    fresh: bool = False
    progress: bool = True
    bucketing: bool = True
    shard: tuple[int, int] | None = None
    memory_budget: int | None = None
    memory_fraction: float = DEFAULT_MEMORY_FRACTION
    distributed: bool = False
    data_dir: str | Path | None = None
    concurrent: int | None = None


@dataclasses.dataclass(frozen=True)
class Devices:
    """The local devices a sweep runs on, and how a chunk's lanes are spread over them."""

    devices: list
    max_chunk: int
    budget: tuple[int | None, str]  # bytes per device and where that number came from
    concurrent: int = 1  # program calls run at once
    sharding: NamedSharding | None = None  # lanes split over devices (None: one device)
    replicated: NamedSharding | None = None  # the dataset on every device

    @classmethod
    def local(cls, opts: Options) -> "Devices":
        devices = jax.local_devices()
        max_chunk = opts.max_chunk or DEFAULT_MAX_CHUNK.get(devices[0].platform, FALLBACK_MAX_CHUNK)
        budget = machine.budget_per_device(devices, opts.memory_budget, opts.memory_fraction)
        calls = opts.concurrent or default_concurrent(devices)
        if len(devices) == 1:
            return cls(devices, max_chunk, budget, calls)
        mesh = Mesh(np.array(devices), ("config",))
        return cls(devices, max_chunk, budget, calls, NamedSharding(mesh, PartitionSpec("config")),
                   NamedSharding(mesh, PartitionSpec()))


def default_concurrent(devices: list) -> int:
    """Program calls to run at once: $SATBENCH_CONCURRENT if set; on CPU one per usable core (per
    device), since one call keeps about one core busy; on an accelerator one (a call fills the device)."""
    value = os.environ.get("SATBENCH_CONCURRENT", "").strip()
    if value:
        if not (value.isdigit() and int(value) > 0):
            raise spec.SpecError(f"SATBENCH_CONCURRENT must be a whole number >= 1 (program calls at once), got {value!r}")
        return int(value)
    if devices[0].platform != "cpu":
        return 1
    return max(1, machine.usable_cores() // len(devices))


def _slices(opts: Options) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
    """(the shard this process runs, its slice of a distributed job), checked against ``fresh``."""
    process = dist.process_slice() if opts.distributed else None
    if process is not None and opts.shard is not None:
        raise OutputError("--shard and --distributed both split the sweep; use one of them")
    shard = process or opts.shard
    if shard is not None and opts.fresh:
        raise OutputError("--fresh with --shard would delete other shards' results; clear --out first")
    return shard, process


def calls_lapack(compiled) -> bool:
    """Whether an executable calls jaxlib's LAPACK kernels (SVD, QR, eigh: orthogonal init, Jacobian
    spectra). On CPU such a kernel hands its batch to XLA's intra-op pool and blocks until the pool
    has done it; two calls side by side, each blocked in one, can hold every thread of a 2-core
    pool and wait forever (``models.after`` keeps one program's kernels in sequence for the same
    reason). Such programs run one call at a time."""
    try:
        text = compiled.as_text() or ""
    except Exception:  # noqa: BLE001 - one that cannot show its program may call them
        return True
    return 'custom_call_target="lapack' in text


def timed_compile(program: train.Program, chunk: int, dataset: train.Data, sharding=None):
    """(``compiled_sweep(...)``, the seconds it took)."""
    t0 = time.perf_counter()
    compiled = compiled_sweep(program, chunk, dataset, sharding)
    return compiled, time.perf_counter() - t0


def run_group(group: plan.Group, dataset: train.Data, dev: Devices, write, bar, ready=None) -> dict:
    """Compile ``group``'s program once and run its chunks, ``dev.concurrent`` at a time,
    halving the chunk and recompiling on out-of-memory; ``write(configs, record, seconds)``
    stores each chunk, in order. ``ready``: a future of ``timed_compile`` for the planned chunk
    size, compiled ahead. Its manifest record: ``compile_s`` the compile's own seconds (beside
    other work), ``compile_wait_s`` the seconds the sweep waited for it.

    On CPU one call keeps about one core busy (a lane's small matmuls do not spread over the
    intra-op pool), so calls run side by side from a thread pool (XLA releases the GIL), except
    for programs that call LAPACK (``calls_lapack``). Each call is the same executable on its own
    lanes: a lane's numbers do not depend on which calls run beside it."""
    prog, label = group.program, program_label(group.program)
    size, compiled, halvings, n_chunks, compile_s, run_s = group.chunk_size, None, 0, 0, 0.0, 0.0
    remaining, wait_s = list(group.configs), 0.0
    pool, workers = None, 1

    def call(fn, chunk, n_lanes):
        t1 = time.perf_counter()
        record = jax.device_get(fn(lanes_for(chunk, prog, n_lanes, dev.sharding), dataset))
        return record, time.perf_counter() - t1

    try:
        while remaining:
            if compiled is None:
                bar.set_description(f"compile {label}")
                t_wait = time.perf_counter()
                compiled, seconds = ready.result() if ready is not None else timed_compile(prog, size, dataset,
                                                                                            dev.sharding)
                compile_s, wait_s, ready = compile_s + seconds, wait_s + time.perf_counter() - t_wait, None
                bar.set_description(f"run {label}")
                if pool is None:
                    workers = 1 if calls_lapack(compiled) else dev.concurrent
                    pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers,
                                                                 thread_name_prefix="satbench-call")
            chunks = plan.call_chunks(remaining, size, prog.per_call)
            t_wave = time.perf_counter()
            futures = [pool.submit(call, compiled, chunk, size) for chunk in chunks]
            try:
                for chunk, future in zip(chunks, futures):
                    record, seconds = future.result()
                    write(chunk, record, seconds)
                    remaining, n_chunks = remaining[len(chunk):], n_chunks + 1
                    bar.update(len(chunk))
                    elapsed = time.perf_counter() - t_wave
                    bar.set_postfix(configs_per_s=f"{(len(group.configs) - len(remaining)) / max(elapsed, 1e-9):.1f}")
            except Exception as err:  # noqa: BLE001 - only out-of-memory is handled
                for future in futures:
                    future.cancel()
                concurrent.futures.wait(futures)  # the calls still running finish before the retry
                if not is_out_of_memory(err):
                    raise
                smaller = plan.halve_chunk(size, len(dev.devices))
                if smaller is None:
                    raise OutOfMemory(f"{label}: out of device memory even at {size} config(s) per call on "
                                      f"{len(dev.devices)} device(s); lower width, batch_size or probe_batch") from err
                tqdm.write(f"satbench: {label}: out of memory at {size} configs per call; recompiling for {smaller}",
                           file=sys.stderr)
                size, compiled, halvings = smaller, None, halvings + 1
            finally:
                run_s += time.perf_counter() - t_wave
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
    return manifest.group_record(label, group, size, n_chunks, halvings, compile_s, run_s, workers, wait_s)


def device_datasets(groups: list, datasets: dict, dev: Devices) -> dict:
    """Each dataset the groups use as device arrays, once (on every device when lanes are sharded)."""
    out = {}
    for group in groups:
        key = data_key(group.program)
        if key not in out:
            arrays = train.data_arrays(datasets[key], data.describe(group.program.dataset))
            out[key] = arrays if dev.replicated is None else jax.device_put(arrays, dev.replicated)
    return out


def run_experiment(exp: spec.Experiment, profile: str | None, out: Path, **options) -> SweepSummary:
    """Run every unfinished config of ``exp`` under ``profile`` into ``out`` (``options``: ``Options``).

    Ctrl-C raises ``Interrupted`` after marking the manifest; finished parts stay.
    """
    opts, out = Options(**options), Path(out)
    shard, process = _slices(opts)
    dev = Devices.local(opts)  # before the folder is touched: a bad $SATBENCH_CONCURRENT changes nothing
    configs = exp.configs(profile)
    if shard is not None:
        configs = plan.shard_slice(configs, *shard)
    datasets = load_datasets(configs, opts.data_dir)
    ensure_folder(out)
    with lock.hold(out, shard), disk_full_is_one_line(out, configs):
        prepare_output(out, exp, profile, opts.fresh)
        cache_dir = enable_compilation_cache()
        done = store.finished_ids(out)
        todo = [c for c in configs if c.config_id not in done]
        groups = unfinished(plan.make_plan(configs, max_chunk=dev.max_chunk, n_devices=len(dev.devices),
                                           bucketing=opts.bucketing, memory_budget=dev.budget[0],
                                           concurrent=dev.concurrent, per_call=dev.devices[0].platform == "cpu"),
                            done)
        record = manifest.start(exp, profile, n_configs=len(configs), shard=shard, process=process,
                                devices=dev.devices, datasets=datasets, budget=dev.budget, max_chunk=dev.max_chunk,
                                cache_dir=cache_dir, concurrent=dev.concurrent)
        path = out / store.manifest_name(shard)
        record["groups"] = manifest.read_old(path, opts.fresh, record["spec_hash"])
        store.atomic_write_json(record, path)
        bar = tqdm(total=len(todo), unit="config", disable=not opts.progress, dynamic_ncols=True)
        background = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        compiler = concurrent.futures.ThreadPoolExecutor(max_workers=dev.concurrent,
                                                         thread_name_prefix="satbench-compile")
        ran = []  # this run's program records (the manifest also keeps a resumed run's earlier ones)
        try:
            # the mean-field solve compiles its own programs (seconds per activation): a second
            # thread does it while the first sweep program compiles (XLA releases the GIL)
            theory = background.submit(tables.theory_columns,
                                       pd.DataFrame([{"config_id": c.config_id, **c.values} for c in todo]))

            def write(chunk, rec, seconds):
                parts = tables.record_tables(prog, chunk, rec, exp.name, seconds, theory.result())
                store.write_part(out, _part_id(chunk), parts)

            arrays = device_datasets(groups, datasets, dev)
            # every program compiles ahead, ``dev.concurrent`` at a time (XLA compiles on one core,
            # releasing the GIL): later programs compile while earlier ones run
            ahead = collections.deque(
                compiler.submit(timed_compile, g.program, g.chunk_size, arrays[data_key(g.program)], dev.sharding)
                for g in groups)
            for group in groups:
                prog = group.program
                ran.append(run_group(group, arrays[data_key(prog)], dev, write, bar, ahead.popleft()))
                record["groups"].append(ran[-1])
                store.atomic_write_json(record, path)
        except KeyboardInterrupt:
            finished = _n_finished(out, configs)
            record.update(status="interrupted", interrupted=manifest.now(), n_finished=finished)
            store.atomic_write_json(record, path)
            raise Interrupted(out, finished, len(configs)) from None
        finally:
            compiler.shutdown(wait=False, cancel_futures=True)
            background.shutdown(wait=True, cancel_futures=True)
            bar.close()
        _merge(out, shard, process)
        waited, compile_s = sum(g["compile_wait_s"] for g in ran), sum(g["compile_s"] for g in ran)
        run_s = sum(g["run_s"] for g in ran)
        record.update(status="finished", finished=manifest.now(), compile_s=round(compile_s, 3),
                      compile_wait_s=round(waited, 3), run_s=round(run_s, 3))
        store.atomic_write_json(record, path)
        return SweepSummary(out, len(configs), len(configs) - len(todo), len(groups), waited, run_s, compile_s)


def _merge(out: Path, shard, process) -> None:
    """Consolidate the parts: a whole sweep at once; a distributed job's first process once every
    slice is written; shards leave it to ``load_results`` (others may still be running)."""
    if process is not None:
        dist.barrier("satbench-sweep-finished")
        if process[0] == 0:
            store.consolidate(out)
    elif shard is None:
        store.consolidate(out)
