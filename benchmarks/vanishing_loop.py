"""satbench's vmapped sweep vs a per-config Python loop over the same JAX code.

The loop is what a researcher writes without satbench: ``jit(run)`` per
program shape (so it compiles as often as satbench does, but unbatched),
then one call per config. Both sides run the same configs of the
``vanishing`` experiment, compile included, with JAX's caches cleared
before each measurement; rounds alternate (A B A B) and medians are
reported, since this machine is shared and noisy.

    python -m benchmarks.vanishing_loop [--profile quick] [--repeats 3] [--limit N]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import jax
import numpy as np


def satbench_sweep(exp, profile, configs):
    from satbench import engine

    with tempfile.TemporaryDirectory() as out:
        sub = _subset_experiment(exp, configs)
        engine.run_experiment(sub, profile, Path(out), progress=False)


def _subset_experiment(exp, configs):
    """An Experiment object whose configs are exactly ``configs``."""
    import dataclasses

    class Subset(type(exp)):
        def configs(self, profile=None):  # noqa: D401 - same signature
            return configs

    return Subset(**{f.name: getattr(exp, f.name) for f in dataclasses.fields(exp)})


def per_config_loop(configs):
    from satbench import data, engine, plan, train

    programs = {}
    for cfg in configs:
        group = plan.make_plan([cfg], max_chunk=1, bucketing=False)[0]
        key = group.program
        if key not in programs:
            programs[key] = jax.jit(functools.partial(train.run, key))
        dataset = train.data_arrays(data.load(key.dataset, preprocess=key.preprocess,
                                                train_subset=key.train_subset))
        lane = jax.tree.map(lambda a: a[0], engine.lanes_for([cfg], key, 1))
        out = programs[key](lane, dataset)
        np.asarray(out.train_loss)  # to the host, one config at a time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="vanishing")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N configs")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from satbench import spec

    exp = spec.load(args.experiment)
    configs = exp.configs(args.profile)[: args.limit]
    times = {"satbench": [], "loop": []}
    for r in range(args.repeats):
        for name, fn in (("satbench", lambda: satbench_sweep(exp, args.profile, configs)),
                         ("loop", lambda: per_config_loop(configs))):
            jax.clear_caches()
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
            print(f"round {r + 1}: {name:<9} {times[name][-1]:7.1f} s", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    report = {
        "experiment": args.experiment, "profile": args.profile, "configs": len(configs),
        "cpu_count": os.cpu_count(), "devices": [str(d) for d in jax.devices()], "jax": jax.__version__,
        "seconds": times, "median_s": med, "speedup": med["loop"] / med["satbench"],
    }
    print(f"{len(configs)} configs: satbench {med['satbench']:.1f} s, per-config loop {med['loop']:.1f} s "
          f"(medians of {args.repeats}) -> satbench is {report['speedup']:.2f}x faster end to end")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
