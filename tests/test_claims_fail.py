"""Every reproduction's claims can fail: fed a perturbed copy of results on which they hold (labels
swapped between groups, a column shifted or scaled, the layer order reversed), the claims whose
statement the perturbation makes false report ``holds = False``, one by one, and the claims that
read none of the perturbed columns still hold. A ``claims()`` that always said "holds" would fail
here; ``satbench reproduce`` exits 1 and names the failed claims.

The results are the ones whose claims must all PASS (below) (the session-scoped ``reproduce`` fixture runs
each reproduction once); vanishing and signal_propagation, whose quick profiles take minutes, use
the stored tables of tests/data (tests/data/make_fixtures.py, a tiny sweep on which they hold).

Most expected failures follow from the unperturbed claim holding (a label swap turns "A > 2 B"
into "B > 2 A"); a few rest on a wide measured margin, noted where they are.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import SLOW_REPRODUCTIONS

from satbench import cli, plots, spec, store, tables

DATA = Path(__file__).parent / "data"


def _fixtures():
    path = DATA / "make_fixtures.py"
    module_spec = importlib.util.spec_from_file_location("satbench_test_fixtures", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def claim_rows(name: str, results) -> list[dict]:
    """The claims of every figure of experiment ``name``, in the order ``reproduce`` prints them."""
    rows = []
    for figure in spec.load(name).figures:
        module = plots.figure_module(figure)
        if hasattr(module, "claims"):
            rows += module.claims(results)
    return rows


# --- perturbations: each takes Results and returns a changed copy -------------------------------


def _with(results, table: str, df: pd.DataFrame):
    return results.with_table(table, df)


#: what the theory columns of runs are computed from (tables.theory_columns)
THEORY_KEYS = ["activation", "init", "sigma_w2", "sigma_b2", "depth", "norm", "residual", "jacobian_samples",
               "probe_batch", "dropout"]


def swap(column: str, a, b) -> Callable:
    """The config labels ``a`` and ``b`` of ``column`` exchanged in runs: every table's rows of
    group a now say b and vice versa, as if the measurements of the two groups had been swapped.
    The theory columns (χ₁, ξ_c, …) follow the label: they are computed from the config, not
    measured, so group b keeps b's theory next to a's measurements."""

    def apply(results):
        runs = results.runs.copy()
        col = runs[column]
        runs[column] = col.where(~(col == a), b).where(~(col == b), a).astype(col.dtype)
        if column in THEORY_KEYS:
            keys = [k for k in THEORY_KEYS if k in runs.columns]
            columns = [c for c in tables.THEORY_COLUMNS if c in runs.columns]  # stored results may predate some
            theory = results.runs.drop_duplicates(keys)[keys + columns]
            runs = runs.drop(columns=columns).merge(theory, on=keys, how="left")
            runs = runs[results.runs.columns]
        return _with(results, "runs", runs)

    return apply


def transform(table: str, column: str, fn: Callable, where: Callable | None = None) -> Callable:
    """``column`` replaced by ``fn(column, rows)`` on the rows of ``table`` selected by
    ``where(rows joined with their config)`` (all rows when None)."""

    def apply(results):
        df = getattr(results, table).copy()
        joined = results.with_config(table) if table != "runs" else df
        mask = np.ones(len(df), bool) if where is None else np.asarray(where(joined), bool)
        df.loc[mask, column] = fn(df.loc[mask, column], joined[mask])
        return _with(results, table, df)

    return apply


def reverse_layers(results):
    """Layer l relabelled L + 1 − l: what happens next to the input now happens at the top."""
    df = results.layers.copy()
    depth = df["config_id"].map(results.runs.set_index("config_id")["depth"])
    df["layer"] = depth + 1 - df["layer"]
    return _with(results, "layers", df.sort_values(["config_id", "step", "layer"]).reset_index(drop=True))


def runs_of(**values) -> Callable:
    """A ``where`` for ``transform``: the rows whose config has every given value."""
    return lambda df: np.logical_and.reduce([df[k] == v for k, v in values.items()])


@dataclasses.dataclass
class Perturbation:
    label: str
    apply: Callable
    fails: set[int]  # claims (by position) whose statement the perturbation makes false
    holds: set[int] = dataclasses.field(default_factory=set)  # claims that read nothing it changed


#: the config fields that make a net what it is in martens2021 (its label and its solved constants)
NET_IDENTITY = ["activation", "init", "remedy", "act_transform", "phi_alpha", "phi_beta", "phi_gamma", "phi_delta",
                "phi_param"]


def swap_nets(a: dict, b: dict) -> Callable:
    """The whole identity (NET_IDENTITY) of the nets with config values ``a`` and of those with ``b``
    exchanged in runs: each group's measurements now carry the other's labels and constants."""

    def apply(results):
        runs = results.runs.copy()
        in_a, in_b = runs_of(**a)(runs), runs_of(**b)(runs)
        first_a, first_b = runs.loc[in_a, NET_IDENTITY].iloc[0], runs.loc[in_b, NET_IDENTITY].iloc[0]
        for col in NET_IDENTITY:
            runs[col] = runs[col].astype(object)
            runs.loc[in_a, col], runs.loc[in_b, col] = first_b[col], first_a[col]
        return _with(results, "runs", runs)

    return apply


def both(*perturbations: Callable) -> Callable:
    """Perturbations applied one after the other."""

    def apply(results):
        for p in perturbations:
            results = p(results)
        return results

    return apply


def _best_trained_sigma_w2(results) -> float:
    runs = results.runs
    depth = 60 if 60 in set(runs["depth"]) else int(runs["depth"].max())
    return float(runs[runs["depth"] == depth].groupby("sigma_w2")["final_train_accuracy"].mean().idxmax())


def swap_with_best(far: float) -> Callable:
    """σ_w² = ``far`` and the σ_w² whose nets trained best exchange labels (schoenholz2017)."""
    return lambda results: swap("sigma_w2", far, _best_trained_sigma_w2(results))(results)


def hanin_ln_ratio_doubled(results):
    """ln(q_L/q_1) doubled: the last layer's preact_rms becomes first·(last/first)²."""
    df = results.layers.copy()
    depth = df["config_id"].map(results.runs.set_index("config_id")["depth"])
    first = df["config_id"].map(df[(df["step"] == 0) & (df["layer"] == 1)].set_index("config_id")["preact_rms"])
    last = (df["step"] == 0) & (df["layer"] == depth)
    df.loc[last, "preact_rms"] = df.loc[last, "preact_rms"] ** 2 / first[last]
    return _with(results, "layers", df)


