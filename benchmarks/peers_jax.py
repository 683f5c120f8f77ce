"""Peer (a): the per-config loop a researcher writes in plain JAX.

A hand-written MLP (a list of (W, b) pairs, layers unrolled by the Python
loop), cross-entropy, SGD under ``lax.scan`` over steps; one ``jit`` per
(activation, depth) shape, then a Python loop over that shape's configs.
Nothing from satbench: the same math, written from scratch.

The ``cnn`` workload's net is the same list with (k, k, C_in, C_out) kernels
(HWIO) in place of the hidden matrices: each layer a stride-1 convolution of
NHWC images (``circular``: ``jnp.pad(mode="wrap")`` then a VALID
``lax.conv_general_dilated``; ``same``: zero padding), then the global average
pool and the dense readout.
"""

from __future__ import annotations

import functools
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import workloads

ACTIVATIONS = {"sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh, "relu": jax.nn.relu, "erf": jax.scipy.special.erf}


def layer_sizes(n_in: int, width: int, depth: int, n_out: int) -> tuple[int, ...]:
    return (n_in,) + (width,) * depth + (n_out,)


def init_params(key, shapes, sigma_w2):
    """W ~ N(0, σ_w²/fan_in), b = 0, for every layer (a kernel's fan_in is k²·C_in)."""
    keys = jax.random.split(key, len(shapes))
    return [(jax.random.normal(k, shape) * jnp.sqrt(sigma_w2 / math.prod(shape[:-1])), jnp.zeros((shape[-1],)))
            for k, shape in zip(keys, shapes)]


def conv(x, kernel, padding: str):
    """Stride-1 convolution (cross-correlation) of NHWC ``x`` with an HWIO ``kernel``, the output
    the input's size: ``circular`` wraps the image around, ``same`` pads with zeros."""
    if padding == "circular":
        half = kernel.shape[0] // 2
        x = jnp.pad(x, ((0, 0), (half, half), (half, half), (0, 0)), mode="wrap")
        mode = "VALID"
    else:
        mode = "SAME"
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), mode, dimension_numbers=("NHWC", "HWIO", "NHWC"))


def forward(params, x, phi, padding="circular"):
    for w, b in params[:-1]:
        x = phi((conv(x, w, padding) if w.ndim == 4 else x @ w) + b)
    w, b = params[-1]
    if x.ndim == 4:  # the cnn's global average pool
        x = x.mean(axis=(1, 2))
    return x @ w + b


def loss_fn(params, x, y, phi, padding="circular"):
    logp = jax.nn.log_softmax(forward(params, x, phi, padding))
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def sgd_train(params, idx, x, y, lr, phi, padding="circular"):
    """SGD over the minibatches ``x[idx[t]]``; returns the final params and each step's loss."""
    def step(p, i):
        loss, grads = jax.value_and_grad(loss_fn)(p, x[i], y[i], phi, padding)
        return jax.tree.map(lambda a, g: a - lr * g, p, grads), loss

    return jax.lax.scan(step, params, idx)


def train_config(seed, sigma_w2, lr, x, y, *, activation, shapes, steps, batch, padding="circular"):
    """One config end to end: init, ``steps`` SGD steps on random minibatches, final train loss."""
    phi = ACTIVATIONS[activation]
    k_init, k_batch = jax.random.split(jax.random.key(seed))
    params = init_params(k_init, shapes, sigma_w2)
    idx = jax.random.randint(k_batch, (steps, batch), 0, x.shape[0])
    params, _ = sgd_train(params, idx, x, y, lr, phi, padding)
    return loss_fn(params, x, y, phi, padding)


def jacobian_svals(params, x, phi):
    """Singular values of ∂h_L/∂h_1 (last pre-activation w.r.t. the first) for each row of x."""
    w1, b1 = params[0]

    def h_last(h):
        for w, b in params[1:-1]:
            h = phi(h) @ w + b
        return h

    def one(example):
        return jnp.linalg.svd(jax.jacfwd(h_last)(example @ w1 + b1), compute_uv=False)

    return jax.vmap(one)(x)


