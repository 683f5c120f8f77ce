"""Scale-out and reliability: memory-sized chunks, out-of-memory halving, Ctrl-C, many processes."""

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import pandas as pd
import pytest

from satbench import data, engine, manifest, mlp, models, plan, schedule, spec, store, train
from conftest import assert_same_results

ROOT = Path(__file__).resolve().parent.parent


def _values(**overrides):
    values = {k: f.default for k, f in spec.FIELDS.items()}
    values.update(overrides)
    return schedule.resolve_log_every(values)


def _tree_bytes(tree) -> int:
    return sum(x.nbytes for x in jax.tree.leaves(tree))


# --- the memory estimate -------------------------------------------------------------------------

@pytest.mark.parametrize("width,depth,optimizer", [(16, 3, "sgd"), (24, 5, "adam"), (8, 2, "momentum")])
def test_the_estimate_counts_the_actual_params_and_optimizer_state(width, depth, optimizer):
    ds = data.load("digits")
    arch = mlp.Architecture(ds.n_in, ds.n_classes, width, depth, "tanh", "gaussian")
    _, params = models.init_state(arch, jax.random.key(0), 1.0, 0.1)
    terms = plan.memory_terms(_values(width=width, depth=depth, optimizer=optimizer), depth, plan.data_shape("digits"))
    assert terms["params"] == _tree_bytes(params)
    opt_state = train.make_optimizer(optimizer, 0.1, 0.9).init(params)
    assert terms["optimizer"] <= _tree_bytes(opt_state) <= terms["optimizer"] + 16  # + adam's step count


def test_the_estimate_grows_with_width_depth_batch_and_jacobian_samples():
    def total(**kw):
        depth = kw.get("depth", 8)
        return plan.config_bytes(_values(**kw), depth, plan.data_shape("digits"))

    base = total()
    assert total(width=256) > base and total(depth=16) > base and total(batch_size=512) > base
    assert total(probe_batch=1024) > base
    # 4 samples' Jacobian is smaller than the probe, which runs before it, not beside it: only the spectra
    # in the record are added; 64 samples' is the largest phase
    assert base < total(jacobian_samples=4) < 1.01 * base < total(jacobian_samples=64)
    assert total(optimizer="adam") > total(optimizer="momentum") > total(optimizer="sgd")
    widths = [total(width=w) for w in (8, 16, 32, 64, 128)]
    assert widths == sorted(widths) and len(set(widths)) == len(widths)


def test_the_estimate_is_near_xlas_own_buffer_assignment():
    """Per extra lane, XLA:CPU's buffer assignment (temp + output bytes) of a compiled sweep
    and ``config_bytes`` agree within a factor of two (scanned layers)."""
    ds = data.load("digits")
    values = _values(width=16, depth=3, steps=20, log_every=10, optimizer="adam")
    arch = mlp.Architecture(ds.n_in, ds.n_classes, 16, 3, "tanh", "gaussian", "scan")
    program = train.make_program(arch, dataset="digits", optimizer="adam", steps=20, log_every=10)
    used = []
    for chunk in (1, 3):
        m = engine.compiled_sweep(program, chunk, train.data_arrays(ds)).memory_analysis()
        used.append(m.temp_size_in_bytes + m.output_size_in_bytes)
    per_lane = (used[1] - used[0]) / 2
    assert 0.5 < plan.config_bytes(values, 3, plan.data_shape("digits")) / per_lane < 2.0


