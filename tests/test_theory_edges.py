"""Mean-field theory at its edges: q* = ∞, non-finite inputs, large q, and the kind of point
a critical σ_w² is.

References are closed forms (ReLU's linear q-map and arc-cosine kernel; Williams 1997's
arcsine kernel for erf), scipy quadrature and analytic bounds, never the code's own output.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import integrate, optimize, special

from satbench import cli, spec, theory

SQ2PI = math.sqrt(2.0 * math.pi)


def rel(a, b):
    return abs(float(a) - float(b)) / abs(float(b))


def ref_expect(g, q, breaks=(-20.0, -1.0, 0.0, 1.0, 20.0), epsrel=1e-12):
    """E[g(x)], x ~ N(0, q), by scipy quad split where the activations have their structure."""
    s = math.sqrt(q)
    lo, hi = -14 * s, 14 * s
    pts = [lo] + [p for p in breaks if lo < p < hi] + [hi]

    def integrand(x):
        return float(g(x)) * math.exp(-x * x / (2 * q)) / (s * SQ2PI)

    return sum(integrate.quad(integrand, a, b, epsabs=0, epsrel=epsrel, limit=500)[0]
               for a, b in zip(pts[:-1], pts[1:]))


def ref_q_star(phi, sw2, sb2):
    """Fixed point of the q-map, as the root of Q(q) − q on a bracket around σ_w² + σ_b² (bounded φ)."""
    return optimize.brentq(lambda q: sw2 * ref_expect(lambda x: phi(x) ** 2, q) + sb2 - q,
                           1e-3, 2 * sw2 + sb2 + 10, xtol=1e-14, rtol=1e-14)


# ------------------------------------------------------------------ q* = ∞
def _arc_cosine(c):
    """ReLU's normalised c-map (Cho & Saul 2009), the q → ∞ limit of any φ with φ(x) − relu(x) → 0."""
    return (math.sqrt(1 - c * c) + (math.pi - math.acos(c)) * c) / math.pi


def test_reference_facts_for_diverging_q_star():
    """The facts the next test relies on, checked without satbench."""
    # softplus(x)² > relu(x)², so at σ_w² = 2: Q(q) − q − σ_b² = 2 E[softplus² − relu²] > 0 at every q
    for q in (1.0, 1e2, 1e4):
        excess = 2 * ref_expect(lambda x: np.logaddexp(0.0, x) ** 2 - max(x, 0.0) ** 2, q, epsrel=1e-8)
        assert excess > 0, q
    # the arc-cosine kernel: k(1) = 1, k'(1) = 1, k(c) > c below 1 -> c* = 1, approached algebraically
    h = 1e-6
    assert _arc_cosine(1.0) == pytest.approx(1.0)
    assert (_arc_cosine(1.0) - _arc_cosine(1.0 - h)) / h == pytest.approx(1.0, abs=1e-3)
    assert all(_arc_cosine(c) > c for c in np.linspace(-1, 0.999, 50))


DIVERGING = [("relu", 2.0, 0.1), ("relu", 2.0, 0.3), ("relu", 2.0, 3.0), ("relu", 3.0, 0.1),
             ("softplus", 2.0, 0.0), ("softplus", 2.0, 0.05), ("softplus", 2.0, 0.3), ("softplus", 2.0, 3.0)]