def init_probes(params, x, y, x_probe, y_probe, x_jac, phi):
    """The init-only measurements: train loss, ‖∂L/∂W_l‖_F on the probe batch, Jacobian spectra."""
    grads = jax.grad(loss_fn)(params, x_probe, y_probe, phi)
    grad_norms = jnp.stack([jnp.sqrt(jnp.sum(g_w**2)) for g_w, _ in grads])
    return loss_fn(params, x, y, phi), grad_norms, jacobian_svals(params, x_jac, phi)


def probe_config(seed, sigma_w2, x, y, x_probe, y_probe, x_jac, *, activation, shapes):
    """One init-only config: init, then ``init_probes``."""
    params = init_params(jax.random.split(jax.random.key(seed))[0], shapes, sigma_w2)
    return init_probes(params, x, y, x_probe, y_probe, x_jac, ACTIVATIONS[activation])


def run_workload(wl, arrays: dict) -> dict:
    """Every config of ``wl``: compile once per shape (timed apart), then one call per config."""
    n_in, n_out = arrays["x_train"].shape[1], int(arrays["n_classes"])
    x, y = jnp.asarray(workloads.inputs(wl, arrays["x_train"])), jnp.asarray(arrays["y_train"])
    compile_s = run_s = 0.0
    losses = []
    for activation, depth in wl.shapes():
        shapes = workloads.weight_shapes(wl, depth, n_in, n_out)
        t0 = time.perf_counter()
        if wl.init_only:
            fn = functools.partial(probe_config, activation=activation, shapes=shapes)
            rest = (x, y, x[: wl.probe_batch], y[: wl.probe_batch], x[: wl.jacobian_samples])
        else:
            fn = functools.partial(train_config, activation=activation, shapes=shapes, steps=wl.steps,
                                   batch=wl.batch_size, padding=wl.padding)
            rest = (np.float32(wl.learning_rate), x, y)
        compiled = jax.jit(fn).lower(np.int32(0), np.float32(1), *rest).compile()
        t1 = time.perf_counter()
        compile_s += t1 - t0
        for sigma_w2 in wl.sigma_w2:
            for seed in wl.seeds:
                out = jax.device_get(compiled(np.int32(seed), np.float32(sigma_w2), *rest))  # one config at a time
                loss = out[0] if wl.init_only else out
                losses.append({"activation": activation, "depth": depth, "sigma_w2": sigma_w2, "seed": seed,
                               "final_loss": float(loss)})
        run_s += time.perf_counter() - t1
    return {"compile_s": compile_s, "run_s": run_s, "losses": losses}


def loss_curve(params_np, idx, x, y, lr, activation, padding="circular"):
    """Cross-check entry: SGD from given weights over given minibatch indices; (steps,) losses
    and the final train loss. ``params_np``: [(W (fan_in, fan_out), b)] as numpy, or for the
    cnn [(kernel (k, k, C_in, C_out), b)] and the readout, with NHWC images ``x``."""
    params = [(jnp.asarray(w), jnp.asarray(b)) for w, b in params_np]
    phi = ACTIVATIONS[activation]
    x, y = jnp.asarray(x), jnp.asarray(y)
    run = jax.jit(lambda p, i: sgd_train(p, i, x, y, lr, phi, padding))
    params, losses = run(params, jnp.asarray(idx))
    return np.asarray(losses), float(loss_fn(params, x, y, phi, padding))


def probes_from(params_np, x, y, x_probe, y_probe, x_jac, activation):
    """Cross-check entry: the init-only measurements of given weights, as numpy."""
    params = [(jnp.asarray(w), jnp.asarray(b)) for w, b in params_np]
    out = jax.jit(functools.partial(init_probes, phi=ACTIVATIONS[activation]))(
        params, *(jnp.asarray(a) for a in (x, y, x_probe, y_probe, x_jac)))
    return tuple(np.asarray(o) for o in out)


def random_params(shapes, sigma_w2, seed=0):
    """Initial weights of the given ``weight_shapes`` as numpy, for the cross-checks."""
    return [(np.asarray(w), np.asarray(b)) for w, b in init_params(jax.random.key(seed), shapes, sigma_w2)]
