"""``satbench reproduce`` itself: names it refuses. The end-to-end runs of every reproduction (each
claim PASSes) live in test_claims_fail.py, beside the perturbations of the same results, so that
pytest-xdist (``--dist loadfile``) runs each reproduction once."""

from click.testing import CliRunner

from satbench import cli


def test_reproduce_needs_a_known_name():
    r = CliRunner().invoke(cli.main, ["reproduce", "nobody2099"])
    assert r.exit_code == 2 and "unknown experiment 'nobody2099'" in r.stderr
    r = CliRunner().invoke(cli.main, ["reproduce"])
    assert r.exit_code == 2 and "--all" in r.stderr
