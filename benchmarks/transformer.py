"""The transformer workload: satbench against the per-config loops a researcher writes for a small
transformer encoder.

A sweep of pre-LN transformers on ``seq_digits`` (each 8×8 digit read as 8 row tokens of 8 pixels, 10
classes, read out from the mean token): width 64, 4 heads, an MLP of 4·width GELU units per block,
depths 2 and 4, SGD, σ_w² × seeds, run end to end by

- ``satbench``: the sweep as an experiment (``model = "transformer"``; one compiled program per depth
  unless the planner pads one into the other, lanes vmapped);
- ``jax-loop``: the same net written out in plain JAX (nothing from satbench): LayerNorm, multi-head
  attention, the MLP, sinusoidal positions, mean pool, readout; steps under ``lax.scan``, one ``jit``
  per depth (compiled ahead with ``lower().compile()``, so its compile is timed apart), a Python loop
  over the configs;
- ``torch-loop``: the same net as plain ``nn.Module`` code, ``torch.optim.SGD``, Python loops over
  configs and steps, ``torch.set_num_threads`` to the cores (or ``--torch-threads``);
- ``torch-vmap``: the same modules, per depth every config's parameters stacked and trained side by
  side with ``torch.func.vmap(grad_and_value(functional_call ...))``, SGD on the stacked tensors.

Each system runs in a fresh process (imports, data, compiles and all), ``--repeats`` times in turn
(``benchmarks/fresh_process.py``); the report gives medians, the ratios of the loops' times to
satbench's, and each process's own phases (satbench's compile and run seconds from its sweep summary
and manifest, the JAX loop's compile and run).
Before anything is timed, the systems are checked against each other from identical weights: for one
config per depth, satbench's initial weights and minibatch indices (rebuilt from its seed as
``train.run`` draws them) are fed to the three peers, and the final training losses of all four must
agree to ``RTOL``, the PyTorch peers' per-step losses to the JAX loop's too; otherwise the script exits
non-zero.

    python -m benchmarks.transformer [--repeats 2] [--out benchmarks/results/transformer] [--tiny]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import fresh_process

RTOL = 1e-3
WORKLOAD = dict(depths=(2, 4), width=64, heads=4, activation="gelu", batch_size=32, steps=200,
                learning_rate=0.05, sigma_w2=(0.5, 2.0), seeds=(0, 1, 2, 3))
TINY = dict(WORKLOAD, depths=(2,), width=16, steps=10, sigma_w2=(1.0,), seeds=(0, 1))
SEQ_LEN = 8  # seq_digits: 8 row tokens of 8 pixels
EVAL = 2048  # satbench's final train loss covers the first min(2048, n_train) training examples
MLP_RATIO = 4  # hidden units of a block's MLP per model unit
LN_EPS = 1e-5  # added to the variance inside the square root, as satbench's LayerNorm does
SYSTEMS = ("satbench", "satbench-warm", "jax-loop", "torch-loop", "torch-vmap")
PEERS = ("jax-loop", "torch-loop", "torch-vmap")


def spec_text(wl: dict, depths=None, sigma_w2=None, seeds=None) -> str:
    """The workload as a satbench experiment (a sub-grid for the cross-check)."""
    return f"""