def signal_grows(act: str) -> Callable:
    """``act``'s ‖∂L/∂h_l‖ multiplied by e^(l/2): its per-layer factor of ‖∂L/∂h_l‖² toward the
    input drops by 1/e (signal_propagation)."""
    return transform("layers", "signal_norm", lambda v, rows: v * np.exp(0.5 * rows["layer"].to_numpy()),
                     runs_of(activation=act))


def chi1_reversed_within_activation(results):
    """Each activation's χ₁ values handed to its σ_w² in reverse order (the most ordered net is
    told it is the most chaotic one)."""
    runs = results.runs.copy()
    for act, g in runs.groupby("activation"):
        by_scale = g.groupby("mf_sigma_w2")["chi1"].first().sort_index()
        mapping = dict(zip(by_scale.index, by_scale.to_numpy()[::-1]))
        runs.loc[g.index, "chi1"] = g["mf_sigma_w2"].map(mapping)
    return _with(results, "runs", runs)


#: noci2022's α = 1/√L at depth 12, as its experiment file spells it
SCALED_12 = 0.2886751345948129

# (experiment, profile): number of claims, perturbations. Profiles are the default-run rows of
# the PASS table below; "stored" reads tests/data/<experiment>/.
CASES: dict[tuple[str, str], tuple[int, list[Perturbation]]] = {
    ("he2015", "quick"): (4, [  # He flat, Xavier halves, He trains, Xavier stalls
        Perturbation("init labels he <-> gaussian", swap("init", "he", "gaussian"), {0, 1, 2, 3}),
        Perturbation("q_l halved per layer on top (preact_rms × 2^-(l-1)/2)",
                     transform("layers", "preact_rms", lambda v, rows: v * 2.0 ** (-(rows["layer"] - 1) / 2)),
                     {0, 1}, {2, 3}),
        Perturbation("final train accuracy reflected (1 − accuracy)",
                     transform("runs", "final_train_accuracy", lambda v, rows: 1 - v), {2, 3}, {0, 1}),
    ]),
    ("glorot2010", "quick"): (8, [  # Fig. 2: top saturates, lower > .5, sigmoid chance, tanh learns;
        # Figs. 6-7: standard act narrows, normalised act flat, standard grad shrinks, normalised grad flat
        Perturbation("layer order reversed", reverse_layers, {0, 1, 4, 6}, {2, 3, 5, 7}),
        Perturbation("activation labels sigmoid <-> tanh", swap("activation", "sigmoid", "tanh"), {2, 3}),
        # Figs. 6-7's bars lie between the two inits' predictions: swapped, each init's ratios are on
        # the other's side
        Perturbation("init labels standard <-> glorot_uniform", swap("init", "standard", "glorot_uniform"),
                     {4, 5, 6, 7}),
    ]),
    ("schoenholz2017", "row60"): (3, [  # σ_w² = 1 untrainable, σ_w² = 4 untrainable, near-critical trains
        Perturbation("σ_w² labels 1.0 <-> the best-trained one", swap_with_best(1.0), {0}, {1}),
        Perturbation("σ_w² labels 4.0 <-> the best-trained one", swap_with_best(4.0), {1}, {0}),
        Perturbation("final train accuracy halved",
                     transform("runs", "final_train_accuracy", lambda v, rows: v / 2), {2}, {0, 1}),
    ]),
    ("klambauer2017", "quick"): (2, [  # SELU mean ≈ 0, variance ≈ 1
        Perturbation("activation labels selu <-> relu", swap("activation", "selu", "relu"), {0, 1}),
        Perturbation("activation mean shifted by +0.2", transform("layers", "act_mean", lambda v, rows: v + 0.2),
                     {0}, {1}),
        Perturbation("activation std scaled × 1.5", transform("layers", "act_std", lambda v, rows: v * 1.5),
                     {1}, {0}),
    ]),
    ("klambauer2017_training", "test"): (4, [  # SNN trains, SNN 2× below BN, BN noisier, plain at ln 10
        # claim 0 under the first swap: BN ends at ≈ .3, the bound .05
        Perturbation("remedy labels selu <-> batchnorm", swap("remedy", "selu", "batchnorm"), {0, 1, 2}, {3}),
        Perturbation("remedy labels selu <-> none", swap("remedy", "selu", "none"), {0, 3}),
    ]),
    ("ioffe2015", "quick"): (4, [  # BN ahead early, BN ends no worse, band steady with BN, median wanders
        Perturbation("norm labels none <-> batchnorm", swap("norm", "none", "batchnorm"), {0, 2, 3}),
        Perturbation("BN nets' final test accuracy lowered by 0.1 (BN ends ≈ .015 ahead)",
                     transform("runs", "final_test_accuracy", lambda v, rows: v - 0.1, runs_of(norm="batchnorm")),
                     {1}, {0, 2, 3}),
    ]),
    ("he2016", "test"): (3, [  # plain degrades, residual does not, residual below plain at depth
        Perturbation("residual labels false <-> true", swap("residual", False, True), {0, 1, 2}),
    ]),
    ("remedies", "sigmoid32"): (3, [  # plain sigmoid fails, + batchnorm trains, + residual trains
        Perturbation("remedy labels none <-> batchnorm", swap("remedy", "none", "batchnorm"), {0, 1}, {2}),
        Perturbation("remedy labels none <-> residual", swap("remedy", "none", "residual"), {0, 2}, {1}),
    ]),
    ("hanin2018", "quick"): (3, [  # Var/β ≈ 5, one line in β, mean/β ≈ −5/2
        # β of the width-32 points 4× too small and of the width-128 points 4× too large: Var/β
        # averages to ≈ 8.8, mean/β to ≈ −4.4, and the fitted exponent falls to ≈ −0.1
        Perturbation("width labels 32 <-> 128", swap("width", 32, 128), {0, 1, 2}),
        Perturbation("ln(q_L/q_1) doubled", hanin_ln_ratio_doubled, {0, 2}, {1}),
    ]),
    ("saxe2014", "test"): (6, [  # orth flat, Gaussian grows, orth 2× faster, best rate ∝ 1/depth,
        # orthogonal spectrum all 1, Gaussian var(s²) = L − 1
        Perturbation("init labels gaussian <-> orthogonal", swap("init", "gaussian", "orthogonal"),
                     {0, 1, 2, 4, 5}),
        Perturbation("orthogonal nets' learning-rate labels × depth",
                     transform("runs", "learning_rate", lambda v, rows: v * rows["depth"], runs_of(init="orthogonal")),
                     {3}, {0, 1, 2, 4, 5}),
        Perturbation("orthogonal singular values + 0.01",
                     transform("spectra", "singular_value", lambda v, rows: v + 0.01, runs_of(init="orthogonal")),
                     {4}, {0, 1, 2, 3, 5}),
        Perturbation("Gaussian singular values × 2",
                     transform("spectra", "singular_value", lambda v, rows: v * 2, runs_of(init="gaussian")),
                     {5}, {0, 1, 2, 3, 4}),
        # no net reaches the target: "not reached" against "not reached" orders nothing
        Perturbation("every training loss × 1e3 (no net reaches the target)",
                     transform("curves", "train_loss", lambda v, rows: v * 1e3), {0, 1, 2, 3}, {4, 5}),
    ]),
    ("pennington2017", "test"): (7, [  # orth tanh isometric, Gaussian tanh wide, ReLU wide, spread = theory,
        # tanh mean s² = theory, orth tanh faster than Gaussian, ReLU ≥ 2× slower than orth tanh
        Perturbation("init labels gaussian <-> orthogonal", swap("init", "gaussian", "orthogonal"),
                     {0, 1, 3, 5}, {2}),
        Perturbation("orthogonal nets' measured var(s²) × 3",
                     transform("runs", "jac_var_s2", lambda v, rows: v * 3, runs_of(init="orthogonal")),
                     {3}, {2, 4, 5, 6}),
        Perturbation("ReLU nets' measured var(s²) ÷ 100",
                     transform("runs", "jac_var_s2", lambda v, rows: v / 100, runs_of(activation="relu")),
                     {2, 3}, {0, 1, 4, 5, 6}),
        Perturbation("tanh singular values × 1.25",
                     transform("spectra", "singular_value", lambda v, rows: v * 1.25, runs_of(activation="tanh")),
                     {4}, {0, 1, 2, 3, 5, 6}),
        Perturbation("ReLU training loss × 0.01 (it reaches the target at once)",
                     transform("curves", "train_loss", lambda v, rows: v * 0.01, runs_of(activation="relu")),
                     {6}, {0, 1, 2, 3, 4, 5}),
        # the nets called faster never reach the target: neither learning claim may hold
        Perturbation("every training loss × 100 (no net reaches the target)",
                     transform("curves", "train_loss", lambda v, rows: v * 100), {5, 6}, {0, 1, 2, 3, 4}),
    ]),
    ("xiao2018", "quick"): (3, [  # delta-orthogonal factor = χ₁: ordered, critical, chaotic
        # the chaotic and ordered nets' measurements under each other's χ₁ (0.90 vs 1.11)
        Perturbation("σ_w² labels 0.9 <-> 2.0", swap("sigma_w2", 0.9, 2.0), {0, 2}, {1}),
        Perturbation("chaotic nets' ‖∂L/∂h_l‖ × e^(l/2) (factor ÷ e)",
                     transform("layers", "signal_norm", lambda v, rows: v * np.exp(0.5 * rows["layer"].to_numpy()),
                               runs_of(sigma_w2=2.0)), {2}, {0, 1}),
        # critical factor × 1.03^-2 = 0.943: 4.5 % below χ₁, past the 3 % (unperturbed +1.3 %)
        Perturbation("critical nets' ‖∂L/∂h_l‖ × 1.03^l",
                     transform("layers", "signal_norm", lambda v, rows: v * 1.03 ** rows["layer"].to_numpy(),
                               runs_of(sigma_w2=1.05)), {1}, {0, 2}),
        # the fit then reads the first layers backwards: 1/0.90 ordered, the chaotic transient inverted
        Perturbation("layer order reversed", reverse_layers, {0, 2}),
    ]),
    ("xiao2018_training", "quick"): (3, [  # depth 256: delta critical trains, off-critical near chance,
        # Gaussian critical below the trains bar
        Perturbation("init labels gaussian <-> delta_orthogonal", swap("init", "gaussian", "delta_orthogonal"),
                     {0, 2}, {1}),
        Perturbation("critical delta-orthogonal nets' final train accuracy × 0.8",
                     transform("runs", "final_train_accuracy", lambda v, rows: v * 0.8,
                               runs_of(init="delta_orthogonal", sigma_w2=1.05)), {0}, {1, 2}),
        Perturbation("chaotic Gaussian nets learn (final train accuracy 0.9)",
                     transform("runs", "final_train_accuracy", lambda v, rows: v * 0 + 0.9,
                               runs_of(init="gaussian", sigma_w2=2.0)), {1}, {0, 2}),
        Perturbation("critical Gaussian nets learn (final train accuracy 0.9)",
                     transform("runs", "final_train_accuracy", lambda v, rows: v * 0 + 0.9,
                               runs_of(init="gaussian", sigma_w2=1.05)), {2}, {0, 1}),
    ]),
    ("xiao2018_isometry", "test"): (2, [  # Gaussian spread ≥ (L−1)/2, delta-orthogonal < 1
        Perturbation("init labels gaussian <-> delta_orthogonal", swap("init", "gaussian", "delta_orthogonal"), {0, 1}),
        Perturbation("delta-orthogonal nets' measured var(s²) × 20",
                     transform("runs", "jac_var_s2", lambda v, rows: v * 20, runs_of(init="delta_orthogonal")),
                     {1}, {0}),
        Perturbation("Gaussian nets' measured var(s²) ÷ 100",
                     transform("runs", "jac_var_s2", lambda v, rows: v / 100, runs_of(init="gaussian")), {0}, {1}),
    ]),
    ("pascanu2013", "test"): (6, [  # bound, λ₁ < 1/γ vanishes, sigmoid 1 < λ₁ < 4 vanishes, tanh explodes
        # above, clipping keeps exploding nets finite while unclipped diverge, clipped moderate ones learn
        # tanh's factors (0.23 at λ₁ = 0.5, ≥ 1.08 above 1) under sigmoid's γ = 1/4 break the bound, and
        # "sigmoid" then holds tanh's exploding nets at 1 < λ₁ < 4
        Perturbation("activation labels tanh <-> sigmoid", swap("activation", "tanh", "sigmoid"), {0, 1, 2}),
        # × e: tanh at λ₁ = 0.9 ... (0.67 → 1.8) and sigmoid at 3.5 (0.38 → 1.04) cross 1; the bound breaks
        Perturbation("every fitted per-step factor × e", transform("runs", "time_decay", lambda v, rows: v * np.e),
                     {0, 1, 2}, {3}),
        # ÷ e: no net's factor stays above 1 (tanh at λ₁ = 3.5: 2.1 → 0.78), so none explodes and no
        # exploding net is left to clip
        Perturbation("every fitted per-step factor ÷ e", transform("runs", "time_decay", lambda v, rows: v / np.e),
                     {3, 4, 5}, {0, 1, 2}),
        Perturbation("unclipped nets never diverge (diverged = False)",
                     transform("runs", "diverged", lambda v, rows: v & False, runs_of(remedy="none")), {4},
                     {0, 1, 2, 3, 5}),
        Perturbation("clipped nets' final loss × 10",
                     transform("runs", "final_loss", lambda v, rows: v * 10, runs_of(remedy="clip")), {5},
                     {0, 1, 2, 3, 4}),
    ]),
    ("hochreiter1997", "quick"): (4, [  # per T = 100, 150: LSTM solves, tanh RNN at the baseline
        Perturbation("model labels lstm <-> rnn", swap("model", "lstm", "rnn"), {0, 1, 2, 3}),
        Perturbation("LSTM final MSE × 100 (0.0001 → 0.01)",
                     transform("runs", "final_loss", lambda v, rows: v * 100, runs_of(model="lstm")), {0, 2}, {1, 3}),
        Perturbation("LSTM test sequences solved × 0.9",
                     transform("runs", "final_test_accuracy", lambda v, rows: v * 0.9, runs_of(model="lstm")),
                     {0, 2}, {1, 3}),
    ]),
    ("le2015", "quick"): (4, [  # per T = 150, 200: IRNN beats the baseline, tanh RNN at it
        # the figure names a net by what it is (relu with W = I is the IRNN), not by its remedy label
        Perturbation("IRNN <-> tanh RNN (activation and recurrent_init labels swapped)",
                     lambda r: swap("activation", "relu", "tanh")(swap("recurrent_init", "identity", "gaussian")(r)),
                     {0, 1, 2, 3}),
        Perturbation("IRNN final MSE × 10 (≈ 0.01 → 0.1)",
                     transform("runs", "final_loss", lambda v, rows: v * 10, runs_of(remedy="irnn")), {0, 2}, {1, 3}),
    ]),
    ("zhang2019", "test"): (3, [  # He/α = 1 overflows, Fixup trains, ReZero trains
        Perturbation("residual_branch labels fixed <-> fixup", swap("residual_branch", "fixed", "fixup"), {0, 1}, {2}),
        Perturbation("residual_branch labels fixed <-> rezero", swap("residual_branch", "fixed", "rezero"), {0, 2},
                     {1}),
        Perturbation("ReZero's final train accuracy × 0.5",
                     transform("runs", "final_train_accuracy", lambda v, rows: v * 0.5,
                               runs_of(residual_branch="rezero")), {2}, {0, 1}),
    ]),
    ("schoenholz2017_dropout", "test"): (3, [  # no critical point with dropout; measured = theory; falls with p
        # measured 30 % high with dropout: off the theory at every rate (seed 0: −9 … +4 % unperturbed), the
        # order over rates kept
        Perturbation("xi_c_measured × 1.3 with dropout",
                     transform("runs", "xi_c_measured", lambda v, rows: v * 1.3, lambda df: df["dropout"] > 0),
                     {0, 1}, {2}),
        # the theory follows the label: 0.1's nets read against 0.05's theory are 30 % low, and the peak order flips
        Perturbation("dropout labels 0.05 <-> 0.1", swap("dropout", 0.05, 0.1), {0, 1, 2}),
        # nets without dropout that measure a short scale: at σ_w² = 1.76 no longer beyond the depth, and the
        # measurable ones (σ_w² = 2.5) far off their theory
        Perturbation("xi_c_measured ÷ 100 without dropout",
                     transform("runs", "xi_c_measured", lambda v, rows: v / 100, runs_of(dropout=0.0)), {0, 1}, {2}),
    ]),
    ("yang2017", "test"): (2, [  # the profile follows the recursion; the growth is subexponential
        # a drift of 0.02 per layer in ln ‖∂L/∂h_l‖²: up to 2 nats off the recursion at depth 100, while
        # ln G(100)/ln G(25) falls (2.0 → 1.5 at α = 1), still subexponential
        Perturbation("signal_norm × exp(0.01·layer)",
                     transform("layers", "signal_norm", lambda v, rows: v * np.exp(0.01 * rows["layer"])), {0}, {1}),
        # an exponential factor e^0.6 per layer on top: ln G gains 0.6 (L − 2) (ratio ≈ 3.6 > 0.75 × 4.26)
        Perturbation("signal_norm × exp(0.3·(depth − layer))",
                     transform("layers", "signal_norm",
                               lambda v, rows: v * np.exp(0.3 * (rows["depth"] - rows["layer"]))),
                     {0, 1}),
    ]),
    ("yang2019", "test"): (5, [  # λ = theory, falls with B, relu > tanh > leaky, deep relu fails, deep leaky trains
        Perturbation("tanh's fitted factor × 1.1", transform("runs", "signal_decay", lambda v, rows: v * 1.1,
                                                             runs_of(activation="tanh")), {0}, {1, 2, 3, 4}),
        # the theory follows the label: leaky_relu:0.5's factors read against tanh's λ are 6–8 % low
        Perturbation("activation labels tanh <-> leaky_relu:0.5", swap("activation", "tanh", "leaky_relu:0.5"),
                     {0, 2}, {1, 3}),
        Perturbation("probe_batch labels 8 <-> 128", swap("probe_batch", 8, 128), {0, 1}, {2, 3, 4}),
        Perturbation("depth labels 8 <-> 48", swap("depth", 8, 48), {3}, {4}),
        Perturbation("leaky_relu:0.5's final train accuracy × 0.3",
                     transform("runs", "final_train_accuracy", lambda v, rows: v * 0.3,
                               runs_of(activation="leaky_relu:0.5")), {4}, {0, 1, 2, 3}),
    ]),
    ("noci2022", "test"): (3, [  # Post-LN at init: α = 1 tokens align, Q/K gradients vanish against V's;
        # α = 1/√L neither
        Perturbation("residual_scale labels 1 <-> 1/√12", swap("residual_scale", 1.0, SCALED_12), {0, 1, 2}),
        Perturbation("α = 1 nets' token cosine × 0.9",
                     transform("layers", "token_cosine", lambda v, rows: v * 0.9, runs_of(residual_scale=1.0)),
                     {0}, {1, 2}),
        # the last block's Q/V against block 1's × 2^11 (unperturbed ≤ 0.003)
        Perturbation("α = 1 nets' ‖∂L/∂W_Q‖ × 2^l",
                     transform("layers", "grad_norm_q", lambda v, rows: v * 2.0 ** rows["layer"].to_numpy(),
                               runs_of(residual_scale=1.0)), {1}, {0, 2}),
        Perturbation("α = 1/√L nets' token cosine + 0.3",
                     transform("layers", "token_cosine", lambda v, rows: v + 0.3, runs_of(residual_scale=SCALED_12)),
                     {2}, {0, 1}),
        Perturbation("α = 1/√L nets' ‖∂L/∂W_V‖ × 2^l",
                     transform("layers", "grad_norm_v", lambda v, rows: v * 2.0 ** rows["layer"].to_numpy(),
                               runs_of(residual_scale=SCALED_12)), {2}, {0, 1}),
        # α = 1/√L then reads block 1 as the last (cosine ≈ .34) and the ratios grow: it still holds
        Perturbation("layer order reversed", reverse_layers, {0, 1}, {2}),
    ]),
    ("balduzzi2017", "test"): (5, [  # shallow plain smooth, deep plain shattered, plain decays
        # exponentially, residual far slower, looks-linear 1
        # claim 0 under the first swap: residual depth 2 is as smooth as plain (≈ .99)
        Perturbation("residual labels false <-> true", swap("residual", False, True), {1, 2, 3}, {4}),
        # the BN claims then read looks-linear + BN nets, whose correlation BatchNorm's rounding noise
        # lowers too (plain 0.2, residual 0.84 at depth 24, width 100): only the looks-linear claim
        # is sure to fail
        Perturbation("init labels he <-> looks_linear", swap("init", "he", "looks_linear"), {4}, {0}),
        Perturbation("looks-linear correlations − 1e-3",
                     transform("runs", "input_grad_autocorr", lambda v, rows: v - 1e-3, runs_of(init="looks_linear")),
                     {4}, {0, 1, 2, 3}),
        Perturbation("shallowest plain nets' correlation halved",
                     transform("runs", "input_grad_autocorr", lambda v, rows: v / 2,
                               lambda df: (df["init"] == "he") & ~df["residual"].astype(bool)
                               & (df["depth"] == df["depth"].min())), {0}, {1, 3, 4}),
        Perturbation("residual nets' correlation halved",
                     transform("runs", "input_grad_autocorr", lambda v, rows: v / 2,
                               runs_of(init="he", residual=True)), {3}, {0, 1, 2, 4}),
    ]),
    ("dong2021", "quick"): (4, [  # SAN collapses by block 5, order p > 1.2, skips keep res, ReLU MLP speeds it
        # the MLP nets' own collapse is as fast and as doubly exponential (p ≈ 1.6–2.1): only the
        # SAN-vs-MLP comparison turns around
        Perturbation("attention_only labels true <-> false", swap("attention_only", True, False), {3}, {0, 1, 2}),
        Perturbation("residual labels false <-> true", swap("residual", False, True), {0, 1, 2}),
        Perturbation("SAN's res replaced by the exponential decay 0.02^l (p = 1)",
                     transform("layers", "rank_residual", lambda v, rows: 0.02 ** rows["layer"].astype(float),
                               runs_of(attention_only=True, residual=False)), {1}, {0, 2}),
        Perturbation("SAN's token cosine 0.99 at every block",
                     transform("layers", "token_cosine", lambda v, rows: v * 0 + 0.99,
                               runs_of(attention_only=True, residual=False)), {0}, {1, 2, 3}),
        Perturbation("the skip nets' res ÷ 100", transform("layers", "rank_residual", lambda v, rows: v / 100,
                                                           runs_of(residual=True)), {2}, {0, 1, 3}),
        Perturbation("SAN + MLP's res × 1000", transform("layers", "rank_residual", lambda v, rows: v * 1000,
                                                         runs_of(attention_only=False, residual=False)),
                     {3}, {0, 1, 2}),
    ]),
    ("vanishing", "stored"): (3, [  # sigmoid shrinks > 4×/layer, ReLU + He flat, tanh ≫ sigmoid
        # claim 0 under the swap: tanh's factor is ≈ 1 at σ_w² = 1, the bound 1/4
        Perturbation("activation labels sigmoid <-> tanh", swap("activation", "sigmoid", "tanh"),
                     {0, 2}, {1}),
        Perturbation("gradients grow toward the input (grad_decay → 1/grad_decay)",
                     transform("runs", "grad_decay", lambda v, rows: 1 / v), {0, 2}, {1}),
        # relu + He reads ‖∂L/∂h_l‖ (signal_norm), not grad_decay; tanh/sigmoid's ratio is unchanged
        Perturbation("gradients shrink 4× less per layer (grad_decay × 4)",
                     transform("runs", "grad_decay", lambda v, rows: 4 * v), {0}, {1, 2}),
        Perturbation("relu's ‖∂L/∂h_l‖ × e^(l/2)", signal_grows("relu"), {1}, {0, 2}),
        # relu with N(0, 1/n) weights loses half of ‖∂L/∂h_l‖² per layer: He's band must reject it
        # (‖∂L/∂W_l‖², which this claim read before, is flat for relu at any weight scale)
        Perturbation("init labels he <-> gaussian", swap("init", "he", "gaussian"), {1}),
    ]),
    ("martens2021", "test"): (6, [  # TAT trains, DKS tanh trains, ReLU + He ≥ 2× TAT's and ≥ 3× DKS ReLU's
        # steps, tanh + He ≥ 1.5× DKS tanh's, TAT's C^∘L(0) = η and plain ReLU's > 0.97 (theory)
        # claim 3 under the first swap: ReLU + He's label on TAT's curve is ≈ 3× DKS ReLU's, neither side
        Perturbation("nets ReLU + He <-> leaky ReLU + TAT",
                     swap_nets(dict(activation="relu", act_transform="none"), dict(act_transform="tat")),
                     {0, 2}, {1, 4, 5}),
        Perturbation("nets ReLU + He <-> ReLU + DKS",
                     swap_nets(dict(activation="relu", act_transform="none"), dict(activation="relu",
                                                                                   act_transform="dks")),
                     {2, 3}, {0, 1, 4, 5}),
        # claim 1 holds under this swap: tanh + He also ends at ≈ 1.0 train accuracy on digits
        Perturbation("nets tanh + He <-> tanh + DKS",
                     swap_nets(dict(activation="tanh", act_transform="none"), dict(activation="tanh",
                                                                                   act_transform="dks")),
                     {4}, {0, 1, 2, 3, 5}),
        Perturbation("tanh + DKS train accuracy − 0.05 (final and logged)",
                     both(transform("runs", "final_train_accuracy", lambda v, rows: v - 0.05,
                                    runs_of(activation="tanh", act_transform="dks")),
                          transform("curves", "train_accuracy", lambda v, rows: v - 0.05,
                                    runs_of(activation="tanh", act_transform="dks"))),
                     {1}, {0, 2, 3, 5}),
        Perturbation("TAT's stored slope halved",
                     transform("runs", "phi_param", lambda v, rows: v / 2, runs_of(act_transform="tat")),
                     {5}, {0, 1, 2, 3, 4}),
    ]),
    ("xiong2020", "quick"): (6, [  # at init: last block Post/Pre > 1.5, the ratio grows from 6 to 12 blocks,
        # profile slopes Post > Pre; at 6 and 12 blocks Post-LN without warmup at chance, Pre-LN trains; warmup
        # repairs Post-LN at 6 blocks. Reversed blocks: the first blocks' ratio is 1.16 at 12 blocks on seed 0
        # (measured margin); under the warmup swap the 12-block cold claim reads Post-LN + warmup's 1.86, 2.31
        Perturbation("ln labels post <-> pre", swap("ln", "post", "pre"), {0, 1, 2, 3, 4}),
        Perturbation("block order reversed", reverse_layers, {0, 2}, {3, 4, 5}),
        Perturbation("Pre-LN 12-block nets' gradient norms × 1.5",
                     transform("layers", "grad_norm", lambda v, rows: v * 1.5, runs_of(ln="pre", depth=12)),
                     {1}, {2, 3, 4, 5}),
        Perturbation("warmup labels 0 <-> 100", swap("warmup_steps", 0, 100), {3, 5}, {0, 1, 2}),
        Perturbation("Post-LN cold-start training losses ÷ 10",
                     transform("curves", "train_loss", lambda v, rows: v / 10, runs_of(ln="post", warmup_steps=0)),
                     {3, 4}, {0, 1, 2, 5}),
        Perturbation("Pre-LN cold-start training losses + 1",
                     transform("curves", "train_loss", lambda v, rows: v + 1, runs_of(ln="pre", warmup_steps=0)),
                     {3, 4}, {0, 1, 2, 5}),
        Perturbation("Post-LN warmed-up training losses + 1",
                     transform("curves", "train_loss", lambda v, rows: v + 1, runs_of(ln="post", warmup_steps=100)),
                     {5}, {0, 1, 2, 3, 4}),
    ]),
    ("signal_propagation", "stored"): (3, [  # per activation (hard_tanh, relu, tanh): factor = χ₁
        Perturbation("χ₁ handed to the σ_w² in reverse order", chi1_reversed_within_activation, {0, 1, 2}),
        Perturbation("hard_tanh's ‖∂L/∂h_l‖ × e^(l/2)", signal_grows("hard_tanh"), {0}, {1, 2}),
        Perturbation("relu's ‖∂L/∂h_l‖ × e^(l/2)", signal_grows("relu"), {1}, {0, 2}),
        Perturbation("tanh's ‖∂L/∂h_l‖ × e^(l/2)", signal_grows("tanh"), {2}, {0, 1}),
    ]),
}

