"""Mean-field theory checked against independent computations.

References are scipy quadrature of numpy re-implementations of each
activation (with analytic derivatives, not autodiff), closed forms (ReLU
arc-cosine kernel, hard-tanh erf), published constants (SELU, Schoenholz et
al.'s critical point) and a numpy Monte Carlo of deep Jacobians.
"""

from __future__ import annotations

import functools
import math
import uuid

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, special

from satbench import activations, theory

SQ2PI = math.sqrt(2.0 * math.pi)
SELU_LAMBDA = 1.0507009873554805
SELU_ALPHA = 1.6732632423543772


def _x64():
    return jax.enable_x64(True)


# ------------------------------------------------ independent numpy references
def _sig(x):
    return special.expit(x)


# name -> (φ, φ', kink locations); derivatives written out by hand
REFERENCE = {
    "sigmoid": (_sig, lambda x: _sig(x) * (1 - _sig(x)), []),
    "tanh": (np.tanh, lambda x: 1 - np.tanh(x) ** 2, []),
    "relu": (lambda x: np.maximum(x, 0.0), lambda x: (x > 0) * 1.0, [0.0]),
    "leaky_relu": (
        lambda x: np.where(x >= 0, x, 0.01 * x),
        lambda x: np.where(x >= 0, 1.0, 0.01),
        [0.0],
    ),
    "leaky_relu:0.2": (
        lambda x: np.where(x >= 0, x, 0.2 * x),
        lambda x: np.where(x >= 0, 1.0, 0.2),
        [0.0],
    ),
    "elu": (
        lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
        lambda x: np.where(x > 0, 1.0, np.exp(np.minimum(x, 0))),
        [0.0],
    ),
    "selu": (
        lambda x: SELU_LAMBDA * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0))),
        lambda x: SELU_LAMBDA * np.where(x > 0, 1.0, SELU_ALPHA * np.exp(np.minimum(x, 0))),
        [0.0],
    ),
    "gelu": (
        lambda x: x * special.ndtr(x),
        lambda x: special.ndtr(x) + x * np.exp(-x * x / 2) / SQ2PI,
        [],
    ),
    "silu": (lambda x: x * _sig(x), lambda x: _sig(x) * (1 + x * (1 - _sig(x))), []),
    "softplus": (lambda x: np.logaddexp(0.0, x), _sig, []),
    "softsign": (lambda x: x / (1 + np.abs(x)), lambda x: 1 / (1 + np.abs(x)) ** 2, [0.0]),
    "hard_tanh": (lambda x: np.clip(x, -1, 1), lambda x: (np.abs(x) < 1) * 1.0, [-1.0, 1.0]),
    "erf": (special.erf, lambda x: 2 / math.sqrt(math.pi) * np.exp(-x * x), []),
    "linear": (lambda x: x, lambda x: np.ones_like(x), []),
}
KINKED = {"relu", "leaky_relu", "leaky_relu:0.2", "elu", "selu", "softsign", "hard_tanh"}


def ref_expect(g, q, kinks=()):
    """E[g(x)], x ~ N(0, q), by adaptive quad split at the kinks."""
    s = math.sqrt(q)
    lo, hi = -14 * s, 14 * s
    pts = [lo] + sorted(k for k in kinks if lo < k < hi) + [hi]

    def integrand(x):
        return float(g(np.float64(x))) * math.exp(-x * x / (2 * q)) / (s * SQ2PI)

    return sum(
        integrate.quad(integrand, a, b, epsabs=0, epsrel=1e-12, limit=400)[0]
        for a, b in zip(pts[:-1], pts[1:])
    )


def ref_q_star(phi, sw2, sb2, kinks=(), iters=200):
    """Fixed point of the q-map by plain iteration with scipy quad."""
    q = 1.0
    for _ in range(iters):
        q_new = sw2 * ref_expect(lambda x: phi(x) ** 2, q, kinks) + sb2
        if abs(q_new - q) < 1e-13 * q_new:
            return q_new
        q = q_new
    return q


def rel(a, b):
    return abs(float(a) - float(b)) / abs(float(b))