[experiment]
name = "transformer_benchmark"
[fixed]
model = "transformer"
dataset = "seq_digits"
width = {wl['width']}
heads = {wl['heads']}
ln = "pre"
activation = "{wl['activation']}"
batch_size = {wl['batch_size']}
steps = {wl['steps']}
log_every = {wl['steps']}
learning_rate = {wl['learning_rate']}
optimizer = "sgd"
init = "gaussian"
sigma_b2 = 0.0
[grid]
depth = {list(depths or wl['depths'])}
sigma_w2 = {list(sigma_w2 or wl['sigma_w2'])}
seed = {list(seeds or wl['seeds'])}
"""


def digits_arrays():
    """seq_digits' training set as (n, T, F) float32 tokens and int labels (satbench's preprocessing)."""
    from satbench import data

    ds = data.load("seq_digits")
    return ds.x_train.reshape(len(ds.x_train), SEQ_LEN, -1), ds.y_train


def sinusoids(seq_len: int, width: int) -> np.ndarray:
    """(T, d) positions: sin(t / 10000^(2i/d)) in feature 2i, cos in feature 2i + 1."""
    t = np.arange(seq_len, dtype=np.float32)[:, None]
    freq = np.float32(10000.0) ** (-(np.arange(width) // 2 * 2).astype(np.float32) / np.float32(width))
    angle = t * freq[None, :]
    return np.where(np.arange(width) % 2 == 0, np.sin(angle), np.cos(angle)).astype(np.float32)


def batch_indices(seed: int, steps: int, batch: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, (steps, batch))


def numpy_init(seed: int, sigma_w2: float, depth: int, n_in: int, n_out: int, width: int) -> dict:
    """The loops' own init, by satbench's rules: W ~ N(0, σ_w²/fan_in) except W_Q, W_K ~ N(0, 1/d)
    (qk_sigma2 = 1), zero biases, LayerNorm scale 1 and shift 0. Per-block weights are lists."""
    rng = np.random.default_rng(seed)
    h = MLP_RATIO * width

    def w(fan_in, fan_out, gain):
        return (rng.normal(size=(fan_in, fan_out)) * np.sqrt(gain / fan_in)).astype(np.float32)

    blocks = [{"w_q": w(width, width, 1.0), "w_k": w(width, width, 1.0), "w_v": w(width, width, sigma_w2),
               "w_o": w(width, width, sigma_w2), "w_mlp1": w(width, h, sigma_w2),
               "b_mlp1": np.zeros(h, np.float32), "w_mlp2": w(h, width, sigma_w2),
               "b_mlp2": np.zeros(width, np.float32), "ln1_scale": np.ones(width, np.float32),
               "ln1_shift": np.zeros(width, np.float32), "ln2_scale": np.ones(width, np.float32),
               "ln2_shift": np.zeros(width, np.float32)} for _ in range(depth)]
    return {"w_in": w(n_in, width, sigma_w2), "b_in": np.zeros(width, np.float32), "blocks": blocks,
            "final_scale": np.ones(width, np.float32), "final_shift": np.zeros(width, np.float32),
            "w_out": w(width, n_out, sigma_w2), "b_out": np.zeros(n_out, np.float32)}


# ------------------------------------------------------------------------- the plain-JAX loop
def jax_logits(p, x, heads: int, activation: str):
    """Pre-LN transformer: tokens x (batch, T, F) -> logits (batch, classes). Blocks unrolled."""
    import jax
    import jax.numpy as jnp

    phi = {"gelu": lambda v: jax.nn.gelu(v, approximate=False), "tanh": jnp.tanh, "relu": jax.nn.relu}[activation]

    def norm(v, scale, shift):
        mu, var = v.mean(-1, keepdims=True), v.var(-1, keepdims=True)
        return (v - mu) / jnp.sqrt(var + LN_EPS) * scale + shift

    def attend(v, blk):
        b, t, d = v.shape
        heads_of = lambda m: (v @ m).reshape(b, t, heads, d // heads).transpose(0, 2, 1, 3)  # noqa: E731
        q, k, val = heads_of(blk["w_q"]), heads_of(blk["w_k"]), heads_of(blk["w_v"])
        weights = jax.nn.softmax(q @ k.transpose(0, 1, 3, 2) / jnp.sqrt(d // heads), axis=-1)
        return (weights @ val).transpose(0, 2, 1, 3).reshape(b, t, d) @ blk["w_o"]

    h = x @ p["w_in"] + p["b_in"] + jnp.asarray(sinusoids(x.shape[1], p["w_in"].shape[1]))
    for blk in p["blocks"]:
        h = h + attend(norm(h, blk["ln1_scale"], blk["ln1_shift"]), blk)
        hidden = phi(norm(h, blk["ln2_scale"], blk["ln2_shift"]) @ blk["w_mlp1"] + blk["b_mlp1"])
        h = h + hidden @ blk["w_mlp2"] + blk["b_mlp2"]
    h = norm(h, p["final_scale"], p["final_shift"])
    return h.mean(axis=1) @ p["w_out"] + p["b_out"]


def jax_train(wl: dict):
    """(params, x, y, idx (steps, batch)) -> (per-step losses, final loss on the first EVAL), not jitted."""
    import jax
    import jax.numpy as jnp

    def loss(p, x, y):
        logp = jax.nn.log_softmax(jax_logits(p, x, wl["heads"], wl["activation"]))
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    def train(p, x, y, idx):
        def sgd(p, i):
            value, g = jax.value_and_grad(loss)(p, x[i], y[i])
            return jax.tree.map(lambda a, b: a - wl["learning_rate"] * b, p, g), value

        p, losses = jax.lax.scan(sgd, p, idx)
        return losses, loss(p, x[:EVAL], y[:EVAL])

    return train


def run_jax_loop(wl: dict) -> dict:
    """Every config, one compiled program per depth; returns the compile and run seconds."""
    import jax
    import jax.numpy as jnp

    x, y = digits_arrays()
    x, y = jnp.asarray(x), jnp.asarray(y)
    n_out = int(y.max()) + 1
    phases = {"compile_s": 0.0, "run_s": 0.0}
    for depth in wl["depths"]:
        def start(seed, sw2):
            p = numpy_init(seed, sw2, depth, x.shape[-1], n_out, wl["width"])
            return jax.tree.map(jnp.asarray, p), jnp.asarray(batch_indices(seed, wl["steps"], wl["batch_size"], len(x)))

        t0 = time.perf_counter()
        p0, idx0 = start(wl["seeds"][0], wl["sigma_w2"][0])
        train = jax.jit(jax_train(wl)).lower(p0, x, y, idx0).compile()
        phases["compile_s"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        for sw2 in wl["sigma_w2"]:
            for seed in wl["seeds"]:
                p, idx = start(seed, sw2)
                train(p, x, y, idx)[1].block_until_ready()
        phases["run_s"] += time.perf_counter() - t0
    return phases


# ------------------------------------------------------------------------------ the PyTorch loop
def torch_model(depth: int, n_in: int, n_out: int, wl: dict):
    """The pre-LN transformer as plain nn.Module code (weights set by ``torch_set``)."""
    import torch
    from torch import nn

    width, heads = wl["width"], wl["heads"]
    phi = {"gelu": nn.GELU(), "tanh": nn.Tanh(), "relu": nn.ReLU()}[wl["activation"]]

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(width, eps=LN_EPS), nn.LayerNorm(width, eps=LN_EPS)
            self.q, self.k, self.v, self.o = (nn.Linear(width, width, bias=False) for _ in range(4))
            self.mlp = nn.Sequential(nn.Linear(width, MLP_RATIO * width), phi, nn.Linear(MLP_RATIO * width, width))

        def forward(self, h):
            b, t, d = h.shape
            a = self.ln1(h)
            q, k, v = (m(a).view(b, t, heads, d // heads).transpose(1, 2) for m in (self.q, self.k, self.v))
            weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // heads), dim=-1)
            h = h + self.o((weights @ v).transpose(1, 2).reshape(b, t, d))
            return h + self.mlp(self.ln2(h))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = nn.Linear(n_in, width)
            self.register_buffer("positions", torch.as_tensor(sinusoids(SEQ_LEN, width)))
            self.blocks = nn.Sequential(*(Block() for _ in range(depth)))
            self.final = nn.LayerNorm(width, eps=LN_EPS)
            self.out = nn.Linear(width, n_out)

        def forward(self, x):
            return self.out(self.final(self.blocks(self.inp(x) + self.positions)).mean(dim=1))

    return Net()


def torch_set(model, p: dict) -> None:
    """Load ``numpy_init``'s layout (x @ W, per-block lists) into the modules (nn.Linear holds Wᵀ)."""
    import torch

    def put(param, a, transpose=False):
        a = np.array(a, np.float32)  # a writable float32 copy
        param.copy_(torch.as_tensor(a.T if transpose else a))

    with torch.no_grad():
        put(model.inp.weight, p["w_in"], True)
        put(model.inp.bias, p["b_in"])
        for block, b in zip(model.blocks, p["blocks"]):
            for name in "qkvo":
                put(getattr(block, name).weight, b[f"w_{name}"], True)
            put(block.mlp[0].weight, b["w_mlp1"], True)
            put(block.mlp[0].bias, b["b_mlp1"])
            put(block.mlp[2].weight, b["w_mlp2"], True)
            put(block.mlp[2].bias, b["b_mlp2"])
            for i, ln in ((1, block.ln1), (2, block.ln2)):
                put(ln.weight, b[f"ln{i}_scale"])
                put(ln.bias, b[f"ln{i}_shift"])
        put(model.final.weight, p["final_scale"])
        put(model.final.bias, p["final_shift"])
        put(model.out.weight, p["w_out"], True)
        put(model.out.bias, p["b_out"])