@pytest.mark.parametrize("act", ["relu", "softplus"])
def test_diverging_q_star_is_inf_with_limit_values(act):
    """ReLU at σ_w² = 2: Q(q) = q + σ_b² exactly, no fixed point for σ_b² > 0 (printed q* = 2.08e14
    before). softplus at σ_w² = 2 has none for any σ_b² (above). Both report q* = ξ_q = ∞, χ₁ at
    the limit q → ∞ (φ'² → step, so χ₁ = σ_w²/2), and the arc-cosine limit of the c-map:
    c* = 1, χ_c = 1, ξ_c = ∞. The phase follows χ₁."""
    rows = [r for r in DIVERGING if r[0] == act]
    w = np.array([r[1] for r in rows])
    b = np.array([r[2] for r in rows])
    table = theory.summaries(act, w, b)  # vmapped, as the engine calls it
    for i, (_, sw2, sb2) in enumerate(rows):
        one = theory.summary(act, sw2, sb2)
        for got in ({k: table[k][i] for k in one}, one):
            assert np.isinf(got["q_star"]) and np.isinf(got["xi_q"]), (sw2, sb2, got)
            assert got["chi1"] == pytest.approx(sw2 / 2, rel=1e-9), (sw2, sb2)
            assert got["c_star"] == 1.0 and got["chi_c"] == 1.0 and np.isinf(got["xi_c"]), (sw2, sb2, got)
            assert got["phase"] == ("critical" if sw2 == 2.0 else "chaotic")


def test_cli_prints_inf_for_a_diverging_q_star():
    r = CliRunner().invoke(cli.main, ["theory", "relu", "--sigma-w2", "2", "--sigma-b2", "0.3"])
    assert r.exit_code == 0, r.output
    assert "q*   = inf" in r.output and "ξ_q  = inf" in r.output and "χ₁   = 1\n" in r.output
    assert "c*   = 1\n" in r.output and "ξ_c  = inf" in r.output and "critical" in r.output


def test_large_finite_q_star_near_the_relu_edge_survives():
    """σ_w² = 2 − 1e-9: q* = σ_b²/(1 − σ_w²/2) = 2e8 is a real fixed point, not a divergence."""
    for sw2 in (2.0 - 1e-9, 1.999):
        got = theory.summary("relu", sw2, 0.1)["q_star"]
        assert got == pytest.approx(0.1 / (1 - sw2 / 2), rel=1e-6)


# ----------------------------------------------------------- non-finite inputs
@pytest.mark.parametrize("args", [
    ["--sigma-w2", "nan"], ["--sigma-w2", "inf"], ["--sigma-w2", "-inf"],
    ["--sigma-w2", "1", "--sigma-b2", "nan"], ["--sigma-w2", "1", "--sigma-b2", "inf"],
    ["--critical", "--sigma-b2", "nan"],
])
def test_cli_theory_refuses_non_finite_values(args):
    r = CliRunner().invoke(cli.main, ["theory", "relu", *args])
    option = args[-2]
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("satbench: error: "), r.stderr
    assert option in lines[0] and "finite" in lines[0], lines[0]
    assert r.stdout == ""


TOML = """
[experiment]
name = "nonfinite"
[fixed]
steps = 0
width = 8
depth = 2
"""


@pytest.mark.parametrize("line", ["sigma_w2 = nan", "sigma_w2 = inf", "sigma_w2 = -inf", "sigma_b2 = nan",
                                  "[grid]\nsigma_w2 = [1.0, nan]", "[grid]\nsigma_w2 = [inf, 2.0]"])
def test_experiment_files_refuse_non_finite_variances(line):
    """TOML has nan and inf literals; they must not reach the theory columns."""
    key = line.split("=")[0].split()[-1]
    with pytest.raises(spec.SpecError, match=f"{key} must be finite"):
        spec.parse(TOML + line + "\n")


