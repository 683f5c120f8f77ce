"""One training run as a pure function, vmappable over configs.

``run(program, lane, data) -> Record``: ``program`` is static (it changes the
compiled code), ``lane`` holds the per-config numbers that a sweep batches
(seed, init scales, learning rate, ...). Steps run under ``lax.scan`` in
one scan over the log steps, each evaluating, probing where the schedule says
(a ``cond``) and training to the next (a scan of SGD steps), so the compiled
program does not grow with the number of steps, holds one copy of the
evaluation, the probe and the step, and no step pays for logging or probing
it does not do.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from satbench import clipping, data as datasets, families, losses, models, phi_hat, probe_tables, probes, schedule, spec
from satbench import warmup
from satbench.fields import as_choices

OPTIMIZERS = spec.OPTIMIZERS
#: threefry: the only implementation whose streams are the same under vmap as alone
#: ("rbg" compiles faster on CPU but a lane's numbers would depend on its chunk).
PRNG_IMPL = "threefry2x32"
EVAL_SIZE = schedule.EVAL_SIZE


@dataclasses.dataclass(frozen=True)
class Program:
    """The static part of a config: one compilation per distinct Program.

    arch: the family's architecture. settings: every field of ``spec.program_fields()``
    (dataset, optimizer, steps, ...), read as attributes (``program.steps``).
    masked: lanes carry their own depth <= arch.depth.
    clipping: some lane has a finite ``clip_norm``; False (the planner's, when none has): the
      program has no clipping transform, whose pass over the gradients cost 4-7 % of a width-256
      step even at an infinite threshold (the updates are the same).
    residual: some lane may be residual (``Context.residual`` from the lane); False: every lane
      is plain, and the layers have no select (about 10 % of a width-64 step).
    adaptive_clip: some lane has an ``agc`` ratio (the others' is inf: their updates are unchanged).
    dropout: some lane has a dropout rate (the others' 0 keeps every unit).
    warmup: some lane warms its learning rate up (``warmup_steps`` > 0; the others' factor is exactly 1).
    per_call: lane-chosen fields (of ``spec.LANE_CHOICES``) whose value is one per call, not per lane: their
      index enters ``run`` unbatched (``lane_axes``), so ``lax.switch`` on it stays a branch that runs one
      activation instead of becoming a select that computes them all (under vmap the select computed
      every activation, forward and backward: 20-41 % of a width-64 program's compile, its run the same
      or up to 12 % slower). The planner sets it and cuts each call's lanes from one value
      (``plan.call_chunks``).
    """

    arch: Any
    settings: tuple[tuple[str, Any], ...]
    masked: bool = False
    eval_size: int = EVAL_SIZE  # not a config field: tests and benchmarks shrink it
    residual: bool = True
    adaptive_clip: bool = False  # some lane clips adaptively (``agc``); False: no AGC in the program
    dropout: bool = False  # some lane drops units (``dropout`` > 0); False: no masks are drawn
    warmup: bool = False  # some lane has ``warmup_steps`` > 0; False: no warmup factor in the program
    clipping: bool = True  # some lane may clip (finite ``clip_norm``); False: no clipping pass over the gradients
    per_call: tuple[str, ...] = ()  # lane-chosen fields with one value per call (an unbatched index)

    def __getattr__(self, name):
        for key, value in object.__getattribute__(self, "settings"):
            if key == name:
                return value
        raise AttributeError(f"Program has no field {name!r}")

    @property
    def task(self) -> str:
        """The dataset's task: classify, regress or classify_steps (``satbench.losses``)."""
        return datasets.describe(self.dataset).task

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


def make_program(arch, masked: bool = False, eval_size: int = EVAL_SIZE, **settings) -> Program:
    """A Program of ``arch`` with ``settings`` over the schema's defaults (``spec.FIELDS``)."""
    names = spec.program_fields()
    unknown = set(settings) - set(names)
    if unknown:
        raise ValueError(f"not program settings: {sorted(unknown)}; allowed: {', '.join(names)}")
    values = schedule.resolve_log_every({k: settings.get(k, spec.FIELDS[k].default) for k in names})
    return Program(arch, tuple(values.items()), masked, eval_size)


#: per-config numbers batched by vmap, each a scalar for one run: every ``spec.lane_fields()``
#: field, plus ``depth`` (the active depth; arch.depth unless masked) and, for each of
#: ``spec.LANE_CHOICES``, ``<field>_index``: which of the program's values the lane uses
Lane = dict


def lane_choices(arch, optimizers: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """The values of each ``spec.LANE_CHOICES`` field a program holds: the architecture's inits,
    activations and norms, and the program's optimizers."""
    return {"init": arch.init, "activation": arch.activation, "norm": getattr(arch, "norm", ("none",)),
            "optimizer": as_choices(optimizers)}


def default_row(arch, optimizers: tuple[str, ...]) -> dict:
    """One config's field values: the schema's defaults, the architecture's depth and, of each
    lane-chosen field, the program's first value."""
    row = {k: f.default for k, f in spec.FIELDS.items()}
    row.update(depth=arch.depth, **{name: values[0] for name, values in lane_choices(arch, optimizers).items()})
    return row


def lane_arrays(rows: list[dict], arch, n_lanes: int, optimizers: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The lane fields of config ``rows`` (dicts of field values) as numpy arrays of ``n_lanes``
    (the last row repeated to pad), encoded as the schema says: None as the field's
    ``lane_none``, ints as int32 (or their ``lane_dtype``), floats as float32; each lane-chosen
    field as its index among ``lane_choices(arch, optimizers)``."""
    rows = list(rows) + [rows[-1]] * (n_lanes - len(rows))
    out = {}
    for name in spec.lane_fields():
        field = spec.FIELDS[name]
        values = [field.lane_none if r[name] is None else r[name] for r in rows]
        dtype = field.lane_dtype or ("int32" if field.kind is int else "float32")
        out[name] = np.array(values, dtype)
    out["depth"] = np.array([r["depth"] for r in rows], np.int32)
    for name, choices in lane_choices(arch, optimizers).items():
        out[f"{name}_index"] = np.array([choices.index(r[name]) for r in rows], np.int32)
    return out


def lane_axes(program: Program, lane: Lane) -> dict[str, int | None]:
    """vmap's ``in_axes`` for ``lane``: 0 (one value per lane) but for the program's ``per_call``
    indices (None: one value for the call)."""
    scalar = {f"{name}_index" for name in program.per_call}
    return {name: None if name in scalar else 0 for name in lane}


def one_lane(arch, **values) -> dict[str, jax.Array]:
    """One lane's values as JAX scalars: ``values`` over ``default_row`` (the optimizer: ``values``'
    or the schema's). For running ``run`` on one config."""
    row = {**default_row(arch, values.get("optimizer", spec.FIELDS["optimizer"].default)), **values}
    return {k: jnp.asarray(v[0]) for k, v in lane_arrays([row], arch, 1, (row["optimizer"],)).items()}


class Data(NamedTuple):
    x_train: jax.Array
    y_train: jax.Array
    x_test: jax.Array
    y_test: jax.Array


class Record(NamedTuple):
    """Everything one run returns; leading axis n_probes or n_logs where listed."""

    layers: dict  # name -> (n_probes, depth)
    tables: dict  # the probed tables of ``satbench.probe_tables`` by name (spectra, histograms), arrays (n_probes, ...)
    train_loss: jax.Array  # (n_logs,)
    train_accuracy: jax.Array  # (n_logs,)
    test_accuracy: jax.Array  # (n_logs,)
    diverged: jax.Array  # bool
    diverged_step: jax.Array  # int32, -1 if never
    last_finite_loss: jax.Array  # minibatch loss of the last finite step
    steps_to_target: jax.Array  # int32, -1 if not reached (or no target)
    clip_rate: jax.Array  # fraction of steps whose gradient norm exceeded clip_norm
    max_grad_norm: jax.Array  # largest global gradient norm of any step


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


#: the dropout masks' key: fold_in(the seed's key, DROPOUT_STREAM); step s draws from fold_in(that, s),
#: every probe from fold_in(that, PROBE_MASKS) (the same masks at each probe: changes between probes
#: are the weights'); never renumber (results would change)
DROPOUT_STREAM = 2
PROBE_MASKS = 2**31 - 1
#: weight of the old value in BatchNorm's running averages (short runs: a short memory)
BATCHNORM_MOMENTUM = 0.9


def make_optimizer(names: str | tuple[str, ...], learning_rate, momentum: float, clip_norm=None,
                   index=0, agc=None, stacked: tuple[str, ...] = (), warmup_steps=None) -> optax.GradientTransformation:
    """An optax optimizer after global-norm clipping; learning rate and clip
    threshold may be traced (vmapped) values. An infinite threshold leaves
    every gradient exactly as it is; None: no clipping transform at all. Several
    ``names``: the lane's is ``names[index]`` (``pick_per_lane``), so sweeps over the
    optimizer share a program. ``agc``: adaptive clipping at that ratio first
    (``clipping.adaptive_clip``; ``stacked``: the network's layer-stacked parameters); None:
    none. ``warmup_steps``: the learning rate rises linearly over that many steps
    (``warmup.schedule``, traced is fine); None: a constant learning rate."""
    names = (names,) if isinstance(names, str) else tuple(names)
    rate = learning_rate if warmup_steps is None else warmup.schedule(learning_rate, warmup_steps)
    bases = [_base_optimizer(n, rate, momentum) for n in names]
    base = bases[0] if len(bases) == 1 else pick_per_lane(bases, index)
    first = [] if agc is None else [clipping.adaptive_clip(agc, stacked)]
    clip = [] if clip_norm is None else [optax.clip_by_global_norm(clip_norm)]
    return optax.chain(*first, *clip, base)


def pick_per_lane(transforms: list[optax.GradientTransformation], index) -> optax.GradientTransformation:
    """The update of ``transforms[index]``, ``index`` traced: every transform keeps its own state
    and computes its update (elementwise work, small beside the gradient), then one is selected,
    as ``lax.switch`` does under vmap. The selected update is exactly what that transform
    alone computes, so a lane's numbers do not depend on the optimizers beside it."""

    def init(params):
        return tuple(t.init(params) for t in transforms)

    def update(updates, state, params=None):
        results = [t.update(updates, s, params) for t, s in zip(transforms, state)]
        chosen = results[0][0]
        for k, (candidate, _) in enumerate(results[1:], start=1):
            chosen = jax.tree.map(lambda new, old, k=k: jnp.where(index == k, new, old), candidate, chosen)
        return chosen, tuple(new_state for _, new_state in results)

    return optax.GradientTransformation(init, update)


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


def _blocked_loss_accuracy(model, x, y, ctx, loss: losses.Loss):
    """Mean loss and accuracy over (x, y), evaluated in blocks under ``lax.map``.

    Fixed-size blocks in a loop keep the activations in memory bounded and the
    program the same size whatever the evaluation set.
    """
    n = x.shape[0]
    n_blocks = -(-n // EVAL_BLOCK)
    pad = n_blocks * EVAL_BLOCK - n
    xb = jnp.pad(x, ((0, pad),) + ((0, 0),) * (x.ndim - 1)).reshape(n_blocks, EVAL_BLOCK, *x.shape[1:])
    yb = jnp.pad(y, ((0, pad),) + ((0, 0),) * (y.ndim - 1)).reshape(n_blocks, EVAL_BLOCK, *y.shape[1:])
    weight = (jnp.arange(n_blocks * EVAL_BLOCK) < n).reshape(n_blocks, EVAL_BLOCK)

    def block(args):
        xs, ys, ws = args
        logits = model(xs, ctx).logits
        return jnp.sum(loss.per_example(logits, ys) * ws), jnp.sum(loss.correct(logits, ys) * ws)

    nll, correct = jax.lax.map(block, (xb, yb, weight))
    return nll.sum() / n, correct.sum() / n


def _index(lane: Lane, field: str, choices) -> jax.Array | int:
    """The lane's index into a lane-chosen field's ``choices`` (0 where there is one choice, so a
    lane written by hand needs no index it cannot use)."""
    return 0 if len(as_choices(choices)) == 1 else lane[f"{field}_index"]


def _reads_lane(arch) -> bool:
    """Whether the family's ``Network`` takes the lane at init (its own per-lane fields)."""
    import inspect

    # the constructor's own signature: an nnx.Module class's is its metaclass's (*args, **kwargs)
    return "lane" in inspect.signature(models.network_class(arch).__init__).parameters


def _phi_transform(program: Program, lane: Lane) -> phi_hat.PhiTransform | None:
    """The lane's φ̂ constants where the program's configs are transformed (``act_transform``); None
    keeps a plain program's forward pass exactly as it was."""
    return None if program.act_transform == "none" else phi_hat.PhiTransform.from_lane(lane)


def run(program: Program, lane: Lane, data: Data) -> Record:
    """Initialise, probe, train for ``program.steps`` steps, probe and log on schedule."""
    arch = program.arch
    key = jax.random.key(lane["seed"], impl=PRNG_IMPL)
    init_key, batch_key = jax.random.split(key)
    dropout_key = jax.random.fold_in(key, DROPOUT_STREAM)
    graphdef, params = models.init_state(arch, init_key, lane["sigma_w2"], lane["sigma_b2"], lane["init_index"],
                                         lane=lane if _reads_lane(arch) else None)
    active = jnp.arange(arch.depth) < lane["depth"] if program.masked else None
    ctx = models.Context(active=active, residual=lane["residual"] if program.residual else False,
                         residual_scale=lane["residual_scale"],
                         activation_index=lane["activation_index"], norm_index=_index(lane, "norm", arch.norm),
                         lane=lane, phi=_phi_transform(program, lane))
    optimizer = make_optimizer(program.optimizer, lane["learning_rate"], program.momentum,
                               lane["clip_norm"] if program.clipping else None,
                               _index(lane, "optimizer", program.optimizer),
                               agc=lane["agc"] if program.adaptive_clip else None,
                               stacked=getattr(models.network_class(arch), "stacked_params", ()),
                               warmup_steps=lane["warmup_steps"] if program.warmup else None)
    batchnorm = "batchnorm" in arch.norm
    loss = losses.for_task(program.task)

    n_train = data.x_train.shape[0]
    n_eval = min(program.eval_size, n_train)
    x_eval, y_eval = data.x_train[:n_eval], data.y_train[:n_eval]
    x_test = data.x_test[: program.eval_size]
    y_test = data.y_test[: program.eval_size]
    n_probe = min(program.probe_batch, n_train)
    x_probe, y_probe = data.x_train[:n_probe], data.y_train[:n_probe]

    def with_dropout(number):
        """The lane's context with dropout masks drawn from stream ``number`` (a step, or the probes')."""
        return ctx._replace(dropout_key=jax.random.fold_in(dropout_key, number)) if program.dropout else ctx

    def loss_fn(p, x, y, step):
        fwd = nnx.merge(graphdef, p)(x, with_dropout(step))
        return loss.mean(fwd.logits, y), fwd.batch_stats

    def evaluate(p, norm_stats):
        model = nnx.merge(graphdef, p)
        eval_ctx = ctx._replace(stats=norm_stats if batchnorm else None)
        train_loss, acc = _blocked_loss_accuracy(model, x_eval, y_eval, eval_ctx, loss)
        _, test_acc = _blocked_loss_accuracy(model, x_test, y_test, eval_ctx, loss)
        return train_loss, acc, test_acc

    x_jac = data.x_train[: program.jacobian_samples]

    def probe(p):
        out = probes.layer_probes(graphdef, p, x_probe, y_probe, with_dropout(PROBE_MASKS), program.histogram_bins,
                                  loss, program.pair_samples)
        if program.jacobian_samples:
            jac_ctx = ctx
            if batchnorm:  # the probe batch's statistics, held fixed
                jac_ctx = ctx._replace(stats=nnx.merge(graphdef, p)(x_probe, ctx).batch_stats)
            out["spectra"] = probes.jacobian_singular_values(graphdef, p, x_jac, jac_ctx)
        if program.input_grad_probe:
            out["input_grads"] = probes.input_gradient_probe(graphdef, p, x_probe, ctx)
        return out

    # jitted, the probe is traced once: eval_shape (its buffer's shapes) and the cond reuse that
    # trace (a second trace of the probe was a fifth of a depth-32 program's lowering)
    probe = jax.jit(probe)

    def sgd_step(s: TrainState, _):
        idx = jax.random.randint(
            jax.random.fold_in(batch_key, s.step), (program.batch_size,), 0, n_train
        )
        (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            s.params, data.x_train[idx], data.y_train[idx], s.step
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
            clipped_steps=s.clipped_steps + (~frozen & (grad_norm > lane["clip_norm"])),
            max_grad_norm=jnp.where(frozen, s.max_grad_norm, jnp.maximum(s.max_grad_norm, grad_norm)),
        ), None

    def log_point(carry, at):
        """One log step: evaluate; probe if it is a probe step; train to the next log step, if any.
        The evaluation, the probe and the step are each traced once whatever the schedule (each
        copy would be compiled again); the scan index is the same for every lane, so under vmap
        the conds stay branches, not selects."""
        s, probed = carry
        evals = evaluate(s.params, s.norm_stats)
        probed = jax.lax.cond(at["probe"], lambda: _write_row(probed, at["slot"], probe(s.params)), lambda: probed)
        s = jax.lax.cond(at["train"], lambda: jax.lax.scan(sgd_step, s, None, length=program.log_every)[0],
                         lambda: s)
        return (s, probed), evals

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
    if program.steps:
        schedule_at = _log_schedule(program)
        empty = jax.tree.map(lambda a: jnp.zeros((len(program.probe_steps()),) + a.shape, a.dtype),
                             jax.eval_shape(probe, params))
        (state, layers), evals = jax.lax.scan(log_point, (state, empty), schedule_at)
    else:  # init only: nothing to train, so no step is compiled
        evals = jax.tree.map(lambda v: v[None], evaluate(params, state.norm_stats))
        layers = jax.tree.map(lambda v: v[None], probe(params))

    train_loss, train_acc, test_acc = evals
    tables = {name: layers.pop(name) for name in probe_tables.PROBE_TABLES if name in layers}
    site_table = families.of(arch).site_table
    if site_table != "layers":  # the per-site columns are a table of their own (time steps: timesteps)
        tables[site_table], layers = layers, {}
        tables.pop("pair_map", None)  # its rows and xi_c_measured are per layer (sites beyond depth dropped)
    hit = train_loss <= lane["target_loss"]  # False for a NaN target
    log_steps = jnp.asarray(program.log_steps(), jnp.int32)
    return Record(
        layers=layers,
        tables=tables,
        train_loss=train_loss,
        train_accuracy=train_acc,
        test_accuracy=test_acc,
        diverged=state.diverged,
        diverged_step=state.diverged_step,
        last_finite_loss=state.last_finite_loss,
        steps_to_target=jnp.where(jnp.any(hit), log_steps[jnp.argmax(hit)], -1),
        clip_rate=state.clipped_steps / max(program.steps, 1),
        max_grad_norm=state.max_grad_norm,
    )


def _log_schedule(program: Program) -> dict[str, jax.Array]:
    """Per log step (the scan's rows): ``probe`` (a probe step?), ``slot`` (its row among the
    probes) and ``train`` (steps follow it: all but the last)."""
    is_probe = np.isin(program.log_steps(), program.probe_steps())
    n = len(is_probe)
    return {"probe": jnp.asarray(is_probe), "slot": jnp.asarray(np.cumsum(is_probe) - 1, jnp.int32),
            "train": jnp.asarray(np.arange(n) < n - 1)}


def _write_row(table, row, values):
    """``table`` (a tree of arrays with a leading row axis) with row ``row`` set to ``values``."""
    return jax.tree.map(lambda t, v: jax.lax.dynamic_update_index_in_dim(t, v.astype(t.dtype), row, 0), table, values)


def data_arrays(dataset, info=None) -> Data:
    """Device arrays of a ``satbench.data.Dataset``; with its ``DatasetInfo``, images take their
    (H, W, C) shape and sequences their (T, F) (a network that wants vectors flattens them itself)."""

    def shaped(x):
        if info is not None and info.sequence is not None:  # time-major rows: (T, F) per example
            seq_len = dataset.meta["seq_len"]
            return x.reshape(x.shape[0], seq_len, -1)
        if info is None or info.image_shape is None:
            return x
        height, width, channels = info.image_shape
        if info.channels_first:
            return x.reshape(-1, channels, height, width).transpose(0, 2, 3, 1)
        return x.reshape(-1, height, width, channels)

    return Data(jnp.asarray(shaped(dataset.x_train)), jnp.asarray(dataset.y_train),
                jnp.asarray(shaped(dataset.x_test)), jnp.asarray(dataset.y_test))
