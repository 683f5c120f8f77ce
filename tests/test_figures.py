"""Every figure script in figures/ draws from a small stored results table (tests/data/<experiment>/,
written by tests/data/make_fixtures.py from a tiny sweep of each experiment that lists the figure)
into a PNG, and the figure shows what its data says: the panels, lines and labels that the
tables imply (one panel per depth, one line per seed or per layer, the theory lines, ...).

The stored tables are for drawing, and for the claims of vanishing and signal_propagation
(test_claims_fail.py); their other numbers come from nets too small or short to reproduce anything.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import QuadMesh  # noqa: E402

from satbench import plots, spec  # noqa: E402

DATA = Path(__file__).parent / "data"


def _fixtures():
    module_spec = importlib.util.spec_from_file_location("satbench_test_fixtures", DATA / "make_fixtures.py")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


FIXTURES = _fixtures()


_LISTED = {name: spec.load(name).figures for name in spec.known_experiments()}


def sources(figure: str) -> list[str]:
    """The experiments that list ``figure``."""
    return [name for name, figures in _LISTED.items() if figure in figures]


def thinned(summaries, n: int = 24):
    """``theory.summaries`` solved at ``n`` evenly spaced points of a longer input and interpolated
    in between. The mean-field solve costs ~60 ms a point on 2 cores; schoenholz2017 draws its
    theory curves at 500, 20 s of the default run that the checks here do not look at (test_theory
    tests the values)."""

    def wrapper(act, sigma_w2, sigma_b2, **kw):
        w, b = (v.ravel() for v in np.broadcast_arrays(np.asarray(sigma_w2, float), np.asarray(sigma_b2, float)))
        if len(w) <= n:
            return summaries(act, w, b, **kw)
        at = np.unique(np.linspace(0, len(w) - 1, n).round().astype(int))
        coarse = summaries(act, w[at], b[at], **kw)
        every = np.arange(len(w))
        nearest = at[np.abs(every[:, None] - at[None, :]).argmin(axis=1)]
        out = {k: (np.interp(every, at, np.asarray(v, float)) if np.asarray(v).dtype.kind == "f"
                   else np.asarray(v)[np.searchsorted(at, nearest)]) for k, v in coarse.items()}
        return {**out, "sigma_w2": w, "sigma_b2": b}

    return wrapper


def panels(fig) -> list:
    """The figure's axes without its colorbars."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def legend(ax) -> list[str]:
    leg = ax.get_legend()
    return [t.get_text() for t in leg.get_texts()] if leg is not None else []


def data_lines(ax, n_points: int | None = None) -> list:
    """Lines with at least one finite point (and exactly ``n_points`` points, if given)."""
    out = []
    for line in ax.get_lines():
        y = np.asarray(line.get_ydata(), float)
        if np.isfinite(y).any() and (n_points is None or len(y) == n_points):
            out.append(line)
    return out


def runs_values(results, column, **where) -> list:
    runs = results.runs
    for key, value in where.items():
        runs = runs[runs[key] == value]
    return list(dict.fromkeys(runs[column]))


# --- what each figure must show, from the tables it was drawn from -----------------------------


def check_activations(fig, results):
    ax_f, ax_d = panels(fig)
    acts = runs_values(results, "activation")
    assert legend(ax_f) == acts
    peaks = {a: float(np.max(line.get_ydata())) for a, line in zip(acts, ax_d.get_lines())}
    assert peaks["sigmoid"] == pytest.approx(0.25, abs=1e-3) and peaks["tanh"] == pytest.approx(1.0, abs=1e-3)


def check_gradient_flow(fig, results):
    depths = sorted(results.runs["depth"].unique())
    axes = panels(fig)
    assert [ax.get_title() for ax in axes] == [f"depth = {d}" for d in depths]
    n_lines = results.runs.groupby(["activation", "init"]).ngroups
    for ax, depth in zip(axes, depths):
        assert ax.get_yscale() == "log"
        lines = data_lines(ax, depth)  # one point per layer
        assert len(lines) == n_lines, (depth, len(lines))
        assert all(list(line.get_xdata()) == list(range(1, depth + 1)) for line in lines)


