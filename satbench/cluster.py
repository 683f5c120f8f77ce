"""Sweeps beyond one machine: a job array of ``--shard I/N`` runs, through submitit (SLURM or local processes).

Why this shape: each job is an ordinary ``run_experiment(..., shard=(i, N))`` into the shared results
folder, so everything a shard run guarantees carries over: parts are whole or absent, a rerun resumes
from them, one slice runs at a time (``lock``), parts merge on read. The submitting process only
decides which shards still have work, submits them, resubmits the ones that die, and merges at the end.
Its only state is the list of job ids (``OUT/.submitit/jobs.json``, beside submitit's logs), so a later
``satbench submit ... --wait`` waits for jobs still queued or running instead of submitting them twice.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import submitit

from satbench import spec, store

EXECUTORS = ("slurm", "local")
LOGS = ".submitit"  # under --out: logs, pickled calls and results travel with the sweep, not the cwd
JOBS = "jobs.json"
#: how often the waiting process looks at its jobs (SLURM: submitit also rate-limits its sacct calls)
POLL_S = {"slurm": 30.0, "local": 1.0}
#: SLURM states of a job that may still write results (a later submit waits for it)
ACTIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
          "RESIZING", "SUSPENDED", "STAGE_OUT", "SIGNALING", "PREEMPTED"}


class ShardTask(submitit.helpers.Checkpointable):
    """One shard of a sweep, as a job runs it. Checkpointable, so a job that SLURM preempts or times out
    is requeued with the same call (submitit's default, up to 3 times), which resumes from the finished
    parts. ``options`` go to ``run_experiment`` (how the sweep runs: none of them changes a number)."""

    def __init__(self, **options):
        self.options = options

    def __call__(self, exp: spec.Experiment, profile: str | None, out: Path, shard: tuple[int, int],
                 data_dir=None):
        # imported here, on the node: the submitting process needs no JAX for this
        from satbench import engine

        return engine.run_experiment(exp, profile, out, shard=shard, progress=False, data_dir=data_dir,
                                     **self.options)


# --- checks and plans (pure) ---------------------------------------------------------------------------

def check_request(n_shards: int, n_configs: int, executor: str, partition: str | None) -> None:
    """One-line errors for a submission that cannot work, before anything is written or submitted."""
    if executor not in EXECUTORS:
        raise spec.SpecError(f"--executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    if not 1 <= n_shards <= n_configs:
        raise spec.SpecError(f"--shards must be between 1 and the sweep's {n_configs} configs, got {n_shards}")
    if partition is not None and executor != "slurm":
        raise spec.SpecError("--slurm-partition needs --executor slurm")
    missing = [tool for tool in ("sbatch", "srun") if executor == "slurm" and shutil.which(tool) is None]
    if missing:
        raise spec.SpecError(f"--executor slurm: {' and '.join(missing)} not found on PATH; submit from a "
                             "SLURM login node, or use --executor local")


def check_folder(out: Path, exp: spec.Experiment, profile: str | None) -> None:
    """Refuse an ``out`` that the shards would refuse one by one (a file; another spec's results)."""
    if out.exists() and not out.is_dir():
        raise spec.SpecError(f"--out {out}: exists and is not a folder")
    try:
        found = store.read_manifest(out)
    except store.CorruptManifest as err:
        raise spec.SpecError(str(err)) from None
    has_results = bool(store.part_dirs(out)) or (out / "runs.parquet").exists()
    if found is not None and has_results and (found.get("spec_hash") != exp.spec_hash(profile)
                                              or found.get("experiment") != exp.name):
        raise spec.SpecError(f"--out {out}: holds results of a different spec ({found.get('experiment')}, "
                             f"profile {found.get('profile')}); choose another --out")


def parameters(executor: str, name: str, timeout_min: int, partition: str | None = None,
               cpus_per_task: int | None = None, gpus_per_node: int | None = None) -> dict:
    """submitit's (AutoExecutor) parameters for every job of the sweep; None: the cluster's default."""
    params = {"name": name, "timeout_min": timeout_min, "cpus_per_task": cpus_per_task,
              "gpus_per_node": gpus_per_node}
    if executor == "slurm":
        params["slurm_partition"] = partition
    return {k: v for k, v in params.items() if v is not None}


def shard_ids(configs: list, n_shards: int) -> list[frozenset[str]]:
    """The config ids of each of the ``n_shards`` slices, as ``--shard i/N`` cuts them."""
    from satbench import plan  # imports JAX

    return [frozenset(c.config_id for c in plan.shard_slice(configs, i, n_shards)) for i in range(n_shards)]


def pending(shards: list[frozenset[str]], finished: set[str]) -> list[int]:
    """The shards with a config not finished yet (an empty slice never is)."""
    return [i for i, ids in enumerate(shards) if not ids <= finished]


def command_line(experiment: str, profile: str | None, n_shards: int, out: Path, executor: str,
                 **options) -> str:
    """The ``satbench submit`` command that waits for this sweep: with the same cluster options, so the
    shards it resubmits get the same resources. ``options``: the other flags (None/False: not given)."""
    words = ["satbench", "submit", experiment, *(["--profile", profile] if profile else []),
             "--shards", str(n_shards), "--out", str(out), "--executor", executor]
    for key, value in options.items():
        if value is None or value is False:
            continue
        words += [f"--{key.replace('_', '-')}"] + ([] if value is True else [str(value)])
    return shlex.join([*words, "--wait"])


# --- jobs --------------------------------------------------------------------------------------------

def logs(out: Path) -> Path:
    """submitit's folder for the sweep in ``out``: its logs and pickles stay with the results."""
    return Path(out) / LOGS


def make_executor(executor: str, out: Path, params: dict) -> submitit.Executor:
    """submitit's AutoExecutor on SLURM or on local processes; logs under ``OUT/.submitit``."""
    ex = submitit.AutoExecutor(folder=logs(out), cluster=executor)
    ex.update_parameters(**params)
    return ex


def submit(ex: submitit.Executor, task: Callable, exp: spec.Experiment, profile: str | None, out: Path,
           shards: list[int], n_shards: int, data_dir=None) -> dict[int, submitit.Job]:
    """One job per shard in ``shards`` (one SLURM job array when several)."""
    k = len(shards)
    jobs = ex.map_array(task, [exp] * k, [profile] * k, [Path(out)] * k, [(i, n_shards) for i in shards],
                        [data_dir] * k)
    return dict(zip(shards, jobs))


def record(out: Path, executor: str, n_shards: int, jobs: dict[int, submitit.Job]) -> None:
    """Write the job id of each shard (merged into the ids already recorded for this split)."""
    path = logs(out) / JOBS
    old = read_record(out)
    ids = old["jobs"] if old.get("executor") == executor and old.get("shards") == n_shards else {}
    ids.update({str(i): job.job_id for i, job in jobs.items()})
    store.atomic_write_json({"executor": executor, "shards": n_shards, "jobs": ids}, path)


def read_record(out: Path) -> dict:
    """The recorded job ids ({} when none or unreadable)."""
    path = logs(out) / JOBS
    try:
        return store.read_json(path) if path.exists() else {}
    except store.CorruptManifest:
        return {}  # a damaged record only costs the chance to wait for jobs of an earlier submit


def still_running(executor: str, out: Path, n_shards: int, shards: list[int]) -> dict[int, submitit.Job]:
    """The recorded jobs of ``shards`` (same executor, same N) that may still write results."""
    found = read_record(out)
    if found.get("executor") != executor or found.get("shards") != n_shards:
        return {}
    cls = submitit.SlurmJob if executor == "slurm" else submitit.LocalJob
    jobs = {i: cls(folder=logs(out), job_id=found["jobs"][str(i)]) for i in shards if str(i) in found["jobs"]}
    if executor == "slurm" and jobs:
        next(iter(jobs.values())).get_info(mode="force")  # one sacct call for all of them
        return {i: job for i, job in jobs.items() if job.state.split()[0].upper() in ACTIVE}
    return {i: job for i, job in jobs.items() if running(job)}


def running(job: submitit.Job) -> bool:
    """Whether ``job`` may still write results. A local job started by an earlier process has no
    process handle here: its controller's pid (the job id) tells."""
    if isinstance(job, submitit.LocalJob) and job.state == "NO PROCESS AND NO RESULT":
        return _controller_alive(int(job.job_id))
    return not job.done()


def _controller_alive(pid: int) -> bool:
    """Whether the local job controller ``pid`` still runs: not exited, not a zombie its parent has not
    reaped, not a pid reused since by another program (where /proc shows it)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):  # gone, or another user's process
        return False
    proc = Path(f"/proc/{pid}")
    if not proc.is_dir():
        return True
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z" and b"submitit" in (proc / "cmdline").read_bytes()
    except (OSError, IndexError):
        return False


def brief(ids: list[str]) -> str:
    """Job ids for one line: all of a few, the ends of many (jobs.json keeps them all)."""
    return ", ".join(ids) if len(ids) <= 4 else f"{ids[0]}, {ids[1]}, ..., {ids[-1]} ({len(ids)} jobs)"


def failure(job: submitit.Job) -> str:
    """Why ``job`` ended without finishing its shard, in one line (the exception's last line), with its log."""
    try:
        err = job.exception()
    except Exception as problem:  # noqa: BLE001 - a status we cannot read is still a failed shard
        err = problem
    if err is None:
        reason = "it ended without finishing its configs"
    elif isinstance(err, submitit.core.utils.FailedJobError):  # the job's traceback between lines of dashes
        lines = [line.strip() for line in str(err).splitlines()]
        cut = [i for i, line in enumerate(lines) if line and set(line) == {"-"}]
        inner = [line for line in lines[cut[0] + 1:cut[1]] if line] if len(cut) >= 2 else []
        reason = inner[-1] if inner else next((line for line in lines if line), type(err).__name__)
    elif isinstance(err, submitit.core.utils.UncompletedJobError):
        reason = f"it ended without a result (state {job.state}: killed, out of memory or out of time?)"
    else:
        reason = " ".join(str(err).split())[:200] or type(err).__name__
    return f"{reason} (log: {job.paths.stderr})"


def wait_for(jobs: dict[int, submitit.Job], resubmit: Callable[[int], submitit.Job],
             complete: Callable[[int], bool], max_retries: int, poll_s: float,
             note: Callable[[str], None]) -> tuple[int, dict[int, str]]:
    """Wait for every job; resubmit a shard whose job ended before its configs did, up to ``max_retries``
    times each (it resumes from its finished parts). Returns (resubmissions, {shard: why it failed})."""
    active, tries, failed = dict(jobs), dict.fromkeys(jobs, 0), {}
    while active:
        for i, job in list(active.items()):
            if running(job):
                continue
            del active[i]
            if complete(i):
                continue
            why = failure(job)
            if tries[i] < max_retries:
                tries[i] += 1
                active[i] = resubmit(i)
                note(f"shard {i} (job {job.job_id}) failed: {why}; resubmitted as job {active[i].job_id} "
                     f"(retry {tries[i]} of {max_retries})")
            else:
                failed[i] = why
        if active:
            time.sleep(poll_s)
    return sum(tries.values()), failed


def merge(out: Path) -> None:
    """Write the merged tables, holding the folder as a whole run does: refused while a shard runs."""
    from satbench import lock

    with lock.hold(out):
        store.consolidate(out)


@dataclasses.dataclass
class Outcome:
    """What ``sweep`` did, for the command's lines."""

    n_configs: int
    n_done: int  # finished before this submit
    submitted: dict[int, str]  # shard -> job id, submitted now
    earlier: dict[int, str]  # shard -> job id of an earlier submit, still queued or running
    resubmitted: int = 0
    failed: dict[int, str] = dataclasses.field(default_factory=dict)  # shard -> why, in one line
    n_finished: int = 0
    merged: bool = False


def sweep(exp: spec.Experiment, profile: str | None, out: Path, n_shards: int, executor: str, params: dict, *,
          wait: bool = True, max_retries: int = 2, data_dir=None, task: Callable | None = None,
          note: Callable[[str], None] = lambda line: None) -> Outcome:
    """Submit every shard that still has work (waiting instead for a job of an earlier submit that still
    runs it); with ``wait``, resubmit a shard whose job fails, up to ``max_retries`` times, and merge the
    tables once every config is finished. ``task``: what a job calls (default ``ShardTask()``)."""
    out = Path(out).absolute()
    configs = exp.configs(profile)
    slices = shard_ids(configs, n_shards)
    every = set().union(*slices)

    def finished() -> set[str]:
        return store.finished_ids(out) & every if out.is_dir() else set()

    done = finished()
    todo = pending(slices, done)
    earlier = still_running(executor, out, n_shards, todo) if todo else {}
    ex = make_executor(executor, out, params) if todo else None
    task = task or ShardTask()

    def launch(shards: list[int]) -> dict[int, submitit.Job]:
        jobs = submit(ex, task, exp, profile, out, shards, n_shards, data_dir) if shards else {}
        if jobs:
            record(out, executor, n_shards, jobs)
        return jobs

    jobs = launch([i for i in todo if i not in earlier])
    outcome = Outcome(len(every), len(done), {i: j.job_id for i, j in jobs.items()},
                      {i: j.job_id for i, j in earlier.items()})
    if todo and not wait:
        outcome.n_finished = len(done)
        return outcome
    if todo:
        waiting = dict(sorted({**earlier, **jobs}.items()))
        note(f"{exp.name}: waiting for {len(todo)} shard(s) of {n_shards}, {executor} job(s) "
             f"{brief([j.job_id for j in waiting.values()])} (logs: {logs(out)})")
        outcome.resubmitted, outcome.failed = wait_for(
            waiting, lambda i: launch([i])[i], lambda i: slices[i] <= finished(), max_retries, POLL_S[executor], note)
    outcome.n_finished = len(finished())
    if not outcome.failed:
        merge(out)
        outcome.merged = True
    return outcome
