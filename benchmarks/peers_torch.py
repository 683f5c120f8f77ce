"""Peers (b) and (c): the same sweep in PyTorch.

(b) ``run_loop``: an ``nn.Linear`` stack per config, ``torch.optim.SGD``, a
Python loop over steps and over configs (eager: nothing to compile).
(c) ``run_vmap``: the configs of one (activation, depth) shape stacked,
their loss and gradients taken with ``torch.func.vmap`` + ``functional_call``
+ ``grad_and_value``, SGD applied to the stacked parameters; chunks of
``VMAP_CHUNK`` configs, as satbench chunks on CPU (``benchmarks/gpu.py`` passes
larger chunks).

Both run on the CPU unless given ``device`` (``benchmarks/gpu.py``: "cuda"):
weights and minibatch indices are still drawn on the CPU from the config's
seed (the same numbers on either device), then moved.

The ``cnn`` workload's net: ``nn.Conv2d`` layers (k×k, stride 1, padding k//2
with ``padding_mode="circular"``, or zeros for ``same``) on NCHW images, the
mean over positions, an ``nn.Linear`` readout; the loops are the same.

Same init (W ~ N(0, σ_w²/fan_in), b = 0; a kernel's fan_in is k²·C_in), same
loss, same FLOPs as the JAX peer; minibatch indices are drawn with replacement
per step, from torch's generator seeded with the config's seed (so other
examples than JAX's).
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

from benchmarks import workloads

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU, "erf": None}
VMAP_CHUNK = 16


class Erf(nn.Module):
    def forward(self, x):
        return torch.erf(x)


def flush_denormals() -> None:
    """As XLA:CPU does: else a vanishing gradient stays denormal (1e-20) where JAX has 0."""
    torch.set_flush_denormal(True)


def setup(threads: int, matmul_precision: str | None = None) -> dict:
    """Thread count, denormal flushing and (if given) the float32 matmul precision for this
    process ("high" lets CUDA matmuls and convolutions use TF32, as JAX does by default on
    GPUs; "highest" forbids it); what was set, for the report."""
    torch.set_num_threads(threads)
    flush_denormals()
    if matmul_precision:
        torch.set_float32_matmul_precision(matmul_precision)
        torch.backends.cudnn.allow_tf32 = matmul_precision != "highest"
    return {"torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads(),
            "torch_matmul_precision": torch.get_float32_matmul_precision()}


class GlobalMeanPool(nn.Module):
    """(n, C, H, W) -> (n, C): the mean over positions."""

    def forward(self, x):
        return x.mean(dim=(2, 3))


def build_model(shapes, activation: str, padding: str = "circular") -> nn.Sequential:
    """[Linear, φ] × depth then the Linear readout, from (fan_in, fan_out) ``shapes``; or, from
    (k, k, C_in, C_out) kernel shapes (``workloads.weight_shapes``), [Conv2d, φ] × depth, the
    mean over positions, then the readout."""
    act = ACTIVATIONS[activation] or Erf
    layers = []
    for shape in shapes[:-1]:
        if len(shape) == 4:
            k, _, c_in, c_out = shape
            mode = "circular" if padding == "circular" else "zeros"
            layers += [nn.Conv2d(c_in, c_out, k, padding=k // 2, padding_mode=mode), act()]
        else:
            layers += [nn.Linear(*shape), act()]
    if len(shapes[0]) == 4:
        layers.append(GlobalMeanPool())
    layers.append(nn.Linear(*shapes[-1]))
    return nn.Sequential(*layers)


def build_mlp(sizes, activation: str) -> nn.Sequential:
    """[Linear, φ] × depth, then the Linear readout."""
    return build_model(list(zip(sizes[:-1], sizes[1:])), activation)


def linears(model: nn.Sequential) -> list[nn.Module]:
    """The layers with weights (Linear and Conv2d), in order."""
    return [m for m in model if isinstance(m, (nn.Linear, nn.Conv2d))]


@torch.no_grad()
def init_(model: nn.Sequential, sigma_w2: float, generator: torch.Generator) -> nn.Sequential:
    for lin in linears(model):
        fan_in = math.prod(lin.weight.shape[1:])  # Linear (out, in); Conv2d (out, in, k, k)
        lin.weight.normal_(0.0, math.sqrt(sigma_w2 / fan_in), generator=generator)
        lin.bias.zero_()
    return model


def torch_weight(w) -> torch.Tensor:
    """A JAX-layout weight in PyTorch's: (fan_in, fan_out) -> (out, in); an HWIO kernel
    (k, k, C_in, C_out) -> Conv2d's OIHW (C_out, C_in, k, k)."""
    w = np.asarray(w, np.float32)
    return torch.from_numpy((w.transpose(3, 2, 0, 1) if w.ndim == 4 else w.T).copy())


@torch.no_grad()
def load_(model: nn.Sequential, params_np) -> nn.Sequential:
    """Set the weights from [(W (fan_in, fan_out) or kernel (k, k, C_in, C_out), b)] numpy
    pairs (the cross-checks)."""
    for lin, (w, b) in zip(linears(model), params_np):
        lin.weight.copy_(torch_weight(w))
        lin.bias.copy_(torch.from_numpy(np.array(b, np.float32)))
    return model


