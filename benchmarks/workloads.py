"""The benchmark workloads, fixed in code, and how much work each one is.

Pure Python (no jax, no torch): the PyTorch workers import this module, and
what they import is what their peak RSS measures.

FLOP convention (the report's GFLOP/s): a dense layer of fan_in × fan_out
costs 2·fan_in·fan_out per example forward and twice that backward, so one
SGD step is 6·batch·ΣW with ΣW = Σ_l fan_in·fan_out; bias adds, activations,
the softmax and the SGD update are not counted. A stride-1 k×k convolution
from C_in to C_out channels whose output keeps the H×W image size (``cnn``)
costs 2·H·W·k²·C_in·C_out per example forward (every output position is a
dense map of the k²·C_in inputs under the kernel; padding taps are counted
as work, as the convolution kernels do them), and twice that backward; its
ΣW term is H·W·k²·C_in·C_out, the global average pool is not counted and the
dense readout adds C·n_out. So the ``cnn`` step is 6·batch·ΣW too, with
ΣW = H·W·(k²·C_img·C + (depth − 1)·k²·C²) + C·n_out (``forward_macs``).

*Common* FLOPs are the work every system does: the training steps, a final loss over the training set,
and for ``init-only`` one probe-batch forward + backward and the forward-mode
Jacobian ∂h_L/∂h_1 of each Jacobian sample (2·width per hidden-layer weight
per sample; the SVD is not counted). satbench's *extra* FLOPs (its loss
evaluations on train and test at every log step, layer probes, Jacobian
spectra at the last step) are reported separately, so GFLOP/s compares like
with like.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

#: the satbench experiment fields every workload shares (the peers do the same)
INIT = "gaussian"  # W ~ N(0, σ_w²/fan_in) for every layer, readout included
SIGMA_B2 = 0.0  # biases start at zero
EVAL_SIZE = 2048  # satbench's default: its final train loss covers min(2048, n_train) examples
SCALES = ("tiny", "subset", "full", "gpu")


@dataclasses.dataclass(frozen=True)
class Workload:
    """One benchmark sweep: a grid of configs, identical for every system."""

    name: str
    width: int
    batch_size: int
    depths: tuple[int, ...]
    activations: tuple[str, ...]
    sigma_w2: tuple[float, ...]
    seeds: tuple[int, ...]
    steps: int
    learning_rate: float = 0.01
    dataset: str = "digits"
    jacobian_samples: int = 0
    probe_batch: int = 256
    #: "mlp" (``width``) or "cnn" (``channels``, ``kernel_size``, ``padding`` on ``image_shape``
    #: images; ``width`` is unused)
    model: str = "mlp"
    channels: int = 0
    kernel_size: int = 3
    padding: str = "circular"
    image_shape: tuple[int, int, int] | None = None  # (H, W, C) of the dataset's images (cnn)
    #: satbench's loss-logging interval; 0: at step 0 and the end only (the peers log nothing)
    log_interval: int = 0

    @property
    def init_only(self) -> bool:
        return self.steps == 0

    @property
    def log_every(self) -> int:
        """satbench logs the loss every ``log_interval`` steps, else at step 0 and at the end only."""
        return self.log_interval or max(self.steps, 1)

    def shapes(self) -> list[tuple[str, int]]:
        """(activation, depth) pairs: one compiled program per pair in the per-config loops."""
        return list(itertools.product(self.activations, self.depths))

    def configs(self) -> list[dict]:
        """Every config, grouped by shape (the order the loops run them in)."""
        return [{"activation": a, "depth": d, "sigma_w2": s, "seed": seed}
                for a, d in self.shapes() for s in self.sigma_w2 for seed in self.seeds]

    @property
    def n_configs(self) -> int:
        return len(self.activations) * len(self.depths) * len(self.sigma_w2) * len(self.seeds)


def _geometric(lo: float, hi: float, n: int) -> tuple[float, ...]:
    """n values from lo to hi, evenly spaced in log (rounded so the TOML stays readable)."""
    return tuple(round(lo * (hi / lo) ** (k / (n - 1)), 4) for k in range(n))


FULL = {
    "small": Workload("small", width=64, batch_size=64, depths=(4, 8, 16, 32),
                      activations=("sigmoid", "tanh", "relu"), sigma_w2=_geometric(0.25, 4.0, 8),
                      seeds=(0, 1, 2, 3), steps=500),
    "medium": Workload("medium", width=256, batch_size=128, depths=(8, 16, 32, 64), activations=("tanh",),
                       sigma_w2=(0.5, 1.0, 1.5, 2.0, 4.0), seeds=(0, 1, 2, 3), steps=200),
    "init-only": Workload("init-only", width=1000, batch_size=64, depths=(50,),
                          activations=("sigmoid", "tanh", "relu", "erf"), sigma_w2=_geometric(0.25, 8.0, 16),
                          seeds=tuple(range(8)), steps=0, jacobian_samples=4),
    # digits as 8×8×1 images; 3×3 circular convolutions of 16 channels (fan-in k²·C = 144; the
    # torus on which Xiao et al.'s mean-field theory holds), global average pool, dense readout.
    # Sized for minutes, not tens of minutes, per JAX system on 2 cores: XLA:CPU computes the
    # kernel gradient inside a loop on a slow path (README), so batch 16, 100 steps, 2 σ_w² × 2 seeds
    "cnn": Workload("cnn", width=0, batch_size=16, depths=(4, 8, 16), activations=("tanh", "relu"),
                    sigma_w2=(1.0, 2.0), seeds=(0, 1), steps=100, model="cnn", channels=16,
                    kernel_size=3, padding="circular", image_shape=(8, 8, 1)),
    # issue 17's held-out-style sweep, as a new user runs it: 72 configs × 2000 SGD steps, width 64,
    # depths 4/8/16, three activations, every other field at satbench's default, logging included
    # (the default interval for 2000 steps of batch 64 on digits, ``schedule.auto_log_every``: 100)
    "heldout": Workload("heldout", width=64, batch_size=64, depths=(4, 8, 16), activations=("sigmoid", "tanh", "relu"),
                        sigma_w2=(0.5, 1.0, 2.0, 4.0), seeds=(0, 1), steps=2000, log_interval=100),
}

#: the smoke-run shrink: fewer seeds, σ_w², depths and steps (init-only also narrower and shallower,
#: since one width-1000 depth-50 Jacobian alone is ~1e11 FLOPs)
TINY = {
    "small": dataclasses.replace(FULL["small"], depths=(4, 8), activations=("tanh", "relu"),
                                 sigma_w2=(1.0, 2.0), seeds=(0, 1), steps=50),
    "medium": dataclasses.replace(FULL["medium"], depths=(8,), sigma_w2=(1.0, 2.0), seeds=(0, 1), steps=20),
    "init-only": dataclasses.replace(FULL["init-only"], width=128, depths=(10,), activations=("tanh", "relu"),
                                     sigma_w2=(1.0, 2.0), seeds=(0, 1), jacobian_samples=2, probe_batch=64),
    "cnn": dataclasses.replace(FULL["cnn"], depths=(4,), steps=20),
    "heldout": dataclasses.replace(FULL["heldout"], depths=(4,), activations=("tanh", "relu"), sigma_w2=(1.0, 2.0),
                                   seeds=(0,), steps=100, log_interval=100),
}

#: full shapes (width, depths, steps, probes) on 1/16 of the grid: every 4th σ_w², 2 of the seeds.
#: Per-config costs at full size where the whole grid does not fit the time (full init-only is
#: ≈ 2·10¹⁴ FLOP per system); run time past one chunk grows linearly in configs
SUBSET = {name: dataclasses.replace(wl, sigma_w2=wl.sigma_w2[::4], seeds=wl.seeds[:2]) for name, wl in FULL.items()}

#: one GPU (``benchmarks/gpu.py``): full shapes, grids wide enough to fill the device with lanes.
#: small: 3 activations × 16 σ_w² × 21 seeds = 1008 configs per depth, one call under satbench's
#: default cap of 1024 lanes off CPU (4032 configs); medium: 16 σ_w² × 16 seeds per depth (1024);
#: init-only: the full grid (512 configs at width 1000); cnn: 8 σ_w² × 32 seeds (1536)
GPU = {
    "small": dataclasses.replace(FULL["small"], sigma_w2=_geometric(0.25, 4.0, 16), seeds=tuple(range(21))),
    "medium": dataclasses.replace(FULL["medium"], sigma_w2=_geometric(0.5, 4.0, 16), seeds=tuple(range(16))),
    "init-only": FULL["init-only"],
    "cnn": dataclasses.replace(FULL["cnn"], sigma_w2=_geometric(0.5, 4.0, 8), seeds=tuple(range(32))),
}

WORKLOADS = tuple(FULL)
#: what ``python -m benchmarks`` and ``benchmarks/gpu.sh`` run unless told (heldout on request)
DEFAULT_WORKLOADS = tuple(GPU)


def get(name: str, scale: str) -> Workload:
    """The workload ``name`` at ``scale``; unknown names list the known ones."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; known: {', '.join(SCALES)}")
    table = {"full": FULL, "subset": SUBSET, "tiny": TINY, "gpu": GPU}[scale]
    if name not in table:
        raise ValueError(f"unknown workload {name!r}; known: {', '.join(WORKLOADS)}")
    return table[name]


