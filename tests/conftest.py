import os

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
# compile counts and results must not depend on what earlier runs left in a disk cache;
# test_engine's cache test turns it on in its own subprocesses
os.environ["SATBENCH_COMPILATION_CACHE"] = "0"

import pytest  # noqa: E402

TINY = """
[experiment]
name = "tiny"
figures = []
[fixed]
width = 16
depth = 3
steps = 20
log_every = 10
learning_rate = 0.05
target_loss = 2.0
[grid]
activation = ["tanh", "relu"]
sigma_w2 = [0.5, 2.0]
seed = [0, 1]
"""


@pytest.fixture
def tiny_toml(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


@pytest.fixture
def reproduce(tmp_path):
    """``satbench reproduce NAME --profile PROFILE`` into ``tmp_path``: checks the exit code and that
    every figure the experiment lists was written, and returns the printed claim table."""
    from click.testing import CliRunner

    from satbench import cli, spec

    def run(name: str, profile: str = "quick") -> str:
        r = CliRunner().invoke(cli.main, ["reproduce", name, "--profile", profile, "--results-root", str(tmp_path)])
        assert r.exit_code == 0, r.output + r.stderr
        for figure in spec.load(name).figures:
            assert (tmp_path / name / profile / "figures" / f"{figure}.png").exists(), figure
        return r.output

    return run
