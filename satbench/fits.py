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
