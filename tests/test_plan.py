"""The planner's cost model: which depths share a padded program, and scan vs unrolled layers."""

import pytest

from satbench import plan, spec

COST = plan.CostModel()


def _groups(depths, steps, activations=("tanh",), layers="auto"):
    exp = spec.parse(f"""
[experiment]
name = "plan"
[fixed]
width = 64
steps = {steps}
log_every = {max(steps, 1)}
layers = "{layers}"
[grid]
depth = {list(depths)}
activation = {list(activations)}
seed = [0, 1, 2, 3]
""")
    return plan.make_plan(exp.configs(None))


def test_unrolled_compile_grows_with_depth_and_activations_a_scanned_stack_does_not():
    unroll = [COST.compile_seconds(d, "unroll", n) for d in (8, 16, 32) for n in (1, 3)]
    assert unroll[0] < unroll[1] and unroll[0] < unroll[2] < unroll[4]
    assert COST.compile_seconds(8, "scan") == COST.compile_seconds(300, "scan")
    # measured on 2 cores (benchmarks/README.md): 1 activation 3.4 s at depth 8, 6.3 s at 32;
    # 3 activations 5.1 s and 13.1 s; scanned 2.6 s (1) and 3.5 s (3) at any depth
    for (d, n, layers), seconds in {(8, 1, "unroll"): 3.4, (32, 1, "unroll"): 6.3, (8, 3, "unroll"): 5.1,
                                    (32, 3, "unroll"): 13.1, (32, 1, "scan"): 2.6, (32, 3, "scan"): 3.5}.items():
        assert COST.compile_seconds(d, layers, n) == pytest.approx(seconds, rel=0.15)


def test_heavy_runs_unroll_and_deep_init_only_stacks_scan():
    assert [g.program.arch.layers for g in _groups([32], steps=5000)] == ["unroll"]
    assert [g.program.arch.layers for g in _groups([200], steps=0)] == ["scan"]


def test_sharing_a_program_among_activations_tips_a_deep_stack_to_scan():
    """Each activation in a program compiles its own branch of every unrolled layer."""
    flops = 1.5e12  # ≈ 26 s of run at width 64: unrolling 48 layers pays for one activation, not four
    assert COST.layer_mode(48, flops, 64, n_activations=1) == "unroll"
    assert COST.layer_mode(48, flops, 64, n_activations=4) == "scan"


def test_neighbouring_depths_share_a_padded_program_distant_ones_do_not():
    assert [g.program.arch.depth for g in _groups([7, 8], steps=100)] == [8]
    assert sorted(g.program.arch.depth for g in _groups([4, 64], steps=2000)) == [4, 64]


def test_a_pinned_layer_mode_is_kept():
    assert {g.program.arch.layers for g in _groups([4, 32], steps=2000, layers="scan")} == {"scan"}


def _activation_configs(counts: dict) -> list:
    """``counts[name]`` configs (seeds) of each activation, one shape."""
    exp = spec.parse(f"""
[experiment]
name = "plan"
[fixed]
width = 16
depth = 4
steps = 10
[grid]
activation = {list(counts)}
seed = {list(range(max(counts.values())))}
""")
    return [c for c in exp.configs(None) if c["seed"] < counts[c["activation"]]]


def test_several_activations_take_one_per_call_where_their_calls_fill():
    configs = _activation_configs({"sigmoid": 8, "tanh": 8, "relu": 8})
    (group,) = plan.make_plan(configs, max_chunk=4, per_call=True)
    assert group.program.per_call == ("activation",) and group.chunk_size == 4
    chunks = group.chunks()
    assert len(chunks) == 6 and all(len({c["activation"] for c in chunk}) == 1 for chunk in chunks)
    assert sorted(c.config_id for chunk in chunks for c in chunk) == sorted(c.config_id for c in configs)
    (mixed,) = plan.make_plan(configs, max_chunk=4)  # off the CPU the planner keeps a select per lane
    assert mixed.program.per_call == ()


def test_activations_stay_per_lane_where_calls_cut_by_activation_would_pad_much_more():
    """5 + 1 + 1 configs under a cap of 8: one mixed call of 7 lanes, or 3 calls of 5 (15 lanes)."""
    (group,) = plan.make_plan(_activation_configs({"sigmoid": 5, "tanh": 1, "relu": 1}), max_chunk=8, per_call=True)
    assert group.program.per_call == () and group.chunk_size == 7


def test_call_chunks_cut_where_a_per_call_field_changes():
    rows = [{"activation": a, "i": i} for i, a in enumerate("aaabbc")]
    cut = plan.call_chunks(rows, 2, ("activation",))
    assert [[r["i"] for r in chunk] for chunk in cut] == [[0, 1], [2], [3, 4], [5]]
    assert [[r["i"] for r in chunk] for chunk in plan.call_chunks(rows, 4)] == [[0, 1, 2, 3], [4, 5]]
