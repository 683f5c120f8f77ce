import os
import pathlib
import typing

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


class Reproduction(typing.NamedTuple):
    output: str  # what ``satbench reproduce`` printed: the claim table
    folder: pathlib.Path  # its results folder (shared by every test of the session: copy it to change it)


@pytest.fixture(scope="session")
def reproduce(tmp_path_factory):
    """``satbench reproduce NAME --profile PROFILE``, run once per (name, profile) in a session and
    shared by every test that asks for it (the PASS table of test_reproduce.py and the perturbed
    claims of test_claims_fail.py): checks the exit code and that every figure the experiment lists
    was written, and returns a ``Reproduction`` (the printed claim table and the results folder).
    A failed reproduction fails every test that asks for it, without running it again."""
    from click.testing import CliRunner

    from satbench import cli, spec

    root = tmp_path_factory.mktemp("reproduce")
    done: dict[tuple[str, str], Reproduction | str] = {}

    def check(name: str, profile: str) -> Reproduction | str:
        r = CliRunner().invoke(cli.main, ["reproduce", name, "--profile", profile, "--results-root", str(root)])
        if r.exit_code != 0:
            return f"satbench reproduce {name} --profile {profile} exited {r.exit_code}:\n{r.output}{r.stderr}"
        folder = root / name / profile
        for figure in spec.load(name).figures:
            if not (folder / "figures" / f"{figure}.png").exists():
                return f"{name} [{profile}]: figure {figure} was not written"
        return Reproduction(r.output, folder)

    def run(name: str, profile: str = "quick") -> Reproduction:
        if (name, profile) not in done:
            done[name, profile] = check(name, profile)
        result = done[name, profile]
        if isinstance(result, str):
            pytest.fail(result)
        return result

    return run