# ------------------------------------------------------------------ quadrature
def _moments(act, qs):
    phi = activations.get_activation(act)
    dphi = activations.derivative(act)
    f = jax.jit(
        jax.vmap(
            lambda q: (
                theory.expectation(act, lambda x: phi(x) ** 2, q),
                theory.expectation(act, lambda x: dphi(x) ** 2, q),
            )
        )
    )
    e2, d2 = f(jnp.asarray(qs))
    return np.asarray(e2, np.float64), np.asarray(d2, np.float64)


QS = (0.3, 1.0, 4.0)


@functools.lru_cache(maxsize=None)
def _ref_moments(act):
    """scipy E[φ²], E[φ'²] at each q in QS (cached: both precisions compare to it)."""
    phi, dphi, kinks = REFERENCE[act]
    e2 = [ref_expect(lambda x: phi(x) ** 2, q, kinks) for q in QS]
    d2 = [ref_expect(lambda x: dphi(x) ** 2, q, kinks) for q in QS]
    return e2, d2


@pytest.mark.parametrize("act", sorted(REFERENCE))
def test_quadrature_matches_scipy_float32(act):
    """Default float32 mode: 1e-4 relative for smooth activations, 1e-3 kinked."""
    tol = 1e-3 if act in KINKED else 1e-4
    for got, want in zip(_moments(act, QS), _ref_moments(act)):
        for q, a, b in zip(QS, got, want):
            assert rel(a, b) < tol, (act, q)


@pytest.mark.parametrize("act", sorted(REFERENCE))
def test_quadrature_matches_scipy_float64(act):
    """x64: the rules are far better than float32 needs, kinks included (< 1e-8)."""
    with _x64():
        moments = _moments(act, QS)
    for got, want in zip(moments, _ref_moments(act)):
        for q, a, b in zip(QS, got, want):
            assert rel(a, b) < 1e-8, (act, q)


def test_rule_choice():
    assert theory.uses_gauss_hermite("tanh")
    assert theory.uses_gauss_hermite("gelu")
    for act in ("relu", "leaky_relu:0.2", "hard_tanh", "elu", "selu", "softsign"):
        assert not theory.uses_gauss_hermite(act)


def test_gauss_hermite_fails_on_kinks_dense_rule_does_not():
    """Why the dense rule exists. hard_tanh: E[φ'(√q z)²] = erf(1/√(2q)); ReLU
    c-map slope: E[φ'(u1)φ'(u2)] = (π − arccos c)/2π. (ReLU's own φ'² = 1/2 is
    no test: an even node count makes Gauss–Hermite exact by symmetry.)"""
    with _x64():
        for q in (0.3, 1.0, 4.0):
            exact = special.erf(1 / math.sqrt(2 * q))
            step = lambda x: (jnp.abs(x) < 1) * 1.0  # noqa: E731
            assert rel(theory.gauss_hermite_expectation(step, q), exact) > 1e-2
            assert rel(theory.dense_expectation(step, q), exact) < 1e-9
        for c in (0.3, 0.5, 0.8):
            exact = (math.pi - math.acos(c)) / (2 * math.pi)
            both = lambda a, b: (a > 0) * (b > 0) * 1.0  # noqa: E731
            assert rel(theory.gauss_hermite_expectation_2d(both, 1.0, c), exact) > 5e-3
            assert rel(theory.dense_expectation_2d(both, 1.0, c), exact) < 1e-6


def test_gauss_hermite_degrades_at_large_q_so_smooth_rule_switches():
    """tanh'² at q = 4: plain Gauss–Hermite is off by > 1e-5, the switched rule is not."""
    with _x64():
        exact = ref_expect(lambda x: (1 - np.tanh(x) ** 2) ** 2, 4.0)
        d = lambda x: (1 - jnp.tanh(x) ** 2) ** 2  # noqa: E731
        assert rel(theory.gauss_hermite_expectation(d, 4.0), exact) > 1e-5
        assert rel(theory.expectation("tanh", d, 4.0), exact) < 1e-12


