"""Scale-out and reliability: memory-sized chunks."""

import jax
import pytest

from satbench import data, engine, models, plan, spec, train

def _values(**overrides):
    values = {k: f.default for k, f in spec.FIELDS.items()}
    values.update(overrides)
    return values


def _tree_bytes(tree) -> int:
    return sum(x.nbytes for x in jax.tree.leaves(tree))


# --- the memory estimate -------------------------------------------------------------------------

@pytest.mark.parametrize("width,depth,optimizer", [(16, 3, "sgd"), (24, 5, "adam"), (8, 2, "momentum")])
def test_the_estimate_counts_the_actual_params_and_optimizer_state(width, depth, optimizer):
    ds = data.load("digits")
    arch = models.Architecture(ds.n_in, ds.n_classes, width, depth, "tanh", "gaussian")
    _, params = models.init_state(arch, jax.random.key(0), 1.0, 0.1)
    terms = plan.memory_terms(_values(width=width, depth=depth, optimizer=optimizer), depth, ds.n_in, ds.n_classes)
    assert terms["params"] == _tree_bytes(params)
    opt_state = train.make_optimizer(optimizer, 0.1, 0.9).init(params)
    assert terms["optimizer"] <= _tree_bytes(opt_state) <= terms["optimizer"] + 16  # + adam's step count


def test_the_estimate_grows_with_width_depth_batch_and_jacobian_samples():
    def total(**kw):
        depth = kw.get("depth", 8)
        return plan.config_bytes(_values(**kw), depth, 64, 10)

    base = total()
    assert total(width=256) > base and total(depth=16) > base and total(batch_size=512) > base
    assert total(probe_batch=1024) > base and total(jacobian_samples=4) > base
    assert total(optimizer="adam") > total(optimizer="momentum") > total(optimizer="sgd")
    widths = [total(width=w) for w in (8, 16, 32, 64, 128)]
    assert widths == sorted(widths) and len(set(widths)) == len(widths)


def test_the_estimate_is_near_xlas_own_buffer_assignment():
    """Per extra lane, XLA:CPU's buffer assignment (temp + output bytes) of a compiled sweep
    and ``config_bytes`` agree within a factor of two (scanned layers)."""
    ds = data.load("digits")
    values = _values(width=16, depth=3, steps=20, log_every=10, optimizer="adam")
    arch = models.Architecture(ds.n_in, ds.n_classes, 16, 3, "tanh", "gaussian", "scan")
    program = train.Program(arch, "digits", optimizer="adam", steps=20, log_every=10)
    used = []
    for chunk in (1, 3):
        m = engine.compiled_sweep(program, chunk, train.data_arrays(ds)).memory_analysis()
        used.append(m.temp_size_in_bytes + m.output_size_in_bytes)
    per_lane = (used[1] - used[0]) / 2
    assert 0.5 < plan.config_bytes(values, 3, ds.n_in, ds.n_classes) / per_lane < 2.0


def test_chunk_size_fits_the_budget_and_the_devices():
    assert plan.chunk_size(10, per_config=100, fixed=50, budget=None, max_chunk=16) == 10
    assert plan.chunk_size(10, per_config=100, fixed=50, budget=250, max_chunk=16) == 2
    assert plan.chunk_size(10, per_config=100, fixed=50, budget=10, max_chunk=16) == 1  # never below one lane
    assert plan.chunk_size(10, per_config=100, fixed=50, budget=10**6, max_chunk=4) == 4  # --max-chunk caps
    assert plan.chunk_size(10, per_config=100, fixed=50, budget=250, max_chunk=16, n_devices=4) == 8
    assert plan.chunk_size(3, per_config=100, fixed=0, budget=None, max_chunk=16, n_devices=4) == 4


def test_halving_stops_at_one_config_per_device():
    assert [plan.halve_chunk(n) for n in (16, 5, 3, 2, 1)] == [8, 3, 2, 1, None]
    assert [plan.halve_chunk(n, 4) for n in (16, 8, 4)] == [8, 4, None]


