"""Mean-field signal propagation for any registered activation.

The q-map, c-map, χ₁ and the depth scales ξ_q, ξ_c are those of Poole et al.
2016 ("Exponential expressivity in deep neural networks through transient
chaos") and Schoenholz et al. 2017 ("Deep Information Propagation"); the
Jacobian spectrum moments those of Pennington, Schoenholz & Ganguli 2017
("Resurrecting the sigmoid in deep learning through dynamical isometry").

Network: ``h^l = W^l φ(h^{l-1}) + b^l`` with ``W ~ N(0, σ_w²/N)``, ``b ~ N(0, σ_b²)``.
Everything here is a Gaussian expectation of φ, φ' or products of them, so
an activation needs no hand-written theory: φ comes from the registry and
φ' from autodiff.

Quadrature. ``E[f(√q z)]``, ``z ~ N(0, 1)``, is computed by one of two rules:

* Gauss–Hermite (probabilists', 128 nodes) for built-ins known to be
  analytic, while ``q ≤ GH_Q_MAX``. Its error grows fast with q because the
  poles of tanh/sigmoid approach the real axis in z (tanh'² at q = 4 is off
  by 6e-5, sigmoid'² at q* = 45 by 2 %), so above that the dense rule takes over.
* A dense midpoint rule in x = √q z space for everything else (kinks, and
  any user activation, whose smoothness is unknown). The cell width is a
  power of two, so every cell boundary is a dyadic number: kinks at 0, ±1,
  ±1/2, ... (relu, leaky_relu, elu, selu, softsign, hard_tanh) fall on cell
  boundaries, the error is a series in h², and one Richardson step leaves
  ~1e-10. A kink elsewhere costs O(h), h ≤ σ/512 (≲ 2e-3 relative). For
  analytic integrands the rule converges exponentially, so it is also the
  safe fallback for large q. Once the cell is coarser than φ's own scale
  (q ≳ 1.6e4 in 1-D, ≳ 30 in 2-D), a fixed fine lattice takes |x| ≤ 16, where
  the built-ins have their kinks, saturation and the bump of φ' (erf' has
  width ~1: χ_c of erf at σ_w² = 1e4 came out 8.8e-13 instead of 0.64), and
  Gauss–Legendre bridges join it to the coarse lattice; this assumes φ is
  smooth beyond |x| = 16 (true of every built-in).

The c-map needs E over a correlated pair: tensor-product Gauss–Hermite, or
iterated dense rules (256² plus the fine core, accurate to ~1e-6 for
c ≤ 0.95, worse as c → 1 for kinked φ). q* comes from Aitken-accelerated
iteration, c* from Newton (the c-map is convex on [0, 1]), the critical σ_w²
from bisection.

q* = ∞ (ReLU at σ_w² ≥ 2 with σ_b² > 0, softplus, GELU, SiLU beyond their
jumps): ξ_q = ∞, χ₁ is its q → ∞ limit (σ_w²/2 for these), and the c-map is
its q → ∞ limit, an arc-cosine kernel, whose slope at c = 1 is 1: c* = 1,
χ_c = 1, ξ_c = ∞ (correlations approach 1 algebraically). The phase follows
χ₁, the per-layer factor of gradient variance (``_fixed_point``).

Every function is pure ``jax.numpy``: jit it with the activation name
static and vmap it over (σ_w², σ_b²); the public ones are already jitted
that way. Scalars in, scalars out: vmap for arrays. Precision follows JAX's
x64 flag; the host-side ``summary``/``summaries`` switch x64 on internally.
Compiled code is cached by activation *name*: after re-registering a name
with another function, call ``jax.clear_caches()``.
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from numpy.polynomial.hermite_e import hermegauss
from numpy.polynomial.legendre import leggauss

from satbench import activations

# ------------------------------------------------------------------ constants
GH_NODES = 128
#: Gauss–Hermite is used for smooth activations only while q ≤ GH_Q_MAX
#: (worst relative error over the smooth built-ins ~1e-8 there).
GH_Q_MAX = 1.0
#: dense rule: n cells covering between ±DENSE_HALF_WIDTH/2 and ±DENSE_HALF_WIDTH σ
DENSE_N = 16384
DENSE_HALF_WIDTH = 16.0
#: dense 2-D rule (c-map): DENSE_N2 × DENSE_N2 lattice nodes
DENSE_N2 = 256
DENSE_HALF_WIDTH2 = 12.0
#: the built-ins have their scale-1 structure (kinks, saturation, the bump of φ')
#: within |x| ≤ CORE_HALF_WIDTH: silu, the slowest, is within 2e-6 of its asymptote there
CORE_HALF_WIDTH = 16.0
#: cells of the fine core lattice on [−16, 16]: width 1/8 (1-D) and 1/4 (2-D)
CORE_N = 256
CORE_N2 = 128
#: Gauss–Legendre nodes on each bridge [CORE_HALF_WIDTH, R] between core and lattice
BRIDGE_NODES = 8
#: q is clamped to [Q_FLOOR, Q_MAX] inside expectations; q* ≥ Q_MAX means "diverges"
Q_FLOOR = 1e-30
Q_MAX = 1e30

_GH_Z, _GH_W = hermegauss(GH_NODES)
_GH_W = _GH_W / math.sqrt(2.0 * math.pi)  # weights of N(0, 1), sum to 1
_GL_T, _GL_W = leggauss(BRIDGE_NODES)

#: Built-ins that are analytic on the real line (Gauss–Hermite converges
#: spectrally). Matched by function identity, so re-registering a name with
#: another function falls back to the dense rule.
_SMOOTH_BUILTINS = {
    "sigmoid": activations.sigmoid,
    "tanh": activations.tanh,
    "gelu": activations.gelu,
    "silu": activations.silu,
    "softplus": activations.softplus,
    "erf": activations.erf,
    "linear": activations.linear,
}
SMOOTH_ACTIVATIONS = frozenset(_SMOOTH_BUILTINS)


def _ftype():
    """float64 under x64, else float32: constants follow the caller's precision."""
    return jax.dtypes.canonicalize_dtype(jnp.float64)


def _f(x):
    return jnp.asarray(x, dtype=_ftype())


def _eps():
    return jnp.finfo(_ftype()).eps


