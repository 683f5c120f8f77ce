"""Tables beside ``layers`` that a probe fills (Jacobian spectra, histograms, ...).

Each is declared once, here: its name (a key of the dict ``probes.layer_probes`` returns), the
columns that identify a row, how one chunk's arrays become long-form rows, and the per-config
``runs`` columns it yields. ``train`` returns whatever of them a program probes, ``tables`` turns
them into rows, ``store`` merges and sorts them by these keys: a new probe table is its probe plus
one declaration. No JAX here, so results load without it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np
import pandas as pd

from satbench import fits

#: quantities of the histograms, in the order of their leading axis (``probes.layer_histograms``)
HISTOGRAM_QUANTITIES = ("activation", "gradient")


@dataclasses.dataclass(frozen=True)
class Chunk:
    """What rows of one chunk need besides the probe's arrays (padding lanes already dropped)."""

    ids: np.ndarray  # (n,) config ids
    depths: np.ndarray  # (n,) each config's depth: sites beyond it are padding
    probe_steps: np.ndarray  # (n_probes,) the step of each probe


@dataclasses.dataclass(frozen=True)
class ProbeTable:
    name: str
    keys: tuple[str, ...]  # the columns that identify a row (sorting, de-duplicating resumed parts)
    rows: Callable[[Chunk, Any], pd.DataFrame]  # (chunk, arrays with leading axes (n, n_probes)) -> rows
    runs_columns: Callable[[Any], dict[str, np.ndarray]] | None = None  # per-config columns of ``runs``


def spectra_rows(chunk: Chunk, singular_values) -> pd.DataFrame:
    """One row per singular value: (config, probe, Jacobian sample, index)."""
    sv = np.asarray(singular_values, np.float64)  # (n, probes, samples, units)
    c, p, s, k = np.meshgrid(*(np.arange(d) for d in sv.shape), indexing="ij")
    return pd.DataFrame({
        "config_id": chunk.ids[c.ravel()], "step": chunk.probe_steps[p.ravel()],
        "sample": s.ravel(), "index": k.ravel(), "singular_value": sv.reshape(-1),
    })


def spectra_at_init(singular_values) -> dict[str, np.ndarray]:
    """Mean and variance of s² and the largest s of each config's Jacobian at initialisation."""
    sv = np.asarray(singular_values, np.float64)[:, 0]
    s2 = sv ** 2
    return {"jac_mean_s2": s2.mean(axis=(1, 2)), "jac_var_s2": s2.var(axis=(1, 2)), "jac_s_max": sv.max(axis=(1, 2))}


def histogram_rows(chunk: Chunk, hist: dict) -> pd.DataFrame:
    """One row per bin (config, probe, quantity, layer, bin) with the bin's own edges lo, hi and its
    count, layers beyond a config's depth dropped."""
    counts = np.asarray(hist["counts"])  # (n, probes, quantities, depth, bins)
    bins = counts.shape[-1]
    c, p, q, layer, b = np.meshgrid(*(np.arange(k) for k in counts.shape), indexing="ij")
    keep = (layer < np.asarray(chunk.depths)[:, None, None, None, None]).ravel()
    lo = np.asarray(hist["lo"], np.float64)[c, p, q]
    width = (np.asarray(hist["hi"], np.float64)[c, p, q] - lo) / bins
    return pd.DataFrame({
        "config_id": chunk.ids[c.ravel()], "step": chunk.probe_steps[p.ravel()],
        "quantity": np.asarray(HISTOGRAM_QUANTITIES)[q.ravel()], "layer": layer.ravel() + 1,
        "bin": b.ravel(), "lo": (lo + b * width).ravel(), "hi": (lo + (b + 1) * width).ravel(),
        "count": counts.ravel().astype(np.int64),
    })[keep].reset_index(drop=True)


def timestep_rows(chunk: Chunk, sites: dict) -> pd.DataFrame:
    """One row per (config, probe, time step t = 1..T) of a recurrent net's per-site columns
    (``probes.layer_probes`` with time steps as sites); per-probe numbers such as the recurrent
    matrix's spectral radius (no time axis) go to ``runs`` instead."""
    per_step = {k: np.asarray(v) for k, v in sites.items() if np.ndim(v) == 3}  # (n, probes, T)
    n, n_probes, steps = next(iter(per_step.values())).shape
    c, p, t = np.meshgrid(np.arange(n), np.arange(n_probes), np.arange(steps), indexing="ij")
    return pd.DataFrame({
        "config_id": chunk.ids[c.ravel()], "step": chunk.probe_steps[p.ravel()], "t": t.ravel() + 1,
        **{k: v.reshape(-1).astype(np.float64) for k, v in per_step.items()},
    })