def test_kink_location_matters_for_the_dense_rule():
    """A jump at a dyadic point (0.25) is a cell boundary: ~exact. At 0.3 it is
    not: the midpoint rule's O(h) error, h ≤ σ/512, gives < 2.5e-3 relative
    (Richardson can amplify that term by up to 5/3)."""
    with _x64():
        for q in (0.3, 1.0, 4.0):
            for kink, tol in ((0.25, 1e-9), (0.3, 2.5e-3)):
                exact = 0.5 * special.erfc(kink / math.sqrt(2 * q))
                got = theory.dense_expectation(lambda x: (x > kink) * 1.0, q)
                assert rel(got, exact) < tol, (q, kink)


def test_paper_table_of_moments():
    """E[φ(z)²], E[φ'(z)²] for z ~ N(0, 1), to 4 digits: a table computed once with scipy
    quadrature outside satbench (ReLU and leaky ReLU are the closed forms 1/2 and (1 + a²)/2)."""
    table = {
        "sigmoid": (0.2934, 0.0448),
        "tanh": (0.3943, 0.4644),
        "relu": (0.5, 0.5),
        "leaky_relu:0.2": (0.52, 0.52),
        "elu": (0.6449, 0.6681),
        "selu": (1.000, 1.0720),
        "gelu": (0.4252, 0.4559),
        "silu": (0.3558, 0.3795),
        "softplus": (0.9212, 0.2934),
    }
    for act, (e2, d2) in table.items():
        got_e2, got_d2 = _moments(act, (1.0,))
        assert abs(got_e2[0] - e2) < 6e-4, act
        assert abs(got_d2[0] - d2) < 6e-4, act


# ------------------------------------------------------------ closed forms
def test_relu_chi1_and_q_star_closed_forms():
    for sw2 in (0.5, 1.0, 1.5, 2.0, 3.0):
        assert rel(theory.chi1("relu", sw2, 0.1), sw2 / 2) < 1e-5
        assert rel(theory.chi1("relu", sw2, 0.1, q=7.3), sw2 / 2) < 1e-5  # at any q
    for sw2 in (0.5, 1.0, 1.9):
        assert rel(theory.q_star("relu", sw2, 0.1), 0.1 / (1 - sw2 / 2)) < 1e-5
    for sw2 in (2.0, 2.01, 3.0):  # no fixed point: q grows without bound
        assert np.isinf(theory.q_star("relu", sw2, 0.1))
    assert rel(theory.q_star("relu", 2.0, 0.0), 1.0) < 1e-6  # neutral: stays at q = 1


def test_relu_c_map_is_the_arc_cosine_kernel():
    with _x64():
        for c in (0.0, 0.2, 0.7, 0.95):
            exact = (math.sqrt(1 - c * c) + (math.pi - math.acos(c)) * c) / math.pi
            m, slope = theory.c_map_and_slope("relu", c, 1.0, 2.0, 0.0)
            assert rel(m, exact) < 1e-6
            # 2-D rule: ~1e-6 at c = 0.95, better below
            assert rel(slope, (math.pi - math.acos(c)) / math.pi) < 5e-6
            assert rel(theory.c_map("relu", c, 1.0, 2.0, 0.0), exact) < 1e-6


def test_hard_tanh_chi1_closed_form():
    phi, _, kinks = REFERENCE["hard_tanh"]
    with _x64():
        for sw2, sb2 in ((0.8, 0.05), (1.2, 0.05), (2.0, 0.3)):
            qs = float(theory.q_star("hard_tanh", sw2, sb2))
            assert rel(qs, ref_q_star(phi, sw2, sb2, kinks)) < 1e-9
            exact = sw2 * special.erf(1 / math.sqrt(2 * qs))
            assert rel(theory.chi1("hard_tanh", sw2, sb2), exact) < 1e-9
    for sw2 in (0.8, 1.2, 2.0):  # float32
        qs = float(theory.q_star("hard_tanh", sw2, 0.05))
        exact = sw2 * special.erf(1 / math.sqrt(2 * qs))
        assert rel(theory.chi1("hard_tanh", sw2, 0.05), exact) < 1e-5