@pytest.mark.slow  # two CNN compiles (19-29 s on 2 cores); the MLP's estimate keeps a default test above
def test_the_cnn_estimate_counts_its_im2col_patches():
    """A CNN layer keeps its k²·C·H·W im2col patches for the backward pass, 9× its pre-activation
    at k = 3: per extra lane the estimate is within a factor of two of XLA:CPU's buffer assignment
    (counting only pre-activations it was 0.40× at depth 256, and a 6-lane sweep the planner
    thought took 10 GB filled 23 GB)."""
    from satbench import cnn

    ds, info = data.load("digits"), data.describe("digits")
    values = _values(model="cnn", channels=8, depth=16, steps=20, log_every=10, batch_size=32, probe_batch=256)
    shape = plan.data_shape("digits")
    arch = cnn.architecture(values, 16, shape, ("tanh",), ("gaussian",), "scan")
    program = train.make_program(arch, dataset="digits", steps=20, log_every=10, batch_size=32, probe_batch=256)
    used = []
    for chunk in (1, 2):
        m = engine.compiled_sweep(program, chunk, train.data_arrays(ds, info)).memory_analysis()
        used.append(m.temp_size_in_bytes + m.output_size_in_bytes)
    assert 0.5 < plan.config_bytes(values, 16, shape) / (used[1] - used[0]) < 2.0


def test_chunk_size_fits_the_budget_and_the_devices():
    assert plan.chunk_size(10, per_config=100, fixed=50, budget=None, max_chunk=16) == 10
    assert plan.chunk_size(10, per_config=100, fixed=50, budget=250, max_chunk=16) == 2
    assert plan.chunk_size(10, per_config=100, fixed=50, budget=10, max_chunk=16) == 1  # never below one lane
    assert plan.chunk_size(10, per_config=100, fixed=50, budget=10**6, max_chunk=4) == 4  # --max-chunk caps
    assert plan.chunk_size(10, per_config=100, fixed=50, budget=250, max_chunk=16, n_devices=4) == 8
    assert plan.chunk_size(3, per_config=100, fixed=0, budget=None, max_chunk=16, n_devices=4) == 4
    # balanced calls: the last call is padded to the chunk, so 20 under a cap of 16 run as 2 x 10
    assert plan.chunk_size(20, per_config=100, fixed=0, budget=None, max_chunk=16) == 10
    assert plan.chunk_size(33, per_config=100, fixed=0, budget=None, max_chunk=16) == 11
    # calls run side by side: one per worker where there are configs enough, and the budget holds them all
    assert plan.chunk_size(24, per_config=100, fixed=0, budget=None, max_chunk=16, concurrent=2) == 12
    assert plan.chunk_size(8, per_config=100, fixed=0, budget=None, max_chunk=16, concurrent=2) == 4
    assert plan.chunk_size(40, per_config=100, fixed=0, budget=None, max_chunk=16, concurrent=2) == 10  # 4 calls
    assert plan.chunk_size(1, per_config=100, fixed=0, budget=None, max_chunk=16, concurrent=2) == 1
    assert plan.chunk_size(10, per_config=100, fixed=50, budget=450, max_chunk=16, concurrent=2) == 2  # 2 x 2 fit


def test_a_budget_smaller_than_the_sweep_still_completes_in_the_expected_chunks(multi_depth, tmp_path):
    path, alone = multi_depth
    exp = spec.load(str(path))
    cfg = max(exp.configs(), key=lambda c: c["depth"])  # the padded program's depth sizes a lane
    per_config = plan.config_bytes(cfg.values, cfg["depth"], plan.data_shape(cfg["dataset"]))
    fixed = plan.program_bytes(cfg["dataset"])
    budget = fixed + 2 * per_config + per_config // 2  # room for two configs, not three
    engine.run_experiment(exp, None, tmp_path, progress=False, memory_budget=budget, concurrent=1)
    manifest = store.read_manifest(tmp_path)
    assert manifest["memory_budget"] == {"bytes_per_device": budget, "source": "--memory-budget"}
    assert len(manifest["groups"]) == 1  # tanh and relu, depths 2, 3 and 5 share one padded program
    for group in manifest["groups"]:
        assert group["masked"] and group["depths"] == [2, 3, 5]
        assert group["bytes_per_config"] == per_config and group["budget_bytes"] == budget
        assert group["chunk_size"] == 2 and group["chunks"] == math.ceil(group["n_configs"] / 2) == 6
    assert len(store.part_dirs(tmp_path)) == 6
    assert_same_results(store.load_results(tmp_path), alone)


