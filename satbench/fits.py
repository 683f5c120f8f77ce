"""Per-site factors fitted to measured norms (numpy only, so results load without JAX)."""

from __future__ import annotations

import numpy as np

#: norms at or below this are treated as underflowed (float32's smallest normal number is 1.2e-38)
UNDERFLOW = 1e-30


def backward_factor(norms, first: int = 1) -> float:
    """The factor by which ``norms``² shrink per site going backward (site s+1 to s), from a
    least-squares fit of ln norms² on the site index over sites ``first``..S (1-based).

    Below 1 the signal vanishes toward the input (or the first time step), above 1 it explodes;
    it compares directly with mean-field χ₁. NaN with fewer than two sites, or if any of them is
    non-finite or zero (the fit would be of rounding, not of the signal)."""
    g = np.asarray(norms, dtype=np.float64)[first - 1 :]
    if g.shape[0] < 2 or not np.all(np.isfinite(g) & (g > 0)):
        return float("nan")
    sites = np.arange(first, first + g.shape[0], dtype=np.float64)
    slope = np.polyfit(sites, 2 * np.log(g), 1)[0]
    return float(np.exp(-slope))


def through_time_factor(signal_norm) -> float:
    """The per-step factor of ‖∂L/∂h_t‖² going back in time, fitted over the last three quarters of
    the steps (the state approaches its fixed-point variance over the first few), up to where the
    signal underflowed: a fast-vanishing signal is fitted over the steps where it is still a
    number. NaN with fewer than three such steps."""
    g = np.asarray(signal_norm, dtype=np.float64)
    steps = g.shape[0]
    first = steps // 4 + 1
    ok = np.isfinite(g) & (g > UNDERFLOW)
    start = steps
    while start > first and ok[start - 2]:  # the run of usable steps that ends at the last step
        start -= 1
    if not ok[-1] or steps - start + 1 < 3:
        return float("nan")
    return backward_factor(g[start - 1 :], first=1)


#: the fit of ``correlation_depth_scale`` starts where the per-layer change of the cosine has fallen
#: below this fraction of its largest: past the transient, where the c-map is near linear
TRANSIENT = 0.1


def correlation_depth_scale(cosines, transient: float = TRANSIENT) -> float:
    """ξ_c measured: the depth scale over which a pair's pre-activation cosine c_l approaches its
    limit, from a least-squares fit of c_l = c_∞ + A·exp(−l/ξ) over the layers past the transient.

    Mean-field theory linearises the c-map at its fixed point c*, where |c_l − c*| ∝ χ_c^l, so
    ξ_c = −1/ln χ_c; the limit c_∞ is fitted, not assumed, so the same fit measures the ordered
    phase (c* = 1) and the chaotic one (c* < 1). The first layers are left out (their cosine is far
    from c*, where the c-map is not linear): the fit starts at the first layer whose change
    |c_{l+1} − c_l| is below ``transient`` times the largest change. NaN with fewer than four layers
    to fit, or when the best ξ is beyond the net's depth (a net cannot measure a longer scale)."""
    c = np.asarray(cosines, dtype=np.float64)
    if c.shape[0] < 5 or not np.all(np.isfinite(c)):
        return float("nan")
    change = np.abs(np.diff(c))
    if change.max() == 0:
        return float("nan")
    y = c[int(np.argmax(change < transient * change.max())) :]
    if y.shape[0] < 4:
        return float("nan")
    layers = np.arange(y.shape[0], dtype=np.float64)
    scales = np.geomspace(0.2, 2.0 * c.shape[0], 600)
    sse = _two_term_residuals(y, np.exp(-layers[None, :] / scales[:, None]))
    best = int(np.argmin(sse))
    if best in (0, scales.shape[0] - 1) or scales[best] > c.shape[0]:
        return float("nan")
    # a parabola through the three grid points around the minimum, in log ξ
    a, b, d = sse[best - 1 : best + 2]
    step = np.log(scales[1] / scales[0])
    shift = 0.5 * (a - d) / (a - 2 * b + d) if a - 2 * b + d > 0 else 0.0
    return float(scales[best] * np.exp(shift * step))


def _two_term_residuals(y, basis):
    """Residual sum of squares of the least-squares fit y ≈ c + A·basis_g, for each row g of ``basis``
    (the 2 × 2 normal equations, solved for every row at once)."""
    n = y.shape[0]
    s_e, s_ee = basis.sum(axis=1), (basis**2).sum(axis=1)
    s_y, s_ey = y.sum(), basis @ y
    det = n * s_ee - s_e**2
    safe = np.where(det > 0, det, 1.0)
    explained = (s_ee * s_y**2 - 2 * s_e * s_y * s_ey + n * s_ey**2) / safe
    return np.where(det > 0, np.sum(y**2) - explained, np.inf)