def test_q_map_slope_includes_delta_terms():
    """hard_tanh: d q-map/dq = σ_w²(erf(1/√(2q)) − 2 p_q(1)); the pointwise
    χ₁ + σ_w² E[φ''φ] would miss the −2 p_q(1) from φ'' = ∓δ(x ∓ 1)."""
    with _x64():
        for q in (0.3, 1.0, 4.0):
            density_at_1 = math.exp(-1 / (2 * q)) / math.sqrt(2 * math.pi * q)
            exact = 1.5 * (special.erf(1 / math.sqrt(2 * q)) - 2 * density_at_1)
            assert rel(theory.q_map_slope("hard_tanh", q, 1.5, 0.1), exact) < 1e-7
        # tanh: equals χ₁ + σ_w² E[φ''φ] with φ'' = −2 tanh (1 − tanh²)
        dphi2 = lambda x: (1 - np.tanh(x) ** 2) ** 2  # noqa: E731
        ddphi_phi = lambda x: -2 * np.tanh(x) ** 2 * (1 - np.tanh(x) ** 2)  # noqa: E731
        for q in (0.5, 3.0):  # Gauss–Hermite and dense paths
            exact = 1.7 * (ref_expect(dphi2, q) + ref_expect(ddphi_phi, q))
            assert rel(theory.q_map_slope("tanh", q, 1.7, 0.05), exact) < 1e-9


# ------------------------------------------------------------- criticality
def test_tanh_critical_point_schoenholz():
    crit = float(theory.critical_sigma_w2("tanh", 0.05))
    assert abs(crit - 1.761) < 0.005
    assert abs(float(theory.chi1("tanh", crit, 0.05)) - 1) < 1e-5
    assert theory.phase(theory.chi1("tanh", crit, 0.05)) == "critical"
    assert theory.phase(theory.chi1("tanh", 1.2, 0.05)) == "ordered"
    assert theory.phase(theory.chi1("tanh", 2.5, 0.05)) == "chaotic"


def test_critical_points_other_activations():
    assert rel(theory.critical_sigma_w2("relu", 0.05), 2.0) < 1e-5
    # sigmoid, σ_b = 0: χ₁ = 1 only at σ_w² ≈ 103 with q* ≈ 45.6 (scipy quadrature and brentq
    # outside satbench: 103.008 and 45.624)
    crit = float(theory.critical_sigma_w2("sigmoid", 0.0))
    assert abs(crit - 103.0) < 0.5
    assert abs(float(theory.q_star("sigmoid", crit, 0.0)) - 45.6) < 0.2
    # no crossing inside the bracket -> NaN
    assert np.isnan(theory.critical_sigma_w2("sigmoid", 0.0, hi=50.0))


TANH_W = np.array([1.2, 1.6, 1.75, 1.77, 2.0, 2.5, 3.0])


@pytest.fixture(scope="module")
def tanh_table():
    """One x64 summaries call for tanh at σ_b² = 0.05 (shared: compiling is the cost)."""
    return theory.summaries("tanh", TANH_W, 0.05)


def test_depth_scales(tanh_table):
    assert float(theory.depth_scale(0.5)) == pytest.approx(1 / math.log(2))
    assert np.isinf(theory.depth_scale(1.0))
    s = tanh_table
    assert np.all(s["xi_c"] > 0) and np.all(s["xi_q"] > 0)
    # ξ_c peaks at criticality (σ_w² = 1.761); ordered side: χ_c = χ₁, c* = 1
    assert s["xi_c"][2] > 50 and s["xi_c"][3] > 50
    assert s["xi_c"][0] < s["xi_c"][1] < s["xi_c"][2]
    assert s["xi_c"][3] > s["xi_c"][4] > s["xi_c"][5] > s["xi_c"][6]
    ordered = s["chi1"] < 1
    assert np.all(s["c_star"][ordered] == 1.0)
    assert np.allclose(s["chi_c"][ordered], s["chi1"][ordered])
    assert np.all(s["c_star"][~ordered] < 1.0)
    assert list(s["phase"]) == ["ordered"] * 3 + ["chaotic"] * 4