_loaded: dict[tuple[str, str], tuple[store.Results, list[dict]]] = {}


def _results(reproduce, name: str, profile: str) -> tuple[store.Results, list[dict]]:
    """The results of (name, profile) and their claims, loaded once per module."""
    if (name, profile) not in _loaded:
        if profile == "stored":
            results = _fixtures().load(name)
        else:
            results = store.load_results(reproduce(name, profile).folder)
        _loaded[name, profile] = results, claim_rows(name, results)
    return _loaded[name, profile]


PARAMS = [pytest.param(name, profile, i, id=f"{name}-{profile}-{i}",
                       marks=[pytest.mark.slow] if (name, profile) in SLOW_REPRODUCTIONS else [])
          for (name, profile), (_, perturbations) in CASES.items() for i in range(len(perturbations))]


@pytest.mark.parametrize("name, profile, index", PARAMS)
def test_a_perturbation_that_makes_a_claim_false_makes_it_fail(reproduce, name, profile, index):
    n_claims, perturbations = CASES[name, profile]
    p = perturbations[index]
    results, before = _results(reproduce, name, profile)
    assert len(before) == n_claims and all(r["holds"] for r in before), before  # they hold unperturbed
    after = claim_rows(name, p.apply(results))
    assert len(after) == n_claims, after
    for i in sorted(p.fails):
        assert not after[i]["holds"], f"{p.label}: claim {i} still holds: {after[i]}"
    for i in sorted(p.holds):
        assert after[i]["holds"], f"{p.label}: claim {i} failed though it reads nothing perturbed: {after[i]}"