def sample_configs(wl: Workload, per_shape: int) -> list[dict]:
    """``per_shape`` configs of each (activation, depth) shape, spread over the σ_w² × seed grid
    with a different offset per shape: a deterministic sample for a peer too slow to run every
    config (its per-config time is then extrapolated shape by shape)."""
    grid = [(s, seed) for s in wl.sigma_w2 for seed in wl.seeds]
    shapes = wl.shapes()
    per_shape = min(per_shape, len(grid))
    step = len(grid) / per_shape
    offset = max(1, int(step) // len(shapes))
    picks = []
    for i, (activation, depth) in enumerate(shapes):
        for k in range(per_shape):
            s, seed = grid[(int(k * step) + i * offset) % len(grid)]
            picks.append({"activation": activation, "depth": depth, "sigma_w2": s, "seed": seed})
    return picks


def experiment_toml(wl: Workload, name: str | None = None, layers: str = "auto") -> str:
    """The satbench experiment file of a workload: the same grid the peers loop over."""
    def fmt(values):
        return "[" + ", ".join(repr(v) if not isinstance(v, str) else f'"{v}"' for v in values) + "]"

    if wl.model == "cnn":
        shape = ['model = "cnn"', f"channels = {wl.channels}", f"kernel_size = {wl.kernel_size}",
                 f'padding = "{wl.padding}"']
    else:
        shape = [f"width = {wl.width}"]
    return "\n".join([
        "[experiment]",
        f'name = "{name or "bench-" + wl.name}"',
        f'description = "benchmarks/ workload {wl.name}"',
        "",
        "[fixed]",
        f'dataset = "{wl.dataset}"',
        *shape,
        f'init = "{INIT}"',
        f"sigma_b2 = {SIGMA_B2}",
        'optimizer = "sgd"',
        f"learning_rate = {wl.learning_rate}",
        f"batch_size = {wl.batch_size}",
        f"steps = {wl.steps}",
        f"log_every = {wl.log_every}",
        "probe_every = 0",
        f"probe_batch = {wl.probe_batch}",
        f"jacobian_samples = {wl.jacobian_samples}",
        f'layers = "{layers}"',
        "",
        "[grid]",
        f"activation = {fmt(wl.activations)}",
        f"depth = {fmt(wl.depths)}",
        f"sigma_w2 = {fmt(wl.sigma_w2)}",
        f"seed = {fmt(wl.seeds)}",
        "",
    ])


def weights(n_in: int, width: int, depth: int, n_out: int) -> int:
    """ΣW = Σ fan_in·fan_out over the depth hidden layers and the readout."""
    return n_in * width + (depth - 1) * width * width + width * n_out


def weight_shapes(wl: Workload, depth: int, n_in: int, n_out: int) -> list[tuple[int, ...]]:
    """Each layer's weight shape, as the peers build their nets: (fan_in, fan_out) matrices
    (mlp), or (k, k, C_in, C_out) kernels (HWIO, as satbench's) then the (C, n_out) readout (cnn)."""
    if wl.model == "cnn":
        k, c = wl.kernel_size, wl.channels
        return [(k, k, wl.image_shape[-1], c)] + [(k, k, c, c)] * (depth - 1) + [(c, n_out)]
    return list(itertools.pairwise((n_in,) + (wl.width,) * depth + (n_out,)))


def inputs(wl: Workload, x):
    """The network's view of the dataset's flat rows (numpy or jax): NHWC images for the cnn
    (as satbench's ``train.data_arrays`` shapes them), the rows themselves for the mlp."""
    return x.reshape(-1, *wl.image_shape) if wl.model == "cnn" else x


def conv_macs(image_shape: tuple[int, int, int], channels: int, kernel_size: int, depth: int, n_out: int) -> int:
    """The CNN's ΣW: multiply-adds per example forward, H·W·k²·C_in·C_out per convolution
    (output size = input size) plus the dense readout's C·n_out (the average pool not counted)."""
    height, width, c_img = image_shape
    taps = kernel_size * kernel_size
    return height * width * taps * (c_img * channels + (depth - 1) * channels * channels) + channels * n_out


def forward_macs(wl: Workload, depth: int, n_in: int, n_out: int) -> int:
    """Multiply-adds of one example's forward pass (ΣW): 2·ΣW FLOPs forward, 4·ΣW backward."""
    if wl.model == "cnn":
        return conv_macs(wl.image_shape, wl.channels, wl.kernel_size, depth, n_out)
    return weights(n_in, wl.width, depth, n_out)


def jacobian_flops(width: int, depth: int, samples: int) -> float:
    """Forward-mode ∂h_L/∂h_1: width tangents through depth − 1 square layers, per sample."""
    return 2.0 * samples * width * (depth - 1) * width * width


def common_flops(wl: Workload, depth: int, n_in: int, n_out: int, n_train: int) -> float:
    """FLOPs of one config that every system performs (see the module docstring)."""
    w = forward_macs(wl, depth, n_in, n_out)
    n_eval = min(EVAL_SIZE, n_train)
    flops = 6.0 * wl.steps * wl.batch_size * w + 2.0 * n_eval * w
    if wl.init_only:
        flops += 6.0 * min(wl.probe_batch, n_train) * w + jacobian_flops(wl.width, depth, wl.jacobian_samples)
    return flops


def satbench_flops(wl: Workload, depth: int, n_in: int, n_out: int, n_train: int, n_test: int) -> float:
    """FLOPs of one config as satbench runs it: training, loss on train and test at every
    log step, and layer probes (with Jacobian spectra) at step 0 and the last step."""
    w = forward_macs(wl, depth, n_in, n_out)
    n_logs = wl.steps // wl.log_every + 1
    n_probes = 1 if wl.steps == 0 else 2
    evals = n_logs * 2.0 * (min(EVAL_SIZE, n_train) + min(EVAL_SIZE, n_test)) * w
    probes = n_probes * (6.0 * min(wl.probe_batch, n_train) * w + jacobian_flops(wl.width, depth, wl.jacobian_samples))
    return 6.0 * wl.steps * wl.batch_size * w + evals + probes


def workload_flops(wl: Workload, n_in: int, n_out: int, n_train: int, n_test: int) -> dict[str, float]:
    """Total common and satbench-extra FLOPs of the whole sweep."""
    per_shape = len(wl.sigma_w2) * len(wl.seeds)
    common = sum(per_shape * common_flops(wl, d, n_in, n_out, n_train) for _, d in wl.shapes())
    total = sum(per_shape * satbench_flops(wl, d, n_in, n_out, n_train, n_test) for _, d in wl.shapes())
    return {"common": common, "satbench_extra": total - common}


def crosscheck_sigma(wl: Workload) -> float:
    """The grid σ_w² used for cross-checks: the one nearest 1 (no explosion to amplify
    float rounding differences into disagreement)."""
    return min(wl.sigma_w2, key=lambda s: (abs(math.log(s)), s))