def torch_train(model, x, y, idx, lr: float):
    """Per-step losses and the final loss on the first EVAL examples."""
    import torch
    from torch.nn import functional as F

    opt = torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for i in idx:
        opt.zero_grad()
        value = F.cross_entropy(model(x[i]), y[i])
        value.backward()
        opt.step()
        losses.append(value.detach())
    with torch.no_grad():
        final = F.cross_entropy(model(x[:EVAL]), y[:EVAL])
    return torch.stack(losses).numpy(), float(final)


def torch_arrays():
    import torch

    x, y = digits_arrays()
    return torch.as_tensor(np.array(x)), torch.as_tensor(np.array(y, np.int64))


def run_torch_loop(wl: dict) -> dict:
    import torch

    torch.manual_seed(0)
    x, y = torch_arrays()
    n_out = int(y.max()) + 1
    t0 = time.perf_counter()
    for depth in wl["depths"]:
        for sw2 in wl["sigma_w2"]:
            for seed in wl["seeds"]:
                model = torch_model(depth, x.shape[-1], n_out, wl)
                torch_set(model, numpy_init(seed, sw2, depth, x.shape[-1], n_out, wl["width"]))
                idx = torch.as_tensor(batch_indices(seed, wl["steps"], wl["batch_size"], len(x)))
                torch_train(model, x, y, idx, wl["learning_rate"])
    return {"run_s": time.perf_counter() - t0, "threads": torch.get_num_threads()}