def check_saturation(fig, results):
    ax_sat, ax_steps, ax_acc = panels(fig)
    saturating = [a for a in runs_values(results, "activation") if a in ("sigmoid", "tanh")]
    assert [t for t in legend(ax_sat) if t in saturating] == saturating  # relu has no saturated fraction
    n_scales = results.runs["sigma_w2"].nunique()
    for ax in (ax_sat, ax_steps, ax_acc):
        assert ax.get_xscale() == "log"
        assert len(data_lines(ax, n_scales)) >= len(saturating)
    assert ax_acc.get_ylim() == pytest.approx((0, 1.02))


def check_phase_diagram(fig, results):
    acts = runs_values(results, "activation")
    axes = panels(fig)
    assert [ax.get_title().split(":")[0] for ax in axes] == acts
    for ax, act in zip(axes, acts):
        assert any(isinstance(c, QuadMesh) for c in ax.collections)
        (crosses,) = [line for line in ax.get_lines() if line.get_marker() == "x"]
        pts = results.runs[results.runs["activation"] == act][["mf_sigma_w2", "sigma_b2"]].drop_duplicates()
        assert sorted(zip(crosses.get_xdata(), crosses.get_ydata())) == sorted(map(tuple, pts.to_numpy()))
    assert len(fig.axes) == 2 * len(acts)  # a colorbar per panel


def check_gradient_vs_theory(fig, results):
    gauss = results.runs[results.runs["init"] == "gaussian"]
    depth = int(gauss["depth"].max())
    acts = runs_values(results, "activation", init="gaussian", depth=depth)
    axes = panels(fig)
    assert [ax.get_title().split(" ")[0] for ax in axes] == acts
    n_scales = gauss["mf_sigma_w2"].nunique()
    for ax in axes:
        assert ax.get_yscale() == "log"
        measured = [line for line in ax.get_lines() if line.get_marker() == "o"]
        theory = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
        assert len(measured) == len(theory) == n_scales == len(legend(ax))
        for line in measured:  # normalised to 1 at the last layer
            assert len(line.get_xdata()) == depth and line.get_ydata()[-1] == pytest.approx(1.0)


def check_jacobian_spectra(fig, results):
    acts = runs_values(results, "activation")
    depths = sorted(results.runs["depth"].unique())
    axes = panels(fig)
    assert [ax.get_title() for ax in axes] == [f"{a}, depth {d}" for d in depths for a in acts]
    for ax in axes:
        assert ax.get_xscale() == "log" and "var s²" in ax.texts[0].get_text()
        assert len(data_lines(ax)) >= 2  # a histogram per init (+ the line at s = 1)


def check_glorot2010(fig, results):
    ax_a, ax_c = panels(fig)
    depth = int(results.runs["depth"].max())
    assert legend(ax_a) == [f"layer {l}" for l in range(1, depth + 1)]
    assert {"sigmoid", "tanh", "standard", "glorot_uniform"} <= set(legend(ax_c))


def check_glorot2010_init(fig, results):
    axes = panels(fig)
    assert len(axes) == 6
    depth = int(results.runs["depth"].max())
    for ax in (axes[0], axes[1], axes[3], axes[4]):  # histograms: one per layer, fractions summing to 1
        lines = data_lines(ax)
        assert len(lines) == depth
        assert all(np.sum(line.get_ydata()) == pytest.approx(1.0) for line in lines)
    for ax in (axes[2], axes[5]):  # spread per layer: measured and theory for both inits
        assert len(data_lines(ax, depth)) == 4 and ax.get_yscale() == "log"


