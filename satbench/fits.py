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


#: points of the measured c-map with 1 − c_l below this fit its slope at c = 1
NEAR_ONE = 0.05
#: 1 − c_l below this is left out: float32 pre-activations resolve no finer gap (rounding, not the map)
GAP_FLOOR = 1e-9
#: half-width of the window of c_l around an interior fixed point c* < 1 whose points fit the slope there
WINDOW = 0.2
#: fewer points than this in a fit's window: no measurement (NaN)
MIN_POINTS = 20


def correlation_map_depth_scale(cosines) -> float:
    """ξ_c measured from the network's own c-map: ``cosines`` (pairs, layers) holds each pair's
    pre-activation cosine c_l at layers l = 1..L, so every pair and layer gives a point
    (c_l, c_{l+1}) of the layer-to-layer map. Mean-field ξ_c = −1/ln χ_c, χ_c the slope of the
    c-map at its stable fixed point (Schoenholz et al. 2017); here that slope is fitted to the points
    near the fixed point, pair by pair, so neither the first layers' nonlinear approach nor the
    scatter of a finite net's cosines around c* (whose mean over pairs is not the map of the mean)
    biases it. Regressing c_{l+1} on c_l has no errors in the variable: c_l is the state the map
    acts on.

    c = 1 is always a fixed point, of slope χ₁ (``slope_at_one``); below 1 it is the stable one
    (ordered phase) and gives ξ_c. Otherwise (chaotic phase) the stable fixed point c* < 1 is where
    the pairs settle, and its slope is ``slope_at_interior_fixed_point``. NaN where too few points
    lie near the fixed point or the fitted slope is not in (0, 1)."""
    c = np.asarray(cosines, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] < 2:
        return float("nan")
    now, nxt = c[:, :-1], c[:, 1:]
    slope = slope_at_one(1.0 - now.ravel(), 1.0 - nxt.ravel())
    if not slope < 1.0:  # c = 1 repels (or no points near it): the stable fixed point is inside
        start = float(np.nanmedian(c[:, c.shape[1] // 2 :]))  # where the pairs settle
        slope = slope_at_interior_fixed_point(now, nxt, interior_fixed_point(now, nxt, start))
    if not 0.0 < slope < 1.0:
        return float("nan")
    return float(-1.0 / np.log(slope))


def slope_at_one(gap_now, gap_next, near: float = NEAR_ONE) -> float:
    """The c-map's slope at c = 1 from points with gaps g = 1 − c: near 1 the map is
    g_{l+1} ≈ χ g_l, and χ = Σ g_{l+1} / Σ g_l over the points with ``GAP_FLOOR`` < g_l < ``near``
    (the line through the origin fitted with weights 1/g_l). Weighting by the gap matters: deep in
    an ordered net the pairs' tiny differences all point one way and so share each layer's random
    factor; counted alike (a mean of ratios), those few layers' factors would outweigh the pairs
    entering the window, and a width-1024 net's ξ_c near criticality would scatter by ±30 %. NaN
    with fewer than ``MIN_POINTS`` such points (or any non-finite gap)."""
    g, g_next = np.asarray(gap_now, np.float64), np.asarray(gap_next, np.float64)
    near_one = (g > GAP_FLOOR) & (g < near) & np.isfinite(g_next)
    if near_one.sum() < MIN_POINTS:
        return float("nan")
    return float(g_next[near_one].sum() / g[near_one].sum())


def interior_fixed_point(now, nxt, start: float, window: float = WINDOW, rounds: int = 3) -> float:
    """Where the measured c-map crosses the identity: the least-squares line of c_{l+1} on c_l over
    the points with |c_l − c0| < ``window``, re-centred ``rounds`` times on its own crossing, from
    c0 = ``start``. A finite net's fixed point sits a little off mean-field c* (at σ_w² = 2.5 the
    map is 0.002 above the theory's, and 1/(1 − χ_c) = 12 turns that into 0.02), so the slope is
    taken at the net's own crossing. NaN with fewer than ``MIN_POINTS`` points or no crossing."""
    x, y = np.ravel(np.asarray(now, np.float64)), np.ravel(np.asarray(nxt, np.float64))
    centre = start
    for _ in range(rounds):
        inside = (np.abs(x - centre) < window) & np.isfinite(y)
        if inside.sum() < MIN_POINTS:
            return float("nan")
        u, v = x[inside] - centre, y[inside]
        spread = np.sum((u - u.mean()) ** 2)
        slope = np.sum((u - u.mean()) * (v - v.mean())) / spread if spread > 0 else np.nan
        if not slope < 1.0:
            return float("nan")
        level = v.mean() - slope * u.mean()  # the line's value at c_l = centre
        centre = centre + (level - centre) / (1.0 - slope)
    return float(centre)


def slope_at_interior_fixed_point(now, nxt, centre: float, window: float = WINDOW) -> float:
    """The c-map's slope at its fixed point c* < 1 from ``now`` = c_l and ``nxt`` = c_{l+1}, each
    (pairs, transitions): the least-squares slope of c_{l+1} on c_l over the points with
    |c_l − ``centre``| < ``window``, within each layer (each transition's points centred on their
    own means). A finite net's layer moves every pair's map alike (its q_l and weights are shared),
    which shifts the fixed point from layer to layer; comparing pairs of one layer leaves that
    shift out. The map is close to linear over the window (its curvature changes a symmetric
    window's slope only at second order). NaN with fewer than ``MIN_POINTS`` points."""
    x, y = np.asarray(now, np.float64), np.asarray(nxt, np.float64)
    inside = (np.abs(x - centre) < window) & np.isfinite(y)
    count = inside.sum(axis=0)
    if count.sum() < MIN_POINTS:
        return float("nan")
    per_layer = np.maximum(count, 1)
    dx = np.where(inside, x - np.where(inside, x, 0).sum(axis=0) / per_layer, 0.0)
    dy = np.where(inside, y - np.where(inside, y, 0).sum(axis=0) / per_layer, 0.0)
    spread = np.sum(dx * dx)
    return float(np.sum(dx * dy) / spread) if spread > 0 else float("nan")
