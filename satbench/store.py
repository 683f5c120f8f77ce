"""The results folder: Parquet tables in long form, written so nothing is lost.

Layout of ``OUT/``::

    parts/<part_id>/{runs,layers,curves}.parquet   one folder per finished chunk
                                                   (+ a probed table's, e.g. spectra.parquet)
    runs.parquet, layers.parquet, curves.parquet   all parts merged (written at the end)
    manifest.json                                  spec, versions, devices, timings
    figures/                                       PNG + PDF

A chunk's folder is built under a temporary name, fsynced and renamed into
place, so a part is either whole or absent; a config is finished exactly
when its part exists. A killed sweep resumes by skipping finished config
ids, and ``load_results`` merges the parts whether or not the final merge ran.

Every Parquet file carries a CRC-32 checksum per page, verified on every read:
a part damaged on disk after it was written (bit rot, a bad copy) is moved
aside as ``parts/.corrupt-<part_id>-<time>`` with a one-line warning, and a rerun
computes its configs again instead of reading wrong numbers.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from satbench.probe_tables import PROBE_TABLES

TABLES = ("runs", "layers", "curves")
#: the columns that identify a row of each table (sorting, and de-duplicating a resumed sweep's parts)
KEYS = {"runs": ("config_id",), "layers": ("config_id", "step", "layer"), "curves": ("config_id", "step"),
        **{name: t.keys for name, t in PROBE_TABLES.items()}}
OPTIONAL_TABLES = tuple(PROBE_TABLES)  # written only by sweeps that probe them
PARTS = "parts"
MANIFEST = "manifest.json"


@dataclasses.dataclass
class Results:
    """The tables of one results folder. ``with_config`` joins config fields on."""

    runs: pd.DataFrame
    layers: pd.DataFrame
    curves: pd.DataFrame
    probed: dict[str, pd.DataFrame] = dataclasses.field(default_factory=dict)  # OPTIONAL_TABLES by name

    def __getattr__(self, name):
        """A probed table by name (``results.spectra``), empty where the sweep did not probe it."""
        if name in OPTIONAL_TABLES:
            return self.__dict__.get("probed", {}).get(name, pd.DataFrame())
        raise AttributeError(f"Results has no table {name!r}")

    def with_table(self, name: str, df: pd.DataFrame) -> "Results":
        """A copy with table ``name`` replaced by ``df``."""
        if name in OPTIONAL_TABLES:
            return dataclasses.replace(self, probed={**self.probed, name: df})
        return dataclasses.replace(self, **{name: df})

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
    df.to_parquet(path, index=False, write_page_checksum=True)
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def is_disk_full(err: BaseException) -> bool:
    """Whether ``err`` says the disk (or the user's quota) is full."""
    return isinstance(err, OSError) and (err.errno in (errno.ENOSPC, errno.EDQUOT)
                                         or "No space left on device" in str(err))


class CorruptFile(OSError):
    """A Parquet file that fails its page checksums or cannot be decoded."""


def read_parquet(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """A Parquet table, its page checksums verified (files written before checksums read as is)."""
    try:
        table = pq.read_table(path, columns=columns, page_checksum_verification=True)
    except (OSError, pa.ArrowException) as err:
        if isinstance(err, (FileNotFoundError, PermissionError)):
            raise
        raise CorruptFile(f"{path}: {' '.join(str(err).split())[:200]}") from None
    return table.to_pandas()


def verify_part(part: Path) -> str | None:
    """None if every table of ``part`` reads back with valid checksums, else what failed."""
    for path in sorted(part.glob("*.parquet")):
        try:
            read_parquet(path)
        except CorruptFile:
            return path.name
    if not (part / "runs.parquet").exists():
        return "runs.parquet missing"
    return None


def quarantine_corrupt_parts(out: Path) -> list[str]:
    """Move every part that fails verification to ``parts/.corrupt-<id>-<time>`` (kept for inspection,
    ignored by readers, so its configs count as unfinished); one warning line per part."""
    notes = []
    for part in part_dirs(out):
        problem = verify_part(part)
        if problem is None:
            continue
        target = part.with_name(f".corrupt-{part.name}-{int(time.time())}")
        os.rename(part, target)
        notes.append(f"{part}: {problem} failed its checksum; moved to {target.name}, "
                     "its configs will be computed again")
    return notes


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
    """config_ids whose part has been written (a part that fails its checksums is unfinished)."""
    ids: set[str] = set()
    for part in part_dirs(out):
        try:
            ids.update(read_parquet(part / "runs.parquet", columns=["config_id"])["config_id"])
        except CorruptFile:
            continue
    return ids


def _read_parts(out: Path, names: tuple[str, ...]) -> dict[str, list[pd.DataFrame]]:
    """Each table's frames over the finished parts; a part that fails its checksums is skipped
    whole (with one warning line), so the tables never mix a part's runs with another's layers."""
    frames: dict[str, list[pd.DataFrame]] = {name: [] for name in names}
    for part in part_dirs(out):
        try:
            tables = {name: read_parquet(part / f"{name}.parquet") for name in names
                      if (part / f"{name}.parquet").exists()}
        except CorruptFile as err:
            sys.stderr.write(f"satbench: warning: {err}; part skipped (a rerun of the sweep "
                             "computes its configs again)\n")
            continue
        for name, df in tables.items():
            frames[name].append(df)
    return frames


def _merge(out: Path, name: str, frames: list[pd.DataFrame], from_parts: bool, required: bool) -> pd.DataFrame:
    if from_parts:
        nonempty = [f for f in frames if len(f)]
        if nonempty:
            return pd.concat(nonempty, ignore_index=True)
        if frames:
            return frames[0]
    merged = Path(out) / f"{name}.parquet"
    if merged.exists():
        return read_parquet(merged)
    if not required:
        return pd.DataFrame()
    raise FileNotFoundError(f"no satbench results in {out} (expected {PARTS}/ or {name}.parquet)")


def load_results(out) -> Results:
    """The tables of a results folder, merged over all finished parts."""
    out = Path(out)
    if not out.is_dir():
        raise FileNotFoundError(f"results folder not found: {out}")
    from_parts = bool(part_dirs(out))
    frames = _read_parts(out, TABLES + OPTIONAL_TABLES) if from_parts else {}
    tables = {name: _merge(out, name, frames.get(name, []), from_parts, name in TABLES)
              for name in TABLES + OPTIONAL_TABLES}
    tables["runs"] = tables["runs"].drop_duplicates("config_id", keep="first").reset_index(drop=True)
    for name in TABLES[1:] + OPTIONAL_TABLES:
        df, keys = tables[name], list(KEYS[name])
        if len(df):
            tables[name] = df.drop_duplicates(keys).sort_values(keys, kind="stable").reset_index(drop=True)
    return Results(*(tables[name] for name in TABLES), probed={name: tables[name] for name in OPTIONAL_TABLES})


def consolidate(out: Path) -> None:
    """Write the merged ``runs/layers/curves.parquet`` next to the parts (atomically)."""
    results = load_results(out)
    for name in TABLES + OPTIONAL_TABLES:
        df = getattr(results, name)
        if name in TABLES or len(df):
            atomic_write_parquet(df, Path(out) / f"{name}.parquet")


def _replace_atomically(path: Path, write) -> None:
    """``write(tmp)`` then rename over ``path``; on any failure (a full disk) no temporary is left."""
    tmp = Path(path).with_name(f".tmp-{Path(path).name}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_parquet(df: pd.DataFrame, path: Path) -> None:
    _replace_atomically(path, lambda tmp: _write_parquet_synced(df, tmp))


def atomic_write_json(obj, path: Path) -> None:
    def write(tmp):
        with open(tmp, "w") as fh:
            json.dump(obj, fh, indent=2, default=str)
            fh.flush()
            os.fsync(fh.fileno())

    _replace_atomically(path, write)


def manifest_name(shard: tuple[int, int] | None) -> str:
    """``manifest.json``, or one file per shard so shards never write the same file."""
    return MANIFEST if shard is None else f"manifest-shard-{shard[0]}-of-{shard[1]}.json"


class CorruptManifest(ValueError):
    """A manifest that is not valid JSON (one line: where, what to do)."""


def read_json(path: Path) -> dict:
    try:
        value = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CorruptManifest(f"{path}: not valid JSON ({err}); delete it, or use --fresh to replace "
                              "the folder's results") from None
    if not isinstance(value, dict):
        raise CorruptManifest(f"{path}: not a satbench manifest; delete it, or use --fresh")
    return value


def read_manifest(out: Path) -> dict | None:
    """The whole-sweep manifest, else any shard's (they share the spec)."""
    out = Path(out)
    candidates = [out / MANIFEST, *sorted(out.glob("manifest-shard-*.json"))] if out.is_dir() else []
    for path in candidates:
        if path.exists():
            return read_json(path)
    return None


def clear(out: Path) -> None:
    """Remove satbench's own files from ``out`` (for ``--fresh``), nothing else."""
    out = Path(out)
    shutil.rmtree(out / PARTS, ignore_errors=True)
    for name in [*(f"{t}.parquet" for t in TABLES + OPTIONAL_TABLES), MANIFEST]:
        (out / name).unlink(missing_ok=True)
    for path in out.glob("manifest-shard-*.json"):
        path.unlink()
