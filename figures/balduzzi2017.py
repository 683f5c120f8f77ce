"""Balduzzi et al. 2017, Fig. 1 and Theorems 1-3: shattered gradients.

Top: g(x) = df/dx of one initialised net (the first seed) along the grid of 256 points on
[−2, 2], scaled to its largest |g|: a shallow plain BatchNorm net's is piecewise constant with
few jumps (brown-noise-like), a deep plain BatchNorm net's jumps at every grid step
(white-noise-like), a deep residual BatchNorm net's stays smooth and a deep looks-linear net's
(without BatchNorm) is constant: the net is linear at init. Bottom left: the correlation of
neighbouring gradients (``input_grad_autocorr``, uncentred lag-1 along the grid) against depth
on a log scale (its absolute value), every seed a dot and the seeds' mean a line (solid: with
BatchNorm, dashed: without), with the paper's 2^−L for plain nets, the exponential fitted to
the plain BatchNorm nets' means, and the level of white noise, 1/√255. Bottom right: the
autocorrelation of g at lags 0..40 grid steps for the top row's nets.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

#: the colour of a net's kind; with BatchNorm drawn solid, without dashed
NET_COLOURS = {"plain": "tab:red", "residual": "tab:blue", "looks-linear": "tab:green",
               "looks-linear residual": "tab:olive"}
BN = " + BN"
#: the plain nets' means at least this large enter the exponential fit (below it the white-noise
#: level, ≈ 1/√255 = 0.06 for one net, and sign flips take over)
FIT_FLOOR = 0.2
DEEP_PLAIN = 24  # Fig. 1's deep feedforward net
MAX_LAG = 40


def net_names(runs: pd.DataFrame) -> pd.Series:
    """plain, residual, looks-linear or looks-linear residual, with " + BN" for BatchNorm nets."""
    base = np.where(runs["init"] == "looks_linear", "looks-linear", "plain")
    residual = runs["residual"].astype(bool).to_numpy()
    name = np.where(residual & (base == "plain"), "residual", np.where(residual, base + " residual", base))
    return pd.Series(np.where(runs["norm"] == "batchnorm", name + BN, name), index=runs.index)


def correlations(results) -> pd.DataFrame:
    """runs with a ``net`` column, at init."""
    runs = results.runs
    return runs.assign(net=net_names(runs))[["config_id", "net", "depth", "seed", "input_grad_autocorr"]]


def seed_means(results) -> pd.DataFrame:
    """Mean over seeds of input_grad_autocorr, depth × net."""
    return correlations(results).groupby(["depth", "net"])["input_grad_autocorr"].mean().unstack("net")


def plain_factor(means: pd.DataFrame) -> tuple[float, list[int]]:
    """Per-layer factor of the plain BN nets' correlation, exp of the least-squares slope of its
    log on depth over the depths (up to the first below it) whose seed mean is ≥ FIT_FLOOR, and
    those depths."""
    plain = means["plain" + BN].dropna()
    depths = []
    for depth, value in plain.items():
        if value < FIT_FLOOR:
            break
        depths.append(int(depth))
    if len(depths) < 2:
        return np.nan, depths
    slope = np.polyfit(depths, np.log(plain.loc[depths].to_numpy()), 1)[0]
    return float(np.exp(slope)), depths


def example_nets(results) -> dict[str, str]:
    """Panel title -> config_id of the top row's nets (the first seed)."""
    corr = correlations(results)
    first = corr[corr["seed"] == corr["seed"].min()]
    shallow = int(first["depth"].min())
    deep = int(first["depth"].max())
    deep_plain = DEEP_PLAIN if DEEP_PLAIN in set(first["depth"]) else deep

    def pick(net, depth):
        rows = first[(first["net"] == net) & (first["depth"] == depth)]
        return rows["config_id"].iloc[0] if len(rows) else None

    picks = {f"plain{BN}, depth {shallow}": pick("plain" + BN, shallow),
             f"plain{BN}, depth {deep_plain}": pick("plain" + BN, deep_plain),
             f"residual{BN}, depth {deep}": pick("residual" + BN, deep),
             f"looks-linear, depth {deep}": pick("looks-linear", deep)}
    return {k: v for k, v in picks.items() if v is not None}


