"""Experiment files and the CLI: every malformed input is one line, exit code 2, nothing written."""

import subprocess
import sys

import pytest
from click.testing import CliRunner

from satbench import cli, spec

GOOD = """
[experiment]
name = "ok"
[fixed]
width = 16
depth = 2
steps = 10
log_every = 10
[grid]
seed = [0, 1]
"""

BAD = {
    "unknown field": (GOOD.replace("width = 16", "widht = 16"), "unknown field 'widht'"),
    "wrong type": (GOOD.replace("width = 16", 'width = "wide"'), "width must be int"),
    "float for int": (GOOD.replace("width = 16", "width = 16.5"), "width must be int"),
    "bool for int": (GOOD.replace("width = 16", "width = true"), "width must be int"),
    "negative width": (GOOD.replace("width = 16", "width = -3"), "width must be > 0"),
    "zero depth": (GOOD.replace("depth = 2", "depth = 0"), "depth must be > 0"),
    "unknown activation": (GOOD + 'activation = ["tanh", "swish9"]\n', "unknown activation 'swish9'; known:"),
    "unknown init": (GOOD.replace("[grid]", '[grid]\ninit = ["xavier"]'), "init: unknown value 'xavier'; allowed:"),
    "unknown dataset": (GOOD.replace("width = 16", 'dataset = "imagenet"'), "dataset: unknown value 'imagenet'"),
    "unknown optimizer": (GOOD.replace("width = 16", 'optimizer = "lbfgs"'), "optimizer: unknown value 'lbfgs'"),
    "empty grid list": (GOOD.replace("seed = [0, 1]", "seed = []"), "seed is an empty list"),
    "grid not a list": (GOOD.replace("seed = [0, 1]", "seed = 3"), "seed must be a list"),
    "duplicate grid values": (GOOD.replace("seed = [0, 1]", "seed = [1, 1]"), "duplicate values"),
    "fixed and grid": (GOOD.replace("width = 16", "seed = 4"), "seed is in both [fixed] and [grid]"),
    "log_every": (GOOD.replace("steps = 10", "steps = 15"), "log_every (10) must divide steps (15)"),
    "probe_every": (GOOD.replace("steps = 10", "steps = 40\nprobe_every = 15"), "probe_every (15) must be a multiple"),
    "negative lr": (GOOD.replace("width = 16", "learning_rate = -0.1"), "learning_rate must be > 0"),
    "nan lr": (GOOD.replace("width = 16", "learning_rate = nan"), "learning_rate must be finite"),
    "unknown table": (GOOD + "[sweep]\nx = 1\n", "unknown table 'sweep'"),
    "no name": (GOOD.replace('name = "ok"', 'description = "x"'), "[experiment] needs a name"),
    "bad name": (GOOD.replace('name = "ok"', 'name = "a b"'), "name must be letters"),
    "bad toml": (GOOD + "width = = 3\n", "not valid TOML"),
    "bad profile field": (GOOD + "[profiles.quick]\nwidht = 3\n", "[profiles.quick]: unknown field 'widht'"),
    "profile makes bad combo": (GOOD + "[profiles.quick]\nsteps = 7\n", "log_every (10) must divide steps (7)"),
    "huge grid": (GOOD.replace("seed = [0, 1]", f"seed = {list(range(1000))}\nsigma_w2 = {[float(i + 1) for i in range(300)]}"),
                  "at most 200000"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_spec_is_one_line_exit_2_and_writes_nothing(case, tmp_path):
    text, message = BAD[case]
    path = tmp_path / "exp.toml"
    path.write_text(text)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli.main, ["run", str(path), "--out", str(out), "--quiet", "--no-plot"])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert message in lines[0]
    assert not out.exists()


def test_cli_option_errors(tmp_path, tiny_toml):
    runner = CliRunner()
    r = runner.invoke(cli.main, ["run", str(tiny_toml), "--profile", "huge", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "unknown profile 'huge'" in r.stderr and not (tmp_path / "o").exists()
    r = runner.invoke(cli.main, ["run", "no_such_experiment"])
    assert r.exit_code == 2 and "unknown experiment 'no_such_experiment'" in r.stderr
    r = runner.invoke(cli.main, ["run", str(tmp_path / "missing.toml")])
    assert r.exit_code == 2 and "experiment file not found" in r.stderr
    r = runner.invoke(cli.main, ["run", str(tiny_toml), "--max-chunk", "0"])
    assert r.exit_code == 2
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = runner.invoke(cli.main, ["run", str(tiny_toml), "--out", str(blocker), "--quiet"])
    assert r.exit_code == 2 and "is not a folder" in r.stderr and blocker.read_text() == "x"
    for bad in ["3", "1/0", "3/3", "-1/2", "a/b"]:
        r = runner.invoke(cli.main, ["run", str(tiny_toml), "--shard", bad, "--out", str(tmp_path / "s")])
        assert r.exit_code == 2 and "--shard must be I/N" in r.stderr and not (tmp_path / "s").exists()
    r = runner.invoke(cli.main, ["plot", str(tiny_toml), "--results", str(tmp_path / "nothing")])
    assert r.exit_code == 2 and "no such folder" in r.stderr


def test_profiles_override_fixed_and_grid():
    exp = spec.parse(GOOD + "[profiles.quick]\nseed = 7\nwidth = [8, 16]\n")
    fixed, grid = exp.resolve("quick")
    assert fixed["seed"] == 7 and "seed" not in grid and grid["width"] == [8, 16]
    assert len(exp.configs("quick")) == 2 and len(exp.configs(None)) == 2


PINNED = """
[experiment]
name = "pinned"
[fixed]
width = 32
depth = 6
steps = 20
log_every = 10
dataset = "teacher"
optimizer = "adam"
[grid]
activation = ["tanh", "leaky_relu:0.2"]
remedy = ["none", "batchnorm", "clip"]
sigma_w2 = [1.5]
"""


def test_config_ids_are_pinned_and_do_not_depend_on_the_experiment_name():
    """Resume finds finished configs by id, so an id may never change: these literals were
    computed once (satbench 0.1.0) and must stay. A field added later must keep them (leave it
    out of the hash at its default)."""
    good = spec.parse(GOOD).configs()
    assert [c.config_id for c in good] == ["58520089c125", "10ef0f142618"]
    renamed = spec.parse(GOOD.replace('name = "ok"', 'name = "other"')).configs()
    assert [c.config_id for c in renamed] == [c.config_id for c in good]
    ids = {(c["activation"], c["remedy"]): c.config_id for c in spec.parse(PINNED).configs()}
    assert ids == {
        ("tanh", "none"): "e785c80ccac3", ("tanh", "batchnorm"): "cedf81c42c83", ("tanh", "clip"): "f18464dca111",
        ("leaky_relu:0.2", "none"): "a6eafe5dd4ed", ("leaky_relu:0.2", "batchnorm"): "b308988549cb",
        ("leaky_relu:0.2", "clip"): "1db5c487f447",
    }
    # fields that are left out of the hash at their defaults count when set
    every = PINNED.replace("sigma_w2 = [1.5]", 'sigma_w2 = [1.5]\nclip_norm = [0.5]\nresidual_scale = [0.25]\n'
                           'train_subset = [100]\npreprocess = ["none"]\nhistogram_bins = [4]')
    assert spec.parse(every).configs()[0].config_id == "e893a93cfe9c"


def test_shipped_experiments_parse():
    for name in spec.known_experiments():
        exp = spec.load(name)
        for profile in [None, *exp.profiles]:
            assert exp.configs(profile)


def test_console_script_end_to_end(tmp_path, tiny_toml):
    out = tmp_path / "res"
    proc = subprocess.run([sys.executable, "-m", "satbench.cli", "run", str(tiny_toml), "--out", str(out), "--quiet"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "8 configs" in proc.stdout
    assert (out / "runs.parquet").exists() and (out / "manifest.json").exists()
    listing = subprocess.run([sys.executable, "-m", "satbench.cli", "list"], capture_output=True, text=True)
    assert listing.returncode == 0
    for word in ["sigmoid", "max|φ'|=0.25", "orthogonal", "adam", "digits", "vanishing"]:
        assert word in listing.stdout


def _snapshot(folder):
    """Every file under ``folder``: relative path -> sha256 of its bytes."""
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A folder holding the finished tiny sweep, and its experiment file."""
    from conftest import TINY

    root = tmp_path_factory.mktemp("finished")
    path = root / "tiny.toml"
    path.write_text(TINY)
    out = root / "out"
    result = CliRunner().invoke(cli.main, ["run", str(path), "--out", str(out), "--quiet", "--no-plot"])
    assert result.exit_code == 0, result.output
    changed = root / "changed.toml"
    changed.write_text(TINY.replace("steps = 20", "steps = 10"))
    return path, out, changed


BAD_INVOCATIONS = {
    "shard equal to count": (["--shard", "3/3"], "--shard must be I/N"),
    "shard not numbers": (["--shard", "a/b"], "--shard must be I/N"),
    "shard of zero": (["--shard", "0/0"], "--shard must be I/N"),
    "shard without count": (["--shard", "1"], "--shard must be I/N"),
    "out under a file": (["--out", "{out}/runs.parquet/sub"], "not writable"),
    "out is a file": (["--out", "{out}/manifest.json"], "is not a folder"),
    "changed spec": (["{changed}"], "holds results of a different spec"),
    "fresh with shard": (["--fresh", "--shard", "0/2"], "--fresh with --shard"),
    "max-chunk zero": (["--max-chunk", "0"], "'--max-chunk': 0 is not in the range"),
    "max-chunk not a number": (["--max-chunk", "many"], "'--max-chunk': 'many' is not a valid integer"),
    "memory budget word": (["--memory-budget", "lots"], "--memory-budget must be a size"),
    "memory budget zero": (["--memory-budget", "0GB"], "--memory-budget must be a size"),
    "memory budget unit": (["--memory-budget", "3XB"], "--memory-budget must be a size"),
    "memory budget percent": (["--memory-budget", "150%"], "--memory-budget must be a size"),
    "unknown profile": (["--profile", "huge"], "unknown profile 'huge'"),
    "missing file": (["{out}/../missing.toml"], "experiment file not found"),
    "unknown option": (["--bogus"], "No such option '--bogus'"),
    "coordinator without distributed": (["--coordinator", "127.0.0.1:1234"], "need --distributed"),
    "distributed partly explicit": (["--distributed", "--coordinator", "127.0.0.1:1234"], "takes all of"),
    "coordinator without port": (["--distributed", "--coordinator", "127.0.0.1", "--num-processes", "2",
                                  "--process-id", "0"], "--coordinator must be HOST:PORT"),
    "process id out of range": (["--distributed", "--coordinator", "127.0.0.1:1234", "--num-processes", "2",
                                 "--process-id", "2"], "--process-id must be in [0, 2)"),
    "distributed with shard": (["--distributed", "--shard", "0/2"], "--shard and --distributed"),
    "distributed with fresh": (["--distributed", "--fresh"], "--fresh with --distributed"),
}


@pytest.mark.parametrize("case", sorted(BAD_INVOCATIONS))
def test_malformed_invocation_is_one_line_exit_2_and_leaves_results_untouched(case, finished):
    path, out, changed = finished
    args, message = BAD_INVOCATIONS[case]
    args = [a.format(out=out, changed=changed) for a in args]
    experiment = [] if args[0].endswith(".toml") else [str(path)]
    if "--out" not in args:
        args += ["--out", str(out)]
    before = _snapshot(out)
    result = CliRunner().invoke(cli.main, ["run", *experiment, *args, "--quiet", "--no-plot"])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("satbench: error: "), lines
    assert message in lines[0], lines[0]
    assert _snapshot(out) == before


def test_distributed_without_a_cluster_is_one_line_exit_2_in_a_fresh_process(finished):
    """Auto-detection finds no cluster; checked in its own process (it touches jax.distributed)."""
    path, out, _ = finished
    before = _snapshot(out)
    proc = subprocess.run([sys.executable, "-m", "satbench.cli", "run", str(path), "--out", str(out),
                           "--distributed", "--quiet", "--no-plot"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--distributed: no cluster detected" in lines[0], lines
    assert _snapshot(out) == before
