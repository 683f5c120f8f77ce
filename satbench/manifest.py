"""The manifest of a results folder: what ran, how, on what, and how far it got.

One JSON file per sweep (per shard or process of a split sweep), rewritten atomically after
every compiled program, so an interrupted sweep shows how far it got and a rerun knows
whether its spec changed.
"""

from __future__ import annotations

import time
from pathlib import Path

from satbench import machine, spec, store


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def version_note(old: str | None, new: str) -> str | None:
    """A one-line warning when results were written by another satbench major.minor."""
    if not old or old.split(".")[:2] == new.split(".")[:2]:
        return None
    return (f"results there were written by satbench {old}, this is {new}; "
            "a resumed sweep mixes both (use --fresh to recompute)")


def read_old(path: Path, fresh: bool, spec_hash: str) -> list:
    """The program records of this slice's earlier manifest when it ran the same spec (a resumed
    sweep keeps them); a damaged manifest is one line (``OutputError``)."""
    from satbench.engine import OutputError

    try:
        old = store.read_json(path) if path.exists() else None
    except store.CorruptManifest as err:
        raise OutputError(str(err)) from None
    if old and not fresh and old.get("spec_hash") == spec_hash:
        return old.get("groups", [])
    return []


def start(exp: spec.Experiment, profile: str | None, *, n_configs: int, shard, process, devices, datasets: dict,
          budget: tuple, max_chunk: int, cache_dir, concurrent: int = 1) -> dict:
    """A new manifest of status "running"."""
    fixed, grid = exp.resolve(profile)
    return {
        "experiment": exp.name,
        "source": exp.source,
        "profile": profile,
        "shard": list(shard) if shard else None,
        "process": list(process) if process else None,
        "spec_hash": exp.spec_hash(profile),
        "spec": {"fixed": fixed, "grid": grid},
        "n_configs": n_configs,
        "versions": machine.versions(),
        "devices": [str(d) for d in devices],
        # name|preprocess|train_subset, and |seq_len for a sequence task
        "datasets": {"|".join(map(str, key if key[3:] and key[3] else key[:3])): {"source": ds.meta.get("source"), "preprocess": ds.meta["preprocess"],
                                               "n_train": len(ds.y_train), "n_test": len(ds.y_test)}
                     for key, ds in datasets.items()},
        "memory_budget": {"bytes_per_device": budget[0], "source": budget[1]},
        "max_chunk": max_chunk,
        "concurrent_calls": concurrent,
        "compilation_cache": str(cache_dir) if cache_dir else None,
        "started": now(),
        "status": "running",
        "groups": [],
    }


def group_record(label: str, group, size: int, n_chunks: int, halvings: int, compile_s: float,
                 run_s: float, concurrent: int, compile_wait_s: float) -> dict:
    """What one compiled program did: its depths, chunks, memory estimate and seconds."""
    prog = group.program
    return {
        "program": label, "layers": getattr(prog.arch, "layers", None), "masked": prog.masked,
        "per_call": list(prog.per_call),
        "depths": sorted({c["depth"] for c in group.configs}),
        "n_configs": len(group.configs), "chunk_size": size, "chunks": n_chunks,
        "planned_chunk_size": group.chunk_size, "oom_halvings": halvings, "concurrent_calls": concurrent,
        "bytes_per_config": group.config_bytes, "fixed_bytes": group.fixed_bytes,
        "budget_bytes": group.budget_bytes,
        "compile_s": round(compile_s, 3), "run_s": round(run_s, 3),
        "compile_wait_s": round(compile_wait_s, 3),
    }


