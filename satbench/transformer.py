"""The transformer family's implementation (declared in ``satbench.families.transformer``).

A net reads a (T, F) sequence as T tokens: an input projection (for one-hot symbols it is an
embedding) plus fixed sinusoidal positions (Vaswani et al. 2017) gives X_0 (T × d), then ``depth``
blocks, each a self-attention branch and (unless ``attention_only``) an MLP branch of 4d hidden
units with the config's activation φ. With residual scale α (the lane's ``residual_scale``) and
LayerNorm LN over each token's d features:

``pre``   X ← X + α·Attn(LN(X));  X ← X + α·MLP(LN(X));  a last LN before the readout
``post``  X ← LN(X + α·Attn(X));  X ← LN(X + α·MLP(X))
``none``  X ← X + α·Attn(X);      X ← X + α·MLP(X)

and a lane without ``residual`` keeps only the branches (X ← Attn(...); X ← MLP(...)). Attn is
multi-head softmax attention, softmax(Q_h K_hᵀ/√d_h) V_h per head, concatenated and projected by
W_O (``causal``: a token sees itself and earlier ones); MLP(X) = φ(X W_1 + b_1) W_2 + b_2. The
readout is dense, from the mean over tokens (or every token, for a task with a label per step).

Each block is a site: its output X_l (where taps add, so ``signal_norm`` is ‖∂L/∂X_l‖), and its
own numbers (``Forward.site_extras``): ``token_cosine``, ``rank_residual`` and ``attn_entropy``.
``site_param_norms`` gives a block's whole gradient norm, ``site_param_group_norms`` those of
W_Q, W_K, W_V, W_O and the MLP apart.

Weights: W_Q and W_K drawn by ``init`` at the lane's ``qk_sigma2``, every other weight at σ_w²,
biases N(0, σ_b²); a block l draws from its own key, so its weights do not depend on the depth.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from satbench import activations
from satbench.families import Cost, DataShape
from satbench.fields import choices_as_tuples
from satbench.models import Context, Forward, _init_rule, after

#: the MLP branch's hidden units per model unit
MLP_RATIO = 4
#: added to the variance before the square root, as in ``models.NORM_EPS``
LN_EPS = 1e-5
#: each parameter's own random stream: never renumber (results would change)
STREAMS = {"w_in": 0, "b_in": 1, "w_q": 2, "w_k": 3, "w_v": 4, "w_o": 5, "w_mlp1": 6, "b_mlp1": 7, "w_mlp2": 8,
           "b_mlp2": 9, "w_out": 10, "b_out": 11}
#: weights of a block, by the probe group their gradient norm is reported in
GROUPS = {"q": ("w_q",), "k": ("w_k",), "v": ("w_v",), "o": ("w_o",), "mlp": ("w_mlp1", "w_mlp2")}


@dataclasses.dataclass(frozen=True)
class Architecture:
    """Everything about a transformer that changes the compiled program."""

    n_in: int  # features of one token
    n_out: int
    seq_len: int
    width: int  # d_model
    depth: int  # blocks
    activation: tuple[str, ...]
    init: tuple[str, ...]
    heads: int = 4
    ln: str = "pre"  # pre | post | none
    attention_only: bool = False
    causal: bool = False
    per_step: bool = False  # read out every token (a label per step) instead of their mean
    model = "transformer"
    norm = ("none",)  # the shared BatchNorm/LayerNorm choice is not read: ``ln`` places LayerNorms
    layers = "scan"
    #: a site's values are not the input of φ (they are the residual stream): the φ columns of
    #: ``probes.layer_probes`` (act_mean, act_std, sat_frac, dead_frac) are NaN
    phi_sites = False

    def __post_init__(self):
        choices_as_tuples(self, ("init", "activation"))

    @property
    def site_shape(self) -> tuple[int, int]:
        return (self.seq_len, self.width)

    @property
    def n_sites(self) -> int:
        return self.depth


def param_shapes(arch: Architecture) -> dict[str, tuple[int, ...]]:
    d, n, hidden = arch.width, arch.depth, MLP_RATIO * arch.width
    shapes = {"w_in": (arch.n_in, d), "b_in": (d,), "w_q": (n, d, d), "w_k": (n, d, d), "w_v": (n, d, d),
              "w_o": (n, d, d), "w_out": (d, arch.n_out), "b_out": (arch.n_out,)}
    if not arch.attention_only:
        shapes.update(w_mlp1=(n, d, hidden), b_mlp1=(n, hidden), w_mlp2=(n, hidden, d), b_mlp2=(n, d))
    return shapes


def _noise(key, name: str, shape):
    """N(0, 1) of ``shape``; a block's slice of a stacked parameter draws from its own key (block
    numbers 1..depth), so block l's weights are the same in a net of any depth."""
    stream = jax.random.fold_in(key, STREAMS[name])
    if name.startswith(("w_q", "w_k", "w_v", "w_o", "w_mlp", "b_mlp")):
        blocks = jnp.arange(shape[0]) + 1
        return jax.vmap(lambda b: jax.random.normal(jax.random.fold_in(stream, b), shape[1:]))(blocks)
    return jax.random.normal(stream, shape)


