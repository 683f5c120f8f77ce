"""Regenerate the reference results of tests/test_regression_seam.py (this folder).

Run it against the checkout whose numbers are the reference, with that checkout's
``satbench`` first on the path, e.g. for an older commit::

    git worktree add --detach /tmp/baseline <commit>
    cd /tmp/baseline && PYTHONPATH=/tmp/baseline python /path/to/tests/data/regression/make_reference.py

It prints which ``satbench`` it imported; check that it is the checkout you meant. It writes, into
this script's folder (or ``--out DIR``):

* ``runs/layers/curves/spectra/histograms.parquet``: every profile of ``seam.toml`` (the base spec
  and each ``[profiles.NAME]``) run with ``engine.run_experiment`` (no figures, no progress bar,
  default planning), concatenated, with a ``profile`` column ("base" for the base spec); runs keeps
  config_id, a few describing fields and every result column (not the wall-clock ones); zstd Parquet.
* ``config_ids.json.gz`` (gzipped JSON, one line per profile; ``zcat`` to read): for every shipped
  experiment (``spec.known_experiments()``), its base spec ("base") and each of its profiles, the
  sorted config ids of ``spec.load(name).configs(profile)``.

Regenerate only on purpose (a deliberate change of numbers or ids), and say so in the commit.
The test does not import this script. The stored reference was generated at commit c3d0ac7; the
config ids of schoenholz2017 (which probes pairs since) and remedies (fixup and rezero added) were
replaced by their new ones on purpose at the commit that changed them.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEAM = HERE / "seam.toml"
BASE = "base"  # the key/label of the base spec (no profile)
TABLES = ("runs", "layers", "curves", "spectra", "histograms")
#: runs columns that are not results of the computation (wall clock, bookkeeping)
DROP_RUNS = ("time_per_step_s", "chunk_lanes", "experiment")
#: config fields kept in runs.parquet to make a failure readable (config_id determines them all)
DESCRIBE = ("activation", "init", "depth", "seed", "norm", "residual", "optimizer")


def seam_profiles(exp) -> list[str | None]:
    return [None, *exp.profiles]


def run_seam(out_root: Path) -> dict:
    """Every profile of seam.toml run into ``out_root/<profile>``; the tables concatenated."""
    import pandas as pd

    from satbench import engine, spec, store

    exp = spec.load(str(SEAM))
    parts = {t: [] for t in TABLES}
    for profile in seam_profiles(exp):
        label = profile or BASE
        out = out_root / label
        engine.run_experiment(exp, profile, out, progress=False)
        res = store.load_results(out)
        for t in TABLES:
            df = getattr(res, t)
            assert not df.empty, f"{label}: no {t} rows (the fixture must probe spectra and histograms)"
            parts[t].append(df.assign(profile=label))
    tables = {t: pd.concat(dfs, ignore_index=True) for t, dfs in parts.items()}
    runs = tables["runs"]
    results = [c for c in runs.columns if c not in spec.FIELDS and c not in DROP_RUNS and c != "config_id"]
    tables["runs"] = runs[["config_id", *DESCRIBE, *results]]
    return tables


def shipped_config_ids() -> dict:
    from satbench import spec

    out = {}
    for name in spec.known_experiments():
        exp = spec.load(name)
        assert BASE not in exp.profiles, f"{name}: a profile named {BASE!r} would clash with the base spec"
        out[name] = {(p or BASE): sorted(c.config_id for c in exp.configs(p)) for p in seam_profiles(exp)}
    return out


def format_ids(ids: dict) -> str:
    """JSON with one line per (experiment, profile): small, and a changed profile is a one-line diff."""
    lines = []
    for name in sorted(ids):
        inner = ",\n".join(f"  {json.dumps(p)}: {json.dumps(ids[name][p], separators=(',', ':'))}"
                           for p in sorted(ids[name]))
        lines.append(f" {json.dumps(name)}: {{\n{inner}\n }}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="where to write (default: this folder)")
    args = parser.parse_args(argv)
    os.environ.setdefault("SATBENCH_COMPILATION_CACHE", "0")
    import satbench

    root = Path(satbench.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    print(f"satbench imported from {satbench.__file__} (checkout commit {commit})", file=sys.stderr)

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tables = run_seam(Path(tmp))
    for t, df in tables.items():
        df.to_parquet(args.out / f"{t}.parquet", index=False, compression="zstd", compression_level=19)
        print(f"{t}: {len(df)} rows", file=sys.stderr)
    ids = shipped_config_ids()
    # gzip (mtime 0: the same ids give the same bytes): the plain JSON is ~250 kB of random hex
    with open(args.out / "config_ids.json.gz", "wb") as fh, gzip.GzipFile("config_ids.json", "wb", 9, fh, 0) as gz:
        gz.write(format_ids(ids).encode())
    print(f"config_ids.json.gz: {len(ids)} experiments, {sum(len(v) for v in ids.values())} profiles",
          file=sys.stderr)


if __name__ == "__main__":
    main()