def timesteps_at_init(sites: dict) -> dict[str, np.ndarray]:
    """Per config at initialisation: ``time_decay``, the fitted per-step factor of ‖∂L/∂h_t‖²
    going back in time (``fits.through_time_factor``; compare ``chi1``), and each per-probe number
    of the network (``recurrent_radius``: the spectral radius of the recurrent matrix)."""
    signal = np.asarray(sites["signal_norm"])[:, 0]
    out = {"time_decay": np.array([fits.through_time_factor(s) for s in signal])}
    out.update({k: np.asarray(v, np.float64)[:, 0] for k, v in sites.items() if np.ndim(v) == 2})
    return out


def input_grad_rows(chunk: Chunk, probe: dict) -> pd.DataFrame:
    """One row per (config, probe, probe example, input feature): ``input_grad``, the gradient of
    the summed outputs with respect to that input (``probes.input_gradient_probe``)."""
    grads = np.asarray(probe["gradient"], np.float64)  # (n, probes, examples, features)
    c, p, s, f = np.meshgrid(*(np.arange(d) for d in grads.shape), indexing="ij")
    return pd.DataFrame({
        "config_id": chunk.ids[c.ravel()], "step": chunk.probe_steps[p.ravel()],
        "sample": s.ravel(), "feature": f.ravel(), "input_grad": grads.reshape(-1),
    })


def input_grad_summary(probe: dict) -> dict[str, np.ndarray]:
    """Each config's ``input_grad_autocorr`` at initialisation and ``input_grad_autocorr_final`` at
    the last probe: the correlation of consecutive probe examples' input gradients
    (``probes.neighbour_correlation``)."""
    corr = np.asarray(probe["autocorr"], np.float64)  # (n, probes)
    return {"input_grad_autocorr": corr[:, 0], "input_grad_autocorr_final": corr[:, -1]}


def pair_map_rows(chunk: Chunk, gaps) -> pd.DataFrame:
    """One row per (config, probe, pair, layer) of the c-map probe (``probes.angle_pairs``): the
    pair's ``input_cosine`` cos θ_i and its pre-activations' ``cosine`` c_l, stored as 1 − gap in
    float64 so a gap of 1e-10 survives (``probes.pair_gaps``); layers beyond a config's depth
    dropped."""
    gap = np.asarray(gaps, np.float64)  # (n, probes, depth, pairs)
    c, p, layer, i = np.meshgrid(*(np.arange(d) for d in gap.shape), indexing="ij")
    keep = (layer < np.asarray(chunk.depths)[:, None, None, None]).ravel()
    return pd.DataFrame({
        "config_id": chunk.ids[c.ravel()], "step": chunk.probe_steps[p.ravel()], "pair": i.ravel(),
        "layer": layer.ravel() + 1, "input_cosine": input_cosines(gap.shape[-1])[i.ravel()],
        "cosine": 1.0 - gap.reshape(-1),
    })[keep].reset_index(drop=True)


def input_cosines(pairs: int) -> np.ndarray:
    """cos θ_i, θ_i = π(i + ½)/P: the input cosine of pair i of ``probes.angle_pairs``."""
    return np.cos(np.pi * (np.arange(pairs) + 0.5) / pairs)


def pair_map_depth_scale(gaps, depth: int) -> float:
    """``xi_c_measured`` of one config: ``fits.correlation_map_depth_scale`` of its pairs' cosines at
    initialisation (``gaps`` (probes, sites, pairs), the first ``depth`` sites)."""
    return fits.correlation_map_depth_scale(1.0 - np.asarray(gaps, np.float64)[0, :depth].T)


PROBE_TABLES: dict[str, ProbeTable] = {t.name: t for t in (
    ProbeTable("spectra", ("config_id", "step", "sample", "index"), spectra_rows, spectra_at_init),
    ProbeTable("histograms", ("config_id", "step", "quantity", "layer", "bin"), histogram_rows),
    ProbeTable("timesteps", ("config_id", "step", "t"), timestep_rows, timesteps_at_init),
    ProbeTable("input_grads", ("config_id", "step", "sample", "feature"), input_grad_rows, input_grad_summary),
    ProbeTable("pair_map", ("config_id", "step", "pair", "layer"), pair_map_rows),
)}
