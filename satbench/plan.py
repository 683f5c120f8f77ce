"""From configs to compile groups and chunks, with one cost model.

Configs that differ only in batched fields (seed, σ_w², σ_b², learning rate,
target) share a compiled program and run as vmap lanes. Depth changes the
parameter shapes, so each group's depths are partitioned into buckets: one
program per bucket, padded to the bucket's deepest config with the extra
layers masked to the identity. The partition minimising estimated
compile + run seconds is found exactly by dynamic programming over the
sorted depths; with the default constants a training sweep keeps depths
apart (padding wastes FLOPs) and an init-only sweep merges them (compiles
dominate). All constants live in ``CostModel``.

Chunks are sized to a memory budget per device with ``memory_terms`` (an
estimate of one config's bytes) and ``chunk_size``; the engine halves a
chunk that still runs out of memory (``halve_chunk``).
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter, defaultdict

from satbench import data, families, inits, probes, spec, train
from satbench.fields import as_choices, normalises



def static_fields() -> tuple[str, ...]:
    """Fields that change the compiled program, apart from depth (bucketed), layers (decided
    here), the lane-chosen fields (``spec.LANE_CHOICES``: init by its program kind, a few
    activations per program, every norm and optimizer) and remedy (a label: its settings are
    in the other fields). Family fields included."""
    return tuple(k for k, f in spec.FIELDS.items()
                 if not f.batched and k not in ("depth", "layers", "remedy", *spec.LANE_CHOICES))


@dataclasses.dataclass(frozen=True)
class CostModel:
    """Seconds to compile and run a program, from constants measured on a 2-core CPU.

    The measurements behind them are in benchmarks/README.md, "Cost model (`plan.CostModel`)";
    ``python -m benchmarks.scaling`` re-measures compile time against depth.
    """

    #: compile seconds (measured on 2 cores, width 64, 1-3 activations, depths 8 and 32:
    #: benchmarks/README.md "Cost model"): a base, plus per activation sharing the program
    #: (lax.switch compiles every branch) 0.11 s per unrolled layer or 0.4 s for a scanned stack
    compile_base_s: float = 2.2
    compile_unroll_s_per_layer: float = 0.11
    compile_scan_s: float = 0.4
    scan_slowdown: float = 1.4  # scanned layers run slower than unrolled ones on CPU (1.45 at width 64)
    #: a vmapped program's matmul throughput, flops_per_s · width / (width + half_rate_width): small
    #: per-lane matmuls are overhead-bound (measured: ≈ 58 GFLOP/s unrolled at width 64, ≈ 216 at 256)
    flops_per_s: float = 2.4e11
    half_rate_width: float = 200.0
    #: activations sharing one program (chosen per lane by lax.switch): under vmap each
    #: lane evaluates every branch, elementwise work that stays small next to the
    #: matmuls for a few branches and saves a compile per activation
    activations_per_program: int = 4
    #: on CPU a program of several activations takes one per call (``train.Program.per_call``: a branch
    #: instead of a select of all of them; width 64, 3 activations: depth 32 compiled in 6.8 s instead of
    #: 11.6 and ran 4 % faster), unless cutting its calls by activation pads them to more than this many
    #: lanes per lane of the mixed calls: at width 1000 (init-only) the branch saved 37 % of the compile
    #: but no run time (4.14 vs 4.10 s per lane), so a padded lane would be a loss there
    per_call_max_padding: float = 1.0

    def throughput(self, width: int) -> float:
        """FLOP/s of unrolled layers at this width."""
        return self.flops_per_s * width / (width + self.half_rate_width)

    def compile_seconds(self, depth: int, layers: str, n_activations: int = 1) -> float:
        """Unrolled layers compile in time linear in depth, a scanned stack in constant time."""
        per_stack = (self.compile_unroll_s_per_layer * depth if layers == "unroll" else self.compile_scan_s)
        return self.compile_base_s + n_activations * per_stack

    def layer_mode(self, depth: int, flops: float, width: int, n_activations: int = 1) -> str:
        """Unroll where the compile it adds costs less than the scan's slower run."""
        return min(("unroll", "scan"), key=lambda mode: self.seconds(depth, flops, mode, width, n_activations))

    def seconds(self, depth: int, flops: float, layers: str, width: int, n_activations: int = 1) -> float:
        run = flops / self.throughput(width) * (1.0 if layers == "unroll" else self.scan_slowdown)
        return self.compile_seconds(depth, layers, n_activations) + run


