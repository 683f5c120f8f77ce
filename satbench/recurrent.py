"""The recurrent families' implementation: vanilla RNN, LSTM and GRU cells (declared in
``satbench.families.recurrent``).

A net is ``depth`` recurrent layers over a (T, F) sequence, time under ``lax.scan``; layer 1 reads
the input, layer l > 1 the states of layer l − 1, and a dense readout maps the top layer's last
state to the outputs (every state, for a task with a label per step). The cells (x_t: the layer's input, h the state, φ the config's activation,
σ the logistic sigmoid):

``rnn``   z_t = x_t U + h_{t−1} W + b,  h_t = φ(z_t)
``lstm``  [i, f, g, o] = x_t U + h_{t−1} W + b;  c_t = σ(f)·c_{t−1} + σ(i)·φ(g);  h_t = σ(o)·φ(c_t)
          (Hochreiter & Schmidhuber 1997 with the forget gate of Gers et al. 2000; the forget
          gate's bias starts at ``forget_bias``)
``gru``   [r, u] = σ(x_t U_{ru} + h_{t−1} W_{ru} + b_{ru});  n_t = φ(x_t U_n + σ(r)·(h_{t−1} W_n) + b_n);
          h_t = (1 − σ(u))·n_t + σ(u)·h_{t−1}  (Cho et al. 2014, reset applied after W as in cuDNN)

The sites are the time steps of the top layer: its pre-activations z_t (a gated cell: the input
of φ for the candidate, g or n) and, through ``taps`` added to the state h_t, the back-propagated
signal ‖∂L/∂h_t‖ that Bengio et al. (1994) and Pascanu et al. (2013) study.

Weights: every gate's w × w recurrent block is drawn by ``recurrent_init`` with gain σ_w² (the
lane's ``sigma_w2``: ``identity`` gives σ_w·I, the IRNN of Le et al. 2015, ``orthogonal`` σ_w·Q),
the input weights by ``init`` at gain ``input_sigma2`` (per lane; N(0, input_sigma2/fan_in) for
gaussian: Le et al. start their IRNN's inputs small), the readout by ``init`` at gain 1, biases N(0, σ_b²).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from satbench import activations, inits
from satbench.families import Cost, DataShape
from satbench.fields import choices_as_tuples
from satbench.models import Context, Forward, _init_rule, after

#: gates per cell: the blocks of U, W and b, in order
GATES = {"rnn": ("z",), "lstm": ("i", "f", "g", "o"), "gru": ("r", "u", "n")}
#: the block whose pre-activation φ reads (the sites' pre-activation, and ``recurrent_radius``'s block)
CANDIDATE = {"rnn": "z", "lstm": "g", "gru": "n"}
#: each parameter's own random stream: never renumber (results would change)
STREAMS = {"u_first": 0, "u_rest": 1, "w_rec": 2, "b": 3, "w_out": 4, "b_out": 5}
#: squarings of W in the Gelfand estimate of its spectral radius, ρ = lim ‖W^k‖^(1/k), k = 2^this
RADIUS_SQUARINGS = 14
#: a rescaled power's norm below this has underflowed (float32's smallest normal number: 1.2e-38)
TINY = 1e-30


@dataclasses.dataclass(frozen=True)
class Architecture:
    """Everything about a recurrent net that changes the compiled program."""

    model: str  # rnn | lstm | gru: the family, which is the cell
    n_in: int  # features of one time step
    n_out: int
    seq_len: int
    width: int
    depth: int  # stacked recurrent layers
    activation: tuple[str, ...]
    init: tuple[str, ...]  # input and readout weights' rule, chosen per lane
    recurrent_init: str = "gaussian"
    per_step: bool = False  # read out every state (a label per step) instead of the last
    norm = ("none",)
    layers = "scan"

    def __post_init__(self):
        choices_as_tuples(self, ("init", "activation"))

    @property
    def site_shape(self) -> tuple[int]:
        return (self.width,)

    @property
    def n_sites(self) -> int:
        return self.seq_len

    @property
    def gates(self) -> int:
        return len(GATES[self.model])


def _noise(key, name: str, shape, layer0: int = 0):
    """N(0, 1) of ``shape``; a stacked parameter's layer l draws from its own key, so a layer's
    weights do not depend on how many layers the net has."""
    stream = jax.random.fold_in(key, STREAMS[name])
    if name in ("u_rest", "w_rec", "b"):
        layers = jnp.arange(shape[0]) + layer0
        return jax.vmap(lambda l: jax.random.normal(jax.random.fold_in(stream, l), shape[1:]))(layers)
    return jax.random.normal(stream, shape)


class Network(nnx.Module):
    """``depth`` recurrent layers of ``arch.model`` cells and a dense readout of the last state."""

    #: parameters with a leading layer axis (``satbench.clipping``)
    stacked_params = ("u_rest", "w_rec", "b")

    def __init__(self, arch: Architecture, sigma_w2, sigma_b2, *, rngs: nnx.Rngs, init_index=0, lane=None):
        self.arch = arch
        key = rngs.params()
        w, g, depth = arch.width, arch.gates, arch.depth
        input_rule = _init_rule(arch.init, init_index)
        recurrent_rule = inits.get_init(arch.recurrent_init)
        input_gain = 1.0 if lane is None else lane["input_sigma2"]
        u_first = input_rule(_noise(key, "u_first", (arch.n_in, g * w)), input_gain)
        u_rest = jax.vmap(input_rule, in_axes=(0, None))(
            after(_noise(key, "u_rest", (depth - 1, w, g * w), layer0=2), u_first), input_gain)
        # one w × w block per gate and layer, each drawn by the rule (an orthogonal block is orthogonal)
        blocks = _noise(key, "w_rec", (depth, g, w, w), layer0=1)
        blocks = jax.vmap(jax.vmap(recurrent_rule, in_axes=(0, None)), in_axes=(0, None))(
            after(blocks, u_rest if depth > 1 else u_first), sigma_w2)
        w_rec = blocks.transpose(0, 2, 1, 3).reshape(depth, w, g * w)
        w_out = input_rule(after(_noise(key, "w_out", (w, arch.n_out)), w_rec), 1.0)
        bias = _noise(key, "b", (depth, g * w), layer0=1) * jnp.sqrt(sigma_b2)
        if arch.model == "lstm":  # the forget gate starts open by forget_bias (Gers et al. 2000)
            forget = GATES["lstm"].index("f")
            shift = 0.0 if lane is None else lane["forget_bias"]
            bias = bias.at[:, forget * w : (forget + 1) * w].add(shift)
        self.u_first = nnx.Param(u_first)
        self.u_rest = nnx.Param(u_rest)
        self.w_rec = nnx.Param(after(w_rec, w_out))
        self.b = nnx.Param(bias)
        self.w_out = nnx.Param(w_out)
        self.b_out = nnx.Param(_noise(key, "b_out", (arch.n_out,)) * jnp.sqrt(sigma_b2))

    def __call__(self, x, ctx: Context = Context(), taps=None) -> Forward:
        """x: (batch, T, F). taps: optional (T, batch, width) added to the top layer's states h_t;
        the gradient with respect to them is ∂L/∂h_t."""
        arch = self.arch
        phi = activations.switch([activations.get_activation(n) for n in arch.activation], ctx.activation_index)
        seq = jnp.swapaxes(x, 0, 1)  # time-major: (T, batch, features)
        u_rest, w_rec, bias = self.u_rest[...], self.w_rec[...], self.b[...]
        for layer in range(arch.depth):
            u = self.u_first[...] if layer == 0 else u_rest[layer - 1]
            drive = seq @ u + bias[layer]  # every step's input term in one product
            top = layer == arch.depth - 1
            layer_taps = taps if top and taps is not None else jnp.zeros((arch.seq_len, 0), x.dtype)
            _, (zs, seq, extras) = jax.lax.scan(_cell(arch.model, phi, w_rec[layer]),
                                                    _initial_carry(arch, x.shape[0], x.dtype),
                                                    (drive, layer_taps))
        read = jnp.swapaxes(seq, 0, 1) if arch.per_step else seq[-1]  # (batch, T, width) or (batch, width)
        logits = read @ self.w_out[...] + self.b_out[...]
        extras = {"state_norm": jnp.sqrt(jnp.mean(jnp.sum(seq**2, axis=-1), axis=-1)), **extras}
        return Forward(logits, zs, None, extras)

    def probe_summaries(self) -> dict[str, jax.Array]:
        """Per-probe numbers of the net (no site axis): the spectral radius of the top layer's
        recurrent block that feeds φ (a vanilla RNN's W)."""
        c = GATES[self.arch.model].index(CANDIDATE[self.arch.model])
        w = self.arch.width
        return {"recurrent_radius": spectral_radius(self.w_rec[...][-1][:, c * w : (c + 1) * w])}


def _initial_carry(arch: Architecture, batch: int, dtype):
    zeros = jnp.zeros((batch, arch.width), dtype)
    return (zeros, zeros) if arch.model == "lstm" else zeros


def _cell(model: str, phi, w_rec):
    """One time step, ``(carry, (x_t U + b, tap_t)) -> (carry, (z_t, h_t, extras))``."""
    sigmoid = jax.nn.sigmoid

    def add_tap(h, tap):
        return h + tap if tap.size else h

    def rnn(h, inputs):
        drive, tap = inputs
        z = drive + h @ w_rec
        h = add_tap(phi(z), tap)
        return h, (z, h, {})

    def lstm(carry, inputs):
        h, c = carry
        drive, tap = inputs
        i, f, g, o = jnp.split(drive + h @ w_rec, 4, axis=-1)
        forget = sigmoid(f)
        c = forget * c + sigmoid(i) * phi(g)
        h = add_tap(sigmoid(o) * phi(c), tap)
        return (h, c), (g, h, {"forget_gate": forget.mean()})

    def gru(h, inputs):
        drive, tap = inputs
        width = h.shape[-1]
        recurrent = h @ w_rec
        r, u = jnp.split(sigmoid(drive[..., : 2 * width] + recurrent[..., : 2 * width]), 2, axis=-1)
        n_pre = drive[..., 2 * width :] + r * recurrent[..., 2 * width :]
        h = add_tap((1 - u) * phi(n_pre) + u * h, tap)
        return h, (n_pre, h, {"update_gate": u.mean()})

    return {"rnn": rnn, "lstm": lstm, "gru": gru}[model]


def spectral_radius(w) -> jax.Array:
    """max |λ| of a square matrix by Gelfand's formula, ρ = lim ‖W^k‖^(1/k), at k = 2^14 by
    repeated squaring, rescaled each time: matmuls only (no eigensolver, so it runs on any
    device and under vmap). ‖W^k‖^(1/k) >= ρ at every k. For σ·Q orthogonal or σ·I the estimate is
    σ·n^(1/2k) (n = 256: 1.7e-4 high); for a random Gaussian matrix it matches an eigensolver to
    about 1e-3 (a test). A strongly non-normal matrix (a Jordan block) can make ‖W^2k‖/‖W^k‖²
    underflow float32: the squaring stops there and the estimate stays an upper bound, less tight.
    A zero matrix gives 0, a non-finite one NaN."""
    norm = jnp.sqrt(jnp.sum(w**2))
    estimate, log_norm = norm, jnp.log(norm)  # log_norm: ln ‖W^(2^j)‖ after step j
    m = w / jnp.where(norm > 0, norm, 1.0)
    usable = norm > 0
    for j in range(1, RADIUS_SQUARINGS + 1):
        m = m @ m
        norm = jnp.sqrt(jnp.sum(m**2))
        usable = usable & (norm > TINY) & jnp.isfinite(norm)
        log_norm = jnp.where(usable, 2 * log_norm + jnp.log(jnp.where(usable, norm, 1.0)), log_norm)
        estimate = jnp.where(usable, jnp.exp(log_norm / 2**j), estimate)
        m = m / jnp.where(usable, norm, 1.0)
    return estimate


def architecture(values, depth: int, shape: DataShape, activations_: tuple, inits_: tuple, layers: str):
    seq_len, features = shape.input_shape
    return Architecture(model=values["model"], n_in=features, n_out=shape.n_out, seq_len=seq_len,
                        width=values["width"], depth=depth, activation=activations_, init=inits_,
                        recurrent_init=values["recurrent_init"], per_step=shape.per_step)


def cost(values, depth: int, shape: DataShape) -> Cost:
    seq_len, features = shape.input_shape
    w, g = values["width"], len(GATES[values["model"]])
    inputs = features * g * w + (depth - 1) * w * g * w
    weights = inputs + depth * w * g * w + w * shape.n_out
    params = weights + depth * g * w + shape.n_out
    return Cost(params=params, forward_flops=2.0 * (seq_len * (weights - w * shape.n_out) + w * shape.n_out),
                site_units=seq_len * w * (g + 1), matmul_width=w)