def shapes_of(params_np) -> list[tuple[int, ...]]:
    return [tuple(np.shape(w)) for w, _ in params_np]


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
    """A torch tensor of its own copy of ``a`` (jax's numpy views are read-only); NHWC images
    become NCHW, as Conv2d wants them."""
    t = torch.from_numpy(np.array(a))
    return t.permute(0, 3, 1, 2).contiguous() if t.dim() == 4 else t


def _tensors(arrays: dict, wl, device="cpu"):
    x = _tensor(workloads.inputs(wl, arrays["x_train"])).to(device)
    return x, torch.from_numpy(arrays["y_train"]).long().to(device)


def run_loop(wl, arrays: dict, configs: list[dict] | None = None, device="cpu") -> dict:
    """Peer (b): one model per config, trained in a Python loop; ``configs``: a subset of
    ``wl.configs()`` (default: all). Each config's seconds are kept (float(loss) waits for the
    device), so a sampled run can be extrapolated."""
    x, y = _tensors(arrays, wl, device)
    n_in, n_out = arrays["x_train"].shape[1], int(arrays["n_classes"])
    losses = []
    t0 = time.perf_counter()
    for cfg in configs or wl.configs():
        t_cfg = time.perf_counter()
        activation, depth, sigma_w2, seed = cfg["activation"], cfg["depth"], cfg["sigma_w2"], cfg["seed"]
        shapes = workloads.weight_shapes(wl, depth, n_in, n_out)
        gen = torch.Generator().manual_seed(seed)
        model = init_(build_model(shapes, activation, wl.padding), sigma_w2, gen).to(device)
        if wl.init_only:
            probe = (x[: wl.probe_batch], y[: wl.probe_batch], x[: wl.jacobian_samples])
            loss = init_probes(model, x, y, *probe)[0]
        else:
            idx = batch_indices(seed, wl.steps, wl.batch_size, len(y)).to(device)
            sgd_loop(model, idx, x, y, wl.learning_rate)
            with torch.no_grad():
                loss = F.cross_entropy(model(x), y)
        losses.append({"activation": activation, "depth": depth, "sigma_w2": sigma_w2, "seed": seed,
                       "final_loss": float(loss), "seconds": time.perf_counter() - t_cfg})
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


def run_vmap(wl, arrays: dict, chunk: int = VMAP_CHUNK, device="cpu") -> dict:
    """Peer (c): per shape, chunks of ``chunk`` configs (0: the whole shape) stacked and trained
    under ``torch.func.vmap``."""
    x, y = _tensors(arrays, wl, device)
    n_in, n_out = arrays["x_train"].shape[1], int(arrays["n_classes"])
    losses = []
    t0 = time.perf_counter()
    for activation, depth in wl.shapes():
        shapes = workloads.weight_shapes(wl, depth, n_in, n_out)
        base = build_model(shapes, activation, wl.padding)
        base = base.to(device)
        grid = [(s, seed) for s in wl.sigma_w2 for seed in wl.seeds]
        size = chunk or len(grid)
        for start in range(0, len(grid), size):
            part = grid[start : start + size]
            models = [init_(build_model(shapes, activation, wl.padding), s, torch.Generator().manual_seed(seed))
                      for s, seed in part]
            params = {k: v.to(device) for k, v in stack_params(models).items()}
            del models
            if wl.init_only:
                probe = (x[: wl.probe_batch], y[: wl.probe_batch], x[: wl.jacobian_samples])
                with torch.no_grad():
                    final = vmap_init_probes(base, params, x, y, *probe)[0]
            else:
                idx = torch.stack([batch_indices(seed, wl.steps, wl.batch_size, len(y)) for _, seed in part]).to(device)
                lr = torch.full((len(part),), wl.learning_rate, device=device)
                params, _ = vmap_sgd(base, params, idx, x, y, lr)
                final = vmap_final_loss(base, params, x, y)
            for (s, seed), loss in zip(part, final.tolist()):
                losses.append({"activation": activation, "depth": depth, "sigma_w2": s, "seed": seed,
                               "final_loss": loss})
    return {"compile_s": None, "run_s": time.perf_counter() - t0, "losses": losses}


def loss_curve(params_np, idx, x, y, lr, activation, padding="circular"):
    """Cross-check entry for (b): SGD from given weights over given indices; (steps,) losses, final
    loss. ``params_np`` and ``x`` in JAX's layouts (HWIO kernels, NHWC images)."""
    x, y = _tensor(x), _tensor(y).long()
    model = load_(build_model(shapes_of(params_np), activation, padding), params_np)
    losses = sgd_loop(model, _tensor(idx).long(), x, y, lr)
    with torch.no_grad():
        return losses.numpy(), float(F.cross_entropy(model(x), y))


def vmap_loss_curve(params_np, idx, x, y, lr, activation, padding="circular", copies: int = 2):
    """Cross-check entry for (c): the same run, stacked ``copies`` times under vmap; lane 0's curve."""
    x, y = _tensor(x), _tensor(y).long()
    build = lambda: build_model(shapes_of(params_np), activation, padding)  # noqa: E731
    base = build()
    params = stack_params([load_(build(), params_np) for _ in range(copies)])
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
