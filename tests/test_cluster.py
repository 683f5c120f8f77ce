"""``satbench submit``: a sweep as a job array through submitit. The local executor stands in for SLURM:
its jobs are processes on this machine that run the pickled call as a SLURM node would, with their logs
under OUT/.submitit. SLURM itself is faked only at its commands (sbatch, srun, sacct)."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import cloudpickle
import pytest
from click.testing import CliRunner
from conftest import assert_identical_results

from satbench import cli, cluster, lock, spec, store

#: one program for every config (the activation is fixed: the lanes differ only in σ_w²), so the
#: single run and every job share one compiled executable through the module's compilation cache
SPEC = """
[experiment]
name = "tiny"
figures = []
[fixed]
width = 8
depth = 2
steps = 10
log_every = 5
learning_rate = 0.05
activation = "tanh"
[grid]
sigma_w2 = [0.5, 1.0, 2.0, 4.0]
"""
#: one config per program call: each shard (2 configs) writes 2 parts
CHUNK = ["--max-chunk", "1"]
ROOT = Path(__file__).resolve().parent.parent


def _cli(*args):
    return CliRunner().invoke(cli.main, [str(a) for a in args])


def _one_line(result, code):
    assert result.exit_code == code, result.output + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("satbench: error: "), lines
    return lines[0]


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """(spec path, its results from one `satbench run` process). Jobs (separate processes) share a
    compilation cache in a temporary folder, so the program compiles once for the whole module, and
    import satbench from this checkout."""
    root = tmp_path_factory.mktemp("cluster")
    path = root / "tiny.toml"
    path.write_text(SPEC)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SATBENCH_COMPILATION_CACHE", "1")
        mp.setenv("SATBENCH_CACHE_DIR", str(root / "cache"))
        mp.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
        ran = subprocess.run([sys.executable, "-m", "satbench.cli", "run", path, "--out", root / "single", *CHUNK,
                              "--quiet", "--no-plot"], check=False, capture_output=True, text=True)
        assert ran.returncode == 0, ran.stderr
        yield path, store.load_results(root / "single")


def test_two_local_shards_merge_to_the_single_process_run(single, tmp_path):
    path, want = single
    out = tmp_path / "out"
    args = ["submit", path, "--shards", 2, "--executor", "local", "--out", out, *CHUNK, "--no-plot"]
    submitted = _cli(*args, "--no-wait")
    assert submitted.exit_code == 0, submitted.output + submitted.stderr
    ids = json.loads((out / ".submitit" / "jobs.json").read_text())["jobs"]
    lines = submitted.stdout.splitlines()
    assert lines[0] == (f"tiny: 2 of 2 shards submitted as local job(s) {ids['0']}, {ids['1']} "
                        "(4 configs, 0 already done)")
    assert lines[1] == f"results: {out} (logs: {out / '.submitit'})"
    assert lines[2].startswith("to wait, resubmit failed shards and merge: satbench submit ")
    assert lines[2].endswith(f"--shards 2 --out {out} --executor local --timeout-min 60 --max-retries 2 "
                             "--max-chunk 1 --no-plot --wait")

    # the same command with --wait waits for those jobs (it submits nothing twice) and merges
    waited = _cli(*args)
    assert waited.exit_code == 0, waited.output + waited.stderr
    assert f"local job(s) {ids['0']}, {ids['1']} " in waited.stderr
    assert waited.stdout.startswith("tiny: 4 configs (") and waited.stdout.endswith(
        f" already done) in 2 shards; merged -> {out}\n"), waited.stdout
    assert sorted(p.name for p in (out / ".submitit").glob("*_submitted.pkl")) == sorted(
        f"{i}_submitted.pkl" for i in ids.values())
    assert len(store.part_dirs(out)) == 4 and len(store.read_parquet(out / "runs.parquet")) == 4
    assert_identical_results(store.load_results(out), want)

    again = _cli(*args)  # all finished: nothing to submit, merged again
    assert again.exit_code == 0
    assert again.stdout == f"tiny: 4 configs (4 already done) in 2 shards; merged -> {out}\n"


class FailsOnce(cluster.ShardTask):
    """Shard 1's first job dies after writing one of its two parts (a node lost mid-shard); every other
    call runs normally. Jobs get this class pickled by value: importing this module there would import
    conftest, which turns their compilation cache off."""

    def __call__(self, exp, profile, out, shard, data_dir=None):
        marker = Path(out) / ".submitit" / "failed-once"
        if shard[0] == 1 and not marker.exists():
            marker.touch()
            write = store.write_part

            def write_then_die(*args, **kwargs):
                write(*args, **kwargs)
                raise RuntimeError("injected: node lost after one part")

            store.write_part = write_then_die  # in this job's process only
        return super().__call__(exp, profile, out, shard, data_dir)


def test_a_failed_shard_is_resubmitted_and_resumes_from_its_finished_parts(single, tmp_path):
    path, want = single
    out, notes = tmp_path / "out", []
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        outcome = cluster.sweep(spec.load(str(path)), None, out, 2, "local", cluster.parameters("local", "tiny", 10),
                                max_retries=1, task=FailsOnce(max_chunk=1), note=notes.append)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert outcome.resubmitted == 1 and not outcome.failed and outcome.merged and outcome.n_finished == 4
    failed = [n for n in notes if n.startswith("shard 1 ")]
    assert len(failed) == 1 and "failed: RuntimeError: injected: node lost after one part (log: " in failed[0]
    assert "(retry 1 of 1)" in failed[0]
    retry = json.loads((out / ".submitit" / "jobs.json").read_text())["jobs"]["1"]
    assert failed[0].split("resubmitted as job ")[1].startswith(retry)
    assert cluster.submitit.LocalJob(out / ".submitit", retry).result().n_skipped == 1  # the part it kept
    assert_identical_results(store.load_results(out), want)


def test_a_shard_that_keeps_failing_ends_in_one_line_and_keeps_the_folder(single, tmp_path):
    path, _ = single
    out = tmp_path / "out"
    out.mkdir()
    with lock.hold(out):  # a `satbench run` writing the folder: the shard is refused
        result = _cli("submit", path, "--shards", 1, "--executor", "local", "--out", out, "--max-retries", 0)
    assert result.exit_code == 1 and result.stdout == ""
    note, line = result.stderr.strip().splitlines()  # which jobs it waited for, then the error
    assert note.startswith("satbench: tiny: waiting for 1 shard(s) of 1, local job(s) ")
    assert line.startswith(f"satbench: error: 1 of 1 shards failed after 0 retries; 0 of 4 configs finished in "
                           f"{out} (rerun the same command to resume); shard 0: satbench.lock.Busy: --out {out}: "
                           f"another satbench run (pid {os.getpid()}) is writing this folder"), line
    assert line.endswith("_0_log.err)") and not store.part_dirs(out)


@pytest.mark.parametrize("args, message", [
    (["no-such-experiment", "--shards", "2"], "unknown experiment 'no-such-experiment'"),
    (["{spec}", "--shards", "0"], "Invalid value for '--shards': 0 is not in the range x>=1."),
    (["{spec}", "--shards", "5"], "--shards must be between 1 and the sweep's 4 configs, got 5"),
    (["{spec}", "--shards", "2", "--profile", "full"], "unknown profile 'full'"),
    (["{spec}", "--shards", "2", "--executor", "local", "--slurm-partition", "gpu"],
     "--slurm-partition needs --executor slurm"),
    (["{spec}", "--shards", "2"], "--executor slurm: sbatch and srun not found on PATH"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, monkeypatch, args, message):
    path = tmp_path / "tiny.toml"
    path.write_text(SPEC)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # no SLURM here
    out = tmp_path / "out"
    line = _one_line(_cli("submit", *[a.format(spec=path) for a in args], "--out", out), 2)
    assert message in line
    assert not out.exists()


def _fake(bin_dir: Path, name: str, script: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_slurm_gets_one_job_array_with_the_asked_resources_and_a_later_submit_waits_for_its_live_jobs(
        tmp_path, monkeypatch):
    """Real SLURM is not here: sbatch keeps the script it was given, sacct reports fixed states."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake(bin_dir, "srun", "exit 0\n")
    _fake(bin_dir, "sbatch", f'cp "$1" {tmp_path}/sbatch.sh; echo "Submitted batch job 4242"\n')
    _fake(bin_dir, "sacct", 'printf "JobID|State|NodeList\\n4242_0|RUNNING|n1\\n4242_1|FAILED|n2\\n"\n')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    cluster.check_request(2, 4, "slurm", "gpu")  # the tools are found
    exp, out = spec.parse(SPEC), tmp_path / "out"
    params = cluster.parameters("slurm", "satbench-tiny", 90, "gpu", cpus_per_task=4, gpus_per_node=1)
    ex = cluster.make_executor("slurm", out, params)
    jobs = cluster.submit(ex, cluster.ShardTask(), exp, None, out, [0, 1], 2)
    cluster.record(out, "slurm", 2, jobs)
    assert {i: j.job_id for i, j in jobs.items()} == {0: "4242_0", 1: "4242_1"}
    script = (tmp_path / "sbatch.sh").read_text().splitlines()
    for flag in ("--array=0-1%2", "--partition=gpu", "--time=90", "--cpus-per-task=4", "--gpus-per-node=1",
                 "--job-name=satbench-tiny", f"--output={out}/.submitit/%A_%a_0_log.out"):
        assert f"#SBATCH {flag}" in script, flag
    assert any("-m submitit.core._submit" in line and str(out / ".submitit") in line for line in script)
    # shard 0's job still runs, shard 1's failed: a second submit waits for 0 and resubmits 1
    assert list(cluster.still_running("slurm", out, 2, [0, 1])) == [0]
    assert cluster.still_running("slurm", out, 3, [0, 1]) == {}  # another split of the sweep: not its jobs


def test_the_rerun_command_repeats_the_cluster_options():
    line = cluster.command_line("exp dir/a.toml", "quick", 4, Path("/r/out"), "slurm", slurm_partition="gpu",
                                timeout_min=30, cpus_per_task=None, no_plot=True, max_chunk=None)
    assert line == ("satbench submit 'exp dir/a.toml' --profile quick --shards 4 --out /r/out --executor slurm "
                    "--slurm-partition gpu --timeout-min 30 --no-plot --wait")


def test_pending_shards_are_those_with_an_unfinished_config():
    slices = [frozenset({"a", "b"}), frozenset(), frozenset({"c"})]
    assert cluster.pending(slices, {"a", "b"}) == [2]
    assert cluster.pending(slices, set()) == [0, 2]  # an empty slice has no work
