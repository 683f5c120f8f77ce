"""The recurrent workload: satbench against the per-config loops a researcher writes for RNNs.

A sweep of vanilla tanh RNNs and LSTMs on the adding problem (T = 50, one layer of 64 units, batch 32,
SGD, recurrent gain σ_w² × seeds), run end to end by

- ``satbench``: the sweep as an experiment (one compiled program per cell, lanes vmapped);
- ``jax-loop``: the cells written out in plain JAX (nothing from satbench), steps under ``lax.scan``,
  one ``jit`` per cell, a Python loop over the cell's configs;
- ``torch-loop``: ``nn.RNN`` / ``nn.LSTM`` and a ``Linear`` readout, a Python loop over configs and steps.

Each system runs in a fresh process (imports, data, compiles and all), ``--repeats`` times in turn
(``benchmarks/fresh_process.py``); the report gives medians and the ratios of the loops' times to
satbench's. Before anything is timed, the systems are checked against each other from identical
weights: satbench's initial weights and minibatch indices (rebuilt from its seed as ``train.run``
draws them) are fed to both loops, and the final training losses of all three must agree to ``RTOL``,
the loops' per-step losses to each other too.

    python -m benchmarks.recurrent [--repeats 2] [--out benchmarks/results/recurrent] [--tiny]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from benchmarks import fresh_process

RTOL = 1e-3
CELLS = ("rnn", "lstm")
SYSTEMS = ("satbench", "satbench-warm", "jax-loop", "torch-loop")
GATES = {"rnn": 1, "lstm": 4}
WORKLOAD = dict(seq_len=50, width=64, batch_size=32, steps=500, learning_rate=0.01,
                sigma_w2=(0.5, 1.0, 2.0), seeds=(0, 1, 2, 3))
TINY = dict(WORKLOAD, seq_len=10, width=16, steps=20, sigma_w2=(1.0,), seeds=(0, 1))
EVAL = 2048  # satbench's final train loss covers the first min(2048, n_train) training sequences


def spec_text(wl: dict) -> str:
    return f"""
[experiment]
name = "recurrent_benchmark"
[fixed]
dataset = "adding"
seq_len = {wl['seq_len']}
width = {wl['width']}
batch_size = {wl['batch_size']}
steps = {wl['steps']}
log_every = {wl['steps']}
learning_rate = {wl['learning_rate']}
optimizer = "sgd"
init = "gaussian"
recurrent_init = "gaussian"
sigma_b2 = 0.0
[grid]
model = {list(CELLS)}
sigma_w2 = {list(wl['sigma_w2'])}
seed = {list(wl['seeds'])}
"""


def adding_arrays(seq_len: int):
    from satbench import data

    ds = data.load("adding", seq_len=seq_len)
    return ds.x_train.reshape(len(ds.x_train), seq_len, -1), ds.y_train


# ------------------------------------------------------------------------- the plain-JAX loop
def jax_cell_loss(cell: str):
    """(params, x, y) -> MSE of the cell over the sequence, the readout on the last state."""
    import jax
    import jax.numpy as jnp

    def loss(p, x, y):
        h0 = jnp.zeros((x.shape[0], p["w"].shape[0]))

        def step(carry, x_t):
            pre = x_t @ p["u"] + carry[0] @ p["w"] + p["b"]
            if cell == "rnn":
                h = jnp.tanh(pre)
                return (h, carry[1]), None
            i, f, g, o = jnp.split(pre, 4, axis=-1)
            c = jax.nn.sigmoid(f) * carry[1] + jax.nn.sigmoid(i) * jnp.tanh(g)
            return (jax.nn.sigmoid(o) * jnp.tanh(c), c), None

        (h, _), _ = jax.lax.scan(step, (h0, h0), jnp.swapaxes(x, 0, 1))
        return jnp.mean(((h @ p["w_out"] + p["b_out"])[:, 0] - y) ** 2)

    return loss


def jax_train(cell: str, lr: float):
    """jit(params, x, y, idx (steps, batch)) -> (per-step losses, final loss on the first EVAL)."""
    import jax

    loss = jax_cell_loss(cell)

    def train(p, x, y, idx):
        def sgd(p, i):
            value, g = jax.value_and_grad(loss)(p, x[i], y[i])
            return jax.tree.map(lambda a, b: a - lr * b, p, g), value

        p, losses = jax.lax.scan(sgd, p, idx)
        return losses, loss(p, x[:EVAL], y[:EVAL])

    return jax.jit(train)


def jax_init(cell: str, seed: int, sigma_w2: float, features: int, width: int):
    """The loop's own init: U ~ N(0, 1/F), W ~ N(0, σ_w²/n), zero biases, readout N(0, 1/n)."""
    import jax
    import jax.numpy as jnp

    k = jax.random.split(jax.random.key(seed), 3)
    g = GATES[cell] * width
    return {"u": jax.random.normal(k[0], (features, g)) / jnp.sqrt(features),
            "w": jax.random.normal(k[1], (width, g)) * jnp.sqrt(sigma_w2 / width), "b": jnp.zeros(g),
            "w_out": jax.random.normal(k[2], (width, 1)) / jnp.sqrt(width), "b_out": jnp.zeros(1)}