def test_gradient_flow_claims_without_sigmoid_runs_say_not_measured():
    """gradient_flow's claims on results without sigmoid nets: the two claims about sigmoid say
    "not measured" and do not hold (nothing was measured to support them); relu + He still holds."""
    from satbench.figures import gradient_flow

    results = _fixtures().load("vanishing")
    keep = results.runs[results.runs["activation"] != "sigmoid"]
    results = dataclasses.replace(results, runs=keep)
    rows = gradient_flow.claims(results)
    assert len(rows) == 3, rows
    assert [r["holds"] for r in rows] == [False, True, False], rows
    assert "not measured" in rows[0]["measured"] and "not measured" in rows[2]["measured"], rows


def test_every_claim_of_every_reproduction_fails_under_some_perturbation():
    """Coverage of CASES: each experiment whose figures define claims() is here, and each of its
    claims is expected to fail under at least one perturbation."""
    with_claims = {name for name in spec.known_experiments()
                   if any(hasattr(plots.figure_module(f), "claims") for f in spec.load(name).figures)}
    assert with_claims == {name for name, _ in CASES}
    for (name, profile), (n_claims, perturbations) in CASES.items():
        failed = set().union(*(p.fails for p in perturbations))
        assert failed == set(range(n_claims)), (name, profile, set(range(n_claims)) - failed)