def torch_stack(model, starts: list) -> dict:
    """Each config's weights (``numpy_init``'s layout) loaded into ``model`` in turn, stacked by name
    along a leading config axis: the parameters ``torch_vmap_train`` trains side by side."""
    import torch

    states = []
    for p in starts:
        torch_set(model, p)
        states.append({k: v.detach().clone() for k, v in model.named_parameters()})
    return {k: torch.stack([st[k] for st in states]) for k in states[0]}


def torch_vmap_train(model, params: dict, x, y, idx, lr: float):
    """SGD on stacked parameters with ``torch.func.vmap(grad_and_value(functional_call))``: idx is
    (steps, configs, batch), each config its own minibatches. (per-step losses (steps, configs),
    final losses on the first EVAL examples (configs,))."""
    import torch
    from torch.func import functional_call, grad_and_value, vmap
    from torch.nn import functional as F

    def loss(p, xb, yb):
        return F.cross_entropy(functional_call(model, p, (xb,)), yb)

    step = vmap(grad_and_value(loss))
    losses = []
    for i in idx:
        grads, value = step(params, x[i], y[i])
        params = {k: params[k] - lr * grads[k] for k in params}
        losses.append(value)
    with torch.no_grad():
        final = vmap(loss, in_dims=(0, None, None))(params, x[:EVAL], y[:EVAL])
    return torch.stack(losses).numpy(), final.numpy()


def run_torch_vmap(wl: dict) -> dict:
    """Per depth, every config's parameters stacked and trained side by side."""
    import torch

    torch.manual_seed(0)
    x, y = torch_arrays()
    n_out = int(y.max()) + 1
    t0 = time.perf_counter()
    for depth in wl["depths"]:
        configs = [(sw2, seed) for sw2 in wl["sigma_w2"] for seed in wl["seeds"]]
        model = torch_model(depth, x.shape[-1], n_out, wl)
        params = torch_stack(model, [numpy_init(seed, sw2, depth, x.shape[-1], n_out, wl["width"])
                                     for sw2, seed in configs])
        idx = torch.stack([torch.as_tensor(batch_indices(seed, wl["steps"], wl["batch_size"], len(x)))
                           for _, seed in configs], dim=1)
        torch_vmap_train(model, params, x, y, idx, wl["learning_rate"])
    return {"run_s": time.perf_counter() - t0, "threads": torch.get_num_threads()}