def check_hanin2018(fig, results):
    ax_l, ax_b, ax_m = panels(fig)
    widths = sorted(results.runs["width"].unique())
    assert legend(ax_l) == [f"width {w}" for w in widths]
    (theory,) = [line for line in ax_b.get_lines() if line.get_label().startswith("theory 5β")]
    np.testing.assert_allclose(theory.get_ydata(), 5 * np.asarray(theory.get_xdata()))


def check_he2015(fig, results):
    ax_q, ax_c = panels(fig)
    depth = int(results.runs["depth"].max())
    (halving,) = [line for line in ax_q.get_lines() if line.get_label() == "theory 2^-(l-1)"]
    np.testing.assert_allclose(halving.get_ydata(), 2.0 ** -(np.arange(1, depth + 1) - 1.0))
    assert len(data_lines(ax_q, depth)) >= len(results.runs)  # a line per seed and init (+ theory)
    assert len(data_lines(ax_c, results.curves["step"].nunique())) == len(results.runs)


def check_he2016(fig, results):
    axes = panels(fig)
    assert [ax.get_title().split(":")[0] for ax in axes] == ["plain", "residual"]
    depths = sorted(results.runs["depth"].unique())
    for ax in axes:
        assert legend(ax) == [str(d) for d in depths]


def check_ioffe2015(fig, results):
    ax_a, ax_b, ax_c = panels(fig)
    assert {"with BN", "without BN"} <= set(legend(ax_a))
    probes = results.layers["step"].nunique()
    for ax in (ax_b, ax_c):
        assert len(data_lines(ax, probes)) == 3  # 15th, 50th, 85th percentile


def check_klambauer2017(fig, results):
    axes = panels(fig)
    if (results.runs["steps"] > 0).any():  # training curves, a panel per depth
        depths = sorted(results.runs["depth"].unique())
        assert [ax.get_title() for ax in axes] == [f"{d} hidden layers" for d in depths]
        assert all(ax.get_yscale() == "log" for ax in axes)
        assert set(legend(axes[-1])) == {"SNN (SELU)", "ReLU + BatchNorm", "ReLU, plain (standard init)"}
    else:  # moments at init: mean and variance per layer, a line per seed
        assert len(axes) == 2
        depth = int(results.runs["depth"].max())
        for ax, target in zip(axes, (0.0, 1.0)):
            assert set(runs_values(results, "activation")) <= set(legend(ax))
            assert len(data_lines(ax, depth)) == len(results.runs)
            assert any(list(line.get_ydata()) == [target, target] for line in ax.get_lines())


def check_pennington2017(fig, results):
    axes = panels(fig)
    acts = [a for a in ("tanh", "hard_tanh", "relu") if a in set(results.runs["activation"])]
    assert [ax.get_title().split(",")[0] for ax in axes[: len(acts)]] == acts
    for ax in axes[: len(acts)]:
        assert ax.get_xscale() == "log" and len(ax.patches) >= 2  # spectra of both inits


def check_remedy_matrix(fig, results):
    axes = panels(fig)
    depths = sorted(results.runs["depth"].unique())
    heatmaps = axes[:3]
    rows = [t.get_text() for t in heatmaps[0].get_yticklabels()]
    assert "selu" in rows and len(rows) == len(set(zip(results.runs["activation"], results.runs["remedy"])))
    for ax in heatmaps:
        assert [t.get_text() for t in ax.get_xticklabels()] == [str(d) for d in depths]
    acts = [a for a in ("sigmoid", "tanh", "relu") if a in set(results.runs["activation"])]
    assert [ax.get_title().split(",")[0] for ax in axes[3:]] == acts


def check_saxe2014(fig, results):
    axes = panels(fig)
    assert len(axes) == 4
    assert set(legend(axes[0])) == {"orthogonal", "scaled Gaussian N(0, 1/n)"}
    depths = sorted(results.runs["depth"].unique())
    for ax in axes[2:]:
        assert legend(ax) == [f"depth {d}" for d in depths]