def test_reproduce_exits_1_and_names_each_failed_claim(reproduce, tmp_path):
    """``satbench reproduce`` over a finished he2015 folder whose stored tables have the init labels
    swapped: it resumes (computes nothing), draws the figure, prints FAIL for the four claims, lists
    each by name on stderr and exits 1."""
    from satbench.figures import he2015

    source = reproduce("he2015", "quick").folder
    out = tmp_path / "he2015" / "quick"
    shutil.copytree(source, out)
    parts = store.part_dirs(out)
    for path in [*(p / "runs.parquet" for p in parts), out / "runs.parquet"]:
        runs = pd.read_parquet(path)
        runs["init"] = runs["init"].map({"he": "gaussian", "gaussian": "he"})
        runs.to_parquet(path, index=False)
    expected = [row["claim"] for row in he2015.claims(store.load_results(out))]
    r = CliRunner().invoke(cli.main, ["reproduce", "he2015", "--profile", "quick", "--results-root", str(tmp_path)])
    assert r.exit_code == 1, r.output + r.stderr
    assert store.part_dirs(out) == parts  # nothing was run again
    assert r.output.count("FAIL") == 4 and "PASS" not in r.output, r.output
    assert "4 claim(s) did not hold" in r.stderr, r.stderr
    for claim in expected:
        assert f"he2015: {claim}" in r.stderr, (claim, r.stderr)


