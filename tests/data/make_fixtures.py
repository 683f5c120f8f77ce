"""Regenerate the small stored results tables under ``tests/data/<experiment>/``.

``python tests/data/make_fixtures.py [NAME ...]`` runs, for each named shipped experiment (default:
all of FIXTURES), a tiny sweep of that experiment (its profile with the overrides below: few
configs, narrow nets, few steps) and writes the merged tables (runs, layers, curves, and spectra /
histograms where the sweep probes them) as zstd Parquet, nothing else. tests/test_figures.py draws
every figure script from them; the vanishing and signal_propagation tables are also where
tests/test_claims_fail.py checks those experiments' claims, so their overrides keep every claim
holding (the script checks that and refuses to write tables where one fails).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent

# name: (profile, overrides); a list overrides a grid axis, a scalar a fixed field
FIXTURES = {
    "vanishing": ("quick", dict(
        width=64, steps=40, log_every=10, probe_every=40,
        activation=["sigmoid", "tanh", "relu"], init=["gaussian", "he"], depth=[4, 8],
        sigma_w2=[0.25, 1.0, 4.0], seed=[0, 1])),
    "signal_propagation": ("quick", dict(
        width=128, probe_batch=64, jacobian_samples=1,
        activation=["tanh", "relu", "hard_tanh"], init=["gaussian", "orthogonal"],
        sigma_w2=[1.0, 1.76, 3.0], depth=[8, 16], seed=[0, 1])),
    "he2015": ("quick", dict(depth=10, width=32, steps=60, log_every=20, probe_every=60, seed=[0, 1])),
    "glorot2010": ("quick", dict(width=32, steps=40, log_every=20, probe_every=20, probe_batch=64,
                                 histogram_bins=12, seed=[0])),
    "schoenholz2017": ("quick", dict(width=16, steps=40, log_every=20, probe_every=40, depth=[10, 20],
                                     sigma_w2=[1.0, 1.75, 4.0], seed=[0])),
    "klambauer2017": ("quick", dict(width=32, depth=8, probe_batch=64, seed=[0, 1])),
    "klambauer2017_training": ("test", dict(width=16, steps=60, log_every=20, probe_every=60, seed=[0, 1])),
    "ioffe2015": ("quick", dict(width=16, steps=100, log_every=20, probe_every=20, seed=[0, 1])),
    "he2016": ("test", dict(width=16, steps=60, log_every=20, probe_every=60, depth=[4, 8], seed=[0, 1])),
    "remedies": ("quick", dict(width=16, steps=40, log_every=20, probe_every=40, depth=[4, 8],
                               remedy=["none", "batchnorm", "residual", "selu"], seed=[0])),
    "hanin2018": ("quick", dict(width=[16, 32], depth=[3, 5, 9], seed=list(range(6)))),
    "saxe2014": ("test", dict(width=16, steps=60, log_every=10, target_loss=1.0, depth=[2, 4, 8],
                              learning_rate=[0.02, 0.08],
                              seed=[0])),
    "pennington2017": ("test", dict(width=32, steps=45, log_every=15, target_loss=1.5, depth=[4, 8], jacobian_samples=1,
                                    learning_rate=[0.1])),
    "xiao2018": ("quick", dict(depth=32, init=["gaussian", "delta_orthogonal"], seed=[0, 1])),
    "xiao2018_isometry": ("quick", dict(depth=[4, 8], jacobian_samples=1, seed=[0])),
    "xiao2018_training": ("quick", dict(depth=6, channels=4, steps=20, log_every=10, probe_every=20, seed=[0])),
    "pascanu2013": ("test", dict(width=16, seq_len=12, steps=20, log_every=10, probe_batch=32,
                                 sigma_w2=[0.25, 4.0], seed=[0])),
    "hochreiter1997": ("quick", dict(width=8, seq_len=[10, 14], steps=20, log_every=10, probe_batch=32, seed=[0])),
    "zhang2019": ("test", dict(depth=120, width=8, steps=20, log_every=10, probe_every=20, probe_batch=32)),
    "martens2021": ("test", dict(width=16, depth=20, steps=40, log_every=20, probe_every=40, seed=[0])),
    "le2015": ("quick", dict(width=8, seq_len=[10, 14], steps=20, log_every=10, probe_batch=32, seed=[0])),
    "yang2019": ("test", dict(width=16, depth=[4, 8], steps=20, log_every=10, probe_every=20, probe_batch=[8, 32])),
    "schoenholz2017_dropout": ("test", dict(width=32, depth=12, pair_samples=8, probe_batch=16)),
    "yang2017": ("test", dict(width=32, depth=[8, 16], seed=[0])),
    "balduzzi2017": ("quick", dict(width=16, probe_batch=64, depth=[2, 8], seed=[0])),
    "noci2022": ("quick", dict(width=16, probe_batch=32, seed=[0])),
    "dong2021": ("quick", dict(width=16, depth=6, probe_batch=16, train_subset=16, seed=[0])),
    "xiong2020": ("quick", dict(width=16, depth=[2, 3], steps=20, log_every=10, probe_every=20, probe_batch=16,
                                batch_size=16, warmup_steps=[0, 10], seed=[0, 1])),
}

#: the fixtures whose claims tests/test_claims_fail.py checks on these tables
CLAIMS_HOLD = ("vanishing", "signal_propagation")
#: per table, the dtype of each column that Parquet without the Arrow schema reads back differently
DTYPES = "dtypes.json"


def tiny(name: str):
    """The shipped experiment ``name`` reduced to its fixture sweep (no profiles left)."""
    from satbench import spec

    exp = spec.load(name)
    profile, overrides = FIXTURES[name]
    fixed, grid = exp.resolve(profile)
    for key, value in overrides.items():
        if isinstance(value, list):
            grid[key] = value
            fixed.pop(key, None)
        else:
            fixed[key] = value
            grid.pop(key, None)
    return dataclasses.replace(exp, fixed=fixed, grid=grid, profiles={})


def claim_rows(exp, results) -> list[dict]:
    from satbench import plots

    rows = []
    for figure in exp.figures:
        module = plots.figure_module(figure)
        if hasattr(module, "claims"):
            rows += module.claims(results)
    return rows


def make(name: str) -> Path:
    from satbench import engine, store

    exp = tiny(name)
    with tempfile.TemporaryDirectory() as tmp:
        engine.run_experiment(exp, None, Path(tmp), progress=False)
        results = store.load_results(tmp)
    if name in CLAIMS_HOLD:
        failed = [r for r in claim_rows(exp, results) if not r["holds"]]
        if failed:
            raise SystemExit(f"{name}: claims fail on the fixture sweep, not written: {failed}")
    folder = HERE / name
    folder.mkdir(exist_ok=True)
    for old in [*folder.glob("*.parquet"), *folder.glob(DTYPES)]:
        old.unlink()
    dtypes = {}
    for table in store.TABLES + store.OPTIONAL_TABLES:
        df = getattr(results, table)
        if table in store.TABLES or len(df):
            path = folder / f"{table}.parquet"
            # no Arrow schema, statistics or dictionaries: they tripled the size of these small tables
            df.to_parquet(path, index=False, compression="zstd", compression_level=19, use_dictionary=False,
                          write_statistics=False, store_schema=False)
            back = pd.read_parquet(path)
            changed = {c: str(t) for c, t in df.dtypes.items() if back[c].dtype != t}
            if changed:  # without the schema nullable Int64 reads back as float64
                dtypes[table] = changed
    if dtypes:
        (folder / DTYPES).write_text(json.dumps(dtypes, indent=1, sort_keys=True) + "\n")
    return folder


def load(name: str):
    """The stored fixture tables of ``name`` as ``store.Results``, with their sweep's dtypes."""
    from satbench import store

    folder = HERE / name
    results = store.load_results(folder)
    path = folder / DTYPES
    for table, changed in (json.loads(path.read_text()) if path.exists() else {}).items():
        results = results.with_table(table, getattr(results, table).astype(changed))
    return results


def main(names: list[str]) -> None:
    for name in names or list(FIXTURES):
        folder = make(name)
        size = sum(p.stat().st_size for p in folder.iterdir())
        print(f"{name}: {len(list(folder.glob('*.parquet')))} tables, {size / 1024:.1f} KiB")
        for row in claim_rows(tiny(name), load(name)):
            print(f"  {'PASS' if row['holds'] else 'FAIL'}  {row['claim']}  [{row['measured']}]")


if __name__ == "__main__":
    main(sys.argv[1:])
