"""From one chunk's ``train.Record`` to long-form tables: runs, layers, curves and the probed
tables of ``satbench.probe_tables`` (spectra, histograms).

Every per-site column of ``layers`` is whatever ``probes.layer_probes`` returns, and every other
table is built by its declaration, so a new probe column or table needs no change here.
``theory_columns`` adds the mean-field predictions to ``runs``.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
import pandas as pd

from satbench import data, families, probe_tables, probes, spec, train


def record_tables(program: train.Program, configs: list, record: train.Record, experiment: str,
                  chunk_seconds: float, theory_rows: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Long-form runs/layers/curves rows of one chunk (padding lanes dropped);
    ``theory_rows`` (from ``theory_columns``) supplies the mean-field columns."""
    n = len(configs)
    rec = jax.tree.map(lambda a: np.asarray(a)[:n], record)
    ids = [c.config_id for c in configs]
    depths = np.array([c["depth"] for c in configs])
    probe_steps = program.probe_steps()
    log_steps = program.log_steps()

    # layers: (n, probes, depth) -> rows, dropping masked layers beyond a config's depth (a family
    # whose sites are not layers fills a table of its own and leaves this one empty)
    n_probes, dmax = len(probe_steps), program.arch.depth
    sites = dmax if rec.layers else 0
    cfg_idx, probe_idx, layer_idx = np.meshgrid(np.arange(n), np.arange(n_probes), np.arange(sites), indexing="ij")
    keep = (layer_idx < depths[:, None, None]).ravel()
    layers = pd.DataFrame({
        "config_id": np.asarray(ids, dtype=object)[cfg_idx.ravel()][keep],
        "step": probe_steps[probe_idx.ravel()][keep],
        "layer": (layer_idx.ravel() + 1)[keep],
        **{k: v.reshape(-1)[keep].astype(np.float64) for k, v in rec.layers.items()},  # every probe's column
    })

    curves = pd.DataFrame({
        "config_id": np.repeat(ids, len(log_steps)),
        "step": np.tile(log_steps, n),
        "train_loss": rec.train_loss.reshape(-1).astype(np.float64),
        "train_accuracy": rec.train_accuracy.reshape(-1).astype(np.float64),
        "test_accuracy": rec.test_accuracy.reshape(-1).astype(np.float64),
    })

    tables = {"layers": layers, "curves": curves}
    chunk = probe_tables.Chunk(np.asarray(ids), depths, probe_steps)
    probed = {}  # per-config runs columns the probe tables give
    for name, value in rec.tables.items():
        table = probe_tables.PROBE_TABLES[name]
        tables[name] = table.rows(chunk, value)
        if table.runs_columns is not None:
            probed.update(table.runs_columns(value))

    rows = []
    for i, cfg in enumerate(configs):
        d = cfg["depth"]
        rows.append({
            "config_id": ids[i],
            "experiment": experiment,
            **{k: cfg[k] for k in spec.FIELDS},
            "final_loss": float(rec.train_loss[i, -1]),
            "final_train_accuracy": float(rec.train_accuracy[i, -1]),
            "final_test_accuracy": float(rec.test_accuracy[i, -1]),
            "diverged": bool(rec.diverged[i]),
            "diverged_step": int(rec.diverged_step[i]) if rec.diverged[i] else pd.NA,
            "last_finite_loss": float(rec.last_finite_loss[i]),
            "steps_to_target": int(rec.steps_to_target[i]) if rec.steps_to_target[i] >= 0 else pd.NA,
            "clip_rate": float(rec.clip_rate[i]),
            "max_grad_norm": float(rec.max_grad_norm[i]),
            "grad_decay": probes.decay_rate(rec.layers["grad_norm"][i, 0, :d]) if "grad_norm" in rec.layers else np.nan,
            "xi_c_measured": (probe_tables.pair_map_depth_scale(rec.tables["pair_map"][i], d)
                              if "pair_map" in rec.tables else np.nan),
            "signal_decay": (probes.decay_rate(rec.layers["signal_norm"][i, 0, :d]) if "signal_norm" in rec.layers
                             else np.nan),
            "time_per_step_s": chunk_seconds / max(cfg["steps"], 1),
            "chunk_lanes": n,
            "program_depth": dmax,
            "layers_mode": getattr(program.arch, "layers", None),
            **{k: float(v[i]) for k, v in probed.items()},
        })
    runs = pd.DataFrame(rows).join(theory_rows, on="config_id")
    for col in ("diverged_step", "steps_to_target"):
        runs[col] = runs[col].astype("Int64")
    for col in ("target_loss", "clip_norm"):
        runs[col] = runs[col].astype("float64")
    tables["runs"] = runs  # written last: a part's runs rows mark its configs finished
    return tables


def _mean_field_point(row: dict, inits) -> tuple[float, float]:
    """(σ_w², σ_b²) of mean-field theory for one config: its family's, or the init rule's gain."""
    point = families.get(row["model"]).mean_field_point
    if point is not None:
        return point(row)
    return inits.mean_field_sigma_w2(row["init"], row["sigma_w2"]), row["sigma_b2"]


