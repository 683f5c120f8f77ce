"""One training run as a pure function, vmappable over configs.

``run(program, lane, data) -> Record``: ``program`` is static (it changes the
compiled code), ``lane`` holds the per-config numbers that a sweep batches
(seed, init scales, learning rate, ...). Steps run under ``lax.scan`` in
three nested levels — probe segments ⊃ log segments ⊃ SGD steps — so the
compiled program does not grow with the number of steps and no step pays
for logging or probing it does not do.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from satbench import models, probes

OPTIMIZERS = ("sgd", "momentum", "adam", "rmsprop")
#: threefry: the only implementation whose streams are the same under vmap as alone
#: ("rbg" compiles faster on CPU but a lane's numbers would depend on its chunk).
PRNG_IMPL = "threefry2x32"


@dataclasses.dataclass(frozen=True)
class Program:
    """The static part of a config: one compilation per distinct Program."""

    arch: models.Architecture
    dataset: str
    preprocess: str = "auto"  # these two change the data, hence the program (satbench.data.load)
    train_subset: int = 0
    optimizer: str = "sgd"
    momentum: float = 0.9
    batch_size: int = 64
    steps: int = 100
    log_every: int = 10
    probe_every: int = 0  # 0: probe at the first and last step only
    probe_batch: int = 256
    eval_size: int = 2048
    jacobian_samples: int = 0  # examples whose ∂h_L/∂h_1 spectrum is probed (0: none)
    histogram_bins: int = 0  # bins of per-layer histograms of φ(h_l) and ∂L/∂h_l (0: none)
    masked: bool = False  # lanes carry their own depth <= arch.depth

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.steps % self.log_every:
            raise ValueError(f"log_every ({self.log_every}) must divide steps ({self.steps})")
        if self.probe_interval % self.log_every:
            raise ValueError(
                f"probe_every ({self.probe_every}) must be a multiple of log_every ({self.log_every})"
            )

    @property
    def probe_interval(self) -> int:
        return self.probe_every or max(self.steps, self.log_every)

    def log_steps(self) -> np.ndarray:
        """Steps at which the loss/accuracy curve is evaluated (0 included)."""
        return np.arange(0, self.steps + 1, self.log_every)

    def probe_steps(self) -> np.ndarray:
        """Steps at which layer probes run: 0, every probe_every, and the last."""
        full = np.arange(0, self.steps + 1, self.probe_interval)
        return full if full[-1] == self.steps else np.append(full, self.steps)


class Lane(NamedTuple):
    """Per-config numbers batched by vmap (each a scalar for one run)."""

    seed: jax.Array
    sigma_w2: jax.Array
    sigma_b2: jax.Array
    learning_rate: jax.Array
    target_loss: jax.Array  # NaN: no target
    depth: jax.Array  # active depth; equals arch.depth unless the program is masked
    init_index: jax.Array  # which of arch.init this lane uses
    residual_scale: jax.Array = 1.0  # α of residual layers (unused without residual)
    activation_index: jax.Array = 0  # which of arch.activation this lane uses
    clip_norm: jax.Array = float("inf")  # global-norm clipping threshold; inf: no clipping


class Data(NamedTuple):
    x_train: jax.Array
    y_train: jax.Array
    x_test: jax.Array
    y_test: jax.Array


class Record(NamedTuple):
    """Everything one run returns; leading axis n_probes or n_logs where listed."""

    layers: dict  # name -> (n_probes, depth)
    spectra: jax.Array | None  # (n_probes, jacobian_samples, width) singular values, or None
    train_loss: jax.Array  # (n_logs,)
    train_accuracy: jax.Array  # (n_logs,)
    test_accuracy: jax.Array  # (n_logs,)
    diverged: jax.Array  # bool
    diverged_step: jax.Array  # int32, -1 if never
    last_finite_loss: jax.Array  # minibatch loss of the last finite step
    steps_to_target: jax.Array  # int32, -1 if not reached (or no target)
    clip_rate: jax.Array  # fraction of steps whose gradient norm exceeded clip_norm
    max_grad_norm: jax.Array  # largest global gradient norm of any step
    histograms: dict | None = None  # counts (n_probes, 2, depth, bins), lo and hi (n_probes, 2), or None


class TrainState(NamedTuple):
    params: nnx.State
    opt_state: optax.OptState
    step: jax.Array
    diverged: jax.Array
    diverged_step: jax.Array
    last_finite_loss: jax.Array
    norm_stats: models.NormStats  # BatchNorm running averages, used at evaluation
    clipped_steps: jax.Array
    max_grad_norm: jax.Array


#: weight of the old value in BatchNorm's running averages (short runs: a short memory)
BATCHNORM_MOMENTUM = 0.9


def make_optimizer(name: str, learning_rate, momentum: float, clip_norm=jnp.inf) -> optax.GradientTransformation:
    """An optax optimizer after global-norm clipping; learning rate and clip
    threshold may be traced (vmapped) values. An infinite threshold leaves
    every gradient exactly as it is."""
    return optax.chain(optax.clip_by_global_norm(clip_norm), _base_optimizer(name, learning_rate, momentum))


def _base_optimizer(name: str, learning_rate, momentum: float) -> optax.GradientTransformation:
    if name == "sgd":
        return optax.sgd(learning_rate)
    if name == "momentum":
        return optax.sgd(learning_rate, momentum=momentum)
    if name == "adam":
        return optax.adam(learning_rate)
    if name == "rmsprop":
        return optax.rmsprop(learning_rate)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")


EVAL_BLOCK = 256


def _blocked_loss_accuracy(model, x, y, ctx):
    """Mean cross-entropy and accuracy over (x, y), evaluated in blocks under ``lax.map``.

    Fixed-size blocks in a loop keep the activations in memory bounded and the
    program the same size whatever the evaluation set.
    """
    n = x.shape[0]
    n_blocks = -(-n // EVAL_BLOCK)
    pad = n_blocks * EVAL_BLOCK - n
    xb = jnp.pad(x, ((0, pad), (0, 0))).reshape(n_blocks, EVAL_BLOCK, x.shape[1])
    yb = jnp.pad(y, (0, pad)).reshape(n_blocks, EVAL_BLOCK)
    weight = (jnp.arange(n_blocks * EVAL_BLOCK) < n).reshape(n_blocks, EVAL_BLOCK)

    def block(args):
        xs, ys, ws = args
        logits = model(xs, ctx).logits
        nll = optax.softmax_cross_entropy_with_integer_labels(logits, ys)
        return jnp.sum(nll * ws), jnp.sum((jnp.argmax(logits, -1) == ys) * ws)

    nll, correct = jax.lax.map(block, (xb, yb, weight))
    return nll.sum() / n, correct.sum() / n


def run(program: Program, lane: Lane, data: Data) -> Record:
    """Initialise, probe, train for ``program.steps`` steps, probe and log on schedule."""
    arch = program.arch
    key = jax.random.key(lane.seed, impl=PRNG_IMPL)
    init_key, batch_key = jax.random.split(key)
    graphdef, params = models.init_state(arch, init_key, lane.sigma_w2, lane.sigma_b2, lane.init_index)
    active = jnp.arange(arch.depth) < lane.depth if program.masked else None
    ctx = models.Context(active=active, residual_scale=lane.residual_scale, activation_index=lane.activation_index)
    optimizer = make_optimizer(program.optimizer, lane.learning_rate, program.momentum, lane.clip_norm)
    batchnorm = arch.norm == "batchnorm"

    n_train = data.x_train.shape[0]
    n_eval = min(program.eval_size, n_train)
    x_eval, y_eval = data.x_train[:n_eval], data.y_train[:n_eval]
    x_test = data.x_test[: program.eval_size]
    y_test = data.y_test[: program.eval_size]
    n_probe = min(program.probe_batch, n_train)
    x_probe, y_probe = data.x_train[:n_probe], data.y_train[:n_probe]

    def loss_fn(p, x, y):
        fwd = nnx.merge(graphdef, p)(x, ctx)
        return probes.cross_entropy(fwd.logits, y), fwd.batch_stats

    def evaluate(p, norm_stats):
        model = nnx.merge(graphdef, p)
        eval_ctx = ctx._replace(stats=norm_stats if batchnorm else None)
        loss, acc = _blocked_loss_accuracy(model, x_eval, y_eval, eval_ctx)
        _, test_acc = _blocked_loss_accuracy(model, x_test, y_test, eval_ctx)
        return loss, acc, test_acc

    x_jac = data.x_train[: program.jacobian_samples]

    def probe(p):
        out = probes.layer_probes(graphdef, p, x_probe, y_probe, ctx, program.histogram_bins)
        if program.jacobian_samples:
            jac_ctx = ctx
            if batchnorm:  # the probe batch's statistics, held fixed
                jac_ctx = ctx._replace(stats=nnx.merge(graphdef, p)(x_probe, ctx).batch_stats)
            out["spectra"] = probes.jacobian_singular_values(graphdef, p, x_jac, jac_ctx)
        return out

    def sgd_step(s: TrainState, _):
        idx = jax.random.randint(
            jax.random.fold_in(batch_key, s.step), (program.batch_size,), 0, n_train
        )
        (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            s.params, data.x_train[idx], data.y_train[idx]
        )
        grad_norm = optax.tree.norm(grads)
        # one reduction for both: the norm is non-finite iff a gradient is (or its square overflows
        # float32, |g| > 1e19: a divergence too)
        ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        updates, opt_state = optimizer.update(grads, s.opt_state, s.params)
        params = optax.apply_updates(s.params, updates)
        norm_stats = s.norm_stats
        if batchnorm:
            norm_stats = jax.tree.map(
                lambda old, new: BATCHNORM_MOMENTUM * old + (1 - BATCHNORM_MOMENTUM) * new, s.norm_stats, batch_stats
            )
        frozen = s.diverged | ~ok  # a non-finite lane keeps its last finite parameters
        keep = lambda new, old: jnp.where(frozen, old, new)  # noqa: E731
        return TrainState(
            params=jax.tree.map(keep, params, s.params),
            opt_state=jax.tree.map(keep, opt_state, s.opt_state),
            step=s.step + 1,
            diverged=frozen,
            diverged_step=jnp.where(~s.diverged & ~ok, s.step, s.diverged_step),
            last_finite_loss=jnp.where(frozen, s.last_finite_loss, loss),
            norm_stats=jax.tree.map(keep, norm_stats, s.norm_stats),
            clipped_steps=s.clipped_steps + (~frozen & (grad_norm > lane.clip_norm)),
            max_grad_norm=jnp.where(frozen, s.max_grad_norm, jnp.maximum(s.max_grad_norm, grad_norm)),
        ), None

    def log_segment(s, _):
        s, _ = jax.lax.scan(sgd_step, s, None, length=program.log_every)
        return s, evaluate(s.params, s.norm_stats)

    def probe_segment(s, _):
        s, evals = jax.lax.scan(log_segment, s, None, length=program.probe_interval // program.log_every)
        return s, (evals, probe(s.params))

    state = TrainState(
        params=params,
        opt_state=optimizer.init(params),
        step=jnp.zeros((), jnp.int32),
        diverged=jnp.zeros((), bool),
        diverged_step=jnp.full((), -1, jnp.int32),
        last_finite_loss=jnp.full((), jnp.nan, jnp.float32),
        norm_stats=models.initial_stats(arch),
        clipped_steps=jnp.zeros((), jnp.int32),
        max_grad_norm=jnp.zeros((), jnp.float32),
    )
    evals = [jax.tree.map(lambda v: v[None], evaluate(params, state.norm_stats))]
    first_probe = probe(params)
    if program.jacobian_samples:  # its SVD before the later probes' (see models.after); a
        # non-finite initial Jacobian (NaN spectrum) leaves NaN weights: the lane diverges at once
        state = state._replace(params=models.after(state.params, first_probe["spectra"]))
    layer_parts = [jax.tree.map(lambda v: v[None], first_probe)]

    n_full = program.steps // program.probe_interval
    if n_full:
        state, (full_evals, full_probes) = jax.lax.scan(probe_segment, state, None, length=n_full)
        evals.append(jax.tree.map(lambda v: v.reshape(-1), full_evals))
        layer_parts.append(full_probes)
    n_rest = (program.steps - n_full * program.probe_interval) // program.log_every
    if n_rest:
        state, rest_evals = jax.lax.scan(log_segment, state, None, length=n_rest)
        evals.append(rest_evals)
        layer_parts.append(jax.tree.map(lambda v: v[None], probe(state.params)))

    train_loss, train_acc, test_acc = (jnp.concatenate(parts) for parts in zip(*evals))
    layers = jax.tree.map(lambda *parts: jnp.concatenate(parts), *layer_parts)  # (n_probes, ...) leaves
    spectra = layers.pop("spectra", None)
    histograms = layers.pop("histograms", None)
    hit = train_loss <= lane.target_loss  # False for a NaN target
    log_steps = jnp.asarray(program.log_steps(), jnp.int32)
    return Record(
        layers=layers,
        spectra=spectra,
        train_loss=train_loss,
        train_accuracy=train_acc,
        test_accuracy=test_acc,
        diverged=state.diverged,
        diverged_step=state.diverged_step,
        last_finite_loss=state.last_finite_loss,
        steps_to_target=jnp.where(jnp.any(hit), log_steps[jnp.argmax(hit)], -1),
        clip_rate=state.clipped_steps / max(program.steps, 1),
        max_grad_norm=state.max_grad_norm,
        histograms=histograms,
    )


def data_arrays(dataset) -> Data:
    """Device arrays of a ``satbench.data.Dataset``."""
    return Data(*(jnp.asarray(a) for a in (dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test)))