def check_schoenholz2017(fig, results):
    ax_heat, ax_xi = panels(fig)
    grid = results.runs.pivot_table(index="depth", columns="sigma_w2", values="final_train_accuracy")
    cells = [t.get_text() for t in ax_heat.texts]
    assert cells == [f"{v:.2f}" for v in grid.sort_index().to_numpy().ravel()]
    assert [t.get_text() for t in ax_heat.get_xticklabels()] == [f"{s:g}" for s in grid.columns]
    assert ax_xi.get_yscale() == "log"
    from satbench.figures.schoenholz2017 import correlation_depth_scales

    measured = correlation_depth_scales(results)
    lines = [ln for ln in ax_xi.get_lines() if ln.get_label().startswith("ξ_c measured")]
    assert len(measured) > 0 and len(lines) == 1  # the fixture probes pairs
    np.testing.assert_allclose(lines[0].get_ydata(), measured["xi_c_measured"])


def check_xiao2018(fig, results):
    ax_p, ax_f, ax_q, ax_last = panels(fig)
    runs = results.runs
    depth = 64 if 64 in set(runs["depth"]) else int(runs[runs["depth"] >= 32]["depth"].max())
    cells = runs.groupby(["init", "sigma_w2"]).ngroups
    assert len(data_lines(ax_p, depth)) == 2 * cells  # measured (one point per layer) and χ₁^(L−1−l)
    assert ax_p.get_yscale() == "log" and ax_f.get_xscale() == "log"
    assert [t.get_text() for t in ax_f.get_xticklabels()] == [f"{s:g}" for s in sorted(runs["sigma_w2"].unique())]
    assert len(data_lines(ax_q, depth)) == cells
    assert "6ξ_c" in ax_last.get_title() and ax_last.get_yscale() == "log"


def check_xiao2018_training(fig, results):
    ax_c, ax_f = panels(fig)
    runs = results.runs
    deepest = runs[runs["depth"] == runs["depth"].max()]
    n_logs = results.curves["step"].nunique()
    curves = data_lines(ax_c, n_logs)
    assert len(curves) == deepest.groupby(["init", "sigma_w2"]).ngroups  # one curve per kernel and σ_w²
    assert str(int(runs["depth"].max())) in ax_c.get_title()
    assert ax_f.get_xscale() == "log" and ax_f.get_ylim()[1] <= 1.05


def check_xiao2018_isometry(fig, results):
    ax_s, ax_v, ax_m = panels(fig)
    depths = sorted(results.runs["depth"].unique())
    inits = sorted(results.runs["init"].unique())
    assert ax_s.get_xscale() == "log" and len(ax_s.patches) == len(inits) * len(depths)  # a histogram each
    assert ax_v.get_yscale() == "log" and ax_m.get_yscale() == "log"
    assert [t.get_text() for t in ax_v.get_xticklabels()] == [str(d) for d in depths]
    assert {f"{i} (mean over seeds)" for i in inits} <= set(legend(ax_m))


def check_pascanu2013(fig, results):
    axes = panels(fig)
    assert len(axes) == 4
    gains = sorted(np.sqrt(results.runs["sigma_w2"].unique()))
    for ax, act in zip(axes[:2], ["tanh", "sigmoid"]):
        assert act in ax.get_title() and len(legend(ax)) == len(gains)
    assert {"tanh: measured", "sigmoid: measured", "tanh: bound (γλ₁)²"} <= set(legend(axes[2]))


def _check_adding(fig, results, nets):
    axes = panels(fig)
    assert len(axes) == 3
    lengths = sorted(results.runs["seq_len"].unique())
    assert set(legend(axes[0])) == {f"{n}, T = {t}" for n in nets for t in lengths}
    assert set(legend(axes[2])) == set(nets)


def check_hochreiter1997(fig, results):
    _check_adding(fig, results, ["LSTM", "RNN tanh, gaussian"])


def check_le2015(fig, results):
    _check_adding(fig, results, ["IRNN", "RNN tanh, gaussian"])


