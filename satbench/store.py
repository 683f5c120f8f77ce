"""The results folder: Parquet tables in long form, written so nothing is lost.

Layout of ``OUT/``::

    parts/<part_id>/{runs,layers,curves}.parquet   one folder per finished chunk
                                                   (+ spectra/histograms.parquet when probed)
    runs.parquet, layers.parquet, curves.parquet   all parts merged (written at the end)
    manifest.json                                  spec, versions, devices, timings
    figures/                                       PNG + PDF

A chunk's folder is built under a temporary name, fsynced and renamed into
place, so a part is either whole or absent; a config is finished exactly
when its part exists. A killed sweep resumes by skipping finished config
ids, and ``load_results`` merges the parts whether or not the final merge ran.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

TABLES = ("runs", "layers", "curves")
OPTIONAL_TABLES = ("spectra", "histograms")  # written only by sweeps that probe them
PARTS = "parts"
MANIFEST = "manifest.json"


@dataclasses.dataclass
class Results:
    """The tables of one results folder. ``with_config`` joins config fields on."""

    runs: pd.DataFrame
    layers: pd.DataFrame
    curves: pd.DataFrame
    spectra: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    histograms: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)

    def with_config(self, table: str, columns: list[str] | None = None) -> pd.DataFrame:
        """``table`` with the config fields of ``runs`` joined on config_id."""
        df = getattr(self, table)
        runs = self.runs if columns is None else self.runs[["config_id", *columns]]
        extra = [c for c in runs.columns if c == "config_id" or c not in df.columns]
        return df.merge(runs[extra], on="config_id", how="left")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_parquet_synced(df: pd.DataFrame, path: Path) -> None:
    df.to_parquet(path, index=False)
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def write_part(out: Path, part_id: str, tables: dict[str, pd.DataFrame]) -> Path:
    """Atomically add one finished chunk's tables as ``parts/<part_id>/``."""
    parts = Path(out) / PARTS
    parts.mkdir(parents=True, exist_ok=True)
    final = parts / part_id
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{part_id}-", dir=parts))
    try:
        for name, df in tables.items():
            _write_parquet_synced(df, tmp / f"{name}.parquet")
        _fsync_dir(tmp)
        if final.exists():  # the same chunk finished before: keep the first copy
            shutil.rmtree(tmp)
            return final
        os.rename(tmp, final)
        _fsync_dir(parts)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def remove_unfinished(out: Path, older_than_s: float = 3600.0) -> int:
    """Delete temporary part folders a killed sweep left behind; returns how many.

    Only old ones: another shard or process may be writing into the same folder now.
    """
    parts = Path(out) / PARTS
    if not parts.is_dir():
        return 0
    now = time.time()
    stale = [p for p in parts.iterdir()
             if p.name.startswith(".tmp-") and now - p.stat().st_mtime > older_than_s]
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)
    return len(stale)


def part_dirs(out: Path) -> list[Path]:
    parts = Path(out) / PARTS
    if not parts.is_dir():
        return []
    return sorted(p for p in parts.iterdir() if p.is_dir() and not p.name.startswith("."))


def finished_ids(out: Path) -> set[str]:
    """config_ids whose part has been written."""
    ids: set[str] = set()
    for part in part_dirs(out):
        ids.update(pd.read_parquet(part / "runs.parquet", columns=["config_id"])["config_id"])
    return ids


def _read_table(out: Path, name: str, required: bool = True) -> pd.DataFrame:
    parts = part_dirs(out)
    if parts:
        files = [p / f"{name}.parquet" for p in parts if (p / f"{name}.parquet").exists()]
        frames = [pd.read_parquet(f) for f in files]
        nonempty = [f for f in frames if len(f)]
        if nonempty:
            return pd.concat(nonempty, ignore_index=True)
        if frames:
            return frames[0]
    merged = Path(out) / f"{name}.parquet"
    if merged.exists():
        return pd.read_parquet(merged)
    if not required:
        return pd.DataFrame()
    raise FileNotFoundError(f"no satbench results in {out} (expected {PARTS}/ or {name}.parquet)")


def load_results(out) -> Results:
    """The tables of a results folder, merged over all finished parts."""
    out = Path(out)
    if not out.is_dir():
        raise FileNotFoundError(f"results folder not found: {out}")
    tables = {name: _read_table(out, name) for name in TABLES}
    spectra = _read_table(out, "spectra", required=False)
    histograms = _read_table(out, "histograms", required=False)
    runs = tables["runs"].drop_duplicates("config_id", keep="first")
    sort = lambda df, keys: df.sort_values(keys, kind="stable").reset_index(drop=True)  # noqa: E731
    spectra_keys = ["config_id", "step", "sample", "index"]
    histogram_keys = ["config_id", "step", "quantity", "layer", "bin"]
    return Results(
        runs=runs.reset_index(drop=True),
        layers=sort(tables["layers"].drop_duplicates(["config_id", "step", "layer"]), ["config_id", "step", "layer"]),
        curves=sort(tables["curves"].drop_duplicates(["config_id", "step"]), ["config_id", "step"]),
        spectra=sort(spectra.drop_duplicates(spectra_keys), spectra_keys) if len(spectra) else spectra,
        histograms=(sort(histograms.drop_duplicates(histogram_keys), histogram_keys)
                    if len(histograms) else histograms),
    )


def consolidate(out: Path) -> None:
    """Write the merged ``runs/layers/curves.parquet`` next to the parts (atomically)."""
    results = load_results(out)
    for name in TABLES + OPTIONAL_TABLES:
        df = getattr(results, name)
        if name in TABLES or len(df):
            atomic_write_parquet(df, Path(out) / f"{name}.parquet")


def atomic_write_parquet(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    _write_parquet_synced(df, tmp)
    os.replace(tmp, path)


def atomic_write_json(obj, path: Path) -> None:
    path = Path(path)
    tmp = path.with_name(f".tmp-{path.name}")
    with open(tmp, "w") as fh:
        json.dump(obj, fh, indent=2, default=str)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def manifest_name(shard: tuple[int, int] | None) -> str:
    """``manifest.json``, or one file per shard so shards never write the same file."""
    return MANIFEST if shard is None else f"manifest-shard-{shard[0]}-of-{shard[1]}.json"


def read_manifest(out: Path) -> dict | None:
    """The whole-sweep manifest, else any shard's (they share the spec)."""
    out = Path(out)
    candidates = [out / MANIFEST, *sorted(out.glob("manifest-shard-*.json"))] if out.is_dir() else []
    for path in candidates:
        if path.exists():
            return json.loads(path.read_text())
    return None


def clear(out: Path) -> None:
    """Remove satbench's own files from ``out`` (for ``--fresh``), nothing else."""
    out = Path(out)
    shutil.rmtree(out / PARTS, ignore_errors=True)
    for name in [*(f"{t}.parquet" for t in TABLES + OPTIONAL_TABLES), MANIFEST]:
        (out / name).unlink(missing_ok=True)
    for path in out.glob("manifest-shard-*.json"):
        path.unlink()
