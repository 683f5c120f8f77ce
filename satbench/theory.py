"""Mean-field signal propagation for any registered activation (PAPERS.md §0, §4).

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
  safe fallback for large q.

The c-map needs E over a correlated pair: tensor-product Gauss–Hermite, or
iterated dense rules (256², accurate to ~1e-6 for c ≤ 0.95, worse as c → 1
for kinked φ). q* comes from Aitken-accelerated iteration, c* from Newton
(the c-map is convex on [0, 1]), the critical σ_w² from bisection.

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

from satbench import activations

# ------------------------------------------------------------------ constants
GH_NODES = 128
#: Gauss–Hermite is used for smooth activations only while q ≤ GH_Q_MAX
#: (worst relative error over the smooth built-ins ~1e-8 there).
GH_Q_MAX = 1.0
#: dense rule: n cells covering between ±DENSE_HALF_WIDTH/2 and ±DENSE_HALF_WIDTH σ
DENSE_N = 16384
DENSE_HALF_WIDTH = 16.0
#: dense 2-D rule (c-map): DENSE_N2 × DENSE_N2 nodes
DENSE_N2 = 256
DENSE_HALF_WIDTH2 = 12.0
#: q is clamped to [Q_FLOOR, Q_MAX] inside expectations; q* ≥ Q_MAX means "diverges"
Q_FLOOR = 1e-30
Q_MAX = 1e30

_GH_Z, _GH_W = hermegauss(GH_NODES)
_GH_W = _GH_W / math.sqrt(2.0 * math.pi)  # weights of N(0, 1), sum to 1

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
    if n % 64 == 0 and n > 64:
        v = v.reshape(v.shape[:-1] + (n // 64, 64)).sum(-1)
    return v.sum(-1)


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


def _dense_midpoint(f, q, n, half_width):
    """Midpoint rule for E[f(√q z)] on x = √q z with n cells of dyadic width."""
    s = _std(q)
    h = _dyadic_below(2.0 * half_width * s / n)
    k = jnp.arange(n, dtype=_ftype()) - (n / 2 - 0.5)  # half-integers, exact
    x = k * h
    w = jnp.exp(-0.5 * (x / s) ** 2)
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
    """
    fine = _dense_midpoint(f, q, n, half_width)
    if not richardson:
        return fine
    return (4.0 * fine - _dense_midpoint(f, q, n // 2, half_width)) / 3.0


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


def _dense_midpoint_2d(f, q, c, n, half_width):
    s = _std(q)
    c = jnp.clip(_f(c), -1.0, 1.0)
    k = jnp.arange(n, dtype=_ftype()) - (n / 2 - 0.5)
    h1 = _dyadic_below(2.0 * half_width * s / n)
    u1 = k * h1
    w1 = jnp.exp(-0.5 * (u1 / s) ** 2)
    b = jnp.maximum(s * jnp.sqrt(jnp.maximum((1.0 - c) * (1.0 + c), 0.0)), 1e-9 * s)
    h2 = _dyadic_below(2.0 * half_width * b / n)
    m = c * u1
    rem = m - jnp.floor(m / h2) * h2  # offset of the conditional mean inside its cell
    d = k[None, :] * h2 - rem[:, None]  # node − mean; nodes at (j + 1/2) h2
    u2 = m[:, None] + d
    w2 = jnp.exp(-0.5 * (d / b) ** 2)
    w2 = w2 / _sum(w2)[:, None]
    w1 = w1 / _sum(w1)
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
    coarse = _dense_midpoint_2d(f, q, c, n // 2, half_width)
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


def _q_star_raw(act, sigma_w2, sigma_b2, max_iter):
    """Fixed-point iteration from q = 1 with Aitken (Steffensen) acceleration.

    Each round takes two plain steps q → q1 → q2. If they contract
    monotonically (ratio r = Δ2/Δ1 in [0, 1)), jump to the geometric-series
    limit q2 + Δ2 r/(1−r): exact for a linear map (ReLU), quadratic for a
    smooth one, and a near-critical ReLU (r = 0.999) needs a few rounds
    instead of thousands of steps. Otherwise keep q2 (plain iteration).
    Stops at |Δ1| ≤ 16 eps q, at Q_MAX, or after 32 rounds of non-shrinking
    rises by > 1e-3 q (the map expands: q diverges).
    """
    tol = 16 * _eps()

    def cond(state):
        i, _, expanding, done = state
        return (i < max_iter) & ~done & (expanding < 32)

    def body(state):
        i, q, expanding, _ = state
        q1 = jnp.clip(q_map(act, q, sigma_w2, sigma_b2), 0.0, Q_MAX)
        q2 = jnp.clip(q_map(act, q1, sigma_w2, sigma_b2), 0.0, Q_MAX)
        d1, d2 = q1 - q, q2 - q1
        r = d2 / jnp.where(d1 == 0, 1.0, d1)
        monotone = (d1 != 0) & (r >= 0) & (r < 1)
        jump = d2 * r / jnp.where(monotone, 1.0 - r, 1.0)
        q_new = jnp.clip(jnp.where(monotone, q2 + jump, q2), 0.0, Q_MAX)
        grows = (d2 > 1e-3 * q2) & (d2 >= d1)
        done = (jnp.abs(d1) <= tol * q1) | (q_new >= Q_MAX)
        return i + 2, q_new, jnp.where(grows, expanding + 1, 0), done

    init = (jnp.int32(0), _f(1.0), jnp.int32(0), jnp.bool_(False))
    return lax.while_loop(cond, body, init)[1]


@functools.partial(jax.jit, static_argnames=("act", "max_iter"))
def q_star(act: str, sigma_w2, sigma_b2, max_iter: int = 1000):
    """Stable fixed point q* of the q-map reached from q = 1; +inf if q grows without bound.

    Divergence is declared when the iterate hit Q_MAX, or when it still rises
    at the end while the map's slope is ≥ 1 (ReLU at σ_w² > 2 climbs too
    slowly to reach Q_MAX in max_iter steps). σ_b² = 0 with a q* = 0 fixed
    point converges geometrically to 0 (or algebraically at the edge).
    """
    q = _q_star_raw(act, sigma_w2, sigma_b2, max_iter)
    qc = jnp.minimum(q, Q_MAX)
    rising = q_map(act, qc, sigma_w2, sigma_b2) > q * (1 + 16 * _eps())
    diverged = (q >= Q_MAX) | (rising & (q_map_slope(act, qc, sigma_w2, sigma_b2) >= 1.0))
    return jnp.where(diverged, jnp.inf, q)


def _q_star_clamped(act, sigma_w2, sigma_b2):
    """q* clamped to Q_MAX: a diverging q* still gives finite maps (ReLU: χ₁ = σ_w²/2)."""
    return jnp.minimum(q_star(act, sigma_w2, sigma_b2), Q_MAX)


@functools.partial(jax.jit, static_argnames=("act", "max_iter"))
def chi1(act: str, sigma_w2, sigma_b2, q=None, max_iter: int = 1000):
    """χ₁ = σ_w² E[φ'(√q* z)²]: slope of the c-map at c = 1 and the per-layer
    factor of back-propagated gradient variance (pass ``q`` to evaluate at
    another length; a diverging q* is clamped to Q_MAX)."""
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
    """(c*, χ_c): c* = 1 and χ_c = χ₁ when χ₁ ≤ 1 (ordered), else safeguarded Newton.

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


@functools.partial(jax.jit, static_argnames=("act", "max_iter"))
def c_star(act: str, sigma_w2, sigma_b2, max_iter: int = 40):
    """Stable fixed point c* of the c-map at q*: exactly 1 in the ordered phase
    (χ₁ ≤ 1), else the unique root in [0, 1) (see ``_c_star_and_chi_c``)."""
    q = _q_star_clamped(act, sigma_w2, sigma_b2)
    chi = chi1(act, sigma_w2, sigma_b2, q=q)
    return _c_star_and_chi_c(act, q, sigma_w2, sigma_b2, chi, max_iter)[0]


@functools.partial(jax.jit, static_argnames=("act", "max_iter"))
def chi_c(act: str, sigma_w2, sigma_b2, max_iter: int = 40):
    """χ_c = σ_w² E[φ'(u1)φ'(u2)] at (q*, c*): slope of the c-map at its stable
    point; equals χ₁ in the ordered phase."""
    q = _q_star_clamped(act, sigma_w2, sigma_b2)
    chi = chi1(act, sigma_w2, sigma_b2, q=q)
    return _c_star_and_chi_c(act, q, sigma_w2, sigma_b2, chi, max_iter)[1]


def depth_scale(rate):
    """ξ = −1/ln(rate) for a per-layer contraction rate: positive for rate < 1,
    +inf where the map does not contract (rate ≥ 1, e.g. exactly at criticality)."""
    rate = _f(rate)
    contracting = rate < 1.0
    return jnp.where(contracting, -1.0 / jnp.log(jnp.where(contracting, rate, 0.5)), jnp.inf)


@functools.partial(jax.jit, static_argnames=("act",))
def xi_q(act: str, sigma_w2, sigma_b2):
    """Depth scale of q → q*: −1/ln(χ₁ + σ_w² E[φ''φ]), i.e. of the q-map slope at q*."""
    q = _q_star_clamped(act, sigma_w2, sigma_b2)
    return depth_scale(q_map_slope(act, q, sigma_w2, sigma_b2))


@functools.partial(jax.jit, static_argnames=("act",))
def xi_c(act: str, sigma_w2, sigma_b2):
    """Depth scale of c → c*: −1/ln χ_c; diverges at criticality (χ₁ = 1)."""
    return depth_scale(chi_c(act, sigma_w2, sigma_b2))


# --------------------------------------------------------------- criticality
@functools.partial(jax.jit, static_argnames=("act", "iters"))
def critical_sigma_w2(act: str, sigma_b2, lo=0.1, hi=1000.0, iters: int = 48):
    """σ_w² where χ₁(q*(σ_w², σ_b²)) = 1, by bisection in log σ_w² on [lo, hi].

    A fixed number of steps keeps it jit/vmap friendly; NaN when χ₁ − 1 has
    the same sign at both ends (no crossing in the bracket).
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
    qs = q_star(act, sigma_w2, sigma_b2)
    q = jnp.minimum(qs, Q_MAX)
    chi = chi1(act, sigma_w2, sigma_b2, q=q)
    c, chic = _c_star_and_chi_c(act, q, sigma_w2, sigma_b2, chi, 40)
    return {
        "q_star": qs,
        "chi1": chi,
        "chi_c": chic,
        "c_star": c,
        "xi_q": depth_scale(q_map_slope(act, q, sigma_w2, sigma_b2)),
        "xi_c": depth_scale(chic),
    }


@functools.partial(jax.jit, static_argnums=0)
def _summaries_batched(act, sigma_w2, sigma_b2):
    return jax.vmap(functools.partial(_fixed_point_summary, act))(sigma_w2, sigma_b2)


def summaries(act: str, sigma_w2, sigma_b2, *, x64: bool = True, tol: float = 1e-3) -> dict:
    """Theory columns for many configs in one jit(vmap) call.

    ``sigma_w2``/``sigma_b2`` broadcast against each other; returns a dict of
    1-D numpy arrays (sigma_w2, sigma_b2, q_star, chi1, chi_c, c_star, xi_q,
    xi_c, phase), ready for ``pandas.DataFrame``. Computed in float64 unless
    ``x64=False``. Cost: ~2 s to compile per (activation, batch bucket), then
    ~10–40 ms per config on 2 CPU cores (the c* Newton loop dominates).
    """
    w, b = np.broadcast_arrays(np.asarray(sigma_w2, np.float64), np.asarray(sigma_b2, np.float64))
    w, b = w.ravel(), b.ravel()
    n = len(w)
    if n == 0:
        raise ValueError("summaries needs at least one config")
    # pad to a power of two with copies of the first config: one compilation
    # serves tables of similar length, and copies add no loop iterations
    size = 1 if n == 1 else 1 << (n - 1).bit_length()
    pad = lambda v: np.concatenate([v, np.full(size - n, v[0])])  # noqa: E731
    with jax.enable_x64(x64):
        out = _summaries_batched(act, jnp.asarray(pad(w), _ftype()), jnp.asarray(pad(b), _ftype()))
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
