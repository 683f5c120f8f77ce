"""Peers (b) and (c): the same sweep in PyTorch.

(b) ``run_loop``: an ``nn.Linear`` stack per config, ``torch.optim.SGD``, a
Python loop over steps and over configs (eager: nothing to compile).
(c) ``run_vmap``: the configs of one (activation, depth) shape stacked,
their loss and gradients taken with ``torch.func.vmap`` + ``functional_call``
+ ``grad_and_value``, SGD applied to the stacked parameters; chunks of
``VMAP_CHUNK`` configs, as satbench chunks on CPU.

Same init (W ~ N(0, σ_w²/fan_in), b = 0), same loss, same FLOPs as the JAX
peer; minibatch indices are drawn with replacement per step, from torch's
generator seeded with the config's seed (so other examples than JAX's).
Denormals are flushed to zero, as XLA:CPU does, so a vanishing signal does
not slow one side down alone.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad_and_value, jacfwd, vmap

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU, "erf": None}
VMAP_CHUNK = 16


class Erf(nn.Module):
    def forward(self, x):
        return torch.erf(x)


def flush_denormals() -> None:
    """As XLA:CPU does: else a vanishing gradient stays denormal (1e-20) where JAX has 0."""
    torch.set_flush_denormal(True)


def setup(threads: int) -> dict:
    """Thread count and denormal flushing for this process; what was set, for the report."""
    torch.set_num_threads(threads)
    flush_denormals()
    return {"torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads()}


def build_mlp(sizes, activation: str) -> nn.Sequential:
    """[Linear, φ] × depth, then the Linear readout."""
    act = ACTIVATIONS[activation] or Erf
    layers = []
    for m, n in zip(sizes[:-2], sizes[1:-1]):
        layers += [nn.Linear(m, n), act()]
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


def linears(model: nn.Sequential) -> list[nn.Linear]:
    return [m for m in model if isinstance(m, nn.Linear)]


@torch.no_grad()
def init_(model: nn.Sequential, sigma_w2: float, generator: torch.Generator) -> nn.Sequential:
    for lin in linears(model):
        lin.weight.normal_(0.0, math.sqrt(sigma_w2 / lin.in_features), generator=generator)
        lin.bias.zero_()
    return model


@torch.no_grad()
def load_(model: nn.Sequential, params_np) -> nn.Sequential:
    """Set the weights from [(W (fan_in, fan_out), b)] numpy pairs (the cross-checks)."""
    for lin, (w, b) in zip(linears(model), params_np):
        lin.weight.copy_(torch.from_numpy(np.array(w, np.float32).T.copy()))
        lin.bias.copy_(torch.from_numpy(np.array(b, np.float32)))
    return model


def batch_indices(seed: int, steps: int, batch: int, n: int) -> torch.Tensor:
    return torch.randint(0, n, (steps, batch), generator=torch.Generator().manual_seed(seed))


def sgd_loop(model, idx, x, y, lr) -> torch.Tensor:
    """SGD over the minibatches ``x[idx[t]]``; each step's loss."""
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for i in idx:
        loss = F.cross_entropy(model(x[i]), y[i])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.detach())
    return torch.stack(losses) if losses else torch.zeros(0)


def hidden_chain(model: nn.Sequential) -> nn.Sequential:
    """The map h_1 -> h_L (first pre-activation to last): φ, Linear, ..., Linear."""
    return model[1:-2]


def init_probes(model, x, y, x_probe, y_probe, x_jac):
    """Train loss, ‖∂L/∂W_l‖_F on the probe batch, and the singular values of ∂h_L/∂h_1."""
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x_probe), y_probe).backward()
    grad_norms = torch.stack([lin.weight.grad.norm() for lin in linears(model)])
    with torch.no_grad():
        loss = F.cross_entropy(model(x), y)
        jac = vmap(jacfwd(hidden_chain(model)))(model[0](x_jac))  # (samples, width, width)
        svals = torch.linalg.svdvals(jac)
    return loss, grad_norms, svals