def family_cost(values, depth: int, shape: families.DataShape) -> families.Cost:
    """The config's family's size terms (``families.Cost``)."""
    return families.get(values["model"]).impl().cost(values, depth, shape)


def flops_per_config(values: dict, depth: int, shape: families.DataShape) -> float:
    """Forward + backward FLOPs of one run (training, evaluation and probes)."""
    cost = family_cost(values, depth, shape)
    w = cost.site_units
    weights = cost.forward_flops / 2  # multiply-adds of one example's forward pass
    steps = values["steps"]
    n_logs = steps // values["log_every"] + 1
    n_probes = (steps // (values["probe_every"] or max(steps, 1))) + 2
    train_flops = 6.0 * steps * values["batch_size"] * weights
    eval_flops = 2.0 * n_logs * 4096 * weights
    probe_flops = 6.0 * n_probes * values["probe_batch"] * weights
    jacobian_flops = 2.0 * n_probes * values["jacobian_samples"] * (w * weights + 4 * w**3)
    return train_flops + eval_flops + probe_flops + jacobian_flops


#: optimizer state per parameter, in parameter-sized buffers (optax: momentum trace; adam mu, nu; rmsprop nu)
OPTIMIZER_SLOTS = {"sgd": 0, "momentum": 1, "adam": 2, "rmsprop": 1}
FLOAT_BYTES = 4


def memory_terms(values: dict, depth: int, shape: families.DataShape) -> dict[str, int]:
    """Estimated device bytes of one config (one vmap lane), by what holds them (float32).

    params      the parameters
    optimizer   optimizer state: 0 (sgd), 1 (momentum, rmsprop) or 2 (adam) parameter copies; a lane of
                a program with several optimizers holds all their states
    step        a training step's gradients, updates and the new params and optimizer
                state beside the old ones in the scan carry: (2 + slots) parameter copies
    (units: one site's numbers per example, a layer's width or a CNN's C·H·W)
    (saved: what a site keeps beyond them for its backward, ``Cost.saved_units``, e.g. im2col patches)
    train       train-batch activations kept for the backward pass: pre-activations,
                activations, their gradients and the zero taps, 4 x batch x units x depth,
                the saved numbers and their gradients, 2 x batch x saved x depth,
                plus the gathered inputs and logits
    probe       the probe batch's forward and backward (taps, pre-activations, φ(h),
                φ'(h), ∂L/∂h and what scan stashes for the backward): 8 x probe_batch x units x depth,
                2 x probe_batch x saved x depth, plus a gradient copy
    eval        one evaluation block (train.EVAL_BLOCK examples) forward: 3 x block x units x depth
                and one layer's saved numbers
    jacobian    forward-mode Jacobian probe: units tangents through every layer for each
                sample, plus the SVD workspace: samples x units² x (2 depth + 3)
    outputs     the returned record: per-probe layer fields, curves and spectra
    The dataset, shared by every lane of a program, is counted once in ``program_bytes``.
    """
    f = FLOAT_BYTES
    cost = family_cost(values, depth, shape)
    w, p, n_in, n_out = cost.site_units, cost.params, shape.n_in, shape.n_out
    saved = cost.saved_units
    normalised = normalises(values.get("norm", "none"))
    slots = sum(OPTIMIZER_SLOTS[o] for o in as_choices(values["optimizer"]))  # each optimizer's state
    batch, probe_batch, samples = values["batch_size"], values["probe_batch"], values["jacobian_samples"]
    steps = values["steps"]
    n_logs = steps // values["log_every"] + 1
    n_probes = steps // (values["probe_every"] or max(steps, 1)) + 2
    return {
        "params": f * p,
        "optimizer": f * p * slots,
        "step": f * p * (2 + slots) + (4 * f * depth * cost.matmul_width if normalised else 0),  # + running stats
        "train": f * (4 * batch * w * depth + 2 * batch * saved * depth + batch * (n_in + 2 * n_out)),
        "probe": f * (8 * probe_batch * w * depth + 2 * probe_batch * saved * depth + p),
        "eval": f * train.EVAL_BLOCK * (3 * w * depth + saved),
        "jacobian": f * samples * w * w * (2 * depth + 3),
        "outputs": f * (n_probes * depth * len(probes.LAYER_FIELDS) + 3 * n_logs + n_probes * samples * w),
    }


#: the terms of ``memory_terms`` whose buffers live only while their phase runs: a run evaluates,
#: probes and trains one after another (``train.run``'s loop over log steps), so XLA reuses one
#: phase's buffers for the next and a lane needs only the largest (summing them was 1.7-3.5x XLA's
#: own buffer assignment; their largest is 1.1-1.9x, MLP and CNN, scanned and unrolled)
PHASES = ("train", "probe", "eval", "jacobian")


def config_bytes(values: dict, depth: int, shape: families.DataShape) -> int:
    """Estimated device bytes of one config: the terms of ``memory_terms`` held throughout, plus the
    largest of its ``PHASES``."""
    terms = memory_terms(values, depth, shape)
    return sum(v for k, v in terms.items() if k not in PHASES) + max(terms[k] for k in PHASES)


def program_bytes(dataset_name: str, seq_len: int = 0) -> int:
    """Bytes every program holds once per device whatever its chunk: the dataset arrays
    and the evaluation and probe slices copied from them (counted twice)."""
    info = data.describe(dataset_name)  # planning reads no data
    n_in = math.prod(info.input_shape_at(seq_len))
    return 2 * (info.n_train + info.n_test) * (n_in + 1) * FLOAT_BYTES


def chunk_size(n_configs: int, per_config: int, fixed: int, budget: int | None,
               max_chunk: int, n_devices: int = 1, concurrent: int = 1) -> int:
    """Lanes per program call: at most ``max_chunk``, at most what fits ``budget`` bytes
    per device (``fixed`` + lanes x ``per_config`` for each of the ``concurrent`` calls that
    run at once; at least one lane per device), and a multiple of ``n_devices`` (the config
    axis is sharded evenly). The calls are balanced and, where there are enough configs, a
    multiple of ``concurrent`` (so every worker has a call): 20 configs under a cap of 16 run
    as 2 x 10, not 16 + 4 padded to 16 (1.6x the work); 8 configs with 2 calls at once as 2 x 4."""
    concurrent = max(1, concurrent)
    cap = min(max_chunk, n_configs)
    if budget is not None:
        per_device = max(1, (budget - fixed) // max(per_config * concurrent, 1))
        cap = min(cap, per_device * n_devices)
    cap = max(cap, 1)
    if not n_configs:
        return n_devices * math.ceil(cap / n_devices)
    calls = math.ceil(n_configs / cap)
    calls = min(concurrent * math.ceil(calls / concurrent), math.ceil(n_configs / n_devices))
    chunk = math.ceil(n_configs / calls)
    return n_devices * math.ceil(chunk / n_devices)


def halve_chunk(size: int, n_devices: int = 1) -> int | None:
    """The chunk to retry with after running out of memory at ``size`` lanes: half the
    lanes per device (rounded up), or None when one lane per device already failed."""
    per_device = size // n_devices
    if per_device <= 1:
        return None
    return n_devices * math.ceil(per_device / 2)


@dataclasses.dataclass
class Group:
    """Configs sharing one compiled program, run in chunks of ``chunk_size`` lanes.

    ``config_bytes``: estimated bytes per lane; ``fixed_bytes``: per program and device;
    ``budget_bytes``: the per-device budget the chunk was sized to (None: no budget).
    """

    program: train.Program
    configs: list
    chunk_size: int
    estimated_s: float = 0.0
    config_bytes: int = 0
    fixed_bytes: int = 0
    budget_bytes: int | None = None

    def chunks(self) -> list[list]:
        return call_chunks(self.configs, self.chunk_size, self.program.per_call)


def call_chunks(configs: list, size: int, per_call: tuple[str, ...] = ()) -> list[list]:
    """``configs`` in order, cut into calls of at most ``size``, a new call wherever one of the
    ``per_call`` fields changes value (a call holds one value of each: ``train.Program.per_call``)."""
    out, run = [], []
    for cfg in configs:
        if run and (len(run) == size or any(cfg[f] != run[0][f] for f in per_call)):
            out.append(run)
            run = []
        run.append(cfg)
    return out + [run] if run else out


def program_key(cfg) -> tuple:
    """What a config's compiled program depends on, apart from depth (bucketed here)."""
    return tuple(cfg[k] for k in static_fields()) + (cfg["layers"], inits.family(cfg["init"]))


def data_shape(dataset_name: str, seq_len: int = 0) -> families.DataShape:
    """One example's shape (a sequence task's at ``seq_len`` steps) and the network's outputs,
    from the dataset's description: planning reads no data."""
    info = data.describe(dataset_name)
    return families.DataShape(info.input_shape_at(seq_len), info.n_out, per_step=info.task == "classify_steps")


def _bucket_depths(depths_counts: list[tuple[int, int]], cost, layers_field: str, values: dict,
                   shape: families.DataShape, n_act: int) -> list[list[int]]:
    """Optimal contiguous partition of sorted depths into padded buckets."""
    depths = [d for d, _ in depths_counts]
    counts = [c for _, c in depths_counts]

    def bucket_cost(i, j):  # depths[i:j] padded to depths[j-1]
        deepest = depths[j - 1]
        flops = sum(counts[i:j]) * flops_per_config(values, deepest, shape)
        width = family_cost(values, deepest, shape).matmul_width
        layers = layers_field if layers_field != "auto" else cost.layer_mode(deepest, flops, width, n_act)
        return cost.seconds(deepest, flops, layers, width, n_act)

    best = [0.0] + [math.inf] * len(depths)
    cut = [0] * (len(depths) + 1)
    for j in range(1, len(depths) + 1):
        for i in range(j):
            c = best[i] + bucket_cost(i, j)
            if c < best[j]:
                best[j], cut[j] = c, i
    buckets, j = [], len(depths)
    while j > 0:
        buckets.append(depths[cut[j] : j])
        j = cut[j]
    return buckets[::-1]


def _split_by_activation(groups, per_program: int) -> list[list]:
    """Each group's configs in runs of at most ``per_program`` activations (sorted by name)."""
    out = []
    for members in groups:
        names = sorted({c["activation"] for c in members})
        for i in range(0, len(names), per_program):
            chosen = set(names[i : i + per_program])
            out.append([c for c in members if c["activation"] in chosen])
    return out


def make_plan(configs: list, max_chunk: int = 16, n_devices: int = 1,
              cost: CostModel = CostModel(), bucketing: bool = True,
              memory_budget: int | None = None, concurrent: int = 1, per_call: bool = False) -> list[Group]:
    """Group configs into compiled programs and chunks.

    max_chunk: most lanes per program call (vmap's diminishing returns on CPU).
    n_devices: chunk sizes are rounded up to a multiple of it (the config axis is sharded).
    bucketing: False keeps every depth in its own program.
    memory_budget: bytes per device a chunk may take by ``config_bytes`` (None: no cap).
    concurrent: program calls that run at once (``engine.Options.concurrent``): chunks are cut
      so each has one, and the budget holds them all.
    per_call: a program of several activations may take one per call (``train.Program.per_call``)
      where that pads no lane (``CostModel.per_call_max_padding``). Measured on CPU only; off it a
      branch may wait for the host, so the engine passes it on CPU.
    """
    by_static: dict[tuple, list] = defaultdict(list)
    for cfg in configs:
        by_static[program_key(cfg)].append(cfg)

    groups = []
    for members in _split_by_activation(by_static.values(), cost.activations_per_program):
        values = members[0].values
        shape = data_shape(values["dataset"], values["seq_len"])
        per_depth: dict[int, list] = defaultdict(list)
        for cfg in members:
            per_depth[cfg["depth"]].append(cfg)
        depth_counts = sorted((d, len(c)) for d, c in per_depth.items())
        n_act = len({c["activation"] for c in members})
        if bucketing and families.get(values["model"]).pads_depth:
            buckets = _bucket_depths(depth_counts, cost, values["layers"], values, shape, n_act)
        else:
            buckets = [[d] for d, _ in depth_counts]
        for bucket in buckets:
            groups.append(_group(values, [c for d in bucket for c in per_depth[d]], len(bucket) > 1, shape,
                                 cost, max_chunk, n_devices, memory_budget, concurrent, per_call))
    return groups


def _group(values: dict, configs: list, masked: bool, shape: families.DataShape, cost: CostModel,
           max_chunk: int, n_devices: int, memory_budget: int | None, concurrent: int, per_call: bool) -> Group:
    """One compiled program for ``configs`` (one bucket of depths), and its chunk size."""
    deepest = max(c["depth"] for c in configs)
    # the values every lane may pick of each lane-chosen field: the program's values of those fields
    chosen = {name: tuple(sorted({c[name] for c in configs})) for name in spec.LANE_CHOICES}
    activations, inits_ = chosen["activation"], chosen["init"]
    shared = {**values, "norm": chosen["norm"], "optimizer": chosen["optimizer"]}
    flops = len(configs) * flops_per_config(shared, deepest, shape)
    width = family_cost(shared, deepest, shape).matmul_width
    layers = (values["layers"] if values["layers"] != "auto"
              else cost.layer_mode(deepest, flops, width, len(activations)))
    arch = families.get(values["model"]).impl().architecture(shared, deepest, shape, activations, inits_, layers)
    per_config = config_bytes(shared, deepest, shape)
    fixed = program_bytes(values["dataset"], values["seq_len"])
    lanes = lambda n: chunk_size(n, per_config, fixed, memory_budget, max_chunk, n_devices, concurrent)  # noqa: E731
    chunk, call_fields = lanes(len(configs)), ()
    if per_call and len(activations) > 1:
        counts = Counter(c["activation"] for c in configs).values()
        split = lanes(max(counts))
        if _padded(counts, split) <= cost.per_call_max_padding * _padded([len(configs)], chunk):
            chunk, call_fields = split, ("activation",)
            configs = sorted(configs, key=lambda c: c["activation"])  # stable: each activation's calls in a row
    program = train.Program(arch, tuple((k, shared[k]) for k in spec.program_fields()), masked,
                            residual=any(c["residual"] for c in configs),
                            adaptive_clip=any(c["agc"] is not None for c in configs),
                            dropout=any(c["dropout"] > 0 for c in configs),
                            warmup=any(c["warmup_steps"] > 0 for c in configs),
                            clipping=any(c["clip_norm"] is not None for c in configs), per_call=call_fields)
    seconds = cost.seconds(deepest, flops, layers, width, len(activations))
    return Group(program, configs, chunk, seconds, per_config, fixed, memory_budget)


def _padded(counts, chunk: int) -> int:
    """Lanes computed when each count of configs runs in calls of ``chunk`` (the last one padded)."""
    return sum(math.ceil(n / chunk) * chunk for n in counts)


def shard_slice(configs: list, index: int, count: int, cost: CostModel = CostModel()) -> list:
    """The ``index``-th of ``count`` disjoint slices of a sweep, balanced by estimated seconds.

    Configs are ordered by compiled program, then cut into contiguous runs of
    about equal estimated run time, so a shard compiles few programs. The cut
    depends only on the full config list, never on what is already finished,
    so every job of an array computes the same partition.
    """
    if not 0 <= index < count:
        raise ValueError(f"shard index must be in [0, {count}), got {index}")

    ordered = sorted(configs, key=lambda cfg: (tuple(map(str, program_key(cfg))), cfg["activation"], cfg["depth"]))
    weights = []
    for cfg in ordered:
        shape = data_shape(cfg["dataset"], cfg["seq_len"])
        width = family_cost(cfg.values, cfg["depth"], shape).matmul_width
        weights.append(flops_per_config(cfg.values, cfg["depth"], shape) / cost.throughput(width) + 1e-3)
    total = sum(weights)
    start_at, stop_at = total * index / count, total * (index + 1) / count
    out, acc = [], 0.0
    for cfg, w in zip(ordered, weights):
        middle = acc + w / 2
        if start_at <= middle < stop_at:
            out.append(cfg)
        acc += w
    return out