def gradient_along_grid(results, config_id: str) -> np.ndarray:
    """g at the grid points, in grid order, at init (the first input feature)."""
    g = results.input_grads
    rows = g[(g["config_id"] == config_id) & (g["step"] == 0) & (g["feature"] == 0)]
    return rows.sort_values("sample")["input_grad"].to_numpy()


def autocorrelation(g: np.ndarray, max_lag: int) -> np.ndarray:
    """Uncentred autocorrelation of g at lags 0..max_lag (lag 1 is ``input_grad_autocorr``)."""
    out = []
    for lag in range(max_lag + 1):
        a, b = g[: len(g) - lag], g[lag:]
        out.append(np.sum(a * b) / np.sqrt(np.sum(a * a) * np.sum(b * b)))
    return np.array(out)


def plot(results):
    from satbench.data import line
    from satbench.figures._common import style

    style()
    fig = plt.figure(figsize=(15, 8), constrained_layout=True)
    grid = fig.add_gridspec(2, 4)
    picks = example_nets(results)
    x = line.grid()
    lag_ax = fig.add_subplot(grid[1, 2:])
    for i, (title, cid) in enumerate(picks.items()):
        ax = fig.add_subplot(grid[0, i])
        g = gradient_along_grid(results, cid)
        colour = NET_COLOURS[title.split(",")[0].removesuffix(BN)]
        scale = np.abs(g).max() or 1.0
        ax.plot(x[: len(g)], g / scale, color=colour, lw=0.9)
        ax.set(title=title, xlabel="x", ylabel="g(x) / max |g|" if i == 0 else None, ylim=(-1.1, 1.1))
        lag_ax.plot(range(MAX_LAG + 1), autocorrelation(g, MAX_LAG), color=colour, marker=".", label=title)
    lag_ax.axhline(0, color="grey", lw=0.6)
    lag_ax.set(xlabel="lag (grid steps of 4/255)", ylabel="autocorrelation of g (uncentred)",
               title="autocorrelation of the top row's gradients")
    lag_ax.legend(fontsize=8)

    ax = fig.add_subplot(grid[1, :2])
    corr = correlations(results)
    means = seed_means(results)
    for net in means.columns:
        colour, dashes = NET_COLOURS[net.removesuffix(BN)], "-" if net.endswith(BN) else "--"
        dots = corr[corr["net"] == net]
        ax.scatter(dots["depth"], dots["input_grad_autocorr"].abs(), color=colour, s=10, alpha=0.5)
        ax.plot(means.index, means[net].abs(), color=colour, ls=dashes, marker="o", label=net)
    depths = np.asarray(means.index, float)
    ax.plot(depths, 2.0 ** -depths, "k--", lw=1, label="paper, plain: 2^−L")
    factor, fitted = plain_factor(means)
    if fitted:
        plain = means["plain" + BN]
        amplitude = np.exp(np.mean(np.log(plain.loc[fitted].to_numpy()) - np.log(factor) * np.array(fitted)))
        ax.plot(depths, amplitude * factor ** depths, "k:", lw=1,
                label=f"fit to plain{BN} (depths {fitted[0]}–{fitted[-1]}): {factor:.3f}^L")
    n = len(gradient_along_grid(results, next(iter(picks.values())))) if picks else 256
    ax.axhline(1 / np.sqrt(n - 1), color="grey", lw=0.8, ls="-.", label=f"white noise, 1/√{n - 1}")
    ax.set(yscale="log", ylim=(1e-6, 1.5), xlabel="depth L (layers)",
           ylabel="|correlation of neighbouring g| (lag 1)", title="gradient correlation at init vs depth")
    ax.legend(fontsize=7, loc="lower right", ncol=2)
    runs = results.runs
    alpha = runs.loc[runs["residual"].astype(bool), "residual_scale"]
    fig.suptitle(f"Shattered gradients: ReLU MLPs 1 → {int(runs['width'].iloc[0])} → … → 1, He or looks-linear "
                 f"init, residual h ← h + {alpha.iloc[0] if len(alpha) else 1:g}·relu([BN](W h)) (solid: BatchNorm, "
                 "dashed: none); g(x) = df/dx on the grid, at init")
    return fig