def _tensor(a) -> torch.Tensor:
    """A torch tensor of its own copy of ``a`` (jax's numpy views are read-only)."""
    return torch.from_numpy(np.array(a))


def _tensors(arrays: dict):
    return torch.from_numpy(arrays["x_train"]), torch.from_numpy(arrays["y_train"]).long()


def run_loop(wl, arrays: dict) -> dict:
    """Peer (b): one model per config, trained in a Python loop."""
    x, y = _tensors(arrays)
    sizes_for = lambda d: (x.shape[1],) + (wl.width,) * d + (int(arrays["n_classes"]),)  # noqa: E731
    losses = []
    t0 = time.perf_counter()
    for activation, depth in wl.shapes():
        for sigma_w2 in wl.sigma_w2:
            for seed in wl.seeds:
                gen = torch.Generator().manual_seed(seed)
                model = init_(build_mlp(sizes_for(depth), activation), sigma_w2, gen)
                if wl.init_only:
                    probe = (x[: wl.probe_batch], y[: wl.probe_batch], x[: wl.jacobian_samples])
                    loss = init_probes(model, x, y, *probe)[0]
                else:
                    sgd_loop(model, batch_indices(seed, wl.steps, wl.batch_size, len(y)), x, y, wl.learning_rate)
                    with torch.no_grad():
                        loss = F.cross_entropy(model(x), y)
                losses.append({"activation": activation, "depth": depth, "sigma_w2": sigma_w2, "seed": seed,
                               "final_loss": float(loss)})
    return {"compile_s": None, "run_s": time.perf_counter() - t0, "losses": losses}


def stack_params(models: list[nn.Module]) -> dict[str, torch.Tensor]:
    """name -> (n_models, ...) tensor: the batched parameters vmap maps over."""
    named = [dict(m.named_parameters()) for m in models]
    return {k: torch.stack([p[k].detach() for p in named]) for k in named[0]}


def vmap_sgd(base: nn.Module, params: dict, idx: torch.Tensor, x, y, lr: torch.Tensor):
    """SGD on stacked params; ``idx``: (n, steps, batch), ``lr``: (n,). Returns params, (n, steps) losses."""
    def loss_fn(p, xb, yb):
        return F.cross_entropy(functional_call(base, p, (xb,)), yb)

    step = vmap(grad_and_value(loss_fn))
    losses = []
    for t in range(idx.shape[1]):
        grads, loss = step(params, x[idx[:, t]], y[idx[:, t]])
        params = {k: p - lr.view(-1, *[1] * (p.dim() - 1)) * grads[k] for k, p in params.items()}
        losses.append(loss)
    return params, (torch.stack(losses, dim=1) if losses else torch.zeros(len(lr), 0))


def vmap_final_loss(base, params, x, y) -> torch.Tensor:
    with torch.no_grad():
        return vmap(lambda p: F.cross_entropy(functional_call(base, p, (x,)), y))(params)


def vmap_init_probes(base: nn.Sequential, params: dict, x, y, x_probe, y_probe, x_jac):
    """``init_probes`` for stacked params: (n,) losses, (n, depth + 1) grad norms, (n, samples, width) svals."""
    chain = hidden_chain(base)
    lin_names = [f"{i}.weight" for i, m in enumerate(base) if isinstance(m, nn.Linear)]

    def one(p):
        grads = torch.func.grad(lambda q: F.cross_entropy(functional_call(base, q, (x_probe,)), y_probe))(p)
        norms = torch.stack([grads[k].norm() for k in lin_names])
        loss = F.cross_entropy(functional_call(base, p, (x,)), y)
        h1 = x_jac @ p["0.weight"].T + p["0.bias"]
        sub = {k: v for k, v in p.items() if k.split(".")[0] in chain._modules}
        jac = vmap(jacfwd(lambda h: functional_call(chain, sub, (h,))))(h1)
        return loss, norms, jac

    loss, norms, jac = vmap(one)(params)
    return loss, norms, torch.linalg.svdvals(jac)