def test_c_star_is_a_fixed_point_with_slope_chi_c(tanh_table):
    ht = theory.summaries("hard_tanh", [2.0], [0.05])
    rows = [("tanh", TANH_W[5], tanh_table, 5), ("hard_tanh", 2.0, ht, 0)]
    with _x64():
        for act, sw2, table, i in rows:
            qs, cs, chic = (table[k][i] for k in ("q_star", "c_star", "chi_c"))
            assert 0 < cs < 1 and table["phase"][i] == "chaotic"
            assert abs(float(theory.c_map(act, cs, qs, sw2, 0.05)) - cs) < 1e-9
            h = 1e-5
            up = theory.c_map(act, cs + h, qs, sw2, 0.05)
            down = theory.c_map(act, cs - h, qs, sw2, 0.05)
            assert rel(chic, (up - down) / (2 * h)) < 1e-5
            assert table["xi_c"][i] == pytest.approx(-1 / math.log(chic))
        # odd φ with σ_b = 0 in the chaotic phase decorrelates completely
        assert float(theory.c_star("tanh", 3.0, 0.0)) == pytest.approx(0.0, abs=1e-12)


def test_tanh_c_map_matches_dblquad():
    """Both 2-D paths for tanh (Gauss–Hermite at q ≤ 1, dense above) vs scipy dblquad."""
    with _x64():
        for q, c in ((0.5, 0.4), (2.5, 0.8)):
            s, r = math.sqrt(q), math.sqrt(1 - c * c)

            def g(z2, z1):
                return (
                    np.tanh(s * z1)
                    * np.tanh(s * (c * z1 + r * z2))
                    * math.exp(-(z1 * z1 + z2 * z2) / 2)
                    / (2 * math.pi)
                )

            e = integrate.dblquad(g, -9, 9, -9, 9, epsabs=1e-11, epsrel=1e-9)[0]
            qn = 1.3 * ref_expect(lambda x: np.tanh(x) ** 2, q) + 0.05
            assert rel(theory.c_map("tanh", c, q, 1.3, 0.05), (1.3 * e + 0.05) / qn) < 1e-7


# -------------------------------------------------------------------- SELU
def test_selu_fixed_point_and_constants():
    # jax.nn.selu's constants are the published ones
    with _x64():
        lam = float(jax.nn.selu(1.0))
        alpha = -float(jax.nn.selu(-60.0)) / lam
    assert lam == pytest.approx(SELU_LAMBDA, rel=1e-14)
    assert alpha == pytest.approx(SELU_ALPHA, rel=1e-14)
    # ... and they solve E[selu(z)] = 0, E[selu(z)²] = 1 (closed-form Gaussian moments)
    e_exp = math.exp(0.5) * special.ndtr(-1.0)  # E[e^z 1{z<0}]
    e_exp2 = math.exp(2.0) * special.ndtr(-2.0)  # E[e^{2z} 1{z<0}]
    alpha_solved = (1 / SQ2PI) / (0.5 - e_exp)
    lam_solved = 1 / math.sqrt(0.5 + alpha_solved**2 * (e_exp2 - 2 * e_exp + 0.5))
    assert alpha_solved == pytest.approx(SELU_ALPHA, rel=1e-12)
    assert lam_solved == pytest.approx(SELU_LAMBDA, rel=1e-12)

    phi = activations.get_activation("selu")
    with _x64():
        assert abs(float(theory.expectation("selu", phi, 1.0))) < 1e-12
        s = theory.summary("selu", 1.0, 0.0)
    assert abs(s["q_star"] - 1) < 1e-10
    # χ₁ = λ²(1/2 + α² E[e^{2z} 1{z<0}]) = 1.07157 (Klambauer et al. 2017's constants, closed
    # form above): slightly chaotic, gradient variance grows ~7 % per layer
    assert s["chi1"] == pytest.approx(SELU_LAMBDA**2 * (0.5 + SELU_ALPHA**2 * e_exp2), rel=1e-10)
    assert s["phase"] == "chaotic"
    assert s["c_star"] == pytest.approx(0.0, abs=1e-9)  # E[selu] = 0 decorrelates


