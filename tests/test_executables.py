"""The on-disk executable cache: keys that follow the program, loads that give the same results."""

import dataclasses

import jax
import numpy as np
import pytest

from satbench import data, engine, executables, models, train


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / executables.SUBDIR
    monkeypatch.setattr(executables, "cache_dir", lambda: folder)
    return folder


def _program(**changes):
    arch = models.Architecture(n_in=64, n_out=10, width=8, depth=3, activation="tanh", init="gaussian")
    return dataclasses.replace(train.Program(arch, "digits", steps=10, log_every=5, batch_size=8), **changes)



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


def test_without_a_compilation_cache_nothing_is_written(monkeypatch):
    assert jax.config.jax_compilation_cache_dir is None  # conftest turns the caches off
    assert executables.cache_dir() is None
    assert executables.load_or_compile(_program(), 4, None, lambda: "compiled") == "compiled"