def check_zhang2019(fig, results):
    ax_q, ax_loss = panels(fig)
    branches = sorted(results.runs["residual_branch"].unique())
    assert ax_q.get_yscale() == "log" and ax_loss.get_yscale() == "log"
    from satbench.figures.zhang2019 import BRANCHES

    names = sorted(BRANCHES[b] for b in branches)
    assert sorted(legend(ax_q)) == names and sorted(legend(ax_loss)) == names
    # one RMS line per branch; the He/α = 1 net's ends where float32 overflowed
    assert len(ax_q.get_lines()) == len(branches)


def check_yang2019(fig, results):
    ax_l, ax_b, ax_t = panels(fig)
    runs = results.runs
    depth = int(runs["depth"].max())
    deep = runs[runs["depth"] == depth]
    acts = sorted(runs["activation"].unique())
    assert set(legend(ax_l)) == set(acts)
    assert len(data_lines(ax_l, depth)) == len(acts)  # the median curve of each activation
    assert len(data_lines(ax_l, depth - 1)) == len(acts)  # its theory slope over layers 2..depth
    assert ax_b.get_xscale() == "log" and set(acts) | {"linear φ"} == set(legend(ax_b))
    points = np.concatenate([c.get_offsets() for c in ax_b.collections])
    assert len(points) == len(deep)  # a marker per deepest net
    np.testing.assert_allclose(sorted(points[:, 1]), sorted(deep["signal_decay"]), rtol=1e-6)
    assert len(data_lines(ax_t, results.curves["step"].nunique())) == runs.groupby(["activation", "depth"]).ngroups


def check_balduzzi2017(fig, results):
    from satbench.figures import balduzzi2017

    axes = panels(fig)
    picks = balduzzi2017.example_nets(results)
    grid_axes = axes[1: 1 + len(picks)]  # the autocorrelation panel was added first
    assert [ax.get_title() for ax in grid_axes] == list(picks)
    n = results.runs["probe_batch"].iloc[0]
    for ax, cid in zip(grid_axes, picks.values()):
        (line,) = ax.get_lines()  # g / max|g| along the grid
        g = balduzzi2017.gradient_along_grid(results, cid)
        np.testing.assert_allclose(line.get_ydata(), g / np.abs(g).max(), rtol=1e-6)
        assert len(line.get_xdata()) == n
    ax = axes[-1]
    assert ax.get_yscale() == "log"
    (paper,) = [line for line in ax.get_lines() if line.get_label() == "paper, plain: 2^−L"]
    np.testing.assert_allclose(paper.get_ydata(), 2.0 ** -np.asarray(paper.get_xdata(), float))
    nets = set(balduzzi2017.correlations(results)["net"])
    assert nets <= set(legend(ax))


def check_dong2021(fig, results):
    from satbench.figures import dong2021

    ax_res, ax_cos = panels(fig)
    blocks = dong2021.blocks(results)
    assert legend(ax_res) == [n for n in dong2021.NETS.values() if n in set(blocks["net"])]
    depth = int(results.runs["depth"].max())
    assert ax_res.get_yscale() == "log" and ax_cos.get_yscale() == "log"
    # one line per net and seed on each side: res per block, and 1 − token cosine, at the drawing floor
    # when below it
    per_net = [g.sort_values("layer") for _, g in blocks.groupby(["net", "seed"])]
    for ax, values in ((ax_res, [g["rank_residual"] for g in per_net]),
                       (ax_cos, [1 - g["token_cosine"] for g in per_net])):
        drawn = sorted(tuple(line.get_ydata()) for line in data_lines(ax, depth))
        want = sorted(tuple(np.maximum(np.asarray(v, float), dong2021.DRAW_FLOOR)) for v in values)
        assert len(drawn) == len(results.runs) == len(want)
        np.testing.assert_allclose(np.array(drawn), np.array(want), rtol=1e-6)