# ------------------------------------------------------ user activations
def test_user_registered_activation_needs_no_extra_code():
    name = f"test_theory_scaled_tanh_{uuid.uuid4().hex[:8]}"
    activations.register_activation(name)(lambda x: 1.5 * jnp.tanh(x))
    assert not theory.uses_gauss_hermite(name)  # unknown -> dense rule

    phi = lambda x: 1.5 * np.tanh(x)  # noqa: E731
    dphi = lambda x: 1.5 * (1 - np.tanh(x) ** 2)  # noqa: E731
    sw2, sb2 = 1.3, 0.05
    with _x64():
        qs = float(theory.q_star(name, sw2, sb2))
        # q* solves the q-map equation, checked with scipy
        assert rel(sw2 * ref_expect(lambda x: phi(x) ** 2, qs) + sb2, qs) < 1e-10
        want = sw2 * ref_expect(lambda x: dphi(x) ** 2, qs)
        assert rel(theory.chi1(name, sw2, sb2), want) < 1e-10
        crit = float(theory.critical_sigma_w2(name, sb2))
    assert 0.1 < crit < 1000
    q_c = ref_q_star(phi, crit, sb2)
    assert abs(crit * ref_expect(lambda x: dphi(x) ** 2, q_c) - 1) < 1e-7
    s = theory.summary(name, 2.0, sb2)
    assert set(s) == {"q_star", "chi1", "chi_c", "c_star", "xi_q", "xi_c", "phase"}
    assert s["phase"] in ("ordered", "critical", "chaotic")


# ---------------------------------------------------------------- batching
def test_vmap_equals_per_value_calls():
    """tanh q* on both sides of the Gauss–Hermite/dense switch (q = 1); ordered and chaotic
    configs in one batch. ``summaries`` maps a Gauss–Hermite activation's lanes one at a time
    (the switch stays a branch); ``jax.vmap`` of a theory function turns it into a select."""
    w = np.array([0.6, 1.0, 1.5, 2.0, 3.0, 4.5, 6.0])
    b = 0.05
    batched = theory.summaries("tanh", w, b, x64=False)  # one jitted call over every lane
    vmapped = jax.vmap(lambda x: theory.chi1("tanh", x, b))(jnp.asarray(w, jnp.float32))
    for i, x in enumerate(w):
        single = {
            "q_star": theory.q_star("tanh", x, b),
            "chi1": theory.chi1("tanh", x, b),
            "chi_c": theory.chi_c("tanh", x, b),
        }
        for k, want in single.items():
            assert batched[k][i] == pytest.approx(float(want), rel=2e-5, abs=1e-6), (x, k)
        assert float(vmapped[i]) == pytest.approx(float(single["chi1"]), rel=2e-5, abs=1e-6), x
    assert batched["q_star"][0] < 1 < batched["q_star"][-1]
    crits = jax.vmap(lambda sb: theory.critical_sigma_w2("tanh", sb))(jnp.array([0.05, 0.2]))
    assert float(crits[0]) == pytest.approx(float(theory.critical_sigma_w2("tanh", 0.05)), rel=1e-5)
    assert float(crits[1]) == pytest.approx(float(theory.critical_sigma_w2("tanh", 0.2)), rel=1e-5)


def test_large_batch_summaries_match_single_calls():
    """100 configs in one vmap (a stacked-integrand variant of the c-map broke at this size)."""
    w = np.linspace(0.5, 4.0, 100)
    s = theory.summaries("hard_tanh", w, 0.05, x64=False)
    assert all(len(v) == 100 for v in s.values())
    for i in (10, 40, 99):
        one = theory.summary("hard_tanh", float(w[i]), 0.05, x64=False)
        for k in ("q_star", "chi1", "c_star", "chi_c"):
            assert s[k][i] == pytest.approx(one[k], rel=1e-4), (i, k)
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(s)
    assert list(frame.columns[:2]) == ["sigma_w2", "sigma_b2"] and len(frame) == 100


# ----------------------------------------------------------- small helpers
def test_phase_and_signal_profile():
    assert theory.phase(float("nan")) == "undefined"
    assert theory.phase(0.5) == "ordered"
    assert theory.phase(1.0005) == "critical"
    assert theory.phase(1.5) == "chaotic"
    prof = np.asarray(theory.predicted_signal_profile(0.5, 4))
    np.testing.assert_allclose(prof, [0.125, 0.25, 0.5, 1.0])
    batch = np.asarray(theory.predicted_signal_profile(jnp.array([0.5, 2.0]), 3))
    np.testing.assert_allclose(batch, [[0.25, 0.5, 1.0], [4.0, 2.0, 1.0]])