# --- every reproduction end to end through ``satbench reproduce``: each claim PASSes --------------
# One row per (experiment, profile): the quick profile or, where that takes over a minute on 2 cores,
# a reduced profile (test, row60, sigmoid32) whose claims are the same statements on fewer configs.
# The default run holds the rows not in SLOW_REPRODUCTIONS (conftest.py); -m slow runs the others.
slow = pytest.mark.slow

# (experiment, profile, number of claims): what each claim says is in REPRODUCTIONS.md
REPRODUCTIONS = [
    # 30-layer ReLU: He init keeps the variance flat and trains, Xavier halves it per layer and stalls
    ("he2015", "quick", 4),
    # Fig. 2 (top sigmoid layer saturates near 0, tanh learns) and Figs. 6-7 (gradients shrink toward
    # the input under standard init, not normalised init)
    ("glorot2010", "quick", 8),
    # the quick grid's L = 60 row: beyond 6ξ_c (σ_w² = 1 and 4) near chance, near-critical σ_w² trains
    ("schoenholz2017", "row60", 3),
    # SELU at σ_w² = 1, width 512, depth 32: per-layer mean within ±0.03, variance within [0.9, 1.1]
    ("klambauer2017", "quick", 2),
    # SNNs train smoothly and beat ReLU + BN at depth 32; plain ReLU with standard init stays at chance
    ("klambauer2017_training", "test", 4),
    pytest.param("klambauer2017_training", "quick", 4, marks=slow),
    # Fig. 1, 3×100 sigmoid: BN ahead early and no worse at the end, its unit's input band steady
    ("ioffe2015", "quick", 4),
    # depth 8 vs 32: the plain net degrades, the residual net does not
    ("he2016", "test", 3),
    pytest.param("he2016", "quick", 3, marks=slow),
    # plain sigmoid fails at depth 32, BatchNorm and residual connections train
    ("remedies", "sigmoid32", 3),
    # ReLU + He init at init: Var[ln q_L/q_1]/β ≈ 5, one line in β, mean ≈ −5β/2
    ("hanin2018", "quick", 3),
    # deep linear nets: orthogonal learning time flat in depth, Gaussian ≥ 2× slower at 32, best rate
    # ∝ 1/depth, spectra of the weight product (orthogonal all 1, Gaussian var s² ≈ L − 1)
    ("saxe2014", "test", 6),
    pytest.param("saxe2014", "quick", 6, marks=slow),
    # depth 32: orthogonal tanh near-isometric, Gaussian tanh and ReLU wide, theory along the q_l path,
    # orthogonal tanh learns fastest and critical ReLU slowest
    ("pennington2017", "test", 7),
    pytest.param("pennington2017", "quick", 7, marks=slow),
    # vanilla tanh CNNs, delta-orthogonal kernels at init: the per-layer factor of ‖∂L/∂h_l‖² is χ₁
    # within 3 % in the ordered, critical and chaotic phase (48 nets each)
    ("xiao2018", "quick", 3),
    # at criticality the Jacobian spreads ≥ (L−1)/2 with Gaussian kernels, stays < 1 with delta-orthogonal
    ("xiao2018_isometry", "test", 2),
    pytest.param("xiao2018_isometry", "quick", 2, marks=slow),
    # depth 256, 200 SGD steps: delta-orthogonal at criticality trains, ordered and chaotic nets stay near
    # chance, Gaussian kernels at criticality below the trains bar
    ("xiao2018_training", "quick", 3),
    # vanilla RNNs: eq. 7's bound, vanishing below λ₁ = 1/γ (sigmoid too at 1 < λ₁ < 4), tanh explodes above,
    # clipping keeps exploding nets finite and lets the moderate ones learn
    ("pascanu2013", "test", 6),
    pytest.param("pascanu2013", "quick", 6, marks=slow),
    # a 1000-layer residual MLP without normalisation: He init with α = 1 overflows, Fixup and ReZero train
    ("zhang2019", "test", 3),
    pytest.param("zhang2019", "quick", 3, marks=slow),
    # tanh MLPs with dropout at init: ξ_c finite at the no-dropout critical point, measured from the nets' c-map
    # within 15 % of the theory with masks, smaller at higher rates
    ("schoenholz2017_dropout", "test", 3),
    pytest.param("schoenholz2017_dropout", "quick", 3, marks=slow),
    # residual tanh MLPs at init: ‖∂L/∂h_l‖² follows the mean-field recursion of residual nets at every layer,
    # and its total growth is subexponential in depth
    ("yang2017", "test", 2),
    # BN-MLPs at init: ‖∂L/∂h_l‖² grows by the mean-field λ(φ, B) within 5 %, more at small B and for φ
    # further from linear; depth 48 BN-ReLU stays near chance where depth 8 trains, leaky_relu:0.5 trains at 48
    ("yang2019", "test", 5),
    pytest.param("yang2019", "quick", 5, marks=slow),
    # shattered gradients at init: plain ReLU + BN nets' neighbouring input gradients decorrelate with
    # depth, residual nets' far less, looks-linear nets' stay at 1
    ("balduzzi2017", "test", 5),
    pytest.param("balduzzi2017", "quick", 5, marks=slow),
    # depth 50, no skips or norm: TAT and DKS nets train, faster than untransformed ones; TAT's C^∘L(0) = η
    ("martens2021", "test", 6),
    pytest.param("martens2021", "quick", 6, marks=slow),
    # transformer blocks at init: pure attention collapses to rank 1 doubly exponentially (order p > 1.2)
    # within 5 blocks, skip connections keep res > 1e-2 at block 12, the ReLU MLP speeds the collapse
    ("dong2021", "quick", 4),
    # the adding problem at T = 100, 150: the LSTM solves it, a tanh RNN stays at the baseline
    pytest.param("hochreiter1997", "quick", 4, marks=slow),
    # the adding problem at T = 150, 200: the IRNN beats the baseline, a tanh RNN stays at it
    pytest.param("le2015", "quick", 4, marks=slow),
    # attention-only transformers at init, 12 blocks: with α = 1 the tokens align and the queries' and keys'
    # gradients vanish against the values' (Post-LN; the quick profile adds ln = none), with α = 1/√L neither
    ("noci2022", "test", 3),
    pytest.param("noci2022", "quick", 6, marks=slow),
    # Post-LN vs Pre-LN transformers: at init the last block's gradient larger with Post-LN, more so at 12
    # blocks than 6; with Adam at 3e-3 Post-LN without warmup stays at chance, Pre-LN trains, warmup repairs it
    pytest.param("xiong2020", "quick", 6, marks=slow),
]


def _marked(row):
    """Those in SLOW_REPRODUCTIONS run only under -m slow."""
    values, marks = (row, ()) if type(row) is tuple else (row.values, row.marks)
    marks = [*marks] + ([slow] if values[:2] in SLOW_REPRODUCTIONS else [])
    return pytest.param(*values, marks=marks)


@pytest.mark.parametrize("name, profile, n_claims", [_marked(row) for row in REPRODUCTIONS])
def test_reproduction_passes_every_claim(reproduce, name, profile, n_claims):
    out = reproduce(name, profile).output
    assert out.count("PASS") == n_claims and "FAIL" not in out, out
