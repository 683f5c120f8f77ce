"""Per-layer measurements as pure functions of (model, params, batch).

Nothing here mutates state or syncs with the host, so probes run inside the
jitted, vmapped training loop on a schedule.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from satbench import activations, fits, losses, models, phi_hat

#: |φ'(h)| below this fraction of max|φ'| counts as saturated.
SATURATION_THRESHOLD = 0.05

#: the columns that read φ at a site's values: NaN for a family whose sites are not φ's inputs
PHI_COLUMNS = ("act_mean", "act_std", "sat_frac", "dead_frac")

LAYER_FIELDS = ("grad_norm", "signal_norm", "preact_rms", "act_mean", "act_std", "sat_frac", "dead_frac",
                "unit_p15", "unit_p50", "unit_p85")


def cross_entropy(logits, labels):
    """Mean softmax cross-entropy with integer labels."""
    return losses.for_task("classify").mean(logits, labels)


def layer_histograms(values, bins: int, active=None):
    """Per-layer counts of ``values`` (depth, batch, *site_shape) in ``bins`` equal bins.

    The bins span [min, max] over all (active) layers, so the layers of one
    probe share their edges and can be overlaid: a layer whose values are
    narrower piles into the middle bins, which is how Glorot & Bengio (2010,
    Figs. 6-7) show shrinking activations and gradients. Layers beyond a
    lane's depth (``active`` False) neither set the range nor count.
    Returns (counts (depth, bins) int32, lo, hi).
    """
    keep = jnp.ones(values.shape[0], bool) if active is None else active
    keep_site = keep.reshape((-1,) + (1,) * (values.ndim - 1))
    lo = jnp.min(jnp.where(keep_site, values, jnp.inf))
    hi = jnp.max(jnp.where(keep_site, values, -jnp.inf))
    step = (hi - lo) / bins
    index = jnp.floor((values - lo) / jnp.where(step > 0, step, 1.0))
    index = jnp.clip(index, 0, bins - 1).astype(jnp.int32)  # the maximum lands in the last bin
    counts = jax.vmap(lambda i: jnp.bincount(i.ravel(), length=bins))(index)
    return jnp.where(keep[:, None], counts, 0).astype(jnp.int32), lo, hi


def layer_probes(graphdef, params, x, y, ctx=models.Context(), histogram_bins: int = 0,
                 loss: losses.Loss = losses.for_task("classify"), pair_samples: int = 0) -> dict[str, jax.Array]:
    """Every per-site quantity, each of shape (sites,), on the probe batch (x, y). Sites are
    layers (a CNN's convolutions) or a recurrent net's time steps, whose taps sit on the state
    h_t = φ(z_t), so there ``signal_norm`` is ‖∂L/∂h_t‖ (Pascanu et al. 2013's back-propagated
    signal) and the other columns are of z_t.

    ``ctx`` is the lane's forward context, ``loss`` the task's; BatchNorm nets are probed as they
    train, with the probe batch's own statistics. A site's units are whatever
    its pre-activation holds per example (a layer's width, a CNN's channels ×
    positions): every mean below runs over units × examples.

    grad_norm    ‖∂L/∂θ_l‖_F of the site's weights (the network's ``site_param_norms``; none where
                 the sites share weights)
    signal_norm  ‖∂L/∂h_l‖_F over the batch (h_l: the input of φ)
    preact_rms   √mean(h_l²): the measured √q_l of mean-field theory
    act_mean/std mean and std of φ(h_l) over units × examples
    sat_frac     fraction of units × examples with |φ'(h)| < 0.05·max|φ'|
                 (NaN for activations not registered as saturating: relu's zero
                 half is counted by dead_frac, not as saturation)
    dead_frac    fraction of units with φ'(h) = 0 on every example
    unit_p15/50/85  15th/50th/85th percentile over the batch of one unit's
                 φ input (the site's first unit; a CNN's first channel at the middle position): how one input distribution
                 moves during training (Ioffe & Szegedy 2015, Fig. 1)
    pair_cosine  with ``pair_samples`` = P > 0: the mean over the pairs (example i, example P + i) of the
                 cosine of their pre-activations h_l (``pair_cosine``): the measured c-map of
                 mean-field theory, c_l = q_ab / √(q_aa q_bb), layer by layer
    grad_norm_<group>  where the network has ``site_param_group_norms``: a site's weights by role
                 (a transformer block's W_Q, W_K, W_V, W_O and MLP: ``grad_norm_q`` ...)
    With ``pair_samples`` > 0 the dict also holds "pair_map": each of P pairs' own gap 1 − c_l (sites,
    P) on pairs at a spread of input angles (``angle_pairs``, ``pair_gaps``): the points of the c-map
    that ``fits.correlation_map_depth_scale`` fits ξ_c to (table ``pair_map``). Also the family's own per-site numbers (``Forward.site_extras``) and whole-net numbers
    (a network's ``probe_summaries()``, e.g. a recurrent matrix's spectral radius). Where an
    architecture says ``phi_sites = False`` (a transformer's sites are its blocks' outputs, not
    inputs of φ) the ``PHI_COLUMNS`` are NaN.

    With ``histogram_bins`` > 0 the dict also holds "histograms": counts
    (2, depth, bins) of φ(h_l) and ∂L/∂h_l over units × examples, and their
    ranges lo, hi (2,) each (``layer_histograms``, ``probe_tables.HISTOGRAM_QUANTITIES`` order). Keys other than
    the per-site columns are tables of their own, declared in ``satbench.probe_tables``.
    """
    model = nnx.merge(graphdef, params)
    arch = model.arch
    sites = getattr(arch, "n_sites", arch.depth)  # a layered family's sites are its layers
    taps = jnp.zeros((sites, x.shape[0], *arch.site_shape), x.dtype)

    def loss_fn(p, t):
        fwd = nnx.merge(graphdef, p)(x, ctx, taps=t)
        return loss.mean(fwd.logits, y), (fwd.preacts, fwd.site_extras or {})

    (g_params, g_taps), (preacts, extras) = jax.grad(loss_fn, argnums=(0, 1), has_aux=True)(params, taps)
    names, index = arch.activation, ctx.activation_index
    threshold = SATURATION_THRESHOLD * jnp.asarray([activations.max_abs_derivative(n) for n in names])[index]
    if ctx.phi is None:
        phi = activations.switch([activations.get_activation(n) for n in names], index)
        dphi = activations.switch([activations.derivative(n) for n in names], index)(preacts)
    else:  # a transformed φ̂(h) = γ(φ(αh + β) + δ): saturated where φ'(αh + β) is
        phi, dphi = phi_hat.function(names, index, ctx.phi), phi_hat.derivative(names, index, ctx.phi)(preacts)
        threshold = threshold * jnp.abs(ctx.phi.gamma * ctx.phi.alpha)
    acts = phi(preacts)
    saturating = jnp.asarray([activations.get_entry(n).saturating for n in names])[index]
    units = tuple(range(1, preacts.ndim))  # examples × a site's units
    centre = tuple(n // 2 for n in arch.site_shape[:-1])  # an image's middle position (corners are often blank)
    first_unit = preacts[(slice(None), slice(None), *centre, 0)]
    out = {
        "signal_norm": jnp.sqrt(jnp.sum(g_taps**2, axis=units)),
        "preact_rms": jnp.sqrt(jnp.mean(preacts**2, axis=units)),
        "act_mean": acts.mean(axis=units),
        "act_std": acts.std(axis=units),
        "sat_frac": jnp.where(saturating, (jnp.abs(dphi) < threshold).mean(axis=units), jnp.nan),
        "dead_frac": jnp.all(dphi == 0, axis=1).mean(axis=tuple(range(1, preacts.ndim - 1))),
        **{f"unit_p{q}": jnp.percentile(first_unit, q, axis=1) for q in (15, 50, 85)},
        **extras,
    }
    if not getattr(arch, "phi_sites", True):  # a site holds no φ input (a transformer block's output)
        out.update({k: jnp.full(len(preacts), jnp.nan) for k in PHI_COLUMNS})
    if pair_samples:
        out["pair_cosine"] = pair_cosine(preacts, pair_samples)
        out["pair_map"] = pair_gaps(model(angle_pairs(x, pair_samples), ctx).preacts)
    if hasattr(model, "site_param_norms"):  # weights per site (layers; a recurrent net's are shared)
        grads = nnx.merge(graphdef, g_params)
        out = {"grad_norm": grads.site_param_norms(), **out}
        if hasattr(grads, "site_param_group_norms"):  # a site's weights by role (W_Q, W_K, ... of a block)
            out.update({f"grad_norm_{k}": v for k, v in grads.site_param_group_norms().items()})
    if hasattr(model, "probe_summaries"):  # numbers of the whole net (no site axis)
        out.update(model.probe_summaries())
    if histogram_bins:
        hists = [layer_histograms(v, histogram_bins, ctx.active) for v in (acts, g_taps)]
        out["histograms"] = {"counts": jnp.stack([h[0] for h in hists]),
                             "lo": jnp.stack([h[1] for h in hists]), "hi": jnp.stack([h[2] for h in hists])}
    return out


def pair_cosine(preacts, pairs: int):
    """(sites,) mean over pairs (i, pairs + i) of the probe batch of the cosine between the two
    examples' pre-activations at each site (all of a site's units: a layer's width, a CNN's C·H·W).
    Fewer pairs where the batch holds fewer than 2 × ``pairs`` examples."""
    pairs = min(pairs, preacts.shape[1] // 2)
    flat = preacts.reshape(preacts.shape[0], preacts.shape[1], -1)
    a, b = flat[:, :pairs], flat[:, pairs : 2 * pairs]
    dot = jnp.sum(a * b, axis=-1)
    norms = jnp.sqrt(jnp.sum(a**2, axis=-1) * jnp.sum(b**2, axis=-1))
    return jnp.mean(dot / norms, axis=1)


def angle_pairs(x, pairs: int):
    """(2P, ...) inputs for the c-map probe: examples i < P of ``x`` (P = ``pairs``, at most half
    the batch), then for each a partner of the same norm at angle θ_i = π(i + ½)/P from it, in
    the plane of example i and example P + i (the partner is cos θ_i · x_i plus sin θ_i · |x_i|
    times the unit part of x_{P+i} orthogonal to x_i). The input cosines cos θ_i spread over
    (−1, 1), so the pairs' cosines pass through the c-map's fixed point from both sides whatever
    the phase: the points the fit needs. Deterministic: a function of the probe batch alone."""
    n = min(pairs, x.shape[0] // 2)
    flat = x.reshape(x.shape[0], -1)
    first, other = flat[:n], flat[n : 2 * n]
    norm = jnp.linalg.norm(first, axis=1, keepdims=True)
    unit = first / jnp.maximum(norm, jnp.finfo(x.dtype).tiny)
    across = other - jnp.sum(other * unit, axis=1, keepdims=True) * unit
    across = across / jnp.maximum(jnp.linalg.norm(across, axis=1, keepdims=True), jnp.finfo(x.dtype).tiny)
    theta = (jnp.pi * (jnp.arange(n) + 0.5) / n)[:, None]
    partner = norm * (jnp.cos(theta) * unit + jnp.sin(theta) * across)
    return jnp.concatenate([first, partner.astype(x.dtype)]).reshape((2 * n, *x.shape[1:]))


def pair_gaps(preacts):
    """(sites, P) 1 − cos between the pre-activations of examples i and P + i (i < P, 2P the batch:
    ``angle_pairs``' layout) at each site,
    as ½‖â − b̂‖² of the unit vectors: exact where the cosine is within float32 rounding of 1
    (an ordered net's pairs reach 1 − c ≈ 1e-10), where 1 − cos would round to 0."""
    flat = preacts.reshape(preacts.shape[0], preacts.shape[1], -1)
    unit = flat / jnp.linalg.norm(flat, axis=-1, keepdims=True)
    pairs = flat.shape[1] // 2
    return 0.5 * jnp.sum((unit[:, :pairs] - unit[:, pairs : 2 * pairs]) ** 2, axis=-1)


def decay_rate(grad_norm, depth_first: int = 2):
    """Per-layer factor of grad_norm² going backward (layer l+1 -> l), from a
    least-squares fit of log grad_norm² on l (``fits.backward_factor``).

    Below 1 the gradient vanishes toward the input, above 1 it explodes; it is
    directly comparable to mean-field χ₁.

    Layer 1 is left out when there are at least three layers: its fan-in is
    the input dimension, not the width, so its norm is on another scale.
    Works on numpy or jax arrays of shape (depth,); returns NaN for depth < 2.
    """
    depth = len(grad_norm)
    return fits.backward_factor(grad_norm, first=depth_first if depth >= 3 else 1)


def jacobian_singular_values(graphdef, params, x, ctx=models.Context()) -> jax.Array:
    """Singular values of ∂h_L/∂h_1 for each example of ``x``: (n_examples, units), the
    Jacobian taken over a site's units (a CNN's C·H·W).

    The map from the first pre-activation to the last is the product of the
    D_l W_l factors whose spectrum Pennington et al. (2017) predict; it is
    square, so the spectrum does not depend on the input dimension. A
    BatchNorm net is differentiated with the statistics of the batch ``x``
    held fixed (one example has no batch statistics of its own).
    """
    model = nnx.merge(graphdef, params)
    fwd = model(x, ctx)
    h1 = fwd.preacts[0]  # each example's h_1; with the batch's own statistics fixed, the same values
    if model.arch.norm == "batchnorm" and ctx.stats is None:
        ctx = ctx._replace(stats=fwd.batch_stats)

    def one(h):
        jac = jax.jacfwd(lambda v: model.last_preact(v[None], ctx)[0])(h)
        jac = jac.reshape(h.size, h.size)
        # LAPACK's SVD of a matrix with inf/NaN prints errors and may not return: a lane
        # whose weights blew up gets NaN singular values instead
        finite = jnp.all(jnp.isfinite(jac))
        return jnp.where(finite, jnp.linalg.svd(jnp.where(finite, jac, 0.0), compute_uv=False), jnp.nan)

    return jax.vmap(one)(h1)


def input_gradients(graphdef, params, x, ctx=models.Context()) -> jax.Array:
    """∂(Σ_k f_k(x_i))/∂x_i for each example of ``x``, shaped like ``x``: the gradient of the
    network's summed outputs with respect to its input (for one output, Balduzzi et al. 2017's
    g(x) = df/dx; the loss is left out, so the targets do not enter). A BatchNorm net is
    differentiated with the statistics of the batch ``x`` held fixed, so each example's
    gradient is its own."""
    model = nnx.merge(graphdef, params)
    if "batchnorm" in model.arch.norm and ctx.stats is None:
        ctx = ctx._replace(stats=model(x, ctx).batch_stats)
    return jax.grad(lambda v: model(v, ctx).logits.sum())(x)


def neighbour_correlation(grads) -> jax.Array:
    """Σ_i ⟨g_i, g_{i+1}⟩ / √(Σ_i ‖g_i‖² · Σ_i ‖g_{i+1}‖²), i = 1..n−1: how alike the gradients
    of consecutive examples are. For scalar inputs on a sorted grid it is the lag-1
    autocorrelation of g(x) along the grid, uncentred (Balduzzi et al.'s correlation is over
    random weights, whose mean gradient is 0): 1 for a constant gradient (a linear net), ≈ 0 for
    white noise. For vector inputs it pools the inner products of consecutive examples'
    gradient vectors, which needs no order on the examples to be defined but means "nearby
    inputs" only where consecutive examples are near. The gradients are scaled by their largest
    entry first, so those of an exploding net (|g| ≈ 1e11 at depth 50) do not overflow the
    sums of squares. NaN when every gradient is 0 or one is not finite."""
    g = grads.reshape(grads.shape[0], -1)
    scale = jnp.max(jnp.abs(g))
    g = g / jnp.where(scale > 0, scale, 1.0)
    a, b = g[:-1], g[1:]
    return jnp.sum(a * b) / jnp.sqrt(jnp.sum(a * a) * jnp.sum(b * b))


def input_gradient_probe(graphdef, params, x, ctx=models.Context()) -> dict[str, jax.Array]:
    """The input-gradient probe (``input_grad_probe``): each example's gradient flattened,
    (n, features), and their ``neighbour_correlation`` (probe_tables' "input_grads")."""
    grads = input_gradients(graphdef, params, x, ctx)
    return {"gradient": grads.reshape(grads.shape[0], -1), "autocorr": neighbour_correlation(grads)}