# ------------------------------------------------------- Jacobian spectrum
def test_jacobian_moment_closed_forms():
    # ReLU at (2, 0): μ₁ = μ₂ = 1/2 -> var L (orthogonal), 2L (Gaussian)
    for w, want in (("orthogonal", 32.0), ("gaussian", 64.0)):
        mean, var = theory.jacobian_moments("relu", 2.0, 0.0, 32, w)
        # float32: μ₁ is 1/2 to ~3 ulps (the rule's sums are not bitwise symmetric), and the
        # mean is (2 μ₁)^32, so 32 × 3.6e-7 = 1.2e-5 of rounding
        assert float(mean) == pytest.approx(1.0, rel=3e-5)
        assert float(var) == pytest.approx(want, rel=1e-4)
    # hard-tanh on its critical line σ_w² = 1/p, p = P(|h| < 1): var L(1/p − 1) orthogonal
    with _x64():
        qs = float(theory.q_star("hard_tanh", 1.0477, 0.0089))
        p = special.erf(1 / math.sqrt(2 * qs))
        mean, var = theory.jacobian_moments("hard_tanh", 1.0477, 0.0089, 32)
    # the point of the critical line σ_w² = 1/p chosen so that q* = 1/4 (Pennington, Schoenholz &
    # Ganguli 2017 move along this line by q*)
    assert qs == pytest.approx(0.25, abs=0.01)
    assert float(var) == pytest.approx(float(mean) ** 2 * 32 * (1 / p - 1), rel=1e-9)
    assert float(var) == pytest.approx(1.53, abs=0.05)


def _haar(rng, n):
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def _mc_jacobian_s2(phi, dphi, sw2, sb2, q, depth, width, weights, seed):
    """Squared singular values of ∏ D_l W_l for one random net with inputs at q*."""
    rng = np.random.default_rng(seed)
    x = phi(rng.standard_normal(width) * math.sqrt(q))
    jac = np.eye(width)
    for _ in range(depth):
        if weights == "orthogonal":
            w = math.sqrt(sw2) * _haar(rng, width)
        else:
            w = rng.standard_normal((width, width)) * math.sqrt(sw2 / width)
        h = w @ x + rng.standard_normal(width) * math.sqrt(sb2)
        jac = (dphi(h)[:, None] * w) @ jac
        x = phi(h)
    return np.linalg.eigvalsh(jac @ jac.T)


def test_jacobian_spectrum_monte_carlo_tanh():
    """Pennington, Schoenholz & Ganguli 2017 ("Resurrecting the sigmoid"): tanh on the critical
    line at σ_w² = 1.05, σ_b² = 2.01e-5 (q* ≈ 0.026), L = 32. Their variance formula gives
    var s² = 0.14 with orthogonal and 32.1 with Gaussian weights; a numpy Monte Carlo at
    N = 400 matches within 15 % and 50 % (Gaussian products are heavy-tailed, with an
    O(L²/N) bias); mean s² ≈ 1."""
    sw2, sb2, depth, width = 1.05, 2.01e-5, 32, 400
    qs = float(theory.q_star("tanh", sw2, sb2))
    assert qs == pytest.approx(0.026, abs=0.001)
    phi, dphi, _ = REFERENCE["tanh"]
    for weights, seeds, tol in (("orthogonal", (0,), 0.15), ("gaussian", (0, 1), 0.5)):
        mean, var = (float(v) for v in theory.jacobian_moments("tanh", sw2, sb2, depth, weights))
        assert mean == pytest.approx(1.0, abs=1e-3)
        s2 = [_mc_jacobian_s2(phi, dphi, sw2, sb2, qs, depth, width, weights, s) for s in seeds]
        mc_var = np.mean([v.var() for v in s2])
        mc_mean = np.mean([v.mean() for v in s2])
        assert mc_var == pytest.approx(var, rel=tol), weights
        assert mc_mean == pytest.approx(1.0, abs=0.25 if weights == "gaussian" else 0.1)
    orth_var = float(theory.jacobian_moments("tanh", sw2, sb2, depth)[1])
    assert orth_var == pytest.approx(0.14, abs=0.01)