def batch_indices(seed: int, steps: int, batch: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, (steps, batch))


def run_jax_loop(wl: dict) -> None:
    import jax.numpy as jnp

    x, y = adding_arrays(wl["seq_len"])
    x, y = jnp.asarray(x), jnp.asarray(y)
    for cell in CELLS:
        train = jax_train(cell, wl["learning_rate"])
        for sw2 in wl["sigma_w2"]:
            for seed in wl["seeds"]:
                p = jax_init(cell, seed, sw2, x.shape[-1], wl["width"])
                idx = jnp.asarray(batch_indices(seed, wl["steps"], wl["batch_size"], len(x)))
                train(p, x, y, idx)[1].block_until_ready()


# ------------------------------------------------------------------------------ the PyTorch loop
def torch_model(cell: str, features: int, width: int):
    import torch

    rnn = (torch.nn.RNN(features, width, nonlinearity="tanh", batch_first=True) if cell == "rnn"
           else torch.nn.LSTM(features, width, batch_first=True))
    return torch.nn.ModuleDict({"rnn": rnn, "out": torch.nn.Linear(width, 1)})


def torch_set(model, p: dict) -> None:
    """Load (u, w, b, w_out, b_out) in satbench's x @ U layout into nn.RNN / nn.LSTM (gate order i, f, g, o
    is the same); the hidden-side bias is zero and frozen (its gradient would double the bias's step)."""
    import torch

    def tensor(a):
        return torch.as_tensor(np.array(a, np.float32))  # a writable float32 copy

    with torch.no_grad():
        model["rnn"].weight_ih_l0.copy_(tensor(p["u"]).T)
        model["rnn"].weight_hh_l0.copy_(tensor(p["w"]).T)
        model["rnn"].bias_ih_l0.copy_(tensor(p["b"]))
        model["rnn"].bias_hh_l0.zero_()
        model["out"].weight.copy_(tensor(p["w_out"]).T)
        model["out"].bias.copy_(tensor(p["b_out"]))
    model["rnn"].bias_hh_l0.requires_grad_(False)  # one bias per gate, as the other systems have


def torch_train(model, x, y, idx, lr: float):
    """Per-step losses and the final loss on the first EVAL sequences."""
    import torch

    opt = torch.optim.SGD(model.parameters(), lr=lr)

    def loss_of(xb, yb):
        states, _ = model["rnn"](xb)
        return torch.mean((model["out"](states[:, -1])[:, 0] - yb) ** 2)

    losses = []
    for i in idx:
        opt.zero_grad()
        value = loss_of(x[i], y[i])
        value.backward()
        opt.step()
        losses.append(value.detach())
    with torch.no_grad():
        final = loss_of(x[:EVAL], y[:EVAL])
    return torch.stack(losses).numpy(), float(final)


def run_torch_loop(wl: dict) -> None:
    import torch

    torch.manual_seed(0)
    x, y = adding_arrays(wl["seq_len"])
    x, y = torch.as_tensor(np.array(x)), torch.as_tensor(np.array(y))
    for cell in CELLS:
        for sw2 in wl["sigma_w2"]:
            for seed in wl["seeds"]:
                model = torch_model(cell, x.shape[-1], wl["width"])
                p = numpy_init(cell, seed, sw2, x.shape[-1], wl["width"])
                torch_set(model, p)
                torch_train(model, x, y, torch.as_tensor(batch_indices(seed, wl["steps"], wl["batch_size"], len(x))),
                            wl["learning_rate"])


def numpy_init(cell: str, seed: int, sigma_w2: float, features: int, width: int) -> dict:
    """The PyTorch loop's init, in numpy (its worker imports no jax), by the JAX loop's rules."""
    rng = np.random.default_rng(seed)
    g = GATES[cell] * width
    return {"u": rng.normal(size=(features, g)) / np.sqrt(features),
            "w": rng.normal(size=(width, g)) * np.sqrt(sigma_w2 / width), "b": np.zeros(g),
            "w_out": rng.normal(size=(width, 1)) / np.sqrt(width), "b_out": np.zeros(1)}


# ---------------------------------------------------------------------------------- satbench
def run_satbench(wl: dict, out: Path) -> None:
    from satbench import engine, spec

    engine.run_experiment(spec.parse(spec_text(wl)), None, out, progress=False, fresh=True)