# ---------------------------------------------------------------------------------- satbench
def run_satbench(wl: dict, out: Path, text: str | None = None) -> dict:
    """The sweep through ``engine.run_experiment``; its summary's seconds and each program's record."""
    from satbench import engine, spec

    summary = engine.run_experiment(spec.parse(text or spec_text(wl)), None, out, progress=False, fresh=True)
    groups = json.loads((out / "manifest.json").read_text()).get("groups", [])
    return {"compile_wait_s": summary.compile_s, "compile_total_s": summary.compile_total_s,
            "run_s": summary.run_s, "n_programs": summary.n_groups,
            "programs": [{k: g.get(k) for k in ("program", "depths", "masked", "n_configs", "chunk_size", "chunks",
                                                 "concurrent_calls", "compile_s", "compile_wait_s", "run_s")}
                         for g in groups]}


# ----------------------------------------------------------------------------- the cross-check
def satbench_start(depth: int, seed: int, sigma_w2: float, wl: dict, n_train: int):
    """satbench's initial weights of one config (in ``numpy_init``'s layout) and its minibatch indices,
    rebuilt from the seed exactly as ``train.run`` draws them."""
    import jax
    from flax import nnx

    from satbench import models, plan, spec, train

    (cfg,) = [c for c in spec.parse(spec_text(wl)).configs()
              if c["depth"] == depth and c["seed"] == seed and c["sigma_w2"] == sigma_w2]
    arch = next(g for g in plan.make_plan([cfg])).program.arch
    lane = train.one_lane(arch, **{k: cfg[k] for k in spec.lane_fields()})
    init_key, batch_key = jax.random.split(jax.random.key(seed, impl=train.PRNG_IMPL))
    _, params = models.init_state(arch, init_key, sigma_w2, cfg["sigma_b2"], lane["init_index"], lane=lane)
    p = {k: np.asarray(v) for k, v in nnx.to_pure_dict(params).items()}
    blocks = [{**{k: p[k][b] for k in ("w_q", "w_k", "w_v", "w_o", "w_mlp1", "b_mlp1", "w_mlp2", "b_mlp2")},
               "ln1_scale": p["ln_scale"][b, 0], "ln1_shift": p["ln_shift"][b, 0],
               "ln2_scale": p["ln_scale"][b, 1], "ln2_shift": p["ln_shift"][b, 1]} for b in range(arch.depth)]
    weights = {"w_in": p["w_in"], "b_in": p["b_in"], "blocks": blocks, "final_scale": p["final_scale"],
               "final_shift": p["final_shift"], "w_out": p["w_out"], "b_out": p["b_out"]}
    idx = np.stack([np.asarray(jax.random.randint(jax.random.fold_in(batch_key, s), (wl["batch_size"],), 0, n_train))
                    for s in range(wl["steps"])])
    return weights, idx


