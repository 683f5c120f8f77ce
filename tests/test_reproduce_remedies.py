"""Paper claims about the remedies (BatchNorm, residual connections, SELU), run end to end."""

import pytest
from click.testing import CliRunner

from satbench import cli


def _reproduce(tmp_path, name, *options):
    r = CliRunner().invoke(cli.main, ["reproduce", name, *options, "--results-root", str(tmp_path)])
    assert r.exit_code == 0, r.output + r.stderr
    return r.output


def test_ioffe2015_quick_reproduces_fig1(tmp_path):
    """Ioffe & Szegedy 2015 Fig. 1, 3×100 sigmoid on digits: BN ahead early and no worse at the end;
    its last-layer unit's input band and median steady while the plain net's widen and wander."""
    out = _reproduce(tmp_path, "ioffe2015")
    assert out.count("PASS") == 4 and "FAIL" not in out
    assert (tmp_path / "ioffe2015" / "quick" / "figures" / "ioffe2015.png").exists()


def test_he2016_depth_8_vs_32_plain_degrades_residual_does_not(tmp_path):
    """He et al. 2016 on the 'test' profile (the quick grid without depth 16, 2 seeds)."""
    out = _reproduce(tmp_path, "he2016", "--profile", "test")
    assert out.count("PASS") == 3 and "FAIL" not in out
    assert (tmp_path / "he2016" / "test" / "figures" / "he2016.png").exists()


@pytest.mark.slow
def test_he2016_quick_reproduces_the_degradation(tmp_path):
    """The quick profile: depths 8/16/32, 3 seeds (≈ 2 min on 2 cores)."""
    out = _reproduce(tmp_path, "he2016")
    assert out.count("PASS") == 3 and "FAIL" not in out


def test_klambauer2017_training_curves_snn_vs_batchnorm(tmp_path):
    """Klambauer et al. 2017 Fig. 1 on the 'test' profile (depths 8 and 32, 2 seeds):
    SNNs train smoothly and beat ReLU + BN at depth 32; plain ReLU with standard init stays at chance."""
    out = _reproduce(tmp_path, "klambauer2017_training", "--profile", "test")
    assert out.count("PASS") == 4 and "FAIL" not in out
    assert (tmp_path / "klambauer2017_training" / "test" / "figures" / "klambauer2017.png").exists()


@pytest.mark.slow
def test_klambauer2017_training_profile(tmp_path):
    """The quick training profile: depths 8/16/32, 3 seeds (≈ 1.5–2 min on 2 cores)."""
    out = _reproduce(tmp_path, "klambauer2017_training")
    assert out.count("PASS") == 4 and "FAIL" not in out