def test_calls_run_side_by_side_equal_each_config_run_alone(multi_depth, tmp_path):
    """Three program calls at once (threads; XLA releases the GIL), each a whole chunk of the same
    executable: the results, written in order, equal each config alone bit for bit."""
    path, alone = multi_depth
    engine.run_experiment(spec.load(str(path)), None, tmp_path, progress=False, max_chunk=2, concurrent=3)
    manifest = store.read_manifest(tmp_path)
    assert manifest["concurrent_calls"] == 3
    assert [g["chunks"] for g in manifest["groups"]] == [6]  # 12 configs: 6 calls of 2, 3 at a time
    assert_same_results(store.load_results(tmp_path), alone)


def test_programs_that_call_lapack_run_one_call_at_a_time(tmp_path):
    """Orthogonal init and Jacobian spectra call LAPACK's SVD, which blocks XLA's intra-op pool
    threads while it waits for them: two such calls side by side hung a 2-core machine forever.
    In a fresh process with a deadline: the orthogonal program runs its chunks one at a time,
    the elementwise one side by side, and both finish."""
    import subprocess
    import sys

    text = """
[experiment]
name = "lapack"
[fixed]
width = 8
depth = 3
steps = 10
jacobian_samples = 0
[grid]
init = ["orthogonal", "gaussian"]
seed = [0, 1, 2, 3]
"""
    path = tmp_path / "lapack.toml"
    path.write_text(text)
    code = (f"from satbench import engine, spec\n"
            f"engine.run_experiment(spec.load({str(path)!r}), None, {str(tmp_path / 'out')!r}, progress=False, "
            f"max_chunk=2, concurrent=2)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    groups = {("orthogonal" if "orthogonal" in g["program"] else "gaussian"): g
              for g in store.read_manifest(tmp_path / "out")["groups"]}
    assert groups["orthogonal"]["concurrent_calls"] == 1 and groups["orthogonal"]["chunks"] == 2
    assert groups["gaussian"]["concurrent_calls"] == 2


def test_bucketed_padded_and_chunked_configs_equal_each_config_run_alone(multi_depth, tmp_path):
    """The default plan, one call of up to 16 lanes at a time, pads depths 2 and 3 into a scanned
    depth-5 program, called with each activation's 6 configs; a config's numbers (its init included)
    must not depend on that."""
    path, alone = multi_depth
    engine.run_experiment(spec.load(str(path)), None, tmp_path, progress=False, concurrent=1, max_chunk=16)
    (group,) = store.read_manifest(tmp_path)["groups"]
    assert group["masked"] and group["chunk_size"] == 6 and group["layers"] == "scan"
    assert set(alone.runs["program_depth"]) == {2, 3, 5} and set(alone.runs["chunk_lanes"]) == {1}
    assert_same_results(store.load_results(tmp_path), alone)


def test_three_configs_under_max_chunk_two_pad_the_last_chunk_and_equal_each_run_alone(multi_depth, tmp_path):
    path, alone = multi_depth
    text = path.read_text().replace('activation = ["tanh", "relu"]', "").replace("sigma_w2 = [0.5, 2.0]", "")
    three = tmp_path / "three.toml"
    three.write_text(text.replace("[fixed]\n", '[fixed]\nactivation = "tanh"\nsigma_w2 = 2.0\n'))
    exp = spec.load(str(three))
    assert len(exp.configs()) == 3
    engine.run_experiment(exp, None, tmp_path / "out", progress=False, max_chunk=2)
    (group,) = store.read_manifest(tmp_path / "out")["groups"]
    assert (group["chunk_size"], group["chunks"], group["masked"]) == (2, 2, True)  # 2 + 1 padded to 2
    assert_same_results(store.load_results(tmp_path / "out"), alone, ids=[c.config_id for c in exp.configs()])