def _batchnorm_growth(runs: pd.DataFrame) -> np.ndarray:
    """λ(φ, probe_batch) for plain BatchNorm MLPs (the probe normalises with its own batch of
    ``probe_batch``), NaN for every other config and for batches below the theory's B ≥ 4."""
    from satbench import batchnorm_theory

    if "norm" not in runs or "probe_batch" not in runs:  # configs from before these fields
        return np.full(len(runs), np.nan)
    residual = runs["residual"].fillna(False).astype(bool) if "residual" in runs else False
    no_masks = runs["dropout"] == 0 if "dropout" in runs else True
    applies = ((runs["model"] == "mlp") & (runs["norm"] == "batchnorm") & ~residual & (runs["probe_batch"] >= 4)
               & no_masks)
    return np.array([batchnorm_theory.gradient_growth(act, int(b)) if ok else np.nan
                     for act, b, ok in zip(runs["activation"], runs["probe_batch"], applies)])


#: training examples whose inputs set the first layer's variance in ``_residual_growth``
INPUT_EXAMPLES = 1000


def _residual_growth(runs: pd.DataFrame) -> np.ndarray:
    """‖∂L/∂h_2‖² / ‖∂L/∂h_L‖² at init by mean-field theory (``residual_signal_profile``) for plain
    residual MLPs with a fixed branch scale and an odd φ (the theory's zero-mean stream); NaN for every
    other config."""
    from satbench.families.mlp import NOT_MEAN_FIELD

    needed = {"residual", "residual_scale", "norm", "dataset", "preprocess", "train_subset"}
    if not needed <= set(runs):  # configs from before these fields
        return np.full(len(runs), np.nan)
    out = np.full(len(runs), np.nan)
    for i, row in enumerate(runs.to_dict("records")):
        if not (row["model"] == "mlp" and bool(row["residual"]) and row["norm"] == "none" and row["depth"] >= 3
                and row.get("residual_branch", "fixed") == "fixed" and row.get("dropout", 0) == 0
                and row.get("act_transform", "none") == "none" and row["init"] not in NOT_MEAN_FIELD
                and _is_odd(row["activation"])):
            continue
        profile = residual_signal_profile(row, int(row["depth"]))
        out[i] = float(np.exp(profile[1] - profile[-1]))
    return out


def residual_signal_profile(row, depth: int) -> np.ndarray:
    """ln ‖∂L/∂h_l‖², l = 1..depth, up to a constant, of a residual MLP config (``row``: its fields) by
    the mean-field recursion (``theory.residual_signal_profile``), its init's mean-field σ_w², and the
    first layer's variance from the inputs' mean square over ``INPUT_EXAMPLES`` training inputs."""
    from satbench import inits

    sigma_w2 = float(inits.mean_field_sigma_w2(row["init"], row["sigma_w2"]))
    return _residual_profile(row["activation"], sigma_w2, float(row["sigma_b2"]), float(row["residual_scale"]),
                             int(depth), row["dataset"], row["preprocess"], int(row["train_subset"]))


@functools.lru_cache(maxsize=None)
def _residual_profile(act, sigma_w2, sigma_b2, alpha, depth, dataset, preprocess, train_subset) -> np.ndarray:
    from satbench import theory

    inputs = float(data.input_mean_square(dataset, preprocess, train_subset, examples=INPUT_EXAMPLES).mean())
    with jax.enable_x64(True):
        profile = np.asarray(theory.residual_signal_profile(act, sigma_w2, sigma_b2, alpha,
                                                            sigma_w2 * inputs + sigma_b2, depth))
    profile.flags.writeable = False  # shared by every caller of the cache
    return profile


@functools.lru_cache(maxsize=None)
def _is_odd(act: str) -> bool:
    """φ(−x) = −φ(x) on a grid: the residual theory's branches add numbers of zero mean."""
    from satbench import activations

    x = np.linspace(-4, 4, 81)
    phi = activations.get_activation(act)
    return bool(np.allclose(np.asarray(phi(-x)), -np.asarray(phi(x)), atol=1e-6))


THEORY_COLUMNS = ("mf_sigma_w2", "mf_sigma_b2", "q_star", "chi1", "xi_c", "phase", "jac_mean_s2_theory", "jac_var_s2_theory",
                  "time_decay_theory",
                  "bn_signal_decay_theory", "residual_signal_growth_theory")

#: fields the theory at initialisation does not read: a family's theory is computed once across them
NOT_AT_INIT = ("seed", "learning_rate", "warmup_steps")


