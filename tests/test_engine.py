"""The sweep engine: vmapped lanes equal lone runs, one compile per group, divergence containment."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from satbench import data, engine, executables, inits, mlp, models, plan, spec, store, train
from conftest import assert_identical_results, assert_same_results, env_with_own_cache


def _program(depth=4, steps=30, activation="tanh", masked=False, layers="scan", init="gaussian", **settings):
    ds = data.load("digits")
    arch = mlp.Architecture(ds.n_in, ds.n_classes, 24, depth, activation, init, layers)
    return train.make_program(arch, masked=masked, **{"dataset": "digits", "batch_size": 32, "steps": steps,
                                                      "log_every": 10, "probe_every": 10, **settings})


def _lanes(**columns):
    n = len(columns["seed"])
    base = dict(sigma_b2=[0.0] * n, learning_rate=[0.05] * n, target_loss=[np.nan] * n, depth=[4] * n,
                init_index=[0] * n, residual=[False] * n, residual_scale=[1.0] * n, activation_index=[0] * n,
                clip_norm=[np.inf] * n)
    base.update(columns)
    dtypes = {"seed": jnp.uint32, "depth": jnp.int32, "init_index": jnp.int32, "activation_index": jnp.int32,
              "residual": jnp.bool_}
    return {k: jnp.asarray(v, dtypes.get(k, jnp.float32)) for k, v in base.items()}


def _sweep(program, lanes):
    d = train.data_arrays(data.load("digits"))
    return jax.device_get(jax.jit(jax.vmap(functools.partial(train.run, program), in_axes=(0, None)))(lanes, d))


@functools.lru_cache(maxsize=4)
def _run_alone(program):
    return jax.jit(functools.partial(train.run, program))  # one compile for every lane of a test


def _alone(program, lanes, i):
    d = train.data_arrays(data.load("digits"))
    one = jax.tree.map(lambda a: a[i], lanes)
    return jax.device_get(_run_alone(program)(one, d))


@pytest.mark.parametrize("init", ["gaussian", "orthogonal"])
def test_a_vmapped_config_equals_the_same_config_run_alone(init):
    program = _program(init=init)
    lanes = _lanes(seed=[0, 1, 2, 3], sigma_w2=[0.5, 1.0, 2.0, 4.0], learning_rate=[0.01, 0.05, 0.1, 0.02])
    swept = _sweep(program, lanes)
    for i in range(4):
        alone = _alone(program, lanes, i)
        for name, a, b in [("train_loss", swept.train_loss[i], alone.train_loss),
                           ("grad_norm", swept.layers["grad_norm"][i], alone.layers["grad_norm"]),
                           ("signal_norm", swept.layers["signal_norm"][i], alone.layers["signal_norm"])]:
            np.testing.assert_allclose(a, b, rtol=1e-5, err_msg=name)


ELEMENTWISE_INITS = tuple(sorted(n for n in inits.INITS if inits.family(n) == "elementwise"))


@pytest.mark.parametrize("rules", [ELEMENTWISE_INITS, ("orthogonal",)], ids=["elementwise", "orthogonal"])
def test_a_config_s_init_is_the_same_in_any_chunk_and_any_padded_program(rules):
    """Bit for bit: a lane's weights are a function of (seed, parameter, layer) alone, whatever
    the chunk (16 lanes, 4, alone) or the program's padded depth (3 or 6), for every init rule
    (the elementwise ones share a program, picked per lane; orthogonal's SVDs included)."""
    ds = data.load("digits")

    def draw(depth, seed, index):
        arch = mlp.Architecture(ds.n_in, ds.n_classes, 16, depth, "tanh", rules)
        return models.init_state(arch, jax.random.key(seed), 1.3, 0.1, index)[1]

    seeds = jnp.arange(16, dtype=jnp.uint32)
    index = jnp.arange(16) % len(rules)
    chunk16 = jax.device_get(jax.jit(jax.vmap(functools.partial(draw, 3)))(seeds, index))
    chunk4 = jax.device_get(jax.jit(jax.vmap(functools.partial(draw, 3)))(seeds[:4], index[:4]))
    deep = jax.device_get(jax.jit(jax.vmap(functools.partial(draw, 6)))(seeds, index))
    alone = jax.device_get(jax.jit(functools.partial(draw, 3))(seeds[2], index[2]))
    assert len(rules) == 1 or len(set(index[:4].tolist())) == 4  # every rule in the small chunk
    for name in ("w_in", "b_in", "w_hidden", "b_hidden", "w_out", "b_out"):
        want = chunk16[name][...]
        np.testing.assert_array_equal(chunk4[name][...], want[:4], err_msg=name)
        np.testing.assert_array_equal(alone[name][...], want[2], err_msg=name)
        layers = want.shape[1] if name.endswith("_hidden") else None  # layers 2..3 of the deep program
        np.testing.assert_array_equal(deep[name][...][:, :layers], want, err_msg=name)


def test_a_diverging_lane_is_flagged_and_leaves_its_neighbours_bit_identical():
    program = _program(activation="relu")
    calm = _lanes(seed=[0, 1, 2], sigma_w2=[2.0, 2.0, 2.0], learning_rate=[0.05, 0.05, 0.05])
    wild = _lanes(seed=[0, 1, 2], sigma_w2=[2.0, 2.0, 2.0], learning_rate=[0.05, 1e6, 0.05])
    a, b = _sweep(program, calm), _sweep(program, wild)
    assert not a.diverged.any()
    assert b.diverged.tolist() == [False, True, False]
    assert 0 <= b.diverged_step[1] < program.steps
    assert np.isfinite(b.last_finite_loss[1])
    for i in (0, 2):
        for field in ("train_loss", "train_accuracy", "test_accuracy"):
            assert np.array_equal(getattr(a, field)[i], getattr(b, field)[i]), field
        for k in a.layers:
            assert np.array_equal(a.layers[k][i], b.layers[k][i], equal_nan=True), k


def test_a_masked_lane_equals_the_shallower_program():
    """Pad-and-mask: a depth-2 lane inside a depth-4 program equals a depth-2 program, from its
    init (drawn per parameter and layer, so the padded program's extra layers change nothing)
    through training, probes and Jacobian spectra."""
    deep = _program(depth=4, masked=True, jacobian_samples=2)
    shallow = _program(depth=2, jacobian_samples=2)
    lanes = _lanes(seed=[5, 6], sigma_w2=[1.5, 0.8], depth=[2, 2])
    a, b = _sweep(deep, lanes), _sweep(shallow, lanes)
    np.testing.assert_allclose(a.train_loss, b.train_loss, rtol=1e-6)
    for k in ("grad_norm", "signal_norm", "preact_rms"):
        np.testing.assert_allclose(a.layers[k][..., :2], b.layers[k], rtol=1e-6, err_msg=k)
    np.testing.assert_allclose(a.tables["spectra"], b.tables["spectra"], rtol=1e-5, atol=1e-6)
    assert a.layers["grad_norm"].shape[-1] == 4 and b.layers["grad_norm"].shape[-1] == 2


def _count_compiles(fn):
    events = []

    def listener(name, *args, **kwargs):
        if name == "/jax/core/compile/backend_compile_duration":
            events.append(name)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        fn()
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    return len(events)


def test_adding_seeds_and_scales_adds_no_compilation(tmp_path, without_jax_cache):
    def experiment(seeds, scales):
        text = f"""
[experiment]
name = "compiles"
[fixed]
width = 16
depth = 3
steps = 10
log_every = 10
[grid]
activation = ["tanh", "relu"]
seed = {seeds}
sigma_w2 = {scales}
"""
        return spec.parse(text)

    def run(exp, out):
        jax.clear_caches()
        engine.forget_compiled()
        return _count_compiles(lambda: engine.run_experiment(exp, None, out, progress=False, max_chunk=64))

    # what a process compiles once (functions cached in Python, not in JAX) would count for the first
    # sweep only; a test run alone, first in its process, saw 24 compiles against 12
    run(experiment([0], [1.0]), tmp_path / "warm")
    small = run(experiment([0], [1.0]), tmp_path / "a")
    large = run(experiment([0, 1, 2, 3], [0.5, 1.0, 2.0]), tmp_path / "b")
    assert small == large
    manifest = store.read_manifest(tmp_path / "b")
    assert len(manifest["groups"]) == 1  # tanh and relu share one program: φ is lane data
    assert len(store.load_results(tmp_path / "b").runs) == 24


def test_sweep_tables_have_the_documented_schema(tiny_toml, tmp_path):
    exp = spec.load(str(tiny_toml))
    engine.run_experiment(exp, None, tmp_path, progress=False)
    r = store.load_results(tmp_path)
    assert len(r.runs) == 8 and r.runs["config_id"].is_unique
    for col in ["config_id", "experiment", *spec.FIELDS, "final_loss", "final_train_accuracy", "diverged",
                "diverged_step", "steps_to_target", "grad_decay", "time_per_step_s"]:
        assert col in r.runs.columns, col
    assert list(r.layers.columns[:3]) == ["config_id", "step", "layer"]
    assert set(r.layers["step"]) == {0, 20} and set(r.layers["layer"]) == {1, 2, 3}
    assert len(r.layers) == 8 * 2 * 3
    assert set(r.curves["step"]) == {0, 10, 20} and len(r.curves) == 8 * 3
    for name in store.TABLES:
        assert (tmp_path / f"{name}.parquet").exists()
    # steps_to_target is the first logged step with train loss <= target
    merged = r.curves.merge(r.runs[["config_id", "target_loss", "steps_to_target"]], on="config_id")
    for cid, g in merged.groupby("config_id"):
        hit = g[g["train_loss"] <= g["target_loss"]]
        expected = hit["step"].min() if len(hit) else pd.NA
        got = g["steps_to_target"].iloc[0]
        assert (pd.isna(got) and pd.isna(expected)) or got == expected


def test_steps_zero_probes_at_initialisation_only(tmp_path):
    exp = spec.parse("""
[experiment]
name = "init_only"
[fixed]
steps = 0
width = 16
depth = 5
[grid]
seed = [0, 1]
""")
    engine.run_experiment(exp, None, tmp_path, progress=False)
    r = store.load_results(tmp_path)
    assert set(r.layers["step"]) == {0} and len(r.layers) == 2 * 5
    assert set(r.curves["step"]) == {0}


def test_rerun_skips_finished_configs_and_changed_spec_is_refused(tiny_toml, tmp_path):
    exp = spec.load(str(tiny_toml))
    engine.run_experiment(exp, None, tmp_path, progress=False)
    before = store.load_results(tmp_path).runs.sort_values("config_id").reset_index(drop=True)
    again = engine.run_experiment(exp, None, tmp_path, progress=False)
    assert again.n_skipped == 8 and again.n_groups == 0
    changed = spec.parse(tiny_toml.read_text().replace("steps = 20", "steps = 30"), str(tiny_toml))
    with pytest.raises(spec.SpecError, match="different spec.*--fresh"):
        engine.run_experiment(changed, None, tmp_path, progress=False)
    after = store.load_results(tmp_path).runs.sort_values("config_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(before, after)


def test_resume_after_losing_parts_recomputes_only_those(multi_depth, tmp_path):
    path, alone = multi_depth
    exp = spec.load(str(path))
    # each activation's 6 configs in 2 chunks of 3 (on CPU a call takes one activation)
    engine.run_experiment(exp, None, tmp_path, progress=False, max_chunk=5, concurrent=1)
    uninterrupted = store.load_results(tmp_path)
    parts = store.part_dirs(tmp_path)
    assert len(parts) == 4
    import shutil

    shutil.rmtree(parts[0])  # as if the sweep had been killed before this chunk
    summary = engine.run_experiment(exp, None, tmp_path, progress=False, max_chunk=5, concurrent=1)
    assert summary.n_skipped == 9
    resumed = store.load_results(tmp_path)
    assert_same_results(resumed, alone)
    # the resumed chunk runs in the uninterrupted run's program and chunk size: exactly its numbers
    assert_identical_results(resumed, uninterrupted)


def test_a_lane_in_a_mixed_init_program_equals_its_single_init_program(tmp_path):
    """Inits of one family share a program (rule picked per lane); results must not change."""
    text = """
[experiment]
name = "inits"
[fixed]
width = 16
depth = 3
steps = 20
log_every = 10
activation = "relu"
[grid]
init = {inits}
sigma_w2 = [0.5, 1.0]
"""
    mixed = spec.parse(text.format(inits='["gaussian", "he", "standard"]'))
    alone = spec.parse(text.format(inits='["he"]'))
    engine.run_experiment(mixed, None, tmp_path / "mixed", progress=False)
    engine.run_experiment(alone, None, tmp_path / "alone", progress=False)
    assert len(store.read_manifest(tmp_path / "mixed")["groups"]) == 1
    a = store.load_results(tmp_path / "mixed").runs.set_index("config_id")
    b = store.load_results(tmp_path / "alone").runs.set_index("config_id")
    cols = ["final_loss", "grad_decay", "final_train_accuracy"]
    pd.testing.assert_frame_equal(a.loc[b.index, cols], b[cols], rtol=1e-5)
    assert a.loc[a["init"] == "standard", "final_loss"].ne(a.loc[a["init"] == "he", "final_loss"].values).all()


#: a small sweep over activations ({acts}: a TOML list), probed at every log step
ACTIVATION_SWEEP = """
[experiment]
name = "acts"
[fixed]
width = 16
depth = 3
steps = 20
log_every = 10
probe_every = 10
[grid]
activation = {acts}
sigma_w2 = [0.5, 2.0]
"""


# slow (78 s on 2 cores: seven programs and five activations' theory); the default run keeps the
# same lax.switch mechanism for inits (above) and mixed-activation numbers against the stored
# reference (test_regression_seam)
@pytest.mark.slow
def test_a_lane_in_a_mixed_activation_program_equals_its_single_activation_program(tmp_path):
    """Up to CostModel.activations_per_program activations share a program (φ picked per lane
    by lax.switch); every lane's numbers, probes included, must equal its own program's."""
    text = ACTIVATION_SWEEP
    mixed = spec.parse(text.format(acts='["sigmoid", "tanh", "relu", "selu", "gelu"]'))
    engine.run_experiment(mixed, None, tmp_path / "mixed", progress=False)
    groups = store.read_manifest(tmp_path / "mixed")["groups"]
    assert len(groups) == 2  # 5 activations, at most 4 per program
    a = store.load_results(tmp_path / "mixed")
    for act in ("sigmoid", "relu", "gelu"):
        alone = spec.parse(text.format(acts=f'["{act}"]'))
        engine.run_experiment(alone, None, tmp_path / act, progress=False)
        b = store.load_results(tmp_path / act)
        ids = b.runs["config_id"]
        cols = ["final_loss", "grad_decay", "final_train_accuracy"]
        pd.testing.assert_frame_equal(a.runs.set_index("config_id").loc[ids, cols],
                                      b.runs.set_index("config_id").loc[ids, cols], rtol=1e-5)
        la = a.layers[a.layers["config_id"].isin(ids)].sort_values(["config_id", "step", "layer"])
        lb = b.layers.sort_values(["config_id", "step", "layer"])
        for col in ("signal_norm", "sat_frac", "dead_frac"):
            np.testing.assert_allclose(la[col], lb[col], rtol=1e-5, atol=1e-7, err_msg=f"{act} {col}")
    sat = a.with_config("layers").groupby("activation")["sat_frac"]
    assert sat.apply(lambda v: v.isna().all())["relu"] and sat.apply(lambda v: v.notna().all())["sigmoid"]


def test_deep_orthogonal_program_has_three_chained_svds_no_qr_and_a_size_flat_in_depth():
    """Regressions, checked on the engine's own program without compiling it (no wall clock):
    a QR-based orthogonal init made XLA:CPU's compiler hang at depth 32, and independent SVDs
    deadlocked jaxlib's batched LAPACK calls on 2 cores (models.after). The init-only program of
    a depth-32 orthogonal net must hold exactly three LAPACK calls, all SVDs (input, the hidden
    stack batched, readout), each depending through data on the one before, and its lowered
    module must not grow with depth (the layers are one scan)."""
    import re

    from test_activations_inits import _svd_ancestry

    ds = data.load("digits")
    d = train.data_arrays(ds)
    sizes = {}
    for depth in (8, 32):
        arch = mlp.Architecture(ds.n_in, ds.n_classes, 64, depth, "tanh", "orthogonal", "scan")
        prog = train.make_program(arch, dataset="digits", steps=0)
        fn = jax.jit(jax.vmap(functools.partial(train.run, prog), in_axes=(0, None)))
        lanes = engine.lanes_for([], prog, 4)
        text = fn.lower(lanes, d).as_text()
        sizes[depth] = len(text)
        targets = re.findall(r"custom_call @(\w+)", text)
        assert len(targets) == 3 and all(re.fullmatch(r"lapack_[sd]gesdd\w*", t) for t in targets), targets
        jaxpr = jax.make_jaxpr(fn)(lanes, d).jaxpr
        found = []
        _svd_ancestry(jaxpr, [frozenset()] * len(jaxpr.invars), found)
        assert sorted(len(ancestors) for _, ancestors in found) == [0, 1, 2]  # one chain
    assert sizes[32] < 1.02 * sizes[8], sizes


def test_sharding_over_eight_host_devices_gives_the_same_rows(tiny_toml, tmp_path):
    """The config axis is sharded over all local devices; rows must not change."""
    import os
    import subprocess
    import sys

    code = f"""
import jax
from satbench import engine, spec
assert len(jax.devices()) == 8, jax.devices()
engine.run_experiment(spec.load({str(tiny_toml)!r}), None, {str(tmp_path / 'eight')!r}, progress=False)
"""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    engine.run_experiment(spec.load(str(tiny_toml)), None, tmp_path / "one", progress=False)
    a = store.load_results(tmp_path / "eight").runs.set_index("config_id").sort_index()
    b = store.load_results(tmp_path / "one").runs.set_index("config_id").sort_index()
    cols = ["final_loss", "final_train_accuracy", "grad_decay", "last_finite_loss"]
    pd.testing.assert_frame_equal(a[cols], b[cols], rtol=1e-6)
    assert len(store.read_manifest(tmp_path / "eight")["devices"]) == 8


def test_a_rerun_with_the_persistent_cache_compiles_nothing_new(tiny_toml, tmp_path):
    """Each run is a fresh process. The first compiles the sweep's program (tanh and relu share it)
    and saves its executable; the second loads it (no tracing, lowering or XLA compile) and its
    results equal the first's. The program computes Jacobian spectra: regression for a loaded
    executable whose SVD (a LAPACK custom call) crashed the process (SIGSEGV), because jaxlib
    binds LAPACK only while lowering, which a loaded executable skips."""
    import subprocess
    import sys

    text = tiny_toml.read_text()
    assert "[fixed]\n" in text
    tiny_toml.write_text(text.replace("[fixed]\n", "[fixed]\njacobian_samples = 2\n"))

    code = f"""
import sys
from satbench import engine, executables, spec
loaded, load = [], executables.load
executables.load = lambda path: loaded.append(load(path)) or loaded[-1]
engine.run_experiment(spec.load({str(tiny_toml)!r}), None, sys.argv[1], progress=False)
print("loaded", sum(x is not None for x in loaded), "of", len(loaded))
"""
    env = env_with_own_cache(tmp_path / "cache")
    outputs = []
    for run in ("first", "second"):
        proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / run)], env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        outputs.append(proc.stdout.split("loaded")[-1].split())
    assert outputs == [["0", "of", "1"], ["1", "of", "1"]]
    assert len(list((tmp_path / "cache" / executables.SUBDIR).glob("*.pkl"))) == 1
    first, second = (store.load_results(tmp_path / run).runs.sort_values("config_id") for run in ("first", "second"))
    cols = ["final_loss", "final_train_accuracy", "grad_decay", "steps_to_target", "jac_mean_s2"]
    pd.testing.assert_frame_equal(first[cols].reset_index(drop=True), second[cols].reset_index(drop=True))