# --- out of memory -------------------------------------------------------------------------------

def _oom():
    return jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 1.2GiB.")


def test_out_of_memory_is_recognised_from_xla_errors_only():
    assert engine.is_out_of_memory(_oom())
    assert engine.is_out_of_memory(jax.errors.JaxRuntimeError("INTERNAL: Failed to allocate: out of memory"))
    assert not engine.is_out_of_memory(jax.errors.JaxRuntimeError("INVALID_ARGUMENT: shapes differ"))
    assert not engine.is_out_of_memory(RuntimeError("RESOURCE_EXHAUSTED"))
    assert not engine.is_out_of_memory(MemoryError())


def test_halving_stops_at_one_config_per_device():
    assert [plan.halve_chunk(n) for n in (16, 5, 3, 2, 1)] == [8, 3, 2, 1, None]
    assert [plan.halve_chunk(n, 4) for n in (16, 8, 4)] == [8, 4, None]


def _fake_oom_above(limit, calls):
    real = engine.compiled_sweep

    def compiled_sweep(program, chunk, dataset, sharding=None):
        calls.append(chunk)
        if chunk > limit:
            def raise_oom(*args):
                raise _oom()
            return raise_oom
        return real(program, chunk, dataset, sharding)

    return compiled_sweep


def test_a_chunk_out_of_memory_is_halved_and_retried(multi_depth, tmp_path, monkeypatch, capsys):
    path, alone = multi_depth
    calls = []
    monkeypatch.setattr(engine, "compiled_sweep", _fake_oom_above(2, calls))
    engine.run_experiment(spec.load(str(path)), None, tmp_path, progress=False, max_chunk=4, concurrent=1)
    # one group, each activation's 6 configs planned in calls of 3, out of memory, recompiled for 2
    assert calls == [3, 2]
    err = capsys.readouterr().err
    assert err.count("out of memory at 3 configs per call; recompiling for 2") == 1
    for group in store.read_manifest(tmp_path)["groups"]:
        assert (group["planned_chunk_size"], group["chunk_size"], group["chunks"], group["oom_halvings"]) == (3, 2, 6, 1)
    assert_same_results(store.load_results(tmp_path), alone)


def test_out_of_memory_at_one_config_gives_up_with_a_clear_error(multi_depth, tmp_path, monkeypatch):
    path, _ = multi_depth
    monkeypatch.setattr(engine, "compiled_sweep", _fake_oom_above(0, []))
    with pytest.raises(engine.OutOfMemory, match=r"out of device memory even at 1 config\(s\) per call"):
        engine.run_experiment(spec.load(str(path)), None, tmp_path, progress=False, max_chunk=2)
    assert store.part_dirs(tmp_path) == []


# --- versions ------------------------------------------------------------------------------------

def test_results_of_another_satbench_version_are_resumed_with_a_one_line_warning(multi_depth, tmp_path, capsys):
    assert manifest.version_note("0.1.0", "0.1.7") is None and manifest.version_note(None, "0.1.0") is None
    assert "satbench 0.2.1" in manifest.version_note("0.2.1", "0.1.0")
    path, _ = multi_depth
    exp = spec.load(str(path))
    old = {"experiment": exp.name, "spec_hash": exp.spec_hash(None), "versions": {"satbench": "0.0.3"}}
    store.write_part(tmp_path, "p", {"runs": pd.DataFrame({"config_id": ["x"]})})
    store.atomic_write_json(old, tmp_path / "manifest.json")
    engine.prepare_output(tmp_path, exp, None, fresh=False)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "written by satbench 0.0.3" in lines[0] and "--fresh" in lines[0]


# --- Ctrl-C --------------------------------------------------------------------------------------

def _run_args(*args):
    return ["run", *map(str, args), "--quiet", "--no-plot"]


