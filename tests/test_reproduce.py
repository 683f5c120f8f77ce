"""Paper claims, run end to end on the quick profile."""

from click.testing import CliRunner

from satbench import cli


def test_he2015_quick_reproduces_the_claims(tmp_path):
    """He et al. 2015, 30-layer ReLU MLP: He init flat variance and trains, Xavier halves and stalls."""
    r = CliRunner().invoke(cli.main, ["reproduce", "he2015", "--results-root", str(tmp_path)])
    assert r.exit_code == 0, r.output + r.stderr
    assert r.output.count("PASS") == 4 and "FAIL" not in r.output
    assert (tmp_path / "he2015" / "quick" / "figures" / "he2015.png").exists()


def test_reproduce_needs_a_known_name():
    r = CliRunner().invoke(cli.main, ["reproduce", "nobody2099"])
    assert r.exit_code == 2 and "unknown experiment 'nobody2099'" in r.stderr
    r = CliRunner().invoke(cli.main, ["reproduce"])
    assert r.exit_code == 2 and "--all" in r.stderr


def test_glorot2010_quick_reproduces_fig2(tmp_path):
    """Glorot & Bengio 2010 Fig. 2 (top sigmoid layer saturates near 0, lower layers > 0.5, tanh learns)
    and Figs. 6-7 (back-propagated gradients shrink toward the input with standard init, not with
    normalised init): four claims each."""
    r = CliRunner().invoke(cli.main, ["reproduce", "glorot2010", "--results-root", str(tmp_path)])
    assert r.exit_code == 0, r.output + r.stderr
    assert r.output.count("PASS") == 8 and "FAIL" not in r.output


def test_schoenholz2017_depth60_row_follows_6_xi_c(tmp_path):
    """Schoenholz et al. 2017 at L = 60 (beyond 6ξ_c for σ_w² = 1 and 4): those stay near chance,
    near-critical σ_w² trains. The 'row60' profile is the quick grid's L = 60 row."""
    r = CliRunner().invoke(cli.main, ["reproduce", "schoenholz2017", "--profile", "row60",
                                      "--results-root", str(tmp_path)])
    assert r.exit_code == 0, r.output + r.stderr
    assert r.output.count("PASS") == 3 and "FAIL" not in r.output


def test_klambauer2017_selu_keeps_moments_at_the_fixed_point(tmp_path):
    """SELU at σ_w² = 1, width 512, depth 32: per-layer mean within ±0.03 and variance in [0.9, 1.1]."""
    r = CliRunner().invoke(cli.main, ["reproduce", "klambauer2017", "--results-root", str(tmp_path)])
    assert r.exit_code == 0, r.output + r.stderr
    assert r.output.count("PASS") == 2 and "FAIL" not in r.output