# ----------------------------------------------------------------------------- the cross-check
def satbench_start(cell: str, seed: int, sigma_w2: float, wl: dict, n_train: int):
    """satbench's initial weights of one config (as x @ U arrays) and its minibatch indices, rebuilt
    from the seed exactly as ``train.run`` draws them."""
    import jax
    from flax import nnx

    from satbench import models, plan, spec, train

    (cfg,) = [c for c in spec.parse(spec_text(wl)).configs()
              if c["model"] == cell and c["seed"] == seed and c["sigma_w2"] == sigma_w2]
    group = next(g for g in plan.make_plan([cfg]))
    arch = group.program.arch
    lane = train.one_lane(arch, **{k: cfg[k] for k in spec.lane_fields()})
    key = jax.random.key(seed, impl=train.PRNG_IMPL)
    init_key, batch_key = jax.random.split(key)
    _, params = models.init_state(arch, init_key, sigma_w2, cfg["sigma_b2"], lane["init_index"], lane=lane)
    p = nnx.to_pure_dict(params)
    weights = {"u": p["u_first"], "w": p["w_rec"][0], "b": p["b"][0], "w_out": p["w_out"], "b_out": p["b_out"]}
    idx = np.stack([np.asarray(jax.random.randint(jax.random.fold_in(batch_key, s), (wl["batch_size"],), 0, n_train))
                    for s in range(wl["steps"])])
    return {k: np.asarray(v) for k, v in weights.items()}, idx


def crosscheck(wl: dict, out: Path) -> dict:
    """Final train losses of satbench, the JAX loop and the PyTorch loop from satbench's weights and
    indices (one config per cell), and the loops' per-step losses against each other."""
    import jax.numpy as jnp
    import pandas as pd
    import torch

    run_satbench(wl, out)
    runs = pd.read_parquet(out / "runs.parquet")
    x, y = adding_arrays(wl["seq_len"])
    report = {}
    for cell in CELLS:
        seed, sw2 = wl["seeds"][-1], wl["sigma_w2"][len(wl["sigma_w2"]) // 2]
        p, idx = satbench_start(cell, seed, sw2, wl, len(x))
        losses_jax, final_jax = jax_train(cell, wl["learning_rate"])(
            {k: jnp.asarray(v) for k, v in p.items()}, jnp.asarray(x), jnp.asarray(y), jnp.asarray(idx))
        model = torch_model(cell, x.shape[-1], wl["width"])
        torch_set(model, p)
        losses_torch, final_torch = torch_train(model, torch.as_tensor(np.array(x)), torch.as_tensor(np.array(y)),
                                                torch.as_tensor(idx),
                                                wl["learning_rate"])
        row = runs[(runs["model"] == cell) & (runs["seed"] == seed) & (runs["sigma_w2"] == sw2)].iloc[0]
        errors = {"satbench_vs_jax": abs(row["final_loss"] / float(final_jax) - 1),
                  "torch_vs_jax": abs(final_torch / float(final_jax) - 1),
                  "torch_vs_jax_per_step": float(np.max(np.abs(losses_torch / np.asarray(losses_jax) - 1)))}
        report[cell] = {"final_loss": {"satbench": float(row["final_loss"]), "jax-loop": float(final_jax),
                                       "torch-loop": final_torch}, "relative_error": errors}
        bad = {k: v for k, v in errors.items() if not v <= RTOL}
        if bad:
            raise SystemExit(f"cross-check failed for {cell}: {bad} (rtol {RTOL})")
    return report


# ------------------------------------------------------------------------------------ timing
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/recurrent"))
    parser.add_argument("--tiny", action="store_true", help="a seconds-long run (checks the script)")
    parser.add_argument("--system", choices=("satbench", "jax-loop", "torch-loop"))
    parser.add_argument("--workload", choices=("full", "tiny"), default="full")
    args = parser.parse_args(argv)
    wl_name = "tiny" if args.tiny else args.workload
    wl = TINY if wl_name == "tiny" else WORKLOAD
    if args.system:  # a worker: one system, end to end, in this fresh process
        if args.system == "jax-loop":
            run_jax_loop(wl)
        elif args.system == "torch-loop":
            import torch

            torch.set_num_threads(len(os.sched_getaffinity(0)))
            run_torch_loop(wl)
        else:
            run_satbench(wl, fresh_process.out_dir())
        fresh_process.write_phases({})  # no phases of its own: the report keeps wall seconds only
        return
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        report = {"workload": {k: list(v) if isinstance(v, tuple) else v for k, v in wl.items()},
                  "cells": list(CELLS), "crosscheck": crosscheck(wl, Path(tmp) / "check")}
        runs = fresh_process.rounds("benchmarks.recurrent", SYSTEMS, wl_name, args.repeats, Path(tmp))
    seconds = {s: [r["wall_s"] for r in rows] for s, rows in runs.items()}
    medians = {s: m["wall_s"] for s, m in fresh_process.summarise(runs).items()}
    report.update(seconds=seconds, median_s=medians,
                  loop_over_satbench={peer: medians[peer] / medians["satbench"] for peer in ("jax-loop", "torch-loop")},
                  loop_over_satbench_warm={peer: medians[peer] / medians["satbench-warm"]
                                           for peer in ("jax-loop", "torch-loop")})
    (args.out / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({k: report[k] for k in ("median_s", "loop_over_satbench", "loop_over_satbench_warm")}, indent=2))
    for cell, row in report["crosscheck"].items():
        print(cell, "final losses", row["final_loss"], "relative errors", row["relative_error"])


if __name__ == "__main__":
    main()