def test_a_sweep_killed_mid_write_resumes_to_each_config_run_alone(multi_depth, tmp_path):
    """SIGKILL while a part is half-written loses no finished part and leaves no visible part
    half-written, and a rerun completes with the numbers of each config run alone (depths 2 and
    3 share one padded program; alone each has its own). The process kills itself between two
    tables of its third part, the moment a torn write would show."""
    import signal
    import subprocess
    import sys

    path, alone = multi_depth
    out = tmp_path / "killed_out"
    code = f"""
import os, signal
from satbench import engine, spec, store
written, write = [], store._write_parquet_synced
def write_then_die(df, dest):
    written.append(dest)
    if len(written) == 2 * len(store.TABLES) + 2:  # two whole parts, then two tables of the third
        os.kill(os.getpid(), signal.SIGKILL)
    write(df, dest)
store._write_parquet_synced = write_then_die
engine.run_experiment(spec.load({str(path)!r}), None, {str(out)!r}, progress=False, max_chunk=2)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    finished = store.part_dirs(out)
    assert len(finished) == 2
    for part in finished:  # every visible part is whole
        for name in store.TABLES:
            assert len(pd.read_parquet(part / f"{name}.parquet")) > 0
    torn = [p for p in (out / store.PARTS).iterdir() if p.name.startswith(".tmp-")]
    assert len(torn) == 1 and len(list(torn[0].glob("*.parquet"))) == 1  # the third part, torn
    summary = engine.run_experiment(spec.load(str(path)), None, out, progress=False, max_chunk=2)
    assert summary.n_skipped == 4
    resumed = store.load_results(out)
    assert set(resumed.runs["program_depth"]) == {5}
    assert_same_results(resumed, alone)


def test_three_shards_read_together_equal_each_config_run_alone(multi_depth, tmp_path):
    path, alone = multi_depth
    exp = spec.load(str(path))
    sizes = []
    for i in range(3):
        summary = engine.run_experiment(exp, None, tmp_path / "sharded", progress=False, shard=(i, 3))
        sizes.append(summary.n_configs)
    assert sum(sizes) == 12 and min(sizes) >= 2  # disjoint, balanced
    assert len(list((tmp_path / "sharded").glob("manifest-shard-*-of-3.json"))) == 3
    assert_same_results(store.load_results(tmp_path / "sharded"), alone)
    # a rerun of the whole sweep over the shards' folder finds everything done
    assert engine.run_experiment(exp, None, tmp_path / "sharded", progress=False).n_skipped == 12


_OMITTED_AT_DEFAULT = tuple(k for k, f in spec.FIELDS.items() if f.id_omits_default)


def test_histograms_table_covers_every_unit_and_example_of_each_active_layer(tmp_path):
    """histogram_bins > 0 adds a histograms table (φ(h_l) and ∂L/∂h_l per layer and probe step);
    in a padded two-depth program the shallow lane has rows for its own layers only. Off by
    default: the field is left out of config ids at 0, so earlier results keep theirs."""
    text = """