def claims(results):
    """Claims on the BatchNorm nets (shattering needs it here, see experiments/balduzzi2017.toml)
    and on the looks-linear nets without it. Thresholds from seeds 0–1 (the quick profile); seeds
    2–5 (the base grid), not used to set them, pass all five: plain + BN .980 at depth 2 and .019
    at depth 24, factor .885, residual + BN .960 at depth 50, looks-linear |1 − c| ≤ 6e-8.

    Seed means, seeds 0–1: plain + BN at depth 2 ≈ .99 (asked > 0.9); at depth 24 ≈ 0.0 (per
    net −0.06..0.06, white noise's spread is 1/√255 ≈ .06), asked |mean| < 0.2; the plain + BN
    per-layer factor over the depths with mean ≥ 0.2 ≈ 0.87 (the paper's 2^−L: 0.5), asked < 0.97;
    residual + BN at depth 50 ≈ .95, asked > 0.8 and > 0.5 above plain + BN at depth 24;
    looks-linear without BN: 1 to float precision (asked |1 − c| < 1e-4) at every depth.
    """
    means = seed_means(results)
    depths = list(means.index)
    shallow, deep = depths[0], depths[-1]
    deep_plain = DEEP_PLAIN if DEEP_PLAIN in depths else deep
    plain, residual = means["plain" + BN], means["residual" + BN]
    factor, fitted = plain_factor(means)
    corr = correlations(results)
    ll = corr[corr["net"].isin(["looks-linear", "looks-linear residual"])]["input_grad_autocorr"]
    ll_gap = float(np.abs(1 - ll).max()) if len(ll) else np.nan
    return [
        dict(claim=f"a shallow plain net's gradient is smooth: neighbour correlation at depth {shallow} > 0.9",
             paper="1-layer net: g(x) like brown noise (Fig. 1a)",
             measured=f"{plain[shallow]:.3f}", holds=bool(plain[shallow] > 0.9)),
        dict(claim=f"a deep plain net's gradient is shattered: |neighbour correlation| at depth {deep_plain} < 0.2",
             paper="24-layer net: g(x) like white noise (Fig. 1b)",
             measured=f"{plain[deep_plain]:.3f}", holds=bool(abs(plain[deep_plain]) < 0.2)),
        dict(claim="plain nets' correlation decays exponentially with depth: fitted per-layer factor < 0.97",
             paper="correlation of gradients 2^−L (Theorem 1): factor 0.5",
             measured=(f"{factor:.3f} per layer over depths {fitted[0]}–{fitted[-1]}" if fitted
                       else "no plain depth above the fit floor"),
             holds=bool(factor < 0.97)),
        dict(claim=f"residual nets decay far more slowly: depth {deep} correlation > 0.8 and > plain depth "
                   f"{deep_plain}'s + 0.5",
             paper="ResNets with BN: correlation ~ 1/√L (Theorem 3; 50 layers, Fig. 1c)",
             measured=f"{residual[deep]:.3f} vs plain {plain[deep_plain]:.3f}",
             holds=bool(residual[deep] > 0.8 and residual[deep] > plain[deep_plain] + 0.5)),
        dict(claim="looks-linear nets' gradient is the same at every x: correlation 1 (within 1e-4) at every depth",
             paper="looks-linear init: the net is linear at init, no shattering (Section 5)",
             measured=f"max |1 − correlation| = {ll_gap:.1e} over {len(ll)} nets",
             holds=bool(len(ll) > 0 and ll_gap < 1e-4)),
    ]


if __name__ == "__main__":
    from satbench.figures._common import standalone

    standalone("balduzzi2017", plot)