# ---------------------------------------------------------------- large q
def _erf_closed_form(sw2, sb2):
    """Williams 1997 (arcsine kernel) for φ = erf:
    E[erf(u1) erf(u2)] = (2/π) arcsin(2qc/(1 + 2q)), E[erf'²] = (4/π)/√(1 + 4q),
    E[erf'(u1) erf'(u2)] = (4/π)/√((1 + 2q)² − (2qc)²). Returns (q*, χ₁, c*, χ_c)."""
    qmap = lambda q: sw2 * (2 / math.pi) * math.asin(2 * q / (1 + 2 * q)) + sb2  # noqa: E731
    q = optimize.brentq(lambda q: qmap(q) - q, 1e-9, 2 * sw2 + sb2 + 1, xtol=1e-300, rtol=1e-15)
    chi1 = sw2 * (4 / math.pi) / math.sqrt(1 + 4 * q)
    cmap = lambda c: (sw2 * (2 / math.pi) * math.asin(2 * q * c / (1 + 2 * q)) + sb2) / q  # noqa: E731
    c = 0.0 if sb2 == 0 else optimize.brentq(lambda c: cmap(c) - c, 0.0, 0.5, xtol=1e-300, rtol=1e-15)
    chi_c = sw2 * (4 / math.pi) / math.sqrt((1 + 2 * q) ** 2 - (2 * q * c) ** 2)
    return q, chi1, c, chi_c


ERF_W = (1e2, 1e3, 1e4, 1e6, 1e8, 1e12)


def test_erf_matches_its_closed_forms_at_large_q():
    """Before: χ_c at σ_w² = 1e4 was 8.8e-13 (closed form 0.64), χ₁ at 1e6 17 % off. The rule
    now resolves φ's scale-1 structure whatever √q is."""
    w = np.array(ERF_W * 2)
    b = np.array([0.05] * len(ERF_W) + [0.0] * len(ERF_W))
    table = theory.summaries("erf", w, b)
    for i, (sw2, sb2) in enumerate(zip(w, b)):
        q, chi1, c, chi_c = _erf_closed_form(sw2, sb2)
        assert rel(table["q_star"][i], q) < 1e-10, (sw2, sb2)
        assert rel(table["chi1"][i], chi1) < 1e-9, (sw2, sb2)
        # c* ~ σ_b²/q is tiny; the 2-D rule resolves the c-map to ~1e-11 absolute there
        assert table["c_star"][i] == pytest.approx(c, rel=1e-5, abs=1e-10), (sw2, sb2)
        assert rel(table["chi_c"][i], chi_c) < 1e-6, (sw2, sb2)
        assert table["phase"][i] == "chaotic"


def test_tanh_and_hard_tanh_at_large_q_match_scipy():
    """tanh at σ_w² = 1e4, σ_b² = 0: c* = 0 (odd φ), so χ_c = σ_w² E[φ'(√q* z)]², a 1-D integral;
    hard_tanh χ₁ = σ_w² erf(1/√(2q*)) (closed form) at q* ~ 1e6."""
    sech2 = lambda x: 1 / np.cosh(min(abs(x), 300.0)) ** 2  # noqa: E731
    s = theory.summary("tanh", 1e4, 0.0)
    q = ref_q_star(np.tanh, 1e4, 0.0)
    assert rel(s["q_star"], q) < 1e-10
    assert rel(s["chi1"], 1e4 * ref_expect(lambda x: sech2(x) ** 2, q)) < 1e-9
    assert s["c_star"] == pytest.approx(0.0, abs=1e-12)
    assert rel(s["chi_c"], 1e4 * ref_expect(sech2, q) ** 2) < 1e-6
    h = theory.summary("hard_tanh", 1e6, 0.05)
    q = ref_q_star(lambda x: np.clip(x, -1, 1), 1e6, 0.05)
    assert rel(h["q_star"], q) < 1e-10
    assert rel(h["chi1"], 1e6 * special.erf(1 / math.sqrt(2 * q))) < 1e-9


def test_relu_c_map_at_large_q_is_the_arc_cosine_kernel():
    """The 2-D rule with its fine core switched on (q = 1e6 and 1e10) keeps the accuracy it has at
    q = 1 on a kinked φ: c-map = k(c), slope = (π − arccos c)/π (a guard: this held before too)."""
    import jax

    with jax.enable_x64(True):
        for q in (1e6, 1e10):
            for c in (0.0, 0.5, 0.9):
                m, slope = theory.c_map_and_slope("relu", c, q, 2.0, 0.0)
                assert rel(m, _arc_cosine(c)) < 3e-6, (q, c)
                assert rel(slope, (math.pi - math.acos(c)) / math.pi) < 1e-5, (q, c)