def crosscheck(wl: dict, out: Path) -> dict:
    """Final train losses of satbench and the three peers from satbench's weights and indices (one
    config per depth: the last seed, the middle σ_w²), and the peers' per-step losses."""
    import jax
    import jax.numpy as jnp
    import pandas as pd
    import torch

    torch.set_flush_denormal(True)  # as XLA:CPU does
    seed, sw2 = wl["seeds"][-1], wl["sigma_w2"][len(wl["sigma_w2"]) // 2]
    run_satbench(wl, out, spec_text(wl, sigma_w2=[sw2], seeds=[seed]))
    runs = pd.read_parquet(out / "runs.parquet")
    x, y = digits_arrays()
    x_t, y_t = torch.as_tensor(np.array(x)), torch.as_tensor(np.array(y, np.int64))
    report = {}
    for depth in wl["depths"]:
        p, idx = satbench_start(depth, seed, sw2, wl, len(x))
        losses_jax, final_jax = jax.jit(jax_train(wl))(jax.tree.map(jnp.asarray, p), jnp.asarray(x), jnp.asarray(y),
                                                        jnp.asarray(idx))
        model = torch_model(depth, x.shape[-1], int(y.max()) + 1, wl)
        torch_set(model, p)
        losses_torch, final_torch = torch_train(model, x_t, y_t, torch.as_tensor(idx), wl["learning_rate"])
        losses_vmap, final_vmap = torch_vmap_train(model, torch_stack(model, [p]), x_t, y_t,
                                                   torch.as_tensor(idx)[:, None], wl["learning_rate"])
        losses_vmap, final_vmap = losses_vmap[:, 0], float(final_vmap[0])
        row = runs[(runs["depth"] == depth) & (runs["seed"] == seed) & (runs["sigma_w2"] == sw2)].iloc[0]
        errors = {"satbench_vs_jax": abs(row["final_loss"] / float(final_jax) - 1),
                  "torch_vs_jax": abs(final_torch / float(final_jax) - 1),
                  "satbench_vs_torch": abs(row["final_loss"] / final_torch - 1),
                  "torch_vs_jax_per_step": float(np.max(np.abs(losses_torch / np.asarray(losses_jax) - 1))),
                  "torch_vmap_vs_jax": abs(final_vmap / float(final_jax) - 1),
                  "torch_vmap_vs_jax_per_step": float(np.max(np.abs(losses_vmap / np.asarray(losses_jax) - 1)))}
        report[f"depth {depth}"] = {
            "config": {"depth": depth, "seed": seed, "sigma_w2": sw2},
            "final_loss": {"satbench": float(row["final_loss"]), "jax-loop": float(final_jax),
                           "torch-loop": final_torch, "torch-vmap": final_vmap},
            "first_step_loss": {"jax-loop": float(losses_jax[0]), "torch-loop": float(losses_torch[0]),
                                "torch-vmap": float(losses_vmap[0])},
            "relative_error": errors}
        bad = {k: v for k, v in errors.items() if not v <= RTOL}
        if bad:
            print(json.dumps(report, indent=2))
            raise SystemExit(f"cross-check failed at depth {depth}: {bad} (rtol {RTOL})")
    return report


# ------------------------------------------------------------------------------------ timing
def worker(system: str, wl: dict, torch_threads: int) -> None:
    """One system, end to end, in this fresh process; its phases go to the driver (``fresh_process``)."""
    if system == "jax-loop":
        phases = run_jax_loop(wl)
    elif system.startswith("torch"):
        import torch

        torch.set_num_threads(torch_threads)
        torch.set_flush_denormal(True)  # as XLA:CPU does
        phases = run_torch_loop(wl) if system == "torch-loop" else run_torch_vmap(wl)
    else:
        phases = run_satbench(wl, fresh_process.out_dir())
    fresh_process.write_phases(phases)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/transformer"))
    parser.add_argument("--tiny", action="store_true", help="a short run (checks the script)")
    parser.add_argument("--torch-threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="torch.set_num_threads for the PyTorch loop (default: the cores)")
    parser.add_argument("--system", choices=("satbench",) + PEERS)
    parser.add_argument("--workload", choices=("full", "tiny"), default="full")
    args = parser.parse_args(argv)
    wl_name = "tiny" if args.tiny else args.workload
    wl = TINY if wl_name == "tiny" else WORKLOAD
    if args.system:
        worker(args.system, wl, args.torch_threads)
        return
    # imported by the driver only: a worker's own imports count in its wall seconds
    from benchmarks.machine import load_average

    args.out.mkdir(parents=True, exist_ok=True)
    report = {"workload": {k: list(v) if isinstance(v, tuple) else v for k, v in wl.items()},
              "n_configs": len(wl["depths"]) * len(wl["sigma_w2"]) * len(wl["seeds"]),
              "torch_threads": args.torch_threads, "rtol": RTOL, "load_average_start": load_average()}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        report["crosscheck"] = crosscheck(wl, Path(tmp) / "check")
        report["crosscheck_s"] = time.perf_counter() - t0
        runs = fresh_process.rounds("benchmarks.transformer", SYSTEMS, wl_name, args.repeats, Path(tmp),
                                    ("--torch-threads", str(args.torch_threads)))
    medians = fresh_process.summarise(runs)
    wall = {s: m["wall_s"] for s, m in medians.items()}
    report.update(runs=runs, median=medians, median_wall_s=wall, load_average_end=load_average(),
                  satbench_over_loop={f"{s} / {peer}": wall[s] / wall[peer]
                                      for s in ("satbench", "satbench-warm") for peer in PEERS})
    (args.out / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({k: report[k] for k in ("median_wall_s", "satbench_over_loop")}, indent=2))
    for name, row in report["crosscheck"].items():
        print(name, "final losses", row["final_loss"], "relative errors", row["relative_error"])


if __name__ == "__main__":
    main()