def test_dong2021_convergence_order_tells_exponential_from_doubly_exponential():
    """The order p of dong2021's claim on sequences of known law: exponential decay at any rate
    gives 1, r_{l+1} = c r_l² gives 2 and r_{l+1} = c r_l³ gives 3; values below float32 rounding
    (dong2021.RELIABLE) are left out, and fewer than three reliable blocks give NaN."""
    import pandas as pd

    from satbench.figures import dong2021

    def law(first, step, n=12):
        r = [first]
        for _ in range(n - 1):
            r.append(step(r[-1]))
        return pd.Series(r, index=range(1, n + 1))

    for q in (0.5, 0.05):
        assert dong2021.convergence_order(law(0.3, lambda r: q * r)) == pytest.approx(1.0, abs=1e-9)
    assert dong2021.convergence_order(law(0.3, lambda r: 0.5 * r * r)) == pytest.approx(2.0, abs=1e-9)
    assert dong2021.convergence_order(law(0.3, lambda r: 0.5 * r**3)) == pytest.approx(3.0, abs=1e-9)
    # a quadratic collapse that hits the float floor: the floor's flat values do not drag p toward 0
    floored = law(0.3, lambda r: max(0.5 * r * r, 5e-8))
    assert dong2021.convergence_order(floored) == pytest.approx(2.0, abs=1e-9)
    assert np.isnan(dong2021.convergence_order(pd.Series([0.3, 1e-7, 0.0], index=[1, 2, 3])))


def check_martens2021(fig, results):
    ax_a, ax_b = panels(fig)
    from satbench.figures import martens2021

    nets = sorted(martens2021._labelled(results.runs)["net"].unique())
    assert legend(ax_a) == ["net", *nets] or legend(ax_a) == nets
    assert ax_a.get_yscale() == "log"
    # right: the whole net's C map of each transformed net and of untransformed ReLU, through
    # C^∘L(0) = η for TAT and 0 for DKS (C(0) = 0 in every layer)
    lines = {line.get_label(): line for line in ax_b.get_lines()}
    drawn = set(martens2021.drawn_nets(results)["net"])
    assert drawn <= set(lines) and drawn
    eta = float(results.runs.loc[results.runs["act_transform"] == "tat", "tat_c0"].iloc[0])
    for net in drawn:
        x, y = (np.asarray(v, float) for v in lines[net].get_data())
        at_zero = float(np.interp(0.0, x, y))
        if net.endswith("TAT"):
            assert abs(at_zero - eta) < 0.005, (net, at_zero)
        elif net.endswith("DKS"):
            assert abs(at_zero) < 1e-3, (net, at_zero)



def check_noci2022(fig, results):
    """A row per ln: the token cosine and the Q/V, K/V gradient ratios per block, each line the
    median over seeds of what the layers table says at init (α = 1: residual_scale 1; α = 1/√L:
    residual_scale · √depth = 1)."""
    layers = results.with_config("layers")
    layers = layers[layers["step"] == 0]
    lns = [ln for ln in ("none", "post", "pre") if ln in set(layers["ln"])]
    axes = panels(fig)
    assert len(axes) == 2 * len(lns)
    for ln, ax_c, ax_g in zip(lns, axes[::2], axes[1::2]):
        assert ax_c.get_title().startswith(f"ln = {ln}:") and ax_g.get_title().startswith(f"ln = {ln}:")
        assert legend(ax_c) == ["α = 1", "α = 1/√L"]
        assert legend(ax_g) == ["α = 1: Q/V", "α = 1: K/V", "α = 1/√L: Q/V", "α = 1/√L: K/V"]
        assert ax_g.get_yscale() == "log"
        sub = layers[layers["ln"] == ln]
        scaled = np.isclose(sub["residual_scale"] * np.sqrt(sub["depth"]), 1.0)
        for label, rows in (("α = 1", sub[sub["residual_scale"] == 1.0]), ("α = 1/√L", sub[scaled])):
            cosine = rows.groupby("layer")["token_cosine"].median()
            (line,) = [ln_ for ln_ in ax_c.get_lines() if ln_.get_label() == label]
            np.testing.assert_allclose(line.get_ydata(), cosine.to_numpy(), rtol=1e-6)
            ratio = (rows["grad_norm_q"] / rows["grad_norm_v"]).groupby(rows["layer"]).median()
            (line,) = [ln_ for ln_ in ax_g.get_lines() if ln_.get_label() == f"{label}: Q/V"]
            np.testing.assert_allclose(line.get_ydata(), ratio.to_numpy(), rtol=1e-6)


