"""An on-disk cache of compiled sweep programs: a rerun of a sweep skips tracing and lowering too.

JAX's persistent compilation cache (``engine.enable_compilation_cache``) skips XLA's compile, but
every program is still traced and lowered to compute that cache's key: about 1.5 s per program on
2 cores, most of a warm rerun's compile time. Here the key is computed from what decides the
program without tracing it: the ``Program`` (every static field), the number of lanes, the
dataset's shapes, satbench's own source and the JAX/XLA build and device. The value is the
serialized executable (``jax.experimental.serialize_executable``).

Files live in ``<JAX compilation cache dir>/satbench-executables/`` and are trusted like JAX's own
cache (they are pickles: only the user writes there). A file that fails to load is deleted and the
program compiled again; a failure to save costs speed, never results.

Only an executable that XLA compiled in this process is saved. One that JAX loaded from its own
persistent cache (our key missed after a source change or upgrade, JAX's did not) serializes
without its machine code on XLA:CPU (jaxlib 0.10: 11 kB instead of 19 kB for a small program);
loading that file later fails at the first call ("NOT_FOUND: Function ... not found"), too late to
fall back. JAX reports every persistent-cache lookup as a monitoring event: a compile is saved
when it saw a miss and no hit (or JAX's cache is off), so an unknown or renamed event costs speed, never a crash.

jaxlib binds its LAPACK kernels (SVD, QR, eigh: orthogonal init, Jacobian spectra) on CPU while
lowering a program that uses one; an executable loaded in a fresh process skips lowering, and its
first SVD then calls an unbound kernel and crashes the process (SIGSEGV). ``load`` lowers a 1×1
SVD first, which binds them all.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import os
import pickle
from pathlib import Path

import jax
import jaxlib

SUBDIR = "satbench-executables"


@functools.lru_cache(maxsize=1)
def source_digest() -> str:
    """SHA-256 of satbench's Python source: any code change makes new programs."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def compiler_options(program) -> dict:
    """XLA options of a sweep program: on CPU, its family's LLVM optimisation level."""
    from satbench import families

    if jax.default_backend() != "cpu":
        return {}
    return {"xla_backend_optimization_level": families.of(program.arch).cpu_optimization_level}


def key(program, chunk: int, dataset) -> str:
    """The cache key of ``program`` compiled for ``chunk`` lanes over arrays shaped like ``dataset``."""
    device = jax.devices()[0]
    shapes = [(tuple(a.shape), str(a.dtype)) for a in jax.tree.leaves(dataset)]
    parts = (repr(program), chunk, shapes, jax.__version__, jaxlib.__version__, device.platform,
             device.device_kind, jax.device_count(), os.environ.get("XLA_FLAGS", ""), source_digest(),
             family_digest(program.arch), sorted(compiler_options(program).items()))
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def family_digest(arch) -> str:
    """Where a network comes from, for families outside satbench: the architecture's class by its
    full name and the source of the module that defines its ``Network`` (a plugin edited in place
    must not reuse its old executables)."""
    import inspect
    import sys

    from satbench import models

    cls = type(arch)
    network = models.network_class(arch)
    digest = hashlib.sha256(f"{cls.__module__}.{cls.__qualname__}|{network.__module__}.{network.__qualname__}".encode())
    module = sys.modules.get(network.__module__)
    try:
        digest.update(inspect.getsource(module).encode() if module is not None else b"")
    except (OSError, TypeError):  # defined in a notebook or an interpreter: no file to read
        digest.update(b"no-source")
    return digest.hexdigest()


def turned_off() -> bool:
    """``SATBENCH_COMPILATION_CACHE=0``: satbench's caches (its use of JAX's persistent cache and the
    executables beside it) are off."""
    return os.environ.get("SATBENCH_COMPILATION_CACHE", "1") == "0"


def cache_dir() -> Path | None:
    """Where executables live: beside JAX's compilation cache, and only when that cache is on and
    satbench's is not turned off (``turned_off``; JAX's own cache may still be on, set by
    ``JAX_COMPILATION_CACHE_DIR``)."""
    base = jax.config.jax_compilation_cache_dir
    if not base or turned_off():
        return None
    return Path(base) / SUBDIR


@functools.lru_cache(maxsize=1)
def bind_lapack() -> None:
    """Make jaxlib bind its CPU LAPACK kernels, as lowering any linear-algebra op does (≈ 20 ms)."""
    import jax.numpy as jnp

    jax.jit(lambda a: jnp.linalg.svd(a, compute_uv=False)).trace(jnp.ones((1, 1), jnp.float32)).lower(
        lowering_platforms=("cpu",))


def load(path: Path):
    """The executable saved at ``path``, or None (missing, or unreadable: then deleted)."""
    if not path.exists():
        return None
    bind_lapack()
    try:
        payload, in_tree, out_tree = pickle.loads(path.read_bytes())
        from jax.experimental.serialize_executable import deserialize_and_load

        return deserialize_and_load(payload, in_tree, out_tree)
    except Exception:  # noqa: BLE001 - a stale or truncated file is recompiled
        path.unlink(missing_ok=True)
        return None


def save(path: Path, compiled) -> bool:
    """Write ``compiled`` to ``path`` atomically; False if it could not be (nothing is left behind)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        from jax.experimental.serialize_executable import serialize

        blob = pickle.dumps(serialize(compiled))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(blob)
        os.replace(tmp, path)
        return True
    except Exception:  # noqa: BLE001 - an unwritable or unserializable program costs speed only
        tmp.unlink(missing_ok=True)
        return False


CACHE_HIT = "/jax/compilation_cache/cache_hits"
CACHE_MISS = "/jax/compilation_cache/cache_misses"
_cache_events: collections.Counter = collections.Counter()


def _count_cache_event(event: str, **_) -> None:
    if event in (CACHE_HIT, CACHE_MISS):
        _cache_events[event] += 1


@functools.lru_cache(maxsize=1)
def _listen_to_cache_events() -> None:
    jax.monitoring.register_event_listener(_count_cache_event)


def compile_fresh(compile_fn):
    """(``compile_fn()``, whether XLA compiled it here: JAX's persistent cache is off, or was
    asked and missed)."""
    _listen_to_cache_events()
    before = _cache_events.copy()
    compiled = compile_fn()
    seen = _cache_events - before
    asked = seen[CACHE_MISS] > 0 or jax.config.jax_compilation_cache_dir is None
    return compiled, asked and seen[CACHE_HIT] == 0


def load_or_compile(program, chunk: int, dataset, compile_fn):
    """``compile_fn()``'s executable, from the cache when an identical program was compiled before."""
    folder = cache_dir()
    if folder is None:
        return compile_fn()
    path = folder / f"{key(program, chunk, dataset)}.pkl"
    compiled = load(path)
    if compiled is None:
        compiled, fresh = compile_fresh(compile_fn)
        if fresh:  # never one JAX loaded from its cache: see the module docstring
            save(path, compiled)
    return compiled
