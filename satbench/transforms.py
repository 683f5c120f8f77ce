"""Activation transforms that make a deep plain net's kernel well-behaved at init: DKS and TAT.

A transformed activation is ``φ̂(x) = γ(φ(αx + β) + δ)``. For a net of layers ``h ← W φ̂(h)`` with
``W ~ N(0, 1/n)`` and no biases, wide-net theory says a layer maps the squared length ``q`` of its
input and the correlation ``c`` of two inputs by the local Q and C maps

    Q(q) = E[φ̂(√q z)²],    C(c) = E[φ̂(u) φ̂(v)]  (unit-variance u, v of correlation c; at q = 1),

and the L-layer net by their L-fold compositions. Both methods pick the four constants per
activation and depth so that the composition is neither degenerate (every input mapped to one
output: C^∘L(0) → 1) nor unstable (Q^∘L blowing up), without skips or normalisation:

* DKS (Martens et al. 2021, arXiv 2110.01765): Q(1) = 1, Q'(1) = 1, C(0) = 0 and the net's
  C'(1) = ζ (``dks_slope``, default 1.5), i.e. the local C'(1) = ζ^{1/L}. δ centres φ̂ (C(0) = 0),
  γ scales it (Q(1) = 1), and (α, β) solve the two slope equations.
* TAT (Zhang et al. 2022, arXiv 2203.08120) for leaky ReLU of negative slope a: γ = √(2/(1+a²))
  (Q(1) = 1 for every a), and a solves C^∘L(0) = η (``tat_c0``, default 0.9) with the closed-form
  leaky-ReLU C map. For smooth φ: Q(1) = 1, Q'(1) = 1, C'(1) = 1 and the net's C''(1) = τ
  (``tat_curvature``, default 0.3), i.e. the local C''(1) = τ/L.

Everything is float64 numpy: Gaussian expectations by composite Gauss–Legendre on z ∈ [−12, 12]
with panel edges at the kinks of the built-ins (x = 0, ±1, mapped to z), φ and its derivatives
from the registry's function (JAX, loaded on first use: importing this module does not).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

METHODS = ("none", "dks", "tat")
DEFAULT_DKS_SLOPE = 1.5
DEFAULT_TAT_C0 = 0.9
DEFAULT_TAT_CURVATURE = 0.3

#: quadrature: Gauss–Legendre panels of width ≤ PANEL on [−Z_MAX, Z_MAX] (N(0,1) mass beyond: 4e-33)
Z_MAX = 12.0
PANEL = 0.25
NODES_PER_PANEL = 16
#: the 2-D rule of ``c_map`` (a tensor product): coarser panels, ~450² nodes that carry weight
C_MAP_PANEL = 0.5
C_MAP_NODES = 12
#: where the built-in activations have kinks (relu family, elu, selu, softsign at 0; hard_tanh at ±1)
KINKS = (-1.0, 0.0, 1.0)
#: a solution counts when every equation holds to this (absolute)
SOLVE_TOL = 1e-10
#: root searches stay within e^{±20} of input scale α (beyond: a large residual steers them back)
LOG_ALPHA_MAX = 20.0


@dataclasses.dataclass(frozen=True)
class TransformConstants:
    """φ̂(x) = gamma·(φ(alpha·x + beta) + delta); ``param``: the activation's own parameter when the
    transform sets it (leaky ReLU's negative slope under TAT), else None (the name's)."""

    alpha: float = 1.0
    beta: float = 0.0
    gamma: float = 1.0
    delta: float = 0.0
    param: float | None = None


# ------------------------------------------------------------------------------- quadrature
@functools.lru_cache(maxsize=64)
def _nodes(breaks: tuple[float, ...], panel: float = PANEL, nodes: int = NODES_PER_PANEL):
    """Nodes z and weights of E[f(z)], z ~ N(0, 1): composite Gauss–Legendre with panel edges at
    ``breaks`` (so a kink of f is a panel edge, and each panel's integrand is smooth)."""
    edges = np.union1d(np.linspace(-Z_MAX, Z_MAX, int(2 * Z_MAX / panel) + 1),
                       [b for b in breaks if -Z_MAX < b < Z_MAX])
    t, w = np.polynomial.legendre.leggauss(nodes)
    half, mid = np.diff(edges)[:, None] / 2, (edges[1:] + edges[:-1])[:, None] / 2
    z = (mid + half * t).ravel()
    weights = (half * w).ravel() * np.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    return z, weights


def _kinks_in_z(alpha: float, beta: float) -> tuple[float, ...]:
    """The z where αz + β hits a kink of the built-ins (rounded: a cache key)."""
    return tuple(round((k - beta) / alpha, 12) for k in KINKS)


# ------------------------------------------------------------------------------ φ in float64
@functools.lru_cache(maxsize=None)
def _elementwise(activation: str, param: float | None, order: int):
    """The ``order``-th derivative of φ (the registry's function, its parameter replaced by
    ``param`` when given) as a float64 numpy function."""
    import jax  # noqa: PLC0415 (JAX only when a transform is solved)

    from satbench import activations

    base, name_param = activations.parse_name(activation)
    fn = activations.get_entry(activation).fn
    p = name_param if param is None else param
    f = (lambda x: fn(x, param=p)) if p is not None else fn
    for _ in range(order):
        f = jax.grad(f)
    batched = jax.jit(jax.vmap(f))

    def call(x):
        with jax.enable_x64(True):
            return np.asarray(batched(np.asarray(x, np.float64)), np.float64)

    return call


@dataclasses.dataclass(frozen=True)
class Moments:
    """Gaussian moments of φ at αz + β that the local maps are made of (before γ and δ)."""

    mean: float  # E[φ]
    mean_sq: float  # E[φ²]
    q_slope: float  # α E[φ φ' z]: half of d/dq E[φ(α√q z + β)²] at q = 1
    mean_phi_prime_z: float  # α E[φ' z]: what a shift δ adds to it, per unit δ
    c_slope: float  # α² E[φ'²]
    c_curvature: float  # α⁴ E[φ''²]


def moments(activation: str, alpha: float, beta: float, param: float | None = None,
            curvature: bool = False) -> Moments:
    """The moments of φ(αz + β), z ~ N(0, 1), by quadrature (E[φ''²] only if ``curvature``)."""
    z, w = _nodes(_kinks_in_z(alpha, beta))
    x = alpha * z + beta
    phi, dphi = _elementwise(activation, param, 0)(x), _elementwise(activation, param, 1)(x)
    curv = alpha**4 * float(w @ _elementwise(activation, param, 2)(x) ** 2) if curvature else math.nan
    return Moments(mean=float(w @ phi), mean_sq=float(w @ phi**2), q_slope=alpha * float(w @ (phi * dphi * z)),
                   mean_phi_prime_z=alpha * float(w @ (dphi * z)), c_slope=alpha**2 * float(w @ dphi**2),
                   c_curvature=curv)


@dataclasses.dataclass(frozen=True)
class LocalMaps:
    """The local Q and C maps' numbers at q = 1 of a transformed activation."""

    q_value: float  # Q(1)
    q_slope: float  # Q'(1)
    c_zero: float  # C(0) = E[φ̂]²
    c_slope: float  # C'(1) = E[φ̂'²]
    c_curvature: float  # C''(1) = E[φ̂''²] (NaN unless asked)


def local_maps(activation: str, k: TransformConstants, curvature: bool = False) -> LocalMaps:
    """Q(1), Q'(1), C(0), C'(1) (and C''(1)) of φ̂ = γ(φ(αx+β) + δ), by quadrature."""
    m = moments(activation, k.alpha, k.beta, k.param, curvature)
    g2 = k.gamma**2
    # Q'(1) = E[φ̂ φ̂' z] = γ² (E[φ φ' z] α + δ E[φ' z] α)
    return LocalMaps(q_value=g2 * (m.mean_sq + 2 * k.delta * m.mean + k.delta**2),
                     q_slope=g2 * (m.q_slope + k.delta * m.mean_phi_prime_z),
                     c_zero=g2 * (m.mean + k.delta) ** 2, c_slope=g2 * m.c_slope, c_curvature=g2 * m.c_curvature)


def c_map(activation: str, k: TransformConstants, c) -> np.ndarray:
    """C(c) = E[φ̂(u) φ̂(v)] for unit-variance u, v of correlation ``c`` (array): the local C map at
    q = 1, by a tensor product of the 1-D rule (kinks on panel edges in the first variable only)."""
    z, w = _nodes(_kinks_in_z(k.alpha, k.beta), panel=C_MAP_PANEL, nodes=C_MAP_NODES)
    keep = w > 1e-18 * w.max()  # nodes that carry weight: a 2-D grid of the rest
    z, w = z[keep], w[keep]
    phi = _elementwise(activation, k.param, 0)
    out = []
    for ci in np.atleast_1d(np.asarray(c, np.float64)):
        s = math.sqrt(max(1.0 - ci * ci, 0.0))
        u = z[:, None]
        v = ci * z[:, None] + s * z[None, :]
        fu = k.gamma * (phi(k.alpha * u + k.beta) + k.delta)
        fv = k.gamma * (phi((k.alpha * v + k.beta).ravel()).reshape(v.shape) + k.delta)
        out.append(float(w @ (fu * fv) @ w))
    return np.asarray(out).reshape(np.shape(c))


def leaky_relu_c_map(c, slope: float):
    """C(c) of leaky ReLU of negative slope ``slope`` scaled by √(2/(1+a²)) (Q(1) = 1): closed form."""
    c = np.clip(np.asarray(c, np.float64), -1.0, 1.0)
    a = slope
    arc = (np.sqrt(1.0 - c**2) + (math.pi - np.arccos(c)) * c) / math.pi
    return ((1 - a) ** 2 * arc + 2 * a * c) / (1 + a**2)


def compose(local, depth: int, c):
    """``local`` applied ``depth`` times to ``c``."""
    for _ in range(depth):
        c = local(c)
    return c


# ----------------------------------------------------------------------------------- solving
def _centred(activation: str, alpha: float, beta: float, param: float | None) -> tuple[Moments, float, float]:
    """Moments of φ(αz+β), and the γ, δ that centre it (C(0) = 0) and give Q(1) = 1."""
    m = moments(activation, alpha, beta, param)
    var = m.mean_sq - m.mean**2
    return m, (1.0 / math.sqrt(var) if var > 0 else math.inf), -m.mean


def _dks_residuals(activation: str, slope: float, p) -> np.ndarray:
    """(Q'(1) − 1, C'(1) − slope) of the centred, normalised φ at α = e^{p0}, β = p1."""
    if not abs(p[0]) < LOG_ALPHA_MAX:
        return np.array([1e3, 1e3])
    alpha, beta = math.exp(p[0]), float(p[1])
    m, gamma, delta = _centred(activation, alpha, beta, None)
    if not math.isfinite(gamma):
        return np.array([1e3, 1e3])
    g2 = gamma**2
    return np.array([g2 * (m.q_slope + delta * m.mean_phi_prime_z) - 1.0, g2 * m.c_slope - slope])


def _is_odd(activation: str) -> bool:
    """φ(−x) = −φ(x) on a grid."""
    x = np.linspace(0.05, 6.0, 120)
    phi = _elementwise(activation, None, 0)
    return bool(np.allclose(phi(-x), -phi(x), rtol=1e-12, atol=1e-14))


def _canonical(activation: str, k: TransformConstants) -> TransformConstants:
    """Of the two mirror solutions of an odd φ, the one with β ≥ 0: γ(φ(αx − β) − δ) = −φ̂(−x) has
    the same Q and C maps as φ̂, so (β, δ) and (−β, −δ) solve the same equations."""
    if k.beta < 0 and _is_odd(activation):
        return dataclasses.replace(k, beta=-k.beta, delta=-k.delta)
    return k


#: starting points (log α, β) of the DKS root search, tried in turn
DKS_STARTS = tuple((math.log(a), b) for a in (0.5, 1.0, 0.2, 2.0) for b in (0.5, 0.0, 1.0, -0.5, -1.0, 2.0))


def _relu_c_slope(ratio: float) -> float:
    """C'(1) of the centred, normalised relu(αx + β) with β/α = ``ratio``: the only number it has."""
    m = moments("relu", 1.0, ratio)
    return m.c_slope / (m.mean_sq - m.mean**2)


def solve_dks_relu(depth: int, slope: float) -> TransformConstants:
    """DKS for ReLU: relu(αx + β) = α·relu(x + β/α), so after centring and scaling only β/α is free;
    it solves C'(1) = slope^{1/L} (Q'(1) = 1 is not reachable as well). β = ±1, α = 1/|β/α|."""
    from scipy import optimize

    local = slope ** (1.0 / depth)
    lo, hi = -8.0, 30.0  # C'(1) falls from ≈ 30 to 1 + 1e-190 over this range of β/α
    if not _relu_c_slope(hi) < local < _relu_c_slope(lo):
        raise ValueError(f"dks_slope: ReLU cannot reach a local C'(1) of {local:.6g} (dks_slope {slope} over depth "
                         f"{depth})")
    ratio = optimize.brentq(lambda r: _relu_c_slope(r) - local, lo, hi, xtol=1e-14, rtol=1e-14)
    alpha, beta = 1.0 / abs(ratio), math.copysign(1.0, ratio)
    _, gamma, delta = _centred("relu", alpha, beta, None)
    return TransformConstants(alpha, beta, gamma, delta)


def solve_dks(activation: str, depth: int, slope: float = DEFAULT_DKS_SLOPE) -> TransformConstants:
    """DKS's α, β, γ, δ for ``activation`` in a chain of ``depth`` layers with net C'(1) = ``slope``."""
    from scipy import optimize

    if not slope > 1.0:
        raise ValueError(f"dks_slope must be > 1 (the net's C'(1) = ζ), got {slope}")
    if activation == "relu":
        return solve_dks_relu(depth, slope)
    local = slope ** (1.0 / depth)
    for start in DKS_STARTS:
        sol = optimize.root(functools.partial(_dks_residuals, activation, local), np.asarray(start), method="hybr")
        if sol.success and np.max(np.abs(_dks_residuals(activation, local, sol.x))) < SOLVE_TOL:
            alpha, beta = math.exp(sol.x[0]), float(sol.x[1])
            _, gamma, delta = _centred(activation, alpha, beta, None)
            return _canonical(activation, TransformConstants(alpha, beta, gamma, delta))
    raise ValueError(f"act_transform dks: no input scale and shift give {activation} Q'(1) = 1 and C'(1) = "
                     f"{local:.6g} (dks_slope {slope} over depth {depth}); leaky ReLU has too few free numbers "
                     "(its scale and shift act as one): use act_transform tat with leaky_relu")


def _leaky_c0(depth: int, slope: float) -> float:
    return float(compose(lambda c: leaky_relu_c_map(c, slope), depth, 0.0))


def solve_tat_leaky(depth: int, c0: float = DEFAULT_TAT_C0) -> TransformConstants:
    """TAT for leaky ReLU: the negative slope a with C^∘depth(0) = ``c0``, and γ = √(2/(1+a²))."""
    from scipy import optimize

    if not 0.0 < c0 < 1.0:
        raise ValueError(f"tat_c0 must be in (0, 1), got {c0}")
    reach = _leaky_c0(depth, 0.0)  # the most any slope reaches: C^∘L(0) falls as a rises to 1 (linear)
    if reach < c0:
        raise ValueError(f"tat_c0 = {c0} is out of reach at depth {depth}: even a ReLU (slope 0) chain of "
                         f"{depth} layers has C(0) = {reach:.4f}; lower tat_c0 or use a deeper net")
    slope = optimize.brentq(lambda a: _leaky_c0(depth, a) - c0, 0.0, 1.0, xtol=1e-14, rtol=1e-14)
    return TransformConstants(gamma=math.sqrt(2.0 / (1.0 + slope**2)), param=float(slope))


def _tat_smooth_constants(activation: str, p) -> TransformConstants:
    """α = e^{p0}, β = p1, δ = p2, and the γ that gives Q(1) = 1."""
    alpha, beta, delta = math.exp(p[0]), float(p[1]), float(p[2])
    m = moments(activation, alpha, beta)
    q = m.mean_sq + 2 * delta * m.mean + delta**2
    return TransformConstants(alpha, beta, 1.0 / math.sqrt(q) if q > 0 else math.inf, delta)


def _tat_residuals(activation: str, curvature: float, p) -> np.ndarray:
    if not abs(p[0]) < LOG_ALPHA_MAX:
        return np.array([1e3, 1e3, 1e3])
    k = _tat_smooth_constants(activation, p)
    if not math.isfinite(k.gamma):
        return np.array([1e3, 1e3, 1e3])
    maps = local_maps(activation, k, curvature=True)
    return np.array([maps.q_slope - 1.0, maps.c_slope - 1.0, maps.c_curvature - curvature])


#: starting points (log α, β, δ) of the smooth-TAT root search
TAT_STARTS = tuple((math.log(a), b, d) for a in (0.5, 0.2, 1.0) for b in (0.0, 0.5, -0.5) for d in (0.0, 0.5, -0.5))
#: TAT's smooth solutions with α·γ ≥ 2 are rejected (Zhang et al. found them unstable)
TAT_MAX_GAIN = 2.0


def solve_tat_smooth(activation: str, depth: int, curvature: float = DEFAULT_TAT_CURVATURE) -> TransformConstants:
    """TAT for a smooth φ: Q'(1) = 1, C'(1) = 1 and local C''(1) = ``curvature``/depth."""
    from scipy import optimize

    if not curvature > 0:
        raise ValueError(f"tat_curvature must be > 0, got {curvature}")
    local = curvature / depth
    for start in TAT_STARTS:
        sol = optimize.root(functools.partial(_tat_residuals, activation, local), np.asarray(start), method="hybr")
        if not sol.success or np.max(np.abs(_tat_residuals(activation, local, sol.x))) >= SOLVE_TOL:
            continue
        k = _tat_smooth_constants(activation, sol.x)
        if k.alpha * k.gamma < TAT_MAX_GAIN:
            return _canonical(activation, k)
    raise ValueError(f"act_transform tat: no α, β, δ give {activation} Q'(1) = 1, C'(1) = 1 and C''(1) = "
                     f"{local:.6g} (tat_curvature {curvature} over depth {depth})")


def is_leaky_relu(activation: str) -> bool:
    return activation.partition(":")[0] == "leaky_relu"


def solve(activation: str, method: str, depth: int, params: dict | None = None) -> TransformConstants:
    """The transform ``method`` ("none", "dks", "tat") of ``activation`` for a chain of ``depth``
    layers. ``params``: dks_slope (ζ), tat_c0 (η, leaky ReLU) and tat_curvature (τ, smooth φ).
    Solved once per distinct argument set (a sweep's seeds and learning rates share it)."""
    params = params or {}
    return _solve(activation, method, int(depth), float(params.get("dks_slope", DEFAULT_DKS_SLOPE)),
                  float(params.get("tat_c0", DEFAULT_TAT_C0)),
                  float(params.get("tat_curvature", DEFAULT_TAT_CURVATURE)))


@functools.lru_cache(maxsize=1024)
def _solve(activation: str, method: str, depth: int, dks_slope: float, tat_c0: float,
           tat_curvature: float) -> TransformConstants:
    if method not in METHODS:
        raise ValueError(f"act_transform: unknown value {method!r}; allowed: {', '.join(METHODS)}")
    if not depth >= 1:
        raise ValueError(f"depth must be >= 1 for act_transform {method}, got {depth}")
    if method == "none":
        return TransformConstants()
    if method == "dks":
        return solve_dks(activation, depth, dks_slope)
    if is_leaky_relu(activation):
        return solve_tat_leaky(depth, tat_c0)
    if activation.partition(":")[0] == "relu":
        raise ValueError("act_transform tat: activation relu has no slope to tune; allowed: leaky_relu "
                         "or a smooth activation (tanh, softplus, ...)")
    return solve_tat_smooth(activation, depth, tat_curvature)