def positions(seq_len: int, width: int) -> jax.Array:
    """(T, d) sinusoidal positions: sin(t/10000^(2i/d)) in even features, cos in odd ones."""
    t = jnp.arange(seq_len, dtype=jnp.float32)[:, None]
    freq = 10000.0 ** (-(jnp.arange(width) // 2 * 2).astype(jnp.float32) / width)
    angle = t * freq[None, :]
    return jnp.where(jnp.arange(width) % 2 == 0, jnp.sin(angle), jnp.cos(angle))


def layer_norm(x, gamma, beta):
    """Each token normalised over its features, then scaled and shifted."""
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mu) * jax.lax.rsqrt(var + LN_EPS) * gamma + beta


def token_cosine(x) -> jax.Array:
    """Mean over examples and over ordered pairs of distinct tokens of the cosine between their
    representations (rows of x: (batch, T, d)): 1 when every token points the same way."""
    unit = x / jnp.sqrt(jnp.sum(x**2, axis=-1, keepdims=True))
    gram = jnp.einsum("btd,bsd->bts", unit, unit)
    t = x.shape[1]
    return jnp.mean((jnp.sum(gram, axis=(1, 2)) - jnp.trace(gram, axis1=1, axis2=2)) / (t * (t - 1)))


def rank_residual(x) -> jax.Array:
    """Mean over examples of ‖X − 1x̄ᵀ‖_F / ‖X‖_F, x̄ the tokens' mean (the rank-1 matrix nearest X
    in Frobenius norm among those with equal rows): Dong et al. (2021)'s res(X), relative. 0 when
    every token is the same."""
    res = x - x.mean(axis=1, keepdims=True)
    return jnp.mean(jnp.sqrt(jnp.sum(res**2, axis=(1, 2)) / jnp.sum(x**2, axis=(1, 2))))


def attention(x, w_q, w_k, w_v, w_o, heads: int, causal: bool):
    """Multi-head self-attention of x (batch, T, d): (output, attention weights (batch, heads, T, T))."""
    b, t, d = x.shape
    split = lambda m: (x @ m).reshape(b, t, heads, d // heads).transpose(0, 2, 1, 3)  # noqa: E731
    q, k, v = split(w_q), split(w_k), split(w_v)
    scores = q @ jnp.swapaxes(k, -1, -2) / jnp.sqrt(jnp.float32(d // heads))
    if causal:
        scores = jnp.where(jnp.tril(jnp.ones((t, t), bool)), scores, -1e30)
    weights = jax.nn.softmax(scores, axis=-1)
    out = (weights @ v).transpose(0, 2, 1, 3).reshape(b, t, d)
    return out @ w_o, weights


def attention_entropy(weights) -> jax.Array:
    """Mean over examples, heads and queries of the entropy of a query's attention weights (nats):
    ln T for uniform attention, 0 when each query attends to one token."""
    return jnp.mean(-jnp.sum(jax.scipy.special.xlogy(weights, weights), axis=-1))


class Network(nnx.Module):
    """input projection + positions → depth × (attention, MLP) blocks → dense readout."""

    #: parameters with a leading block axis (``satbench.clipping``)
    stacked_params = ("w_q", "w_k", "w_v", "w_o", "w_mlp1", "b_mlp1", "w_mlp2", "b_mlp2", "ln_scale", "ln_shift")

    def __init__(self, arch: Architecture, sigma_w2, sigma_b2, *, rngs: nnx.Rngs, init_index=0, lane=None):
        self.arch = arch
        key = rngs.params()
        shapes = param_shapes(arch)
        qk_gain = 1.0 if lane is None else lane["qk_sigma2"]
        bias_scale = jnp.sqrt(sigma_b2)
        previous = jnp.zeros(())
        for name, shape in shapes.items():  # one weight after the other (``models.after``)
            noise = after(_noise(key, name, shape), previous)
            if name.startswith("b_"):
                value = noise * bias_scale
            else:
                role = {"w_in": "first", "w_out": "readout"}.get(name, "hidden")
                rule = _init_rule(arch.init, init_index, role)
                gain = qk_gain if name in ("w_q", "w_k") else sigma_w2
                value = rule(noise, gain) if len(shape) == 2 else jax.vmap(rule, in_axes=(0, None))(noise, gain)
            setattr(self, name, nnx.Param(value))
            previous = value
        if arch.ln != "none":  # learned scale and shift per block and branch (attention, MLP)
            self.ln_scale = nnx.Param(jnp.ones((arch.depth, 2, arch.width)))
            self.ln_shift = nnx.Param(jnp.zeros((arch.depth, 2, arch.width)))
        if arch.ln == "pre":  # the last LN, before the readout
            self.final_scale = nnx.Param(jnp.ones((arch.width,)))
            self.final_shift = nnx.Param(jnp.zeros((arch.width,)))

    def __call__(self, x, ctx: Context = Context(), taps=None) -> Forward:
        """x: (batch, T·F) or (batch, T, F). taps: optional (depth, batch, T, d) added to each
        block's output; the gradient with respect to them is ∂L/∂X_l."""
        arch = self.arch
        x = x.reshape(x.shape[0], arch.seq_len, arch.n_in)
        h = x @ self.w_in[...] + self.b_in[...] + positions(arch.seq_len, arch.width)
        blocks = {name: getattr(self, name)[...] for name in self.stacked_params if hasattr(self, name)}
        active = jnp.zeros((arch.depth, 0), bool) if ctx.active is None else ctx.active
        taps = jnp.zeros((arch.depth, 0), x.dtype) if taps is None else taps
        h, (outs, entropy) = jax.lax.scan(self._block(ctx), h, (blocks, taps, active))
        extras = {"token_cosine": jax.vmap(token_cosine)(outs), "rank_residual": jax.vmap(rank_residual)(outs),
                  "attn_entropy": entropy}
        if arch.ln == "pre":
            h = layer_norm(h, self.final_scale[...], self.final_shift[...])
        read = h if arch.per_step else h.mean(axis=1)
        return Forward(read @ self.w_out[...] + self.b_out[...], outs, None, extras)

    def _block(self, ctx: Context):
        """(X, block inputs) ↦ (next X, (X_l, the block's probe numbers)); an inactive block passes X on."""
        arch = self.arch
        phi = activations.switch([activations.get_activation(n) for n in arch.activation], ctx.activation_index)

        def add(h, branch):  # the lane's residual sum, or the branch alone
            if ctx.residual is False:
                return branch
            return jnp.where(ctx.residual, h + ctx.residual_scale * branch, branch)

        def branch_input(h, p, which):  # pre-LN normalises what the branch reads
            return layer_norm(h, p["ln_scale"][which], p["ln_shift"][which]) if arch.ln == "pre" else h

        def join(h, branch, p, which):  # post-LN normalises the sum
            out = add(h, branch)
            return layer_norm(out, p["ln_scale"][which], p["ln_shift"][which]) if arch.ln == "post" else out

        def mlp(v, p):
            return phi(v @ p["w_mlp1"] + p["b_mlp1"]) @ p["w_mlp2"] + p["b_mlp2"]

        def block(h, inputs):
            p, tap, on = inputs
            attended, weights = attention(branch_input(h, p, 0), p["w_q"], p["w_k"], p["w_v"], p["w_o"],
                                          arch.heads, arch.causal)
            out = join(h, attended, p, 0)
            if not arch.attention_only:
                out = join(out, mlp(branch_input(out, p, 1), p), p, 1)
            if tap.size:
                out = out + tap
            return (jnp.where(on, out, h) if on.size else out), (out, attention_entropy(weights))

        return block

    def site_param_norms(self) -> jax.Array:
        """(depth,) norm of each block's weights together (its roles' norms combined); applied to a
        gradient state, ‖∂L/∂θ_l‖."""
        return jnp.sqrt(sum(norm**2 for norm in self.site_param_group_norms().values()))

    def site_param_group_norms(self) -> dict[str, jax.Array]:
        """(depth,) norms of each block's W_Q, W_K, W_V, W_O and MLP weights apart (``GROUPS``)."""
        return {group: jnp.sqrt(sum(jnp.sum(getattr(self, n)[...] ** 2, axis=(1, 2)) for n in names))
                for group, names in GROUPS.items() if all(hasattr(self, n) for n in names)}


def architecture(values, depth: int, shape: DataShape, activations_: tuple, inits_: tuple, layers: str):
    seq_len, features = shape.input_shape
    return Architecture(n_in=features, n_out=shape.n_out, seq_len=seq_len, width=values["width"], depth=depth,
                        activation=activations_, init=inits_, heads=values["heads"], ln=values["ln"],
                        attention_only=values["attention_only"], causal=values["causal"], per_step=shape.per_step)


def cost(values, depth: int, shape: DataShape) -> Cost:
    seq_len, features = shape.input_shape
    d, heads = values["width"], values["heads"]
    mlp = 0 if values["attention_only"] else 2 * MLP_RATIO * d * d
    readout = d * shape.n_out * (seq_len if shape.per_step else 1)
    block_flops = 2.0 * seq_len * (4 * d * d + mlp) + 4.0 * seq_len * seq_len * d
    ln = 0 if values["ln"] == "none" else 4 * depth * d + (2 * d if values["ln"] == "pre" else 0)
    params = features * d + d + depth * (4 * d * d + mlp + (0 if mlp == 0 else MLP_RATIO * d + d)) + ln \
        + d * shape.n_out + shape.n_out
    return Cost(params=params, forward_flops=2.0 * seq_len * features * d + depth * block_flops + 2.0 * readout,
                site_units=seq_len * d, matmul_width=d,
                saved_units=seq_len * (4 * d + (MLP_RATIO * d if mlp else 0)) + heads * seq_len * seq_len)