def theory_columns(configs: pd.DataFrame) -> pd.DataFrame:
    """Mean-field prediction for each config's (activation, σ_w², σ_b²), indexed by
    config_id, so figures can overlay theory without recomputing: mf_sigma_w2,
    q_star, chi1, xi_c, phase, and the Jacobian spectrum's predicted mean and
    variance of s² where spectra are probed. One jitted call per activation, over
    its distinct (σ_w², σ_b²) pairs.
    The theory is that of the plain MLP, filled where a config's family says it applies
    (``Family.mean_field``: plain MLPs, circular-padded plain CNNs with fan-in k²·C); other
    configs get NaN. The Jacobian's moments are the MLP's and are left NaN for other families.
    A family may place a config elsewhere on the (σ_w², σ_b²) plane (``Family.mean_field_point``: a
    recurrent net's input enters each step like a bias); mf_sigma_b2 records where. Configs with
    ``dropout`` get the theory with its masks (``theory.dropout_summaries``: q*, χ₁ at σ_w²/ρ, the
    c-map's c* < 1 and its ξ_c).
    bn_signal_decay_theory: a plain BatchNorm MLP's per-layer growth of ‖∂L/∂h_l‖² going back,
    λ(φ, probe_batch) (``batchnorm_theory``); residual_signal_growth_theory: a plain residual MLP's
    growth of ‖∂L/∂h_l‖² from its last layer back to layer 2 (``theory.residual_signal_profile``);
    NaN for other configs."""
    from satbench import inits, theory

    if configs.empty:
        return pd.DataFrame(columns=list(THEORY_COLUMNS), index=pd.Index([], name="config_id"))
    runs = configs.copy()
    if "model" not in runs:  # configs from before the model field: MLPs
        runs["model"] = "mlp"
    points = [_mean_field_point(row, inits) for row in runs.to_dict("records")]
    runs["mf_sigma_w2"] = [p[0] for p in points]
    runs["mf_sigma_b2"] = [p[1] for p in points]
    for col in ("q_star", "chi1", "xi_c", "jac_mean_s2_theory", "jac_var_s2_theory", "time_decay_theory"):
        runs[col] = np.nan
    runs["phase"] = ""
    # a transformed φ̂ (act_transform) is not the activation the theory is computed for
    applies = [families.get(row["model"]).has_mean_field(row) and row.get("act_transform", "none") == "none"
               for row in runs.to_dict("records")]
    plain = runs[np.asarray(applies, bool)]
    for act, idx in plain.groupby("activation").groups.items():
        # seeds and other axes repeat (σ_w², σ_b²) pairs: solve each pair once (≈ 10–40 ms each)
        pairs = runs.loc[idx, ["mf_sigma_w2", "mf_sigma_b2"]].to_numpy(np.float64)
        unique, row_of = np.unique(pairs, axis=0, return_inverse=True)
        row_of = row_of.ravel()  # numpy 2 keeps the axis's shape
        t = theory.summaries(act, unique[:, 0], unique[:, 1])
        for col in ("q_star", "chi1", "xi_c", "phase"):
            runs.loc[idx, col] = t[col][row_of]
    dropped = plain[plain["dropout"] > 0] if "dropout" in plain else plain.iloc[:0]
    for act, idx in dropped.groupby("activation").groups.items():  # the theory with dropout's masks
        points = runs.loc[idx, ["mf_sigma_w2", "mf_sigma_b2"]].assign(keep=1 - runs.loc[idx, "dropout"])
        unique, row_of = np.unique(points.to_numpy(np.float64), axis=0, return_inverse=True)
        t = theory.dropout_summaries(act, unique[:, 0], unique[:, 1], unique[:, 2])
        for col in ("q_star", "chi1", "xi_c", "phase"):
            runs.loc[idx, col] = t[col][row_of.ravel()]
    plain = plain.drop(dropped.index)  # no Jacobian moments with dropout
    own = {}  # a family's own columns, once per distinct config (seeds and learning rates repeat them)
    for i, row in zip(plain.index, plain.to_dict("records")):
        family = families.get(row["model"])
        if family.theory is not None:
            # theory at initialisation depends on neither the seed nor the learning rate (nor its warmup);
            # every other field may matter (a recurrent net's input_sigma2 is per lane); NaN-safe by its json form
            key = spec.config_id({k: row[k] for k in spec.FIELDS if k in row and k not in NOT_AT_INIT})
            if key not in own:
                own[key] = family.theory(row)
            for col, value in own[key].items():
                runs.loc[i, col] = value
    probed = plain[(plain["jacobian_samples"] > 0) & (plain["model"] == "mlp")]
    weights = np.where(probed["init"] == "orthogonal", "orthogonal", "gaussian")
    keys = ["activation", "mf_sigma_w2", "sigma_b2", "depth"]
    for (act, sw2, sb2, depth, kind), idx in probed.assign(weights=weights).groupby(keys + ["weights"]).groups.items():
        with jax.enable_x64(True):  # ∂h_L/∂h_1 is a product of depth − 1 layer Jacobians
            mean, var = theory.jacobian_moments(act, sw2, sb2, int(depth) - 1, kind)
        runs.loc[idx, ["jac_mean_s2_theory", "jac_var_s2_theory"]] = [float(mean), float(var)]
    runs["bn_signal_decay_theory"] = _batchnorm_growth(runs)
    runs["residual_signal_growth_theory"] = _residual_growth(runs)
    return runs.set_index("config_id")[list(THEORY_COLUMNS)]