def _sum(v, axis=-1):
    """Two-level sum over ``axis``: float32 rounding grows like √n blocks, not √n terms."""
    v = jnp.moveaxis(v, axis, -1)
    n = v.shape[-1]
    if n <= 64:
        return v.sum(-1)
    cut = n - n % 64
    head = v[..., :cut].reshape(v.shape[:-1] + (cut // 64, 64)).sum(-1).sum(-1)
    return head + v[..., cut:].sum(-1) if cut < n else head


def _std(q):
    """√max(q, Q_FLOOR), with d/dq taken as if unclamped (finite slope at q = 0)."""
    q = _f(q)
    return jnp.sqrt(q + lax.stop_gradient(jnp.maximum(q, Q_FLOOR) - q))


def _dyadic_below(x):
    """Largest power of two ≤ x (exact, no gradient): cell width of the dense rule."""
    _, e = jnp.frexp(x)
    return jnp.ldexp(jnp.ones_like(x), e - 1)


# ----------------------------------------------------------------- quadrature
def uses_gauss_hermite(act: str) -> bool:
    """True if ``act`` is a built-in analytic activation (Gauss–Hermite allowed at small q)."""
    base, _ = activations.parse_name(act)
    return activations.get_entry(act).fn is _SMOOTH_BUILTINS.get(base)


def gauss_hermite_expectation(f: Callable, q):
    """E[f(√q z)] by 128-node Gauss–Hermite: spectrally exact for analytic f at q ≲ 1."""
    z = jnp.asarray(_GH_Z, _ftype())
    w = jnp.asarray(_GH_W, _ftype())
    s = _std(q)
    return _sum(w * f(s * z))


def _lattice_spacing(s, n, half_width):
    """Cell width of the √q-scaled lattice: n cells cover between ±half_width/2 and ±half_width σ."""
    return lax.stop_gradient(_dyadic_below(2.0 * half_width * s / n))


def _core_radius(h, core_n):
    """Radius R of the zone around 0 that a fixed fine lattice integrates instead of the
    √q-scaled one of cell h: 0 while that lattice is as fine as the core, else
    max(CORE_HALF_WIDTH, 2h), with Gauss–Legendre bridges over CORE_HALF_WIDTH ≤ |x| ≤ R.

    Decided on the fine grid and shared with its Richardson partner (cell 2h): R is a
    multiple of 2h, so both lattices leave out the same cells and the pieces keep their
    h² error series.
    """
    return jnp.where(h > 2.0 * CORE_HALF_WIDTH / core_n, jnp.maximum(CORE_HALF_WIDTH, 2.0 * h), 0.0)


def _outside(j, h, radius):
    """Widths of the lattice cells [j h, (j+1) h] (j integer-valued); 0 inside (−radius, radius)."""
    r = radius / h
    return jnp.where((j < r) & (j + 1 > -r), 0.0, h)


@functools.lru_cache(maxsize=None)
def _layout(lattice_n: int, core_n: int):
    """Static part of a composite grid, one entry per node: kind (0 lattice, 1 core,
    2 bridge), position u in units of its piece (half-integer cell index; 1 + t for
    Gauss–Legendre t), sign and Gauss–Legendre weight. One array per quantity keeps
    the rule a single elementwise pass (separate blocks doubled compile time)."""
    bridge_t = np.concatenate([1.0 + _GL_T, 1.0 + _GL_T])
    kind = np.repeat([0.0, 1.0, 2.0], [lattice_n, core_n, 2 * BRIDGE_NODES])
    u = np.concatenate([np.arange(lattice_n) - (lattice_n / 2 - 0.5), np.arange(core_n) - (core_n / 2 - 0.5),
                        bridge_t])
    sign = np.concatenate([np.ones(lattice_n + core_n + BRIDGE_NODES), -np.ones(BRIDGE_NODES)])
    gl_w = np.concatenate([np.zeros(lattice_n + core_n), _GL_W, _GL_W])
    return kind, u, sign, gl_w


def _composite(s, n, half_width, core_n, coarsen):
    """(static layout, lattice cell h, core radius, fixed nodes, their widths / h) for a
    grid of scale s: core and bridge positions are final, lattice ones still to place.

    ``coarsen`` = 2 gives the Richardson partner: every cell twice as wide, same zones.
    Widths are in units of the lattice cell h: at q ~ Q_MAX, h ~ 1e12 times φ² ~ 1e35
    would overflow float32.
    """
    h = _lattice_spacing(s, n, half_width)
    radius = _core_radius(h, core_n)
    kind, u, sign, gl_w = (jnp.asarray(v, _ftype()) for v in _layout(n // coarsen, core_n // coarsen))
    h_core = 2.0 * CORE_HALF_WIDTH / (core_n // coarsen)
    half = 0.5 * jnp.maximum(radius - CORE_HALF_WIDTH, 0.0)
    x = jnp.where(kind == 1, u * h_core, sign * (CORE_HALF_WIDTH + half * u))
    width = jnp.where(kind == 1, jnp.where(radius > 0, h_core, 0.0), half * gl_w) / h
    return kind, u, h, radius, x, width


def _dense_nodes(s, n, half_width, core_n, coarsen):
    """Nodes and cell widths (in units of the lattice cell) of the 1-D composite rule."""
    kind, u, h, radius, x, width = _composite(s, n, half_width, core_n, coarsen)
    hk = h * coarsen
    lattice = kind == 0
    x = jnp.where(lattice, u * hk, x)
    width = jnp.where(lattice, _outside(u - 0.5, hk, radius) / h, width)
    return x, width


def _dense_midpoint(f, q, n, half_width, coarsen=1):
    """Composite midpoint rule for E[f(√q z)] on x = √q z (see ``dense_expectation``)."""
    s = _std(q)
    x, width = _dense_nodes(s, n, half_width, CORE_N, coarsen)
    w = width * jnp.exp(-0.5 * (x / s) ** 2)
    return _sum(w * f(x)) / _sum(w)


def dense_expectation(
    f: Callable, q, n: int = DENSE_N, half_width: float = DENSE_HALF_WIDTH, richardson: bool = True
):
    """E[f(√q z)] by a midpoint rule on x = √q z with dyadic cell width h.

    Cell boundaries sit on multiples of a power of two, so kinks of f at 0 or
    ±1 are cell boundaries and the error is a series in h² (Euler–Maclaurin on
    each smooth piece); Richardson extrapolation with the n/2 grid (width 2h,
    same boundaries) removes the h² term. Gaussian weights are renormalised.
    Differentiating w.r.t. q moves only the weights (score-function form),
    which stays correct when f has kinks or jumps.

    At large q the lattice (h ≈ √q/512) would step over φ's own scale-1
    structure (erf' is a bump of width ~1: at q = 1e6, h = 1 put χ₁ 17 % off),
    so once h > 1/8 a fixed lattice of cell 1/8 covers |x| ≤ 16, Gauss–Legendre
    bridges cover 16 ≤ |x| ≤ R = max(16, 2h) where φ is smooth, and the lattice
    only the rest. Below q = 16384 the rule is the plain lattice.
    """
    fine = _dense_midpoint(f, q, n, half_width)
    if not richardson:
        return fine
    return (4.0 * fine - _dense_midpoint(f, q, n, half_width, coarsen=2)) / 3.0


def expectation(act: str, f: Callable, q):
    """E[f(√q z)] with the rule suited to ``act`` (see module docstring)."""
    q = _f(q)
    if not uses_gauss_hermite(act):
        return dense_expectation(f, q)
    return lax.cond(
        q <= GH_Q_MAX,
        lambda qq: gauss_hermite_expectation(f, qq),
        lambda qq: dense_expectation(f, qq),
        q,
    )


def gauss_hermite_expectation_2d(f: Callable, q, c):
    """E[f(u1, u2)], u1 = √q z1, u2 = √q(c z1 + √(1−c²) z2):
    tensor-product Gauss–Hermite.

    ``f`` may return a tuple of arrays (several integrands on one grid).
    """
    z = jnp.asarray(_GH_Z, _ftype())
    w = jnp.asarray(_GH_W, _ftype())
    s = _std(q)
    c = jnp.clip(_f(c), -1.0, 1.0)
    r = jnp.sqrt(jnp.maximum((1.0 - c) * (1.0 + c), 0.0))
    u1 = s * z[:, None]
    u2 = s * (c * z[:, None] + r * z[None, :])
    return jax.tree_util.tree_map(lambda v: _sum(w * _sum(w[None, :] * v)), f(u1, u2))


def _dense_midpoint_2d(f, q, c, n, half_width, coarsen=1):
    s = _std(q)
    c = jnp.clip(_f(c), -1.0, 1.0)
    u1, w1 = _dense_nodes(s, n, half_width, CORE_N2, coarsen)
    w1 = w1 * jnp.exp(-0.5 * (u1 / s) ** 2)
    w1 = w1 / _sum(w1)
    b = jnp.maximum(s * jnp.sqrt(jnp.maximum((1.0 - c) * (1.0 + c), 0.0)), 1e-9 * s)
    kind, k, h2, radius2, x2, v2 = _composite(b, n, half_width, CORE_N2, coarsen)
    hk = h2 * coarsen
    m = (c * u1)[:, None]
    base = jnp.floor(m / hk)
    rem = m - base * hk  # offset of the conditional mean inside its cell
    lattice = kind == 0
    # node − mean: lattice nodes at (j + 1/2) hk follow the mean by whole cells; core and bridges stay
    d = jnp.where(lattice, k * hk - rem, x2 - m)
    u2 = jnp.where(lattice, m + d, x2)
    w2 = jnp.where(lattice, _outside(base + k - 0.5, hk, radius2) / h2, v2) * jnp.exp(-0.5 * (d / b) ** 2)
    w2 = w2 / _sum(w2)[:, None]
    return jax.tree_util.tree_map(lambda v: _sum(w1 * _sum(w2 * v)), f(u1[:, None], u2))


def dense_expectation_2d(
    f: Callable,
    q,
    c,
    n: int = DENSE_N2,
    half_width: float = DENSE_HALF_WIDTH2,
    richardson: bool = True,
):
    """E[f(u1, u2)] for the correlated pair, as iterated dense midpoint rules.

    Outer: u1 on a dyadic grid. Inner: u2 | u1 ~ N(c u1, q(1−c²)), again on a
    dyadic grid (shifted by whole cells to follow the mean), so kinks of f in
    either argument at 0, ±1 lie on cell boundaries; Richardson with the
    n/2 grid as in ``dense_expectation``. ``f`` may return a tuple of arrays
    (several integrands on one grid); not ``jnp.stack``: with jax 0.10.2 on
    CPU, vmap over ~100 configs of a stacked integrand returned the first
    component twice. Weak spot: kinked f with 1 − c ≲ 1e-2, where the inner
    average varies on the scale √(q(1−c²)), finer than the outer grid
    (relative error 1e-5 at c = 0.99, up to ~2e-3 for c in [0.999, 1)).
    """
    fine = _dense_midpoint_2d(f, q, c, n, half_width)
    if not richardson:
        return fine
    coarse = _dense_midpoint_2d(f, q, c, n, half_width, coarsen=2)
    return jax.tree_util.tree_map(lambda a, b: (4.0 * a - b) / 3.0, fine, coarse)


def expectation_2d(act: str, f: Callable, q, c):
    """E[f(u1, u2)] for the correlated pair with the rule suited to ``act``."""
    q = _f(q)
    if not uses_gauss_hermite(act):
        return dense_expectation_2d(f, q, c)
    return lax.cond(
        q <= GH_Q_MAX,
        lambda qq, cc: gauss_hermite_expectation_2d(f, qq, cc),
        lambda qq, cc: dense_expectation_2d(f, qq, cc),
        q,
        _f(c),
    )


# -------------------------------------------------------------------- q-map
@functools.partial(jax.jit, static_argnames=("act",))
def q_map(act: str, q, sigma_w2, sigma_b2):
    """Pre-activation variance after one layer: σ_w² E[φ(√q z)²] + σ_b²."""
    phi = activations.get_activation(act)
    return _f(sigma_w2) * expectation(act, lambda x: phi(x) ** 2, q) + _f(sigma_b2)


@functools.partial(jax.jit, static_argnames=("act",))
def q_map_slope(act: str, q, sigma_w2, sigma_b2):
    """d q-map / dq by autodiff: equals χ₁ + σ_w² E[φ''φ] for smooth φ (Gaussian
    integration by parts), and stays correct where φ'' has delta functions
    (hard_tanh), which a pointwise φ'' would miss."""
    return jax.grad(lambda qq: q_map(act, qq, sigma_w2, sigma_b2))(_f(q))


def _q_excess(act, q, sigma_w2, sigma_b2):
    """Q(q) − q, the step of the iteration, integrated as one function.

    σ_w²(φ(x)² + φ(−x)²)/2 − x² cancels point by point where the q-map is the
    identity at large |x| (ReLU at σ_w² = 2: Q(q) = q + σ_b²), so the step keeps
    its own precision; Q(q) − q formed from two numbers of size q loses σ_b²
    once q ≳ σ_b²/eps.
    """
    phi = activations.get_activation(act)
    w = _f(sigma_w2)
    return expectation(act, lambda x: 0.5 * w * (phi(x) ** 2 + phi(-x) ** 2) - x * x, q) + _f(sigma_b2)


def _q_star_raw(act, sigma_w2, sigma_b2, max_iter):
    """Iteration q ← q + g(q), g = Q(q) − q, from q = 1 with Aitken (Steffensen)
    acceleration; returns (q, g(q)).

    Each round takes a plain step of length g0 = g(q) to q1, with g1 = g(q1).
    If the steps shrink (r = g1/g0 in [0, 1)), it tries the geometric-series
    limit q1 + g1/(1−r): exact for a linear map (ReLU), quadratic for a smooth
    one, so a near-critical ReLU (r = 1 − 1e-9) needs one jump instead of 1e9
    steps. The jump is kept only if it made progress, |g| smaller or of the
    other sign; else the round ends at q1 and the next one is plain. That
    check rejects the two ways a jump goes wrong: r rounded to just below 1
    where the steps do not shrink at all (ReLU at σ_w² = 2: g = σ_b² at every q;
    that jump once landed at q ~ 1e14 and stopped there), and a jump over both
    fixed points of a near-fold (silu at σ_b² = 0.3). Stops when
    |g| ≤ 16 eps max(q, Q_FLOOR), at Q_MAX, or after 32 rounds whose steps rise
    without shrinking.
    """
    tol = 16 * _eps()

    def excess(q):
        return _q_excess(act, q, sigma_w2, sigma_b2)

    def cond(state):
        i, q, g, rising, _ = state
        return (i < max_iter) & (jnp.abs(g) > tol * jnp.maximum(q, Q_FLOOR)) & (q < Q_MAX) & (rising < 32)

    def body(state):
        i, q, g0, rising, jump_ok = state
        q1 = jnp.clip(q + g0, 0.0, Q_MAX)
        g1 = excess(q1)
        r = g1 / jnp.where(g0 == 0, 1.0, g0)
        shrinks = (r >= 0) & (r < 1)
        try_jump = jump_ok & shrinks
        q2 = jnp.clip(q1 + g1 / jnp.where(try_jump, 1.0 - r, 1.0), 0.0, Q_MAX)
        g2 = excess(q2)
        kept = ~try_jump | (jnp.abs(g2) < jnp.abs(g1)) | (g2 * g1 < 0)
        rising = jnp.where((g1 > 0) & ~shrinks, rising + 1, 0)
        return (i + 2, jnp.where(kept, q2, q1), jnp.where(kept, g2, g1), rising, kept)

    q0 = _f(1.0)
    init = (jnp.int32(0), q0, excess(q0), jnp.int32(0), jnp.bool_(True))
    _, q, g, _, _ = lax.while_loop(cond, body, init)
    return q, g


@functools.partial(jax.jit, static_argnames=("act", "max_iter"))
def q_star(act: str, sigma_w2, sigma_b2, max_iter: int = 1000):
    """Stable fixed point q* of the q-map reached from q = 1; +inf if q grows without bound.

    Divergence: the iterate reached Q_MAX; or it stopped still rising by more
    than √eps q per step (the map expands, like ReLU at σ_w² > 2, or creeps at
    a constant rate, like ReLU at σ_w² = 2 with σ_b² > 0); or it stopped on a
    step below rounding of q while still rising, on a q-map whose slope is 1 to
    within 50 eps^¾ (1e-10 in float64), measured across 1e-3 q: softplus at
    σ_w² = 2 creeps by ~1/√q per step, which falls below eps q near q ~ 1e10.
    A fixed point that flat cannot be told from none. σ_b² = 0 with a q* = 0
    fixed point converges geometrically to 0 (or algebraically at the edge).
    """
    q, g = _q_star_raw(act, sigma_w2, sigma_b2, max_iter)
    tau, qf = 1e-3, jnp.maximum(q, Q_FLOOR)
    flat = (g - _q_excess(act, q * (1 + tau), sigma_w2, sigma_b2)) / (tau * qf) <= 50 * _eps() ** 0.75
    creeping = (g > 0) & (q > Q_FLOOR) & flat
    return jnp.where((q >= Q_MAX) | (g > jnp.sqrt(_eps()) * qf) | creeping, jnp.inf, q)


def _q_star_clamped(act, sigma_w2, sigma_b2):
    """q* clamped to Q_MAX: a diverging q* gives the maps' q → ∞ limits (ReLU: χ₁ = σ_w²/2)."""
    return jnp.minimum(q_star(act, sigma_w2, sigma_b2), Q_MAX)


@functools.partial(jax.jit, static_argnames=("act", "max_iter"))
def chi1(act: str, sigma_w2, sigma_b2, q=None, max_iter: int = 1000):
    """χ₁ = σ_w² E[φ'(√q* z)²]: slope of the c-map at c = 1 and the per-layer
    factor of back-propagated gradient variance (pass ``q`` to evaluate at
    another length). Where q* = ∞ it is the limit q → ∞, evaluated at Q_MAX
    (ReLU at σ_w² = 2: 1 at every q)."""
    if q is None:
        q = q_star(act, sigma_w2, sigma_b2, max_iter)
    q = jnp.minimum(_f(q), Q_MAX)
    dphi = activations.derivative(act)
    return _f(sigma_w2) * expectation(act, lambda x: dphi(x) ** 2, q)


# -------------------------------------------------------------------- c-map
@functools.partial(jax.jit, static_argnames=("act",))
def c_map(act: str, c, q, sigma_w2, sigma_b2):
    """Correlation after one layer for two inputs both at length q:
    (σ_w² E[φ(u1)φ(u2)] + σ_b²)/q_map(q), which is the textbook /q* at the
    fixed point and keeps c_map(1) = 1 elsewhere (e.g. ReLU with q* = ∞)."""
    return c_map_and_slope(act, c, q, sigma_w2, sigma_b2)[0]


@functools.partial(jax.jit, static_argnames=("act",))
def c_map_and_slope(act: str, c, q, sigma_w2, sigma_b2):
    """(c-map(c), its slope d c-map/dc) from one pass over the 2-D rule.

    Price's theorem, d E[φ(u1)φ(u2)]/d(qc) = E[φ'(u1)φ'(u2)], gives the slope
    σ_w² q E[φ'φ']/q_map(q): χ_c at (q*, c*) and χ₁ at c = 1.
    """
    phi = activations.get_activation(act)
    dphi = activations.derivative(act)
    q = _f(q)
    e_phi, e_dphi = expectation_2d(
        act, lambda a, b: (phi(a) * phi(b), dphi(a) * dphi(b)), q, c
    )
    w = _f(sigma_w2)
    q_next = jnp.maximum(q_map(act, q, sigma_w2, sigma_b2), Q_FLOOR)
    return (w * e_phi + _f(sigma_b2)) / q_next, w * e_dphi * (q / q_next)


def _c_star_and_chi_c(act, q, sigma_w2, sigma_b2, chi, max_iter):
    """(c*, χ_c): c* = 1 and χ_c = ``chi`` when ``chi`` ≤ 1, else safeguarded Newton.

    ``chi`` is the c-map's slope at c = 1: χ₁ at a finite q* (see ``_fixed_point``).

    By Mehler's expansion E[φ(u1)φ(u2)] = Σ a_n² cⁿ/n! with a_n ≥ 0 terms,
    so on [0, 1] the c-map is increasing and convex, and c-map(0) ≥ 0. Hence
    g(c) = c-map(c) − c is convex with g(0) ≥ 0, g(1) = 0 and g'(1) = χ₁ − 1 > 0
    in the chaotic phase: it has exactly one root c* in [0, 1), the stable
    one, with g' < 0 on [0, c*]. Newton from 0 climbs monotonically to c*;
    the bracket [lo, hi] (g(lo) > 0 ≥ g(hi)) falls back to bisection when
    quadrature noise makes a Newton step leave it (near criticality, where
    c* → 1 and g' → 0).
    """
    tol = jnp.maximum(16 * _eps(), 1e-12)

    def cond(state):
        i, *_, done, _ = state
        return (i < max_iter) & ~done

    def body(state):
        i, lo, hi, c, _, _ = state
        m, slope = c_map_and_slope(act, c, q, sigma_w2, sigma_b2)
        g = m - c
        lo = jnp.where(g > 0, c, lo)
        hi = jnp.where(g > 0, hi, c)
        newton = c - g / jnp.minimum(slope - 1.0, -tol)
        c_new = jnp.where((newton > lo) & (newton < hi), newton, 0.5 * (lo + hi))
        done = (g == 0) | (jnp.abs(c_new - c) <= tol) | (hi - lo <= tol)
        return i + 1, lo, hi, jnp.where(g == 0, c, c_new), done, slope

    ordered = chi <= 1.0
    zero, one = _f(0.0), _f(1.0)
    init = (jnp.int32(0), zero, one, jnp.where(ordered, one, zero), ordered, _f(chi))
    *_, c, _, slope = lax.while_loop(cond, body, init)
    return jnp.where(ordered, 1.0, c), jnp.where(ordered, chi, slope)


def _fixed_point(act, sigma_w2, sigma_b2):
    """(q*, q for the maps, χ₁, λ) where λ is the c-map's slope at c = 1.

    At a finite q*, λ = χ₁ (Q(q*) = q*). Where q* = ∞ the maps are taken at
    Q_MAX for q → ∞: χ₁ is its limit and the c-map, normalised by Q(q), tends to
    that of φ's large-scale shape, with λ = lim χ₁ q/Q(q). For φ growing linearly
    (ReLU, leaky ReLU, ELU, softplus, GELU, SiLU) E[φ'²] and E[φ²]/q share their
    limit, so λ = 1: the limit is the arc-cosine kernel of a piecewise-linear φ
    (ReLU's, but for leaky ReLU), which lies above the diagonal up to c = 1, so
    c* = 1 is approached only algebraically: χ_c = 1, ξ_c = ∞. λ within the 2-D
    rule's accuracy (1e-6) of 1 is taken as 1.
    """
    qs = q_star(act, sigma_w2, sigma_b2)
    q = jnp.minimum(qs, Q_MAX)
    chi = chi1(act, sigma_w2, sigma_b2, q=q)
    lam = chi * q / jnp.maximum(q_map(act, q, sigma_w2, sigma_b2), Q_FLOOR)
    lam = jnp.where(jnp.abs(lam - 1.0) <= jnp.maximum(1e-6, 64 * _eps()), 1.0, lam)
    return qs, q, chi, jnp.where(jnp.isinf(qs), lam, chi)


@functools.partial(jax.jit, static_argnames=("act", "max_iter"))
def c_star(act: str, sigma_w2, sigma_b2, max_iter: int = 40):
    """Stable fixed point c* of the c-map at q*: exactly 1 in the ordered phase
    (χ₁ ≤ 1) and where q* = ∞ with a linearly growing φ, else the unique root
    in [0, 1) (see ``_c_star_and_chi_c``, ``_fixed_point``)."""
    _, q, _, lam = _fixed_point(act, sigma_w2, sigma_b2)
    return _c_star_and_chi_c(act, q, sigma_w2, sigma_b2, lam, max_iter)[0]


@functools.partial(jax.jit, static_argnames=("act", "max_iter"))
def chi_c(act: str, sigma_w2, sigma_b2, max_iter: int = 40):
    """χ_c = σ_w² E[φ'(u1)φ'(u2)] at (q*, c*): slope of the c-map at its stable
    point; equals χ₁ in the ordered phase, 1 where q* = ∞ (``_fixed_point``)."""
    _, q, _, lam = _fixed_point(act, sigma_w2, sigma_b2)
    return _c_star_and_chi_c(act, q, sigma_w2, sigma_b2, lam, max_iter)[1]


def depth_scale(rate):
    """ξ = −1/ln(rate) for a per-layer contraction rate: positive for rate < 1,
    +inf where the map does not contract (rate ≥ 1, e.g. exactly at criticality)."""
    rate = _f(rate)
    contracting = rate < 1.0
    return jnp.where(contracting, -1.0 / jnp.log(jnp.where(contracting, rate, 0.5)), jnp.inf)


@functools.partial(jax.jit, static_argnames=("act",))
def xi_q(act: str, sigma_w2, sigma_b2):
    """Depth scale of q → q*: −1/ln(χ₁ + σ_w² E[φ''φ]), i.e. of the q-map slope
    at q*; ∞ where q* = ∞ (q never settles)."""
    qs = q_star(act, sigma_w2, sigma_b2)
    return _xi_q_at(act, qs, sigma_w2, sigma_b2)


def _xi_q_at(act, qs, sigma_w2, sigma_b2):
    slope = q_map_slope(act, jnp.minimum(qs, Q_MAX), sigma_w2, sigma_b2)
    return jnp.where(jnp.isinf(qs), jnp.inf, depth_scale(slope))


@functools.partial(jax.jit, static_argnames=("act",))
def xi_c(act: str, sigma_w2, sigma_b2):
    """Depth scale of c → c*: −1/ln χ_c; diverges at criticality (χ₁ = 1)."""
    return depth_scale(chi_c(act, sigma_w2, sigma_b2))


# ------------------------------------------------------------------- dropout
DROPOUT_BISECTIONS = 60


@functools.partial(jax.jit, static_argnames=("act",))
def dropout_c_map_and_slope(act: str, c, q, sigma_w2, sigma_b2, keep):
    """(c-map(c), its slope) with inverted dropout at keep rate ρ on every φ (Schoenholz et al. 2017,
    sec. 5), at q = the dropout q-map's fixed point. The masks are independent across examples, so
    they leave the covariance of two inputs, σ_w² E[φ(u1)φ(u2)] + σ_b², as it is and raise each
    input's own variance to σ_w²/ρ E[φ²] + σ_b² = q: the map is the plain one times
    q-map(q; σ_w²)/q, below 1 at c = 1 for ρ < 1, so c = 1 is no fixed point."""
    value, slope = c_map_and_slope(act, c, q, sigma_w2, sigma_b2)
    shrink = q_map(act, q, sigma_w2, sigma_b2) / jnp.maximum(_f(q), Q_FLOOR)
    return value * shrink, slope * shrink


def _dropout_summary(act, sigma_w2, sigma_b2, keep):
    """q*, χ₁ (the gradient's per-layer factor), c* and χ_c of a net with dropout at keep rate ρ.

    Each layer's variance sees σ_w²/ρ (a kept unit is scaled by 1/ρ, E[(m/ρ)²] = 1/ρ), and so does
    the gradient (the same masks multiply it on the way back): q* and χ₁ are the plain theory's at
    σ_w²/ρ. The c-map (``dropout_c_map_and_slope``) is increasing and convex in c with
    c-map(0) ≥ 0 and c-map(1) < 1: exactly one fixed point c* < 1, found by bisection."""
    sigma_w2, sigma_b2, keep = _f(sigma_w2), _f(sigma_b2), _f(keep)
    qs = q_star(act, sigma_w2 / keep, sigma_b2)
    q = jnp.minimum(qs, Q_MAX)
    chi = chi1(act, sigma_w2 / keep, sigma_b2, q=q)

    def halve(_, bracket):
        lo, hi = bracket
        mid = 0.5 * (lo + hi)
        above = dropout_c_map_and_slope(act, mid, q, sigma_w2, sigma_b2, keep)[0] > mid
        return jnp.where(above, mid, lo), jnp.where(above, hi, mid)

    lo, hi = lax.fori_loop(0, DROPOUT_BISECTIONS, halve, (_f(0.0), _f(1.0)))
    c = 0.5 * (lo + hi)
    chic = dropout_c_map_and_slope(act, c, q, sigma_w2, sigma_b2, keep)[1]
    return {"q_star": qs, "chi1": chi, "chi_c": chic, "c_star": c, "xi_c": depth_scale(chic)}


@functools.partial(jax.jit, static_argnums=0)
def _dropout_batched(act, sigma_w2, sigma_b2, keep):
    return _each_lane(act, functools.partial(_dropout_summary, act), sigma_w2, sigma_b2, keep)


def dropout_summaries(act: str, sigma_w2, sigma_b2, keep, *, tol: float = 1e-3) -> dict:
    """``summaries`` for nets with dropout at keep rate ``keep`` (1 − the dropout rate): q_star,
    chi1, chi_c, c_star, xi_c and phase (of χ₁: the gradient still vanishes or explodes) as 1-D
    numpy arrays, in float64. ξ_c is finite at every σ_w²: dropout has no critical point."""
    w, b, k = (v.ravel() for v in np.broadcast_arrays(*(np.asarray(v, np.float64) for v in (sigma_w2, sigma_b2, keep))))
    with jax.enable_x64(True):
        out = _dropout_batched(act, *(jnp.asarray(v, _ftype()) for v in (w, b, k)))
        out = {key: np.asarray(v, np.float64) for key, v in out.items()}
    out["phase"] = np.array([phase(x, tol) for x in out["chi1"]], dtype=object)
    return out


# --------------------------------------------------------------- criticality
@functools.partial(jax.jit, static_argnames=("act", "iters"))
def critical_sigma_w2(act: str, sigma_b2, lo=0.1, hi=1000.0, iters: int = 48):
    """σ_w² where χ₁(q*(σ_w², σ_b²)) − 1 changes sign, by bisection in log σ_w² on [lo, hi].

    That is where χ₁ crosses 1, or where q* jumps (and χ₁ with it) across 1;
    ``critical_point`` tells which. A fixed number of steps keeps it jit/vmap
    friendly; NaN when χ₁ − 1 has the same sign at both ends (no crossing in
    the bracket).
    """

    def g(log_w):
        return chi1(act, jnp.exp(log_w), sigma_b2) - 1.0

    a, b = jnp.log(_f(lo)), jnp.log(_f(hi))
    ga, gb = g(a), g(b)

    def body(_, ab):
        a, b = ab
        mid = 0.5 * (a + b)
        left = jnp.sign(g(mid)) == jnp.sign(ga)
        return jnp.where(left, mid, a), jnp.where(left, b, mid)

    a, b = lax.fori_loop(0, iters, body, (a, b))
    return jnp.where(jnp.sign(ga) * jnp.sign(gb) < 0, jnp.exp(0.5 * (a + b)), jnp.nan)


def _fmt_q(q: float) -> str:
    return "∞" if math.isinf(q) else ("0" if q == 0 else f"{q:.4g}")


def critical_point(act: str, sigma_b2: float, lo: float = 0.1, hi: float = 1000.0) -> dict:
    """The critical σ_w² at ``sigma_b2`` and what kind of point it is. Host-side, x64.

    Read off the solves at σ_w² (1 ± 1e-6) (and 1 − 1e-4, to see a trend), not
    known per activation. Returns sigma_w2, kind, text, and q*, χ₁ just below
    and above. Kinds:

    * "crossing": q* is continuous and χ₁ crosses 1 (tanh at σ_b² = 0.05).
    * "divergence": q* grows without bound as σ_w² rises to it and is ∞ above;
      χ₁ → 1 there (ReLU, softplus at σ_w² = 2 with σ_b² > 0).
    * "saddle-node": the stable fixed point meets an unstable one (the q-map's
      slope there → 1) and both vanish; q* jumps (silu at σ_b² = 0.3).
    * "jump": q* jumps without a fold, e.g. from 0 to ∞ where the start q = 1
      is itself a fixed point (Q(1) = 1: gelu, silu, ReLU at σ_b² = 0).
    """
    with jax.enable_x64(True):
        w = float(critical_sigma_w2(act, sigma_b2, lo, hi))
        if math.isnan(w):
            return {"sigma_w2": w, "kind": "none", "text": f"no critical σ_w² in [{lo:g}, {hi:g}]"}
        at_one = float(q_map(act, 1.0, w, sigma_b2)) - 1.0
    s = summaries(act, w * np.array([1 - 1e-4, 1 - 1e-6, 1 + 1e-6]), sigma_b2)
    q_far, q_lo, q_hi = (float(v) for v in s["q_star"])
    chi_lo, chi_hi = (float(v) for v in s["chi1"][1:])
    slope_lo, slope_hi = (math.exp(-1.0 / x) if 0 < x < math.inf else math.nan for x in s["xi_q"][1:])
    same_q = q_lo == q_hi or (0 < q_lo < math.inf and 0 < q_hi < math.inf and abs(q_lo - q_hi) <= 1e-3 * q_hi)
    chi_text = (f"χ₁ jumps from {chi_lo:.3g} to {chi_hi:.3g}" if abs(chi_hi - chi_lo) > 1e-3
                else "χ₁ crosses 1 continuously")
    jump = f"q* jumps from {_fmt_q(q_lo)} to {_fmt_q(q_hi)}"
    if same_q:
        kind, text = "crossing", f"χ₁ crosses 1 smoothly at q* = {_fmt_q(q_lo)}"
    elif math.isinf(q_hi) and 0 < q_lo < math.inf and q_lo > 10 * q_far:
        kind, text = "divergence", "χ₁ → 1 as q* grows without bound; q* = ∞ above"
    elif 0 < q_lo < math.inf and slope_lo >= 0.99:
        kind = "saddle-node"
        text = (f"saddle-node: the stable fixed point q* = {_fmt_q(q_lo)} merges with an unstable one "
                f"and both vanish, {jump}; {chi_text}")
    elif 0 < q_hi < math.inf and slope_hi >= 0.99:
        kind = "saddle-node"
        text = f"saddle-node: a stable and an unstable fixed point appear, {jump}; {chi_text}"
    elif abs(at_one) <= 1e-6:
        kind, text = "jump", f"{jump} where the start q = 1 is itself a fixed point (Q(1) = 1); {chi_text}"
    else:
        kind, text = "jump", f"{jump}; {chi_text}"
    return {"sigma_w2": w, "kind": kind, "text": text, "q_star_below": q_lo, "q_star_above": q_hi,
            "chi1_below": chi_lo, "chi1_above": chi_hi}


def phase(chi1_value, tol: float = 1e-3) -> str:
    """'ordered' (χ₁ < 1: vanishing gradients), 'chaotic' (χ₁ > 1: exploding) or
    'critical' within ``tol`` of 1. Host-side."""
    x = float(chi1_value)
    if math.isnan(x):
        return "undefined"
    if x < 1.0 - tol:
        return "ordered"
    if x > 1.0 + tol:
        return "chaotic"
    return "critical"


def predicted_signal_profile(chi1_value, depth: int):
    """Relative ‖∂L/∂h_l‖² for l = 1..L: ∝ χ₁^(L−l), normalised to 1 at l = L.

    Broadcasts over a batch of χ₁ (result shape ``chi1.shape + (depth,)``).
    """
    chi = _f(chi1_value)[..., None]
    layers = jnp.arange(1, depth + 1, dtype=_ftype())
    return chi ** (depth - layers)


# ------------------------------------------------------- recurrent nets
#: grid points on which ``recurrent_step_factor`` tabulates E[φ²] and E[φ'²] (linear interpolation
#: between them is accurate to about 1e-6 for the built-in activations)
RECURRENT_GRID = 1024


@functools.partial(jax.jit, static_argnames=("act", "first"))
def recurrent_step_factor(act: str, sigma_w2, sigma_b2, input_variance, first: int = 0):
    """The mean-field per-step factor of ‖∂L/∂h_t‖² going back in time through a vanilla RNN
    h_t = φ(h_{t−1} W + x_t U + b), W with variance σ_w²/n, along given inputs.

    Each example's pre-activation variance follows the q-map with its own input as a bias,
    q_t = σ_w² E[φ(√q_{t−1} z)²] + σ_b² + v_t with v_t = Var((x_t U)_i) (``input_variance``,
    (examples, T)), and one step back multiplies the signal by σ_w² E[φ'(√q_t z)²]; the factor is
    that mean over examples and the steps ``first``..T−1 (0-based). With a constant input it is
    χ₁ at σ_b² + v; inputs whose variance varies (the adding problem's values) give a larger factor
    than their average would, E[φ'²] being convex in q for tanh (about 5 % at σ_w² = 0.5 on the
    adding problem). The two expectations are tabulated once on a grid of q up to the variance the
    largest input would drive the state to, and interpolated.
    """
    phi, dphi = activations.get_activation(act), activations.derivative(act)
    v = _f(jnp.asarray(input_variance))
    sigma_w2, sigma_b2 = _f(sigma_w2), _f(sigma_b2)

    def bound(q, _):  # every step driven by the largest input: the most any example reaches
        q = q_map(act, q, sigma_w2, sigma_b2) + v.max()
        return q, q

    q_hi = jnp.minimum(lax.scan(bound, jnp.zeros((), _ftype()), None, length=v.shape[1])[1].max(), Q_MAX)
    grid = jnp.linspace(0.0, 1.5 * q_hi, RECURRENT_GRID)
    e_phi2 = lax.map(lambda q: expectation(act, lambda x: phi(x) ** 2, q), grid)
    e_dphi2 = lax.map(lambda q: expectation(act, lambda x: dphi(x) ** 2, q), grid)

    def step(q, v_t):
        q = sigma_w2 * jnp.interp(q, grid, e_phi2) + sigma_b2 + v_t
        return q, sigma_w2 * jnp.interp(q, grid, e_dphi2)

    _, factors = lax.scan(step, jnp.zeros(v.shape[0], _ftype()), v.T)  # (T, examples)
    return factors[first:].mean()


# ------------------------------------------------------- residual nets
@functools.partial(jax.jit, static_argnames=("act", "depth"))
def residual_signal_profile(act: str, sigma_w2, sigma_b2, alpha, q_first, depth: int):
    """Mean-field ln ‖∂L/∂h_l‖² of the residual MLP, layers l = 1..depth, up to one constant: layer 1
    a_1 = φ(h_1), layers 2..depth a_l = a_{l−1} + α·φ(h_l) with h_l = W_l a_{l−1} + b_l (W of
    variance σ_w²/n), and h_1's variance ``q_first``.

    The stream's mean square p grows by what each branch adds, p_l = p_{l−1} + α² E[φ(√q_l z)²] with
    q_l = σ_w² p_{l−1} + σ_b², instead of settling at a fixed point; one step back through a layer
    multiplies ‖∂L/∂a‖² by 1 + α² σ_w² E[φ'(√q_l z)²] (the skip passes it, the branch adds), and
    ‖∂L/∂h_l‖² is α² E[φ'(√q_l z)²] times ‖∂L/∂a_l‖² (Yang & Schoenholz 2017). For tanh, E[φ'²] falls
    like 1/√q as q grows with depth, so the gradient grows polynomially in depth, not exponentially.
    The cross term 2α E[a φ(h)] is dropped: exact for a stream of zero mean (odd φ, whose branches add
    zero-mean numbers); not for ReLU, whose branches add a positive mean."""
    phi, dphi = activations.get_activation(act), activations.derivative(act)
    sigma_w2, sigma_b2, alpha = _f(sigma_w2), _f(sigma_b2), _f(alpha)
    q1 = _f(q_first)
    p1 = expectation(act, lambda x: phi(x) ** 2, q1)
    d1 = expectation(act, lambda x: dphi(x) ** 2, q1)

    def layer(p, _):
        q = sigma_w2 * p + sigma_b2
        slope = expectation(act, lambda x: dphi(x) ** 2, q)
        return p + alpha**2 * expectation(act, lambda x: phi(x) ** 2, q), slope

    _, slopes = lax.scan(layer, p1, None, length=depth - 1)  # layers 2..depth
    growth = jnp.log1p(alpha**2 * sigma_w2 * slopes)  # back through layer l (2..depth)
    # ‖∂L/∂a_l‖² = ‖∂L/∂a_depth‖² · Π_{k=l+1..depth} (1 + α² σ_w² E[φ'²]_k)
    after = jnp.concatenate([jnp.cumsum(growth[::-1])[::-1], jnp.zeros(1, growth.dtype)])
    own = jnp.log(jnp.concatenate([d1[None], alpha**2 * slopes]))
    return own + after


# ------------------------------------------------------- Jacobian spectrum
@functools.partial(jax.jit, static_argnames=("act", "k"))
def jacobian_mu(act: str, q, k: int):
    """μ_k = E[φ'(√q z)^{2k}]: moments of the squared diagonal D of one layer's Jacobian."""
    dphi = activations.derivative(act)
    return expectation(act, lambda x: dphi(x) ** (2 * k), q)


@functools.partial(jax.jit, static_argnames=("act", "depth", "weights"))
def jacobian_moments(act: str, sigma_w2, sigma_b2, depth: int, weights: str = "orthogonal"):
    """Mean and variance of the squared singular values of the input–output
    Jacobian ∏ D_l W_l at q* (Pennington, Schoenholz & Ganguli 2017).

    mean = (σ_w² μ₁)^L.  var = L(μ₂/μ₁² − 1 − s₁), s₁ = 0 for orthogonal and
    −1 for Gaussian W: this is the paper's formula, valid at criticality
    σ_w² μ₁ = 1. Away from it we return mean² · L(μ₂/μ₁² − 1 − s₁) (the
    normalised variance adds over free layers), which equals the paper's
    value when mean = 1.
    """
    if weights not in ("orthogonal", "gaussian"):
        raise ValueError(f"weights must be 'orthogonal' or 'gaussian', got {weights!r}")
    s1 = 0.0 if weights == "orthogonal" else -1.0
    q = _q_star_clamped(act, sigma_w2, sigma_b2)
    mu1 = jacobian_mu(act, q, 1)
    mu2 = jacobian_mu(act, q, 2)
    mean = (_f(sigma_w2) * mu1) ** depth
    var = mean**2 * depth * (mu2 / mu1**2 - 1.0 - s1)
    return mean, var


@functools.partial(jax.jit, static_argnames=("act", "weights"))
def jacobian_moments_from(act: str, sigma_w2, sigma_b2, q1, depth: int, weights: str = "orthogonal"):
    """``jacobian_moments`` for a net whose first layer starts at length ``q1`` instead of q*.

    Real inputs rarely sit at q*, and near σ_w² = 1 tanh's q-map approaches
    q* over tens of layers, so the D_l of a finite net are evaluated at its
    own q_l (the q-map iterated from q1), not at q*. Free factors multiply
    means and add normalised variances, so with μ_k taken at each q_l:
    mean = ∏ σ_w² μ₁(q_l) and var/mean² = Σ (μ₂(q_l)/μ₁(q_l)² − 1 − s₁),
    over the ``depth`` factors D W (l = 1..depth; a traced value: one compile
    serves every depth). Equals ``jacobian_moments`` when q1 = q*.
    """
    if weights not in ("orthogonal", "gaussian"):
        raise ValueError(f"weights must be 'orthogonal' or 'gaussian', got {weights!r}")
    s1 = 0.0 if weights == "orthogonal" else -1.0
    sigma_w2 = _f(sigma_w2)

    def layer(_, carry):
        q, log_mean, nvar = carry
        mu1, mu2 = jacobian_mu(act, q, 1), jacobian_mu(act, q, 2)
        return (jnp.clip(q_map(act, q, sigma_w2, sigma_b2), 0.0, Q_MAX),
                log_mean + jnp.log(sigma_w2 * mu1), nvar + mu2 / mu1**2 - 1.0 - s1)

    _, log_mean, nvar = lax.fori_loop(0, depth, layer, (jnp.minimum(_f(q1), Q_MAX), _f(0.0), _f(0.0)))
    mean = jnp.exp(log_mean)
    return mean, mean**2 * nvar


# ----------------------------------------------------------------- summaries
def _fixed_point_summary(act, sigma_w2, sigma_b2):
    """All fixed-point quantities for one (σ_w², σ_b²), sharing q* and c*."""
    sigma_w2, sigma_b2 = _f(sigma_w2), _f(sigma_b2)
    qs, q, chi, lam = _fixed_point(act, sigma_w2, sigma_b2)
    c, chic = _c_star_and_chi_c(act, q, sigma_w2, sigma_b2, lam, 40)
    return {
        "q_star": qs,
        "chi1": chi,
        "chi_c": chic,
        "c_star": c,
        "xi_q": _xi_q_at(act, qs, sigma_w2, sigma_b2),
        "xi_c": depth_scale(chic),
    }


def _each_lane(act, fn, *lanes):
    """``fn(*lane)`` for each lane of the 1-D arrays ``lanes``, batched over their first axis.

    An activation with Gauss–Hermite quadrature picks its rule by ``lax.cond`` on q at every
    step of every loop; under ``vmap`` that becomes a select that also evaluates the dense rule,
    on every lane. Its lanes run one at a time (``lax.map``), which keeps the branch: tanh, 6
    pairs at σ_b² = 0 (q* → 0), ran in 0.02 s instead of 3.5 s and compiled in half the time.
    Activations on the dense rule alone have no branch and stay vmapped (ReLU: 0.8 s vmapped,
    1.5 s one lane at a time)."""
    if uses_gauss_hermite(act):
        return lax.map(lambda lane: fn(*lane), lanes)
    return jax.vmap(fn)(*lanes)


def _summaries_lanes(act, sigma_w2, sigma_b2):
    return _each_lane(act, functools.partial(_fixed_point_summary, act), sigma_w2, sigma_b2)


#: XLA:CPU options of the summaries program: without XLA's fusion emitters it compiles in about 20 %
#: less time and runs as fast (tanh, 4 lanes: 3.4 s instead of 4.1). A sweep's theory is a few pairs
#: per activation, so compiling dominates. LLVM level 0 compiles in 60 % less again but runs the
#: loops 6–12× slower: 6 pairs at σ_b² = 0, where q* → 0 slowly, took 24 s instead of 2.
_CPU_OPTIONS = {"xla_cpu_use_fusion_emitters": False}
_summaries_batched = jax.jit(_summaries_lanes, static_argnums=0)
_summaries_cpu = jax.jit(_summaries_lanes, static_argnums=0, compiler_options=_CPU_OPTIONS)


def _summaries_program():
    """The jitted summaries on the default backend (see ``_CPU_OPTIONS``)."""
    return _summaries_cpu if jax.default_backend() == "cpu" else _summaries_batched


def summaries(act: str, sigma_w2, sigma_b2, *, x64: bool = True, tol: float = 1e-3) -> dict:
    """Theory columns for many configs in one jitted call (``_summaries_lanes``).

    ``sigma_w2``/``sigma_b2`` broadcast against each other; returns a dict of
    1-D numpy arrays (sigma_w2, sigma_b2, q_star, chi1, chi_c, c_star, xi_q,
    xi_c, phase), ready for ``pandas.DataFrame``. Computed in float64 unless
    ``x64=False``. Cost: a few seconds to compile per (activation, batch bucket), then
    milliseconds per config on 2 CPU cores (more on the dense rule: ReLU ~0.1 s).
    """
    w, b = np.broadcast_arrays(np.asarray(sigma_w2, np.float64), np.asarray(sigma_b2, np.float64))
    w, b = w.ravel(), b.ravel()
    n = len(w)
    if n == 0:
        raise ValueError("summaries needs at least one config")
    # pad with copies of the first config to 4, 16, 64, 256, ...: one compilation (seconds) serves
    # most sweeps, and a padded lane costs at most what the first one does (milliseconds)
    size = 4
    while size < n:
        size *= 4
    pad = lambda v: np.concatenate([v, np.full(size - n, v[0])])  # noqa: E731
    with jax.enable_x64(x64):
        out = _summaries_program()(act, jnp.asarray(pad(w), _ftype()), jnp.asarray(pad(b), _ftype()))
        out = {k: np.asarray(v, np.float64)[:n] for k, v in out.items()}
    result = {"sigma_w2": w, "sigma_b2": b, **out}
    result["phase"] = np.array([phase(x, tol) for x in out["chi1"]], dtype=object)
    return result


def summary(
    act: str, sigma_w2: float, sigma_b2: float, *, x64: bool = True, tol: float = 1e-3
) -> dict:
    """q_star, chi1, chi_c, c_star, xi_q, xi_c (Python floats) and phase (str) for one config."""
    row = summaries(act, [sigma_w2], [sigma_b2], x64=x64, tol=tol)
    return {
        k: (str(row[k][0]) if k == "phase" else float(row[k][0]))
        for k in ("q_star", "chi1", "chi_c", "c_star", "xi_q", "xi_c", "phase")
    }
