"""Every paper reproduction, end to end through ``satbench reproduce``: each claim PASSes.

One row per (experiment, profile). The default run uses the quick profile or, where that takes
over a minute on 2 cores, the experiment's reduced profile (``test``, ``row60``, ``sigmoid32``),
whose claims are the same statements on fewer configs; the quick profile then runs as ``-m slow``.
"""

import pytest
from click.testing import CliRunner

from satbench import cli

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
]


@pytest.mark.parametrize("name, profile, n_claims", REPRODUCTIONS)
def test_reproduction_passes_every_claim(reproduce, name, profile, n_claims):
    out = reproduce(name, profile).output
    assert out.count("PASS") == n_claims and "FAIL" not in out, out


def test_reproduce_needs_a_known_name():
    r = CliRunner().invoke(cli.main, ["reproduce", "nobody2099"])
    assert r.exit_code == 2 and "unknown experiment 'nobody2099'" in r.stderr
    r = CliRunner().invoke(cli.main, ["reproduce"])
    assert r.exit_code == 2 and "--all" in r.stderr
