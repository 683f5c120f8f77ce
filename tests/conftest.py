import contextlib
import os
import pathlib
import shutil
import tempfile
import typing

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
# compile counts and results must not depend on what earlier runs left in a disk cache: satbench's
# own cache (JAX's persistent cache in ~/.cache and the executables beside it) is off; the cache
# tests turn it on in their own subprocesses
os.environ["SATBENCH_COMPILATION_CACHE"] = "0"
# ... but XLA compiles the same programs again and again: every subprocess a test starts, the other
# xdist worker, a test that clears JAX's caches. One JAX persistent cache per session, in a new
# temporary folder shared by the workers (they inherit this process's environment) and by every
# process they start, serves those: a compile in one test is a load in the next (.ci/run in a fresh
# environment: 1938 CPU-s with it, 2335 when every read of it failed; seven test files run side by
# side with and without it, one worker each: 630 CPU-s against 675). Results are the
# same either way (the executables tests compare a loaded program's numbers with a compiled one's);
# tests that count compiles turn it off (the ``without_jax_cache`` fixture), and the cache tests
# give their subprocesses their own
if "PYTEST_XDIST_WORKER" not in os.environ:  # the controller, or a run without xdist
    SESSION_JAX_CACHE = tempfile.mkdtemp(prefix="satbench-tests-jax-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = SESSION_JAX_CACHE
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.5"
    # a size limit makes JAX take a file lock (the test extra's filelock) around each read and write:
    # two processes may compile the same program at once. A whole run leaves about 200 MB
    os.environ["JAX_COMPILATION_CACHE_MAX_SIZE"] = str(2**31)
else:
    SESSION_JAX_CACHE = None
# pytest-xdist already runs one worker per core: each sweep makes one program call at a time (tests
# that run calls side by side say so with concurrent=)
os.environ["SATBENCH_CONCURRENT"] = "1"
# the jits the tests compile themselves (init draws, probes, theory checks; subprocesses inherit it) at
# XLA:CPU's LLVM optimisation level 1: an init-equality test compiled in 3 s instead of 10, with
# results equal to the last bits or so. Sweep programs compile at their family's level whatever this
# says (satbench.executables.compiler_options: an explicit option wins over XLA_FLAGS, checked bit for bit)
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=1").strip()

import pytest  # noqa: E402

MAX_WORKERS = 4


def pytest_unconfigure(config):
    if SESSION_JAX_CACHE is not None:
        shutil.rmtree(SESSION_JAX_CACHE, ignore_errors=True)


@contextlib.contextmanager
def jax_cache(folder, min_compile_time_secs=None):
    """JAX's persistent cache in ``folder`` (None: off), caching compiles of at least
    ``min_compile_time_secs`` when given; the session's settings come back on exit."""
    import jax
    from jax._src import compilation_cache

    before = jax.config.jax_compilation_cache_dir, jax.config.jax_persistent_cache_min_compile_time_secs
    jax.config.update("jax_compilation_cache_dir", None if folder is None else str(folder))
    if min_compile_time_secs is not None:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", min_compile_time_secs)
    compilation_cache.reset_cache()
    try:
        yield
    finally:
        jax.config.update("jax_compilation_cache_dir", before[0])
        jax.config.update("jax_persistent_cache_min_compile_time_secs", before[1])
        compilation_cache.reset_cache()


@pytest.fixture
def without_jax_cache():
    """JAX's persistent cache off for one test: one that counts compiles (a cache hit is none), or
    checks what happens without a cache."""
    with jax_cache(None):
        yield


def env_with_own_cache(cache: pathlib.Path) -> dict:
    """This process's environment for a subprocess with satbench's cache on in ``cache``, as a user
    has it: without the session's JAX cache settings (its folder would take precedence, since
    satbench keeps a cache folder already configured)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_COMPILATION_CACHE", "JAX_PERSISTENT_CACHE"))}
    return dict(env, SATBENCH_COMPILATION_CACHE="1", SATBENCH_CACHE_DIR=str(cache))


def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one worker per core, at most MAX_WORKERS (each worker holds JAX, its compiled
    programs and the datasets; most of a test's time is one single-threaded XLA compile)."""
    return max(1, min(MAX_WORKERS, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else os.cpu_count() or 1))


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


#: TINY over three depths with one seed (12 configs): the planner pads depths 2 and 3 into one
#: scanned depth-5 program, while alone they run unrolled in programs of their own depth
MULTI_DEPTH = TINY.replace("depth = 3\n", "").replace("seed = [0, 1]", "seed = [0]\ndepth = [2, 3, 5]")
#: what the equality tests compare (float32 tolerance: programs differ in rounding)
RESULT_COLUMNS = ["final_loss", "final_train_accuracy", "final_test_accuracy", "grad_decay", "last_finite_loss"]


@pytest.fixture(scope="session")
def multi_depth(tmp_path_factory):
    """(path of the MULTI_DEPTH file, its results with every config run alone): a chunk of one in
    a program of the config's own depth (``--no-bucketing --max-chunk 1``). Every way of running
    the sweep (bucketed, padded, chunked, sharded, resumed) must give these numbers."""
    from satbench import engine, spec, store

    root = tmp_path_factory.mktemp("multi_depth")
    path = root / "multi.toml"
    path.write_text(MULTI_DEPTH)
    engine.run_experiment(spec.load(str(path)), None, root / "alone", progress=False, max_chunk=1,
                          bucketing=False)
    return path, store.load_results(root / "alone")


def assert_same_results(got, want, ids=None):
    """``got`` holds the configs of ``want`` (or those in ``ids``) with equal numbers, ≤ 1e-6
    relative; layer fields near 0 (one unit's percentiles, mean activations) to 1e-6 absolute."""
    import pandas as pd

    ids = set(want.runs["config_id"]) if ids is None else set(ids)
    assert got.runs["config_id"].is_unique and set(got.runs["config_id"]) == ids
    for table, keys, cols in (("runs", ["config_id"], RESULT_COLUMNS),
                              ("layers", ["config_id", "step", "layer"], None),
                              ("curves", ["config_id", "step"], None)):
        a, b = (getattr(r, table) for r in (got, want))
        a, b = (df[df["config_id"].isin(ids)].set_index(keys).sort_index() for df in (a, b))
        cols = cols or list(a.columns)
        pd.testing.assert_frame_equal(a[cols], b[cols], rtol=1e-6, atol=0 if table == "runs" else 1e-6)


#: reproductions run end to end only under ``-m slow`` (with their claims' perturbation tests): each
#: compiles several deep programs, a minute or more on 2 cores, which the default run (meant to take
#: about 12 minutes on CI's 2 cores) cannot afford for all of them. The default run keeps he2015, klambauer2017,
#: remedies' sigmoid32 and noci2022 (a transformer) end to end; every figure renders there from stored tables
#: (test_figures.py).
SLOW_REPRODUCTIONS = {("glorot2010", "quick"), ("schoenholz2017", "row60"), ("klambauer2017_training", "test"),
                      ("ioffe2015", "quick"), ("he2016", "test"), ("hanin2018", "quick"), ("saxe2014", "test"),
                      ("pennington2017", "test"), ("xiao2018", "quick"), ("xiao2018_training", "quick"),
                      ("hochreiter1997", "quick"), ("le2015", "quick"), ("zhang2019", "test"),
                      ("martens2021", "test"), ("yang2019", "test"), ("balduzzi2017", "test"),
                      ("dong2021", "quick"), ("xiong2020", "quick"),
                      # 35-80 s each; their theory and families keep default tests (test_recurrent,
                      # test_signal_theory, test_dropout)
                      ("xiao2018_isometry", "test"), ("pascanu2013", "test"), ("schoenholz2017_dropout", "test"),
                      # init-only: its theory against measured nets keeps a default test (test_residual_theory)
                      ("yang2017", "test")}


def assert_identical_results(got, want):
    """``got`` and ``want`` hold the same rows with every number equal bit for bit (wall-clock
    timings aside): what a resumed or recomputed sweep must give against an uninterrupted one."""
    import pandas as pd

    for table in ("runs", "layers", "curves"):
        a, b = getattr(got, table), getattr(want, table)
        keys = [k for k in ("config_id", "step", "layer") if k in a.columns]
        a, b = (df.sort_values(keys).reset_index(drop=True).drop(columns=["time_per_step_s"], errors="ignore")
                for df in (a, b))
        pd.testing.assert_frame_equal(a, b[a.columns], check_exact=True)


class Reproduction(typing.NamedTuple):
    output: str  # what ``satbench reproduce`` printed: the claim table
    folder: pathlib.Path  # its results folder (shared by every test of the session: copy it to change it)


@pytest.fixture(scope="session")
def reproduce(tmp_path_factory):
    """``satbench reproduce NAME --profile PROFILE``, run once per (name, profile) in a session and
    shared by every test that asks for it (the PASS table and the perturbed
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