[experiment]
name = "hist"
[fixed]
steps = 10
log_every = 10
width = 8
probe_batch = 16
layers = "scan"
{extra}
[grid]
depth = [2, 4]
"""
    exp = spec.parse(text.format(extra="histogram_bins = 6"))
    plain = spec.parse(text.format(extra="")).configs()[0]
    assert plain.config_id == spec.config_id({k: v for k, v in plain.values.items()
                                              if k not in ("histogram_bins", *_OMITTED_AT_DEFAULT)})
    engine.run_experiment(exp, None, tmp_path, progress=False)
    r = store.load_results(tmp_path)
    h = r.histograms.merge(r.runs[["config_id", "depth"]], on="config_id")
    assert set(h["quantity"]) == {"activation", "gradient"} and set(h["step"]) == {0, 10}
    assert (h["layer"] <= h["depth"]).all() and set(h["bin"]) == set(range(6))
    totals = h.groupby(["config_id", "step", "quantity", "layer"])["count"].sum()
    assert len(totals) == 2 * 2 * (2 + 4) and (totals == 16 * 8).all()
    assert (h["hi"] > h["lo"]).all() and (tmp_path / "histograms.parquet").exists()
    act = h[h["quantity"] == "activation"]
    assert act["lo"].min() >= -1 and act["hi"].max() <= 1  # tanh


def test_a_per_call_activation_lane_equals_the_same_lane_chosen_per_lane():
    """On CPU a program of several activations takes one per call (``Program.per_call``: its index is
    unbatched, so ``lax.switch`` runs one branch instead of selecting among all of them); every
    number of every lane, probes included, must be what the per-lane program computes."""
    exp = spec.parse(ACTIVATION_SWEEP.format(acts='["relu", "sigmoid", "tanh"]'))
    configs = exp.configs(None)
    (per_lane,) = plan.make_plan(configs, max_chunk=2)
    (per_call,) = plan.make_plan(configs, max_chunk=2, per_call=True)
    assert per_lane.program.per_call == () and per_call.program.per_call == ("activation",)
    d = train.data_arrays(data.load("digits"))

    @functools.cache
    def compiled(program):
        lanes = engine.lanes_for([], program, 2)
        fn = jax.vmap(functools.partial(train.run, program), in_axes=(train.lane_axes(program, lanes), None))
        return jax.jit(fn)

    def run(program, chunk):
        return jax.device_get(compiled(program)(engine.lanes_for(chunk, program, 2), d))

    for chunk in per_call.chunks():
        a, b = run(per_call.program, chunk), run(per_lane.program, chunk)
        assert jax.tree.structure(a) == jax.tree.structure(b)
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
            np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-12, err_msg=chunk[0]["activation"])
    with pytest.raises(ValueError, match="several activation values"):
        engine.lanes_for(configs[:1] + configs[-1:], per_call.program, 2)