def _cli(*args):
    return [sys.executable, "-m", "satbench.cli", *_run_args(*args)]


def _env():
    return dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")


#: runs the CLI with Python's own Ctrl-C handler: a shell's background job (`pytest … &`) starts with
#: SIGINT ignored and its children inherit that. With SIGINT_AFTER_TABLE=n in its environment, the
#: process sends itself SIGINT once it has written n tables (the moment is fixed: a signal timed from
#: outside raced parts that land in a burst once the theory columns are ready)
_CLI_WITH_CTRL_C = """
import os, runpy, signal
from satbench import store
signal.signal(signal.SIGINT, signal.default_int_handler)
if os.environ.get("SIGINT_AFTER_TABLE"):
    written, write = [], store._write_parquet_synced
    def write_then_interrupt(df, dest):
        write(df, dest)
        written.append(dest)
        if len(written) == int(os.environ["SIGINT_AFTER_TABLE"]):
            os.kill(os.getpid(), signal.SIGINT)
    store._write_parquet_synced = write_then_interrupt
runpy.run_module("satbench.cli", run_name="__main__")
"""


def test_ctrl_c_keeps_finished_parts_and_the_same_command_resumes(multi_depth, tmp_path):
    """Ctrl-C between two tables of the second part: the first part stays, the torn second is
    removed, the exit is 130 with a line that says how far it got, and the same command resumes to
    the numbers of each config run alone (depths 2, 3 and 5 in one padded program)."""
    path, alone = multi_depth
    out = tmp_path / "out"
    command = [sys.executable, "-c", _CLI_WITH_CTRL_C, *_run_args(path, "--out", out, "--max-chunk", "2")]
    proc = subprocess.run(command, env=dict(_env(), SIGINT_AFTER_TABLE=str(len(store.TABLES) + 2)),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 130, proc.stderr[-3000:]
    line = proc.stderr.strip().splitlines()[-1]
    assert line == f"interrupted: 2 of 12 configs finished in {out}; rerun the same command to resume"
    assert len(store.part_dirs(out)) == 1 and len(store.finished_ids(out)) == 2
    assert not [p for p in (out / store.PARTS).iterdir() if p.name.startswith(".tmp-")]  # nothing half-written
    manifest = store.read_manifest(out)
    assert manifest["status"] == "interrupted" and manifest["n_finished"] == 2

    again = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "(2 already done)" in again.stdout
    assert store.read_manifest(out)["status"] == "finished"
    resumed = store.load_results(out)
    assert set(resumed.runs["program_depth"]) == {5}  # depths 2 and 3 ran padded, alone they did not
    assert_same_results(resumed, alone)


# --- many processes ------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # two processes with their own compiles (~35 s); the shard tests cover merging by default
def test_two_processes_under_jax_distributed_equal_each_config_run_alone(multi_depth, tmp_path):
    path, alone = multi_depth
    out = tmp_path / "out"
    port = _free_port()
    procs = [subprocess.Popen(_cli(path, "--out", out, "--distributed", "--coordinator", f"127.0.0.1:{port}",
                                   "--num-processes", "2", "--process-id", str(i)),
                              env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    try:
        results = [p.communicate(timeout=600) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip(procs, results):
        assert p.returncode == 0, err[-3000:]
    sizes = []
    for i in range(2):
        manifest = json.loads((out / f"manifest-shard-{i}-of-2.json").read_text())
        assert manifest["process"] == [i, 2] and manifest["status"] == "finished"
        assert len(manifest["devices"]) == 1
        sizes.append(manifest["n_configs"])
    assert sum(sizes) == 12 and min(sizes) >= 1  # each process ran its own, disjoint slice
    assert_same_results(store.load_results(out), alone)
    merged = pd.read_parquet(out / "runs.parquet")  # written by process 0 after both finished
    assert sorted(merged["config_id"]) == sorted(alone.runs["config_id"])