# ---------------------------------------------------------- critical kinds
def _silu_fold(sb2):
    """σ_w² and q where silu's q-map touches the diagonal (g = Q − q has a double root), by scipy."""
    silu = lambda x: x * special.expit(x)  # noqa: E731

    def g_min(sw2):
        res = optimize.minimize_scalar(
            lambda lq: sw2 * ref_expect(lambda x: silu(x) ** 2, math.exp(lq)) + sb2 - math.exp(lq),
            bounds=(-1.0, 3.0), method="bounded", options={"xatol": 1e-10})
        return res.fun, math.exp(res.x)

    sw2 = optimize.brentq(lambda w: g_min(w)[0], 2.05, 2.25, xtol=1e-12)
    return sw2, g_min(sw2)[1]


# slow (56 s on 2 cores: four activations' critical-point solves); the default run checks the CLI's
# line for one kind (tanh's crossing) below
@pytest.mark.slow
def test_critical_point_kinds():
    """What kind of point a critical σ_w² is, derived from the solves on either side of it."""
    # gelu, σ_b² = 0: q* = 0 (stable, slope σ_w²/4) until Q(1) = 1, i.e. σ_w² = 1/E[gelu(z)²]; then ∞
    gelu_e2 = ref_expect(lambda x: (x * special.ndtr(x)) ** 2, 1.0)
    p = theory.critical_point("gelu", 0.0)
    assert rel(p["sigma_w2"], 1 / gelu_e2) < 1e-7
    assert p["kind"] == "jump" and "q* jumps from 0 to ∞" in p["text"]
    assert "χ₁ jumps from 0.588 to 1.18" in p["text"]  # σ_w²/4 -> σ_w²/2
    # silu, σ_b² = 0.3: the stable fixed point merges with an unstable one (fold), then q* = ∞
    fold_w, fold_q = _silu_fold(0.3)
    p = theory.critical_point("silu", 0.3)
    assert rel(p["sigma_w2"], fold_w) < 1e-7
    assert p["kind"] == "saddle-node" and "∞" in p["text"]
    assert p["q_star_below"] == pytest.approx(fold_q, rel=1e-2)
    # relu/softplus, σ_b² > 0: χ₁ → 1 continuously while q* grows without bound (σ_w² = 2)
    for act in ("relu", "softplus"):
        p = theory.critical_point(act, 0.1)
        assert rel(p["sigma_w2"], 2.0) < 1e-7 and p["kind"] == "divergence", (act, p)
    # relu, σ_b² = 0: Q(q) = σ_w² q/2: q* = 0 below 2, ∞ above, but χ₁ = σ_w²/2 is continuous
    p = theory.critical_point("relu", 0.0)
    assert p["kind"] == "jump" and "q* jumps from 0 to ∞" in p["text"] and "χ₁ jumps" not in p["text"]


def test_cli_critical_says_what_kind_of_point():
    r = CliRunner().invoke(cli.main, ["theory", "tanh", "--critical", "--sigma-b2", "0.05"])
    assert r.exit_code == 0
    assert r.output.strip() == "tanh: critical σ_w² = 1.7610 at σ_b² = 0.05: χ₁ crosses 1 smoothly at q* = 0.57"


@pytest.mark.slow  # 40 s on 2 cores; test_critical_point_kinds checks the same kinds without the CLI
def test_cli_critical_names_a_jump_and_a_saddle_node():
    runner = CliRunner()
    r = runner.invoke(cli.main, ["theory", "gelu", "--critical"])
    assert r.exit_code == 0 and "2.3517" in r.output
    assert "(χ₁ = 1)" not in r.output and "q* jumps from 0 to ∞" in r.output
    r = runner.invoke(cli.main, ["theory", "silu", "--critical", "--sigma-b2", "0.3"])
    assert r.exit_code == 0 and "saddle-node" in r.output