def run_vmap(wl, arrays: dict) -> dict:
    """Peer (c): per shape, chunks of configs stacked and trained under ``torch.func.vmap``."""
    x, y = _tensors(arrays)
    n_in, n_out = x.shape[1], int(arrays["n_classes"])
    losses = []
    t0 = time.perf_counter()
    for activation, depth in wl.shapes():
        sizes = (n_in,) + (wl.width,) * depth + (n_out,)
        base = build_mlp(sizes, activation)
        grid = [(s, seed) for s in wl.sigma_w2 for seed in wl.seeds]
        for start in range(0, len(grid), VMAP_CHUNK):
            chunk = grid[start : start + VMAP_CHUNK]
            models = [init_(build_mlp(sizes, activation), s, torch.Generator().manual_seed(seed)) for s, seed in chunk]
            params = stack_params(models)
            if wl.init_only:
                probe = (x[: wl.probe_batch], y[: wl.probe_batch], x[: wl.jacobian_samples])
                with torch.no_grad():
                    final = vmap_init_probes(base, params, x, y, *probe)[0]
            else:
                idx = torch.stack([batch_indices(seed, wl.steps, wl.batch_size, len(y)) for _, seed in chunk])
                lr = torch.full((len(chunk),), wl.learning_rate)
                params, _ = vmap_sgd(base, params, idx, x, y, lr)
                final = vmap_final_loss(base, params, x, y)
            for (s, seed), loss in zip(chunk, final.tolist()):
                losses.append({"activation": activation, "depth": depth, "sigma_w2": s, "seed": seed,
                               "final_loss": loss})
    return {"compile_s": None, "run_s": time.perf_counter() - t0, "losses": losses}


def loss_curve(params_np, idx, x, y, lr, activation):
    """Cross-check entry for (b): SGD from given weights over given indices; (steps,) losses, final loss."""
    x, y = _tensor(x), _tensor(y).long()
    sizes = (params_np[0][0].shape[0],) + tuple(w.shape[1] for w, _ in params_np)
    model = load_(build_mlp(sizes, activation), params_np)
    losses = sgd_loop(model, _tensor(idx).long(), x, y, lr)
    with torch.no_grad():
        return losses.numpy(), float(F.cross_entropy(model(x), y))


def vmap_loss_curve(params_np, idx, x, y, lr, activation, copies: int = 2):
    """Cross-check entry for (c): the same run, stacked ``copies`` times under vmap; lane 0's curve."""
    x, y = _tensor(x), _tensor(y).long()
    sizes = (params_np[0][0].shape[0],) + tuple(w.shape[1] for w, _ in params_np)
    base = build_mlp(sizes, activation)
    params = stack_params([load_(build_mlp(sizes, activation), params_np) for _ in range(copies)])
    idx_t = _tensor(idx).long()[None].expand(copies, -1, -1)
    params, losses = vmap_sgd(base, params, idx_t, x, y, torch.full((copies,), lr))
    return losses[0].numpy(), float(vmap_final_loss(base, params, x, y)[0])


def probes_from(params_np, x, y, x_probe, y_probe, x_jac, activation, vmapped: bool = False):
    """Cross-check entry: the init-only measurements of given weights, as numpy."""
    args = (_tensor(x), _tensor(y).long(), _tensor(x_probe), _tensor(y_probe).long(), _tensor(x_jac))
    sizes = (params_np[0][0].shape[0],) + tuple(w.shape[1] for w, _ in params_np)
    model = load_(build_mlp(sizes, activation), params_np)
    if vmapped:
        with torch.no_grad():
            out = vmap_init_probes(build_mlp(sizes, activation), stack_params([model]), *args)
        return tuple(o[0].numpy() for o in out)
    return tuple(o.detach().numpy() for o in init_probes(model, *args))