def check_schoenholz2017_dropout(fig, results):
    """Left: a theory line per rate on a log scale, every net's measured ξ_c as a dot and each
    setting's seeds' mean as a ring; right: a point per measurable setting at (theory, measured)."""
    from satbench.figures import schoenholz2017_dropout as fig_module

    ax_xi, ax_vs = panels(fig)
    runs = results.runs
    rates = sorted(runs["dropout"].unique())
    assert ax_xi.get_yscale() == "log" and legend(ax_xi) == [f"p = {p:g}" for p in rates] + ["depth / 3"]
    dots = [line for line in ax_xi.get_lines() if line.get_marker() == "."]
    got = np.concatenate([line.get_ydata() for line in dots])
    np.testing.assert_allclose(np.sort(got[np.isfinite(got)]), np.sort(runs["xi_c_measured"].dropna()), rtol=1e-6)
    table = fig_module.scales(results)
    shown = table[table["measurable"]]
    points = np.concatenate([np.c_[line.get_xdata(), line.get_ydata()] for line in ax_vs.get_lines()
                             if line.get_marker() == "o"]) if len(shown) else np.zeros((0, 2))
    np.testing.assert_allclose(points[np.argsort(points[:, 0])], shown[["theory", "measured"]].sort_values(
        "theory").to_numpy(), rtol=1e-6)
    for rate in rates:  # the theory line of each rate through the runs' xi_c at the swept σ_w²
        (curve,) = [line for line in ax_xi.get_lines() if line.get_label() == f"p = {rate:g}"]
        want = runs[runs["dropout"] == rate].groupby("sigma_w2")["xi_c"].first()
        np.testing.assert_allclose(curve.get_xdata(), want.index)
        np.testing.assert_allclose(curve.get_ydata(), want.to_numpy(), rtol=1e-9)


def check_yang2017(fig, results):
    """Left: a thin line per deepest net whose y is its measured profile, and the recursion (dashed) per α;
    right: a dot per net at its measured ln G, the recursion's ln G at every depth."""
    from satbench.figures import yang2017

    ax_l, ax_g = panels(fig)
    table = yang2017.profiles(results)
    deepest = table[table["depth"] == table["depth"].max()]
    measured = [line for line in ax_l.get_lines() if line.get_linestyle() == "-" and len(line.get_xdata())]
    assert len(measured) == len(deepest)
    for want in deepest["measured"]:
        assert sum(np.allclose(line.get_ydata(), want, rtol=1e-6) for line in measured) == 1
    dashed = [line for line in ax_l.get_lines() if line.get_linestyle() == "--" and len(line.get_xdata())]
    assert len(dashed) == deepest["alpha"].nunique()
    dots = np.concatenate([line.get_ydata() for line in ax_g.get_lines() if line.get_marker() == "o"])
    np.testing.assert_allclose(sorted(dots), sorted(table["log_growth"]), rtol=1e-6)
    for alpha, g in table.groupby("alpha"):  # the recursion's curve passes through its ln G at each depth
        (curve,) = [line for line in ax_g.get_lines() if line.get_linestyle() == "-"
                    and line.get_color() == yang2017.COLOURS[alpha] and len(line.get_xdata())]
        for depth, want in g.groupby("depth")["log_growth_theory"].first().items():
            assert curve.get_ydata()[list(curve.get_xdata()).index(depth)] == pytest.approx(want, rel=1e-9)


