"""The on-disk executable cache: keys that follow the program, loads that give the same results."""

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from satbench import data, engine, executables, mlp, store, train
from conftest import env_with_own_cache, jax_cache


@pytest.fixture
def cache(tmp_path, monkeypatch, without_jax_cache):
    """The executable cache on in a folder of its own; JAX's session cache off (a program it had
    from another test would not count as compiled here, so would not be saved)."""
    folder = tmp_path / executables.SUBDIR
    monkeypatch.setattr(executables, "cache_dir", lambda: folder)
    engine.forget_compiled()  # compiled_sweep must reach the disk cache, not this process's memory
    return folder


def _program(arch=None, **changes):
    arch = arch or mlp.Architecture(n_in=64, n_out=10, width=8, depth=3, activation="tanh", init="gaussian")
    return train.make_program(arch, **{"dataset": "digits", "steps": 10, "log_every": 5, "batch_size": 8, **changes})



def test_key_follows_every_static_field_chunk_and_shapes():
    ds = train.data_arrays(data.load("digits"))
    base = executables.key(_program(), 4, ds)
    assert executables.key(_program(), 4, ds) == base
    assert executables.key(_program(steps=20), 4, ds) != base
    assert executables.key(_program(arch=dataclasses.replace(_program().arch, width=16)), 4, ds) != base
    assert executables.key(_program(), 8, ds) != base
    smaller = ds._replace(x_train=ds.x_train[:100], y_train=ds.y_train[:100])
    assert executables.key(_program(), 4, smaller) != base


def test_a_loaded_executable_gives_the_compiled_ones_results(cache):
    ds = train.data_arrays(data.load("digits"))
    program = _program()
    fresh = engine.compiled_sweep(program, 4, ds)
    files = list(cache.glob("*.pkl"))
    assert len(files) == 1

    def must_not_compile():
        raise AssertionError("compiled although the executable was on disk")

    loaded = executables.load_or_compile(program, 4, ds, must_not_compile)
    lanes = engine.lanes_for([], program, 4)
    a, b = (jax.device_get(fn(lanes, ds)) for fn in (fresh, loaded))
    np.testing.assert_array_equal(a.train_loss, b.train_loss)
    np.testing.assert_array_equal(a.layers["grad_norm"], b.layers["grad_norm"])


def test_an_unreadable_file_is_deleted_and_the_program_compiled_again(cache):
    ds = train.data_arrays(data.load("digits"))
    program = _program()
    path = cache / f"{executables.key(program, 4, ds)}.pkl"
    cache.mkdir(parents=True)
    path.write_bytes(b"truncated")
    calls = []
    compiled = executables.load_or_compile(program, 4, ds, lambda: calls.append(1) or "compiled")
    assert compiled == "compiled" and calls == [1]
    assert not path.exists()  # "compiled" (a str) cannot be serialized: nothing is left behind
    assert not list(cache.glob(".*.tmp"))


def _tiny_compile():
    return jax.jit(lambda x: jnp.tanh(x) * 2).lower(jnp.ones(3)).compile()


def test_with_satbench_s_cache_off_no_executable_is_written(tmp_path, monkeypatch):
    """``SATBENCH_COMPILATION_CACHE=0`` (as conftest sets it) keeps the executable cache off, even
    while JAX's own persistent cache is on; the same call with it on writes one file there, so the
    check can see a write."""
    saved = tmp_path / "jax" / executables.SUBDIR
    with jax_cache(tmp_path / "jax", min_compile_time_secs=0.0):  # JAX reports a miss of a tiny compile
        assert os.environ["SATBENCH_COMPILATION_CACHE"] == "0"
        assert executables.cache_dir() is None
        executables.load_or_compile(_program(), 4, None, _tiny_compile)
        assert not saved.exists()
        monkeypatch.setenv("SATBENCH_COMPILATION_CACHE", "1")
        assert executables.cache_dir() == saved
        other = lambda: jax.jit(lambda x: jnp.tanh(x) * 3).lower(jnp.ones(3)).compile()  # noqa: E731
        executables.load_or_compile(_program(), 4, None, other)  # not in JAX's cache: compiled, so saved
        assert len(list(saved.glob("*.pkl"))) == 1
    with jax_cache(None):
        assert executables.cache_dir() is None  # satbench's on, JAX's off: nowhere to write


WARM_RERUN = """
import sys
from satbench import cli, executables
if sys.argv[1] == "changed":  # a source edit or an upgrade: the executable key changes
    executables.source_digest = lambda: "changed"
sys.argv = ["satbench", *sys.argv[2:]]
cli.main()
"""


def test_a_warm_rerun_after_a_source_change_never_crashes(tiny_toml, tmp_path):
    """Separate processes sharing one cache folder, as a user meets them. An executable that JAX
    loaded from its own cache serializes without its machine code on XLA:CPU; saving it made the
    next run crash at the first call ("NOT_FOUND: Function ... not found"). Only executables
    compiled in the process are saved now, and every run gives the first run's numbers."""
    import subprocess
    import sys

    env = dict(env_with_own_cache(tmp_path / "cache"), JAX_PLATFORMS="cpu")
    saved = tmp_path / "cache" / executables.SUBDIR

    def run(out, source="same"):
        args = ["run", str(tiny_toml), "--out", str(tmp_path / out), "--quiet", "--no-plot"]
        proc = subprocess.run([sys.executable, "-c", WARM_RERUN, source, *args], env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return sorted(p.name for p in saved.glob("*.pkl"))

    first = run("a1")  # compiles, saves the executable and JAX's cache entry
    later = [run("a2", "changed"),  # the executable's key changed, JAX's cache hits
             run("a3", "changed")]  # crashed here before: it loaded what a2 had saved
    assert len(first) == 1 and later == [first, first]  # nothing loaded from JAX's cache is saved
    cols = ["config_id", "final_loss", "grad_decay", "final_test_accuracy"]
    expected = store.load_results(tmp_path / "a1").runs[cols].sort_values("config_id").reset_index(drop=True)
    for out in ("a2", "a3"):
        got = store.load_results(tmp_path / out).runs[cols].sort_values("config_id").reset_index(drop=True)
        pd.testing.assert_frame_equal(got, expected)


def test_an_executable_loaded_from_jax_s_cache_is_not_saved(tmp_path):
    """The rule itself, in process: a compile that JAX served from its persistent cache is used
    but not counted fresh (so not written); a compile that missed JAX's cache is."""
    def compile_sin():
        return jax.jit(lambda x: jnp.sin(x) + 1).lower(jnp.ones(5)).compile()

    with jax_cache(tmp_path / "jax", min_compile_time_secs=0.0):
        _, fresh = executables.compile_fresh(compile_sin)
        jax.clear_caches()
        _, again = executables.compile_fresh(compile_sin)
    assert (fresh, again) == (True, False)
