"""What every network of a layered family shares: the forward pass's types, and ``LayerStack``.

``LayerStack`` is an nnx module used in functional style: a first layer maps the
input to the sites' shape, layers 2..depth are stacked along a leading axis so
they run under ``lax.scan`` (compile time flat in depth) or unrolled (faster for
shallow stacks), and a readout maps the last site to the logits. A family
(``satbench.mlp``, ``satbench.cnn``) says only what its layers compute:
``param_shapes``, ``first_layer``, ``hidden_affine`` and ``readout``. The forward pass
returns every pre-activation and accepts additive ``taps`` on them, so probes read
``h_l`` and ``∂L/∂h_l`` without hooks.

Remedies are options of the same module, not forks of it: ``norm``
normalises each pre-activation before φ (BatchNorm with per-lane batch
statistics over every axis but the last, or LayerNorm over every axis but the
batch's), ``residual`` adds the layer to its input, ``h ← h + α·φ(norm(W h + b))``,
for layers 2..depth (layer 1 changes the shape); α is the lane's ``residual_scale`` or, with
``arch.residual_branch`` rezero or fixup, a parameter per layer learned with the weights (fixup's
branch has a second, linear layer: ``h ← h + α·φ(W h + b) V``). Both are picked per lane
(``Context.residual``, ``Context.norm_index`` into ``arch.norm``), so nets that
differ only in them share a compiled program.

``init_state`` and ``initial_stats`` build any family's network from its architecture.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from satbench import activations, families, inits, phi_hat
from satbench.fields import normalises

LAYER_MODES = ("scan", "unroll")
NORMS = ("none", "batchnorm", "layernorm")
#: added to the variance before the square root (as in Ioffe & Szegedy 2015)
NORM_EPS = 1e-5


class NormStats(NamedTuple):
    """Per-site, per-unit BatchNorm statistics: (depth, units) each (units: the last axis)."""

    mean: jax.Array
    var: jax.Array


class Context(NamedTuple):
    """What a forward pass needs besides the parameters, per lane.

    active: (depth,) bool or None; an inactive layer is the identity
      (pad-and-mask batching of several depths in one program).
    residual: whether layers 2..depth add their input back (per lane, so plain and residual nets
      share a program; a plain lane's output is φ(h) exactly).
    residual_scale: α of residual layers.
    stats: BatchNorm statistics to normalise with (running averages at
      evaluation); None normalises with the batch's own (training).
    activation_index: which of ``arch.activation`` this lane uses.
    norm_index: which of ``arch.norm`` this lane uses (a "none" lane's h passes exactly).
    lane: the lane's per-config numbers (``train.Lane``): a family reads its own per-lane
      fields there (a gate's bias, a branch scale), so sweeping them compiles nothing.
    dropout_key: the key of this forward pass's dropout masks (a training step's, or the probes'),
      each layer's folded in from it, at the lane's ``dropout`` rate; None: no dropout (evaluation).
    phi: the lane's activation transform φ̂ = γ(φ(αh + β) + δ) (``phi_hat.PhiTransform``: DKS, TAT);
      None: φ as named, exactly (a program without transformed configs).
    """

    active: jax.Array | None = None
    residual: jax.Array | bool = False
    residual_scale: jax.Array | float = 1.0
    stats: NormStats | None = None
    activation_index: jax.Array | int = 0
    norm_index: jax.Array | int = 0
    lane: dict | None = None
    dropout_key: jax.Array | None = None
    phi: phi_hat.PhiTransform | None = None


class Forward(NamedTuple):
    logits: jax.Array  # (batch, n_out); (batch, T, n_out) for a task with a label per step
    preacts: jax.Array  # (sites, batch, *site_shape): the input of each φ (after norm, if any)
    batch_stats: NormStats | None  # the batch's BatchNorm statistics (None without batchnorm)
    #: a family's own per-site numbers, each (sites,), probed beside the shared columns (a recurrent
    #: net's state norm, an LSTM's mean forget gate); None: none
    site_extras: dict | None = None


class LayerStack(nnx.Module):
    """input → depth × (affine → [norm] → φ) → readout; subclasses define the affine maps.

    ``arch`` needs depth, site_shape, activation, init, layers and norm (a tuple: the norms
    lanes may pick; residual is per lane: ``Context.residual``).
    """

    #: parameters with a leading layer axis (``satbench.clipping``)
    stacked_params = ("w_hidden", "b_hidden", "w_branch", "branch_scale", "norm_scale", "norm_shift")

    def __init__(self, arch, sigma_w2, sigma_b2, *, rngs: nnx.Rngs, init_index=0, lane=None):
        self.arch = arch
        shapes = self.param_shapes(arch)
        noise = draw_noise(rngs.params(), shapes)
        bias_scale = jnp.sqrt(sigma_b2)
        bias = _select([inits.bias_rule(n) for n in arch.init], init_index)
        # one weight after the other, and the hidden ones (which every probe uses) after all
        # three (see ``after``): the orthogonal rule is an SVD
        w_in = _init_rule(arch.init, init_index, "first")(noise["w_in"], sigma_w2)
        hidden_rule = _init_rule(arch.init, init_index, "hidden")
        w_hidden = jax.vmap(hidden_rule, in_axes=(0, None))(after(noise["w_hidden"], w_in), sigma_w2)
        w_hidden = w_hidden.reshape(shapes["w_hidden"])
        w_out = _init_rule(arch.init, init_index, "readout")(after(noise["w_out"], w_hidden), sigma_w2)
        branch = getattr(arch, "residual_branch", "fixed")
        if branch == "fixup":  # Zhang et al. 2019 for two-layer branches: the first layer scaled by
            # depth^-1/2, the second (``w_branch``) and the readout zero
            w_hidden = w_hidden * arch.depth ** -0.5
            w_out = jnp.zeros_like(w_out)
            self.w_branch = nnx.Param(jnp.zeros_like(w_hidden))
        self.w_in = nnx.Param(w_in)
        self.b_in = nnx.Param(bias(noise["b_in"]) * bias_scale)
        self.w_hidden = nnx.Param(after(w_hidden, w_out))
        self.b_hidden = nnx.Param(bias(noise["b_hidden"]) * bias_scale)
        self.w_out = nnx.Param(w_out)
        self.b_out = nnx.Param(noise["b_out"] * bias_scale)
        if branch != "fixed":  # a learned α per layer (layer 1's is unused: it has no branch)
            start = 0.0 if branch == "rezero" else (1.0 if lane is None else lane["residual_scale"])
            self.branch_scale = nnx.Param(jnp.full((arch.depth,), start, jnp.float32))
        if normalises(arch.norm):  # learned per-unit scale γ and shift β after normalising
            units = arch.site_shape[-1]
            self.norm_scale = nnx.Param(jnp.ones((arch.depth, units)))
            self.norm_shift = nnx.Param(jnp.zeros((arch.depth, units)))

    # what a family defines ------------------------------------------------------------------
    @staticmethod
    def param_shapes(arch) -> dict:
        """Shapes of w_in, b_in, w_hidden, b_hidden (leading axis depth − 1), w_out, b_out."""
        raise NotImplementedError

    def first_layer(self, x):
        """Layer 1's affine map of the input (before norm and φ)."""
        raise NotImplementedError

    def hidden_affine(self, a, w, b):
        """A hidden layer's affine map of the previous activation with its weight and bias."""
        raise NotImplementedError

    def readout(self, a):
        """The logits from the last activation."""
        raise NotImplementedError

    @staticmethod
    def initial_state(arch) -> NormStats:
        """BatchNorm running averages before any step: zero mean, unit variance."""
        units = arch.site_shape[-1]
        return NormStats(jnp.zeros((arch.depth, units)), jnp.ones((arch.depth, units)))

    # the shared forward pass ---------------------------------------------------------------
    def __call__(self, x, ctx: Context = Context(), taps=None) -> Forward:
        """Forward pass.

        ctx: the lane's depth mask, residual flag and scale, and BatchNorm statistics.
        taps: optional (depth, batch, *site_shape) added to the inputs of φ; the
          gradient with respect to them is ∂L/∂h_l.
        """
        arch = self.arch
        tapped = taps is not None
        if not tapped:  # a placeholder: no add per layer (training steps run without taps)
            taps = jnp.zeros((arch.depth, 0), x.dtype)
        norm = self._norm_params(ctx, x.dtype)
        scale, shift, stats = norm
        h1, mean1, var1 = self._normaliser(ctx)(self.first_layer(x), scale[0], shift[0],
                                                stats.mean[0], stats.var[0])
        if tapped:
            h1 = h1 + taps[0]
        layer = self._hidden_layer(ctx)
        a1 = dropout(self._phi(ctx)(h1), ctx, 1)
        a, outs = self._over_layers(layer, a1, self._hidden_inputs(ctx, taps, norm))
        if outs is None:
            units = arch.site_shape[-1]
            outs = (jnp.zeros((0,) + h1.shape, h1.dtype), jnp.zeros((0, units)), jnp.zeros((0, units)))
        hs, means, variances = outs
        logits = self.readout(a)
        batch_stats = None
        if "batchnorm" in arch.norm:
            batch_stats = NormStats(jnp.concatenate([mean1[None], means]), jnp.concatenate([var1[None], variances]))
        return Forward(logits, jnp.concatenate([h1[None], hs], axis=0), batch_stats)

    def last_preact(self, h1, ctx: Context = Context()):
        """The last active layer's input of φ as a function of the first's, ``h1`` (batch, *site_shape):
        the map h_1 → h_L whose Jacobian Pennington et al. (2017) study. Only the running
        activation is carried from layer to layer, so forward-mode differentiation holds one
        layer's tangents at a time (``__call__`` stacks every layer's pre-activations: through
        ``jax.jacfwd`` at width 1000, depth 50 that is 200 MB of tangents per example)."""
        layer = self._hidden_layer(ctx)

        def step(carry, inputs):
            a, h_last = carry
            a, (h, _, _) = layer(a, inputs)
            on = inputs[3]  # the layer is active (a placeholder when every layer is)
            return (a, jnp.where(on, h, h_last) if on.size else h), None

        taps = jnp.zeros((self.arch.depth, 0), h1.dtype)
        xs = self._hidden_inputs(ctx, taps, self._norm_params(ctx, h1.dtype))
        (_, h_last), _ = self._over_layers(step, (self._phi(ctx)(h1), h1), xs)
        return h_last

    def site_param_norms(self) -> jax.Array:
        """(depth,) Frobenius norms of each layer's weight; applied to a gradient state
        merged into this module, they are ‖∂L/∂W_l‖_F."""
        first = jnp.sqrt(jnp.sum(self.w_in[...] ** 2))[None]
        hidden = self.w_hidden[...]
        rest = jnp.sqrt(jnp.sum(hidden**2, axis=tuple(range(1, hidden.ndim))))
        return jnp.concatenate([first, rest])

    def _phi(self, ctx: Context):
        if ctx.phi is not None:
            return phi_hat.function(self.arch.activation, ctx.activation_index, ctx.phi)
        return activations.switch([activations.get_activation(n) for n in self.arch.activation], ctx.activation_index)

    def _norm_params(self, ctx: Context, dtype):
        """γ, β (depth, units) and the statistics to normalise with (zeros where unused)."""
        arch = self.arch
        units = arch.site_shape[-1]
        if not normalises(arch.norm):
            scale = shift = jnp.zeros((arch.depth, 0), dtype)  # unused placeholders for scan
        else:
            scale, shift = self.norm_scale[...], self.norm_shift[...]
        zeros = jnp.zeros((arch.depth, units), dtype)
        return scale, shift, (ctx.stats if ctx.stats is not None else NormStats(zeros, zeros))

    def _normaliser(self, ctx: Context):
        """h ↦ (normalised h, the mean and variance used), for the lane's norm: each of
        ``arch.norm`` computed, then one selected (what ``lax.switch`` becomes under vmap); the
        mean and variance are BatchNorm's where the program has it (its running averages)."""
        norms, units, use_batch = self.arch.norm, self.arch.site_shape[-1], ctx.stats is None

        def normalise(h, gamma, beta, mean, var):
            zeros = jnp.zeros(units, h.dtype)
            out = {}
            if "none" in norms:
                out["none"] = (h, zeros, zeros)
            if "layernorm" in norms:  # each example over all its units
                axes = tuple(range(1, h.ndim))
                mu, v = h.mean(axes, keepdims=True), h.var(axes, keepdims=True)
                out["layernorm"] = ((h - mu) * jax.lax.rsqrt(v + NORM_EPS) * gamma + beta, mean, var)
            if "batchnorm" in norms:
                b_mean, b_var = mean, var
                if use_batch:  # each unit (channel) over the batch (and positions)
                    axes = tuple(range(h.ndim - 1))
                    b_mean, b_var = h.mean(axes), h.var(axes)
                out["batchnorm"] = ((h - b_mean) * jax.lax.rsqrt(b_var + NORM_EPS) * gamma + beta, b_mean, b_var)
            h_out, m_out, v_out = out[norms[0]]
            for k, name in enumerate(norms[1:], start=1):
                h_out = jnp.where(ctx.norm_index == k, out[name][0], h_out)
            if len(norms) > 1 and "batchnorm" in norms:
                m_out, v_out = out["batchnorm"][1:]
            return h_out, m_out, v_out

        return normalise

    def _hidden_inputs(self, ctx: Context, taps, norm) -> tuple:
        """Per hidden layer (leading axis depth − 1): W, b, tap, active, γ, β, mean, var, α, the
        second weight of a two-layer branch, and the layer's number (2..depth);
        ``norm``: ``_norm_params``. Without taps or a depth mask their entries are empty
        placeholders, and the layer skips the add and the select."""
        active = jnp.zeros((self.arch.depth, 0), bool) if ctx.active is None else ctx.active
        scale, shift, stats = norm
        alpha = self.branch_scale[...] if hasattr(self, "branch_scale") else jnp.zeros((self.arch.depth, 0))
        second = self.w_branch[...] if hasattr(self, "w_branch") else jnp.zeros((self.arch.depth - 1, 0))
        return (self.w_hidden[...], self.b_hidden[...], taps[1:], active[1:], scale[1:], shift[1:],
                stats.mean[1:], stats.var[1:], alpha[1:], second, jnp.arange(2, self.arch.depth + 1))

    def _hidden_layer(self, ctx: Context):
        """(a, layer inputs) ↦ (next a, (h, mean, var)); an inactive layer passes a through."""
        phi, normalise = self._phi(ctx), self._normaliser(ctx)

        def layer(a, inputs):
            w, b, tap, on, gamma, beta, mean, var, alpha, second, number = inputs
            h, mean, var = normalise(self.hidden_affine(a, w, b), gamma, beta, mean, var)
            if tap.size:
                h = h + tap
            out = dropout(phi(h), ctx, number)
            if second.size:  # a two-layer branch (fixup): its second, linear layer
                out = self.hidden_affine(out, second, 0.0)
            if ctx.residual is not False:  # a traced flag selects; a plain program has no branch
                scale = alpha if alpha.size else ctx.residual_scale  # learned (rezero, fixup) or the lane's
                out = jnp.where(ctx.residual, a + scale * out, out)
            return (jnp.where(on, out, a) if on.size else out), (h, mean, var)

        return layer

    def _over_layers(self, step, carry, xs):
        """``step`` over the hidden layers, scanned or unrolled; (carry, stacked outputs or None)."""
        if self.arch.layers == "scan":
            return jax.lax.scan(step, carry, xs)
        # unstack once: the gradient of one unstack is one stack, while the gradient of
        # depth separate slices is depth padded copies of the whole stack (measured:
        # 1.5x the step time of a 32-layer width-64 net on CPU)
        per_layer = [jnp.unstack(t) if t.shape[0] else [] for t in xs]
        outs = []
        for layer_inputs in zip(*per_layer):
            carry, out = step(carry, layer_inputs)
            outs.append(out)
        if not outs or outs[0] is None:
            return carry, None
        return carry, jax.tree.map(lambda *parts: jnp.stack(parts), *outs)


def dropout(a, ctx: Context, layer):
    """``a`` with each number zeroed with the lane's ``dropout`` rate p and the rest scaled by 1/(1 − p)
    (inverted dropout, Srivastava et al. 2014), the mask of ``layer`` (its number, 1..depth) drawn from
    ``ctx.dropout_key``; ``a`` itself without a key. A lane at p = 0 keeps every number exactly."""
    if ctx.dropout_key is None:
        return a
    keep = 1.0 - ctx.lane["dropout"]
    mask = jax.random.bernoulli(jax.random.fold_in(ctx.dropout_key, layer), keep, a.shape)
    return jnp.where(mask, a / keep, jnp.zeros((), a.dtype))


def network_class(arch):
    """The nnx module class that builds ``arch`` (its family's ``Network``)."""
    return families.of(arch).impl().Network


def init_state(arch, key, sigma_w2, sigma_b2, init_index=0, lane=None):
    """(graphdef, params) of a freshly initialised network of ``arch``: plain pytrees for jit/vmap.
    ``lane``: the lane's per-config numbers, for a family whose init reads its own per-lane fields
    (passed to its ``Network`` only when given)."""
    extra = {} if lane is None else {"lane": lane}
    model = network_class(arch)(arch, sigma_w2, sigma_b2, rngs=nnx.Rngs(params=key), init_index=init_index, **extra)
    return nnx.split(model)


def initial_stats(arch):
    """The opaque state (BatchNorm running averages) of ``arch``'s network before any step."""
    cls = network_class(arch)
    return cls.initial_state(arch) if hasattr(cls, "initial_state") else None


def after(x, earlier):
    """``x`` unchanged, made to wait for ``earlier``.

    jaxlib 0.10's batched LAPACK kernels (SVD, eigh, ...) on CPU hand their batch to XLA's
    intra-op pool and block until it is done; as many such calls side by side as the pool has
    threads (2 on a 2-core machine) hold every thread and deadlock. XLA runs independent
    operations side by side, so independent SVDs (the orthogonal init of three weights, the
    Jacobian spectra of two probes) must be chained. A data dependency does it; an
    ``optimization_barrier`` does not (XLA:CPU removes it before scheduling). The dependency is
    ``x + 0 * nan_to_num(e)`` for one entry ``e`` of ``earlier``: exactly ``x`` whatever ``e`` is
    (NaN and inf included), yet XLA may not fold a float ``0 * y`` away.
    """
    leaf = jax.tree.leaves(earlier)[0]
    if leaf.size == 0:  # nothing to wait for (a depth-1 net has no hidden weights)
        return x
    first = jnp.nan_to_num(jnp.ravel(leaf)[0])
    return jax.tree.map(lambda v: v + (first * 0).astype(v.dtype), x)


def _init_rule(names: tuple[str, ...], index, role: str = "hidden"):
    """The init rule ``names[index]`` for a weight in ``role`` (``inits.ROLES``); with several
    names, ``index`` may be traced."""
    return _select([inits.get_init(n, role) for n in names], index)


def _select(rules, index):
    """``rules[index]`` as one function; with several, ``index`` may be traced."""
    if len(rules) == 1:
        return rules[0]

    def select(*args):
        # every rule, then a select: what ``lax.switch`` becomes under vmap anyway (the rules are
        # elementwise), and a lane run alone then computes exactly the same ops as in a chunk
        out = rules[0](*args)
        for k, rule in enumerate(rules[1:], start=1):
            out = jnp.where(index == k, rule(*args), out)
        return out

    return select


#: each parameter's own stream: fold_in(key, PARAM_STREAMS[name]); never renumber (results would change)
PARAM_STREAMS = {"w_in": 0, "b_in": 1, "w_hidden": 2, "b_hidden": 3, "w_out": 4, "b_out": 5}
#: the number of the first stacked layer: hidden layer l (2..depth) draws from fold_in(stream, l)
FIRST_STACKED_LAYER = 2


def draw_noise(key, shapes: dict) -> dict:
    """N(0, 1) noise of each parameter's shape, a function of (key, parameter, layer) only.

    A stacked parameter's layer l draws from its own key, so a config's weights do not depend
    on how deep a program it is padded into, nor on its chunk or device: the noise of layers
    2..d is the same whether the program has d layers or more.
    """
    out = {}
    for name, shape in shapes.items():
        stream = jax.random.fold_in(key, PARAM_STREAMS[name])
        if name.endswith("_hidden"):
            layers = jnp.arange(shape[0]) + FIRST_STACKED_LAYER
            out[name] = jax.vmap(lambda l: jax.random.normal(jax.random.fold_in(stream, l), shape[1:]))(layers)
        else:
            out[name] = jax.random.normal(stream, shape)
    return out