def check_xiong2020(fig, results):
    ax_init, *ax_train = panels(fig)
    runs = results.runs
    depths = sorted(runs["depth"].unique())
    assert [ax.get_title() for ax in ax_train] == [f"{d} blocks: training" for d in depths]
    assert ax_init.get_yscale() == "log"
    # a median line per (ln, depth) over the blocks, from the step-0 rows read here directly
    layers = results.with_config("layers")
    at_init = layers[layers["step"] == 0]
    for ln, name in (("post", "Post-LN"), ("pre", "Pre-LN")):
        for depth in depths:
            (line,) = [x for x in ax_init.get_lines() if x.get_label() == f"{name}, {depth} blocks"]
            rows = at_init[(at_init["ln"] == ln) & (at_init["depth"] == depth)]
            want = rows.groupby(["layer", "seed"])["grad_norm"].mean().groupby("layer").median()
            np.testing.assert_allclose(line.get_xdata(), np.arange(1, depth + 1))
            np.testing.assert_allclose(line.get_ydata(), want.to_numpy(), rtol=1e-6)
    logged = results.curves["step"].nunique()
    warm = int(runs["warmup_steps"].max())
    for ax in ax_train:
        assert len(data_lines(ax, logged)) == 4  # Post-LN and Pre-LN, each with and without warmup
        assert {"Post-LN, no warmup", f"Post-LN, warmup {warm}", "Pre-LN, no warmup"} <= set(legend(ax))


CHECKS = {name[len("check_"):]: f for name, f in globals().items() if name.startswith("check_")}


def test_every_figure_has_a_check_and_stored_results():
    figures = plots.known_figures()
    assert set(CHECKS) == set(figures)
    for figure in figures:
        assert sources(figure), f"no experiment lists {figure}"
        for name in sources(figure):
            assert name in FIXTURES.FIXTURES and (DATA / name / "runs.parquet").exists(), (
                f"no stored results for {name}: add it to tests/data/make_fixtures.py and run it")


def test_stored_results_are_small():
    """The figures' stored results, and the model-family regression reference (its own budget). A
    reproduction's tables take 14-27 KB (the two claims-checked sweeps 41 and 76 KB); 600 KB holds the
    26 stored today with room for a few more."""
    regression = DATA / "regression"
    figures = sum(p.stat().st_size for p in DATA.rglob("*") if p.is_file() and regression not in p.parents)
    assert figures < 600_000, figures
    assert sum(p.stat().st_size for p in regression.rglob("*") if p.is_file()) < 300_000


@pytest.mark.parametrize("figure", plots.known_figures())
def test_figure_draws_from_stored_results(figure, tmp_path, monkeypatch):
    if figure == "phase_diagram":  # the theory grid behind the picture, coarser: 27 points, not 231
        from satbench.figures import phase_diagram

        monkeypatch.setattr(phase_diagram, "SIGMA_W2", np.linspace(0.5, 4.5, 9))
        monkeypatch.setattr(phase_diagram, "SIGMA_B2", np.linspace(0.0, 0.3, 3))
    if figure == "schoenholz2017":
        from satbench import theory

        monkeypatch.setattr(theory, "summaries", thinned(theory.summaries))
    for name in sources(figure):
        results = FIXTURES.load(name)
        fig = plots.figure_module(figure).plot(results)
        try:
            for ax in panels(fig):  # nothing left empty
                assert ax.get_lines() or ax.collections or ax.patches or ax.images, (name, ax.get_title())
            CHECKS[figure](fig, results)
            path = tmp_path / f"{figure}-{name}.png"
            fig.savefig(path, dpi=40)
        finally:
            plt.close(fig)
        image = plt.imread(path)
        assert image.shape[0] > 50 and image.shape[1] > 50 and image[..., :3].std() > 0.05, (name, image.shape)
