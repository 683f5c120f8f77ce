"""Behaviours of `satbench run`/`plot`/`reproduce` and of training options that no other test covers:
--fresh, --no-bucketing, plot, --memory-budget, reproduce without its data, the optimizers, and
clip_norm / residual_scale as per-lane data."""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from flax import nnx

from satbench import cli, engine, mlp, models, probes, spec, store, train

PLOTTED = """
[experiment]
name = "plotted"
figures = ["gradient_flow", "saturation"]
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


def _run_cli(*args):
    return CliRunner().invoke(cli.main, [str(a) for a in args])


def _one_line_error(result, code=2):
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("satbench: error: "), lines
    return lines[0]


@pytest.fixture(scope="module")
def plotted(tmp_path_factory):
    """The 8-config PLOTTED sweep, run with --no-plot under --memory-budget 30%, one call of up to 16
    configs at a time."""
    root = tmp_path_factory.mktemp("plotted")
    path = root / "plotted.toml"
    path.write_text(PLOTTED)
    out = root / "out"
    result = _run_cli("run", path, "--out", out, "--quiet", "--no-plot", "--memory-budget", "30%", "--concurrent", "1",
                      "--max-chunk", "16")
    assert result.exit_code == 0, result.output + result.stderr
    return path, out


def test_fresh_discards_earlier_results_which_are_then_recomputed(plotted, tmp_path):
    import shutil

    path, finished = plotted
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    cols = ["final_loss", "final_train_accuracy", "grad_decay", "last_finite_loss"]
    truth = store.load_results(out).runs.set_index("config_id").sort_index()[cols]
    # spoil the stored results: a resumed run keeps them, a fresh one must recompute them
    for part in store.part_dirs(out):
        runs = pd.read_parquet(part / "runs.parquet")
        runs["final_loss"] = -1.0
        runs.to_parquet(part / "runs.parquet", index=False)
    (out / "stray.txt").write_text("not satbench's")

    resumed = _run_cli("run", path, "--out", out, "--quiet", "--no-plot")
    assert resumed.exit_code == 0 and "8 configs (8 already done)" in resumed.output, resumed.output
    assert (store.load_results(out).runs["final_loss"] == -1.0).all()

    fresh = _run_cli("run", path, "--out", out, "--quiet", "--no-plot", "--fresh")
    assert fresh.exit_code == 0 and "8 configs (0 already done)" in fresh.output, fresh.output
    again = store.load_results(out).runs.set_index("config_id").sort_index()[cols]
    pd.testing.assert_frame_equal(again, truth, rtol=1e-6)
    assert (out / "stray.txt").read_text() == "not satbench's"  # only satbench's own files go

    # a changed spec over old results is refused without --fresh (test_spec_cli) and replaces them with it
    changed = tmp_path / "changed.toml"
    changed.write_text(path.read_text().replace("steps = 20", "steps = 0"))
    replaced = _run_cli("run", changed, "--out", out, "--quiet", "--no-plot", "--fresh")
    assert replaced.exit_code == 0, replaced.output + replaced.stderr
    runs = store.load_results(out).runs
    assert sorted(runs["config_id"]) == sorted(c.config_id for c in spec.load(str(changed)).configs())
    assert not set(runs["config_id"]) & set(truth.index) and (runs["steps"] == 0).all()
    assert store.read_manifest(out)["spec_hash"] == spec.load(str(changed)).spec_hash(None)


BUCKETS = """
[experiment]
name = "buckets"
[fixed]
width = 16
steps = 0
layers = "scan"
[grid]
depth = [2, 3, 5]
seed = [0, 1]
"""


@pytest.fixture(scope="module")
def bucketed_and_not(tmp_path_factory):
    root = tmp_path_factory.mktemp("buckets")
    path = root / "buckets.toml"
    path.write_text(BUCKETS)
    outs = {}
    for name, extra in (("bucketed", []), ("per_depth", ["--no-bucketing"])):
        outs[name] = root / name
        result = _run_cli("run", path, "--out", outs[name], "--quiet", "--no-plot", *extra)
        assert result.exit_code == 0, result.output + result.stderr
    return outs


def test_no_bucketing_runs_one_program_per_depth(bucketed_and_not):
    bucketed = store.read_manifest(bucketed_and_not["bucketed"])["groups"]
    per_depth = store.read_manifest(bucketed_and_not["per_depth"])["groups"]
    # the planner pads this init-only sweep into one program (compiles dominate) ...
    assert [(g["depths"], g["masked"]) for g in bucketed] == [([2, 3, 5], True)]
    # ... and --no-bucketing gives each depth its own, unpadded
    assert sorted((g["depths"], g["masked"]) for g in per_depth) == [([2], False), ([3], False), ([5], False)]
    runs = store.load_results(bucketed_and_not["per_depth"]).runs
    assert (runs["program_depth"] == runs["depth"]).all() and len(runs) == 6
    assert (store.load_results(bucketed_and_not["bucketed"]).runs["program_depth"] == 5).all()


def test_no_bucketing_numbers_equal_the_bucketed_run(bucketed_and_not):
    a, b = (store.load_results(bucketed_and_not[k]) for k in ("bucketed", "per_depth"))
    cols = ["final_loss", "final_train_accuracy", "grad_decay"]
    pd.testing.assert_frame_equal(a.runs.set_index("config_id").sort_index()[cols],
                                  b.runs.set_index("config_id").sort_index()[cols], rtol=1e-5)
    for table, keys, fields in (("layers", ["config_id", "step", "layer"], ["grad_norm", "signal_norm", "preact_rms"]),
                                ("curves", ["config_id", "step"], ["train_loss", "test_accuracy"])):
        x, y = (getattr(r, table).set_index(keys).sort_index()[fields] for r in (a, b))
        pd.testing.assert_frame_equal(x, y, rtol=1e-5, atol=1e-7)


def _is_png(path):
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_redraws_the_figures_from_stored_results(plotted):
    path, out = plotted
    figures = out / "figures"
    assert not figures.exists()  # --no-plot drew nothing
    result = _run_cli("plot", path, "--results", out)
    assert result.exit_code == 0, result.output + result.stderr
    expected = {f"{name}.{ext}" for name in ("gradient_flow", "saturation") for ext in ("png", "pdf")}
    assert {p.name for p in figures.iterdir()} == expected
    assert sum(line.startswith("wrote ") for line in result.output.splitlines()) == 4
    assert _is_png(figures / "gradient_flow.png") and _is_png(figures / "saturation.png")
    # redrawn from the tables alone: with a figure gone and the parts merged away
    (figures / "saturation.png").unlink()
    assert (out / "runs.parquet").exists()
    parts = sorted(p.name for p in store.part_dirs(out))
    result = _run_cli("plot", path, "--results", out)
    assert result.exit_code == 0 and _is_png(figures / "saturation.png")
    assert sorted(p.name for p in store.part_dirs(out)) == parts  # plotting writes no results


def test_plot_without_results_is_one_line_exit_2(plotted, tmp_path):
    path, _ = plotted
    missing = tmp_path / "nothing"
    line = _one_line_error(_run_cli("plot", path, "--results", missing))
    assert "no such folder" in line and "satbench run" in line
    assert not missing.exists()


@pytest.mark.parametrize("value", ["two", "0", "-1"])
def test_a_bad_satbench_concurrent_is_one_line_exit_2_and_leaves_the_results_alone(plotted, value, monkeypatch):
    path, out = plotted
    before = sorted(p.name for p in store.part_dirs(out))
    monkeypatch.setenv("SATBENCH_CONCURRENT", value)
    line = _one_line_error(_run_cli("run", path, "--out", out, "--quiet", "--no-plot", "--fresh"))
    assert "SATBENCH_CONCURRENT" in line and repr(value) in line
    assert sorted(p.name for p in store.part_dirs(out)) == before  # --fresh deleted nothing


def test_memory_budget_percent_is_recorded_and_a_byte_budget_sizes_the_chunks(plotted, tmp_path):
    path, out = plotted
    manifest = json.loads((out / "manifest.json").read_text())
    budget = manifest["memory_budget"]
    memory = int(budget["source"].split("(")[1].split()[0])  # "0.3 of cpu memory (N bytes)"
    assert budget["source"].startswith("0.3 of cpu memory")
    assert budget["bytes_per_device"] == int(0.3 * memory)
    (group,) = manifest["groups"]
    # 8 configs, 4 per activation; on CPU a call takes one activation (``Program.per_call``)
    assert group["budget_bytes"] == budget["bytes_per_device"] and group["chunk_size"] == 4

    # a budget in bytes that holds the program's fixed bytes and three configs: each activation's 4
    # configs in calls of at most three, balanced: 2 + 2
    nbytes = group["fixed_bytes"] + 3 * group["bytes_per_config"] + 1
    small = tmp_path / "small"
    result = _run_cli("run", path, "--out", small, "--quiet", "--no-plot", "--memory-budget", nbytes,
                      "--concurrent", "1")
    assert result.exit_code == 0, result.output + result.stderr
    manifest = store.read_manifest(small)
    assert manifest["memory_budget"] == {"bytes_per_device": nbytes, "source": "--memory-budget"}
    (group,) = manifest["groups"]
    assert (group["budget_bytes"], group["chunk_size"], group["chunks"]) == (nbytes, 2, 4)
    assert len(store.part_dirs(small)) == 4 and len(store.load_results(small).runs) == 8


def test_reproduce_with_a_dataset_not_available_is_one_line_exit_2_and_writes_nothing(tmp_path, monkeypatch):
    """Every experiment's data is checked before the first one runs: the digits one (which could
    run) is not started either."""
    monkeypatch.delenv("SATBENCH_DATA", raising=False)
    empty = tmp_path / "data"
    empty.mkdir()
    profile = "\n[profiles.quick]\nsteps = 10\n"
    digits = tmp_path / "digits_first.toml"
    digits.write_text(PLOTTED.replace('name = "plotted"', 'name = "digits_first"')
                      .replace('figures = ["gradient_flow", "saturation"]', "figures = []") + profile)
    mnist = tmp_path / "needs_mnist.toml"
    mnist.write_text(PLOTTED.replace('name = "plotted"', 'name = "needs_mnist"')
                     .replace("width = 16", 'width = 16\ndataset = "mnist"') + profile)
    root = tmp_path / "results"
    for args in ([digits, mnist], ["ioffe2015", "--profile", "full"]):
        line = _one_line_error(_run_cli("reproduce", *args, "--results-root", root, "--data-dir", empty))
        assert "dataset 'mnist'" in line and str(empty) in line, line
        assert not root.exists()


def _one_example_data(n=8):
    """Every training example the same: a minibatch is the same whatever indices are drawn."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(np.repeat(rng.normal(size=(1, 6)), n, axis=0), jnp.float32)
    y = jnp.full((n,), 2, jnp.int32)
    return train.Data(x, y, x, y)


def _hand_updates(name, grads, lr, momentum, state):
    """One step of each optimizer as optax defines it, written out (numpy, per parameter array)."""
    t = state.get("t", 0) + 1
    new_state, updates = {"t": t}, {}
    for k, g in grads.items():
        if name == "sgd":
            updates[k] = -lr * g
        elif name == "momentum":  # optax.sgd(momentum=β): trace ← g + β trace
            trace = g + momentum * state.get(("trace", k), 0.0)
            new_state[("trace", k)] = trace
            updates[k] = -lr * trace
        elif name == "adam":  # b1 0.9, b2 0.999, eps 1e-8, bias-corrected moments
            m = 0.9 * state.get(("m", k), 0.0) + 0.1 * g
            v = 0.999 * state.get(("v", k), 0.0) + 0.001 * g**2
            new_state[("m", k)], new_state[("v", k)] = m, v
            updates[k] = -lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        elif name == "rmsprop":  # decay 0.9, eps 1e-8 inside the root, initial scale 0
            nu = 0.9 * state.get(("nu", k), 0.0) + 0.1 * g**2
            new_state[("nu", k)] = nu
            updates[k] = -lr * g / np.sqrt(nu + 1e-8)
    return updates, new_state


def test_each_optimizer_trains_as_optax_defines_it(monkeypatch):
    """Two steps of train.run from known weights (init_state replaced) on data whose minibatches
    are all the same, against the updates written out in this test; the four optimizers give
    four different losses, so the one a config names is the one that trains."""
    arch = mlp.Architecture(n_in=6, n_out=3, width=8, depth=3, activation="tanh", init="gaussian")
    graphdef, params0 = models.init_state(arch, jax.random.key(7), 1.0, 0.1)
    monkeypatch.setattr(models, "init_state", lambda *args, **kwargs: (graphdef, params0))
    data = _one_example_data()
    x, y = data.x_train[:1], data.y_train[:1]
    lr, momentum = 0.05, 0.8

    def loss(p):  # p: parameter name -> array
        state = jax.tree.map(lambda a: a, params0)
        for k, v in p.items():
            state[k] = nnx.Param(jnp.asarray(v, jnp.float32))
        return probes.cross_entropy(nnx.merge(graphdef, state)(x).logits, y)

    loss_and_grad = jax.jit(jax.value_and_grad(loss))

    lane = train.one_lane(arch, seed=0, sigma_w2=1.0, sigma_b2=0.1, learning_rate=lr, depth=3)
    finals = {}
    for name in train.OPTIMIZERS:
        program = train.make_program(arch, dataset="digits", optimizer=name, momentum=momentum, batch_size=4, steps=2,
                                log_every=1, eval_size=8, probe_batch=8)
        rec = jax.device_get(jax.jit(functools.partial(train.run, program))(lane, data))
        p = {k: np.asarray(v, np.float64) for k, v in nnx.to_pure_dict(params0).items()}
        expected, state = [], {}
        for _ in range(2):
            value, grads = loss_and_grad(p)
            expected.append(float(value))
            updates, state = _hand_updates(name, {k: np.asarray(v, np.float64) for k, v in grads.items()},
                                           lr, momentum, state)
            p = {k: p[k] + updates[k] for k in p}
        expected.append(float(loss_and_grad(p)[0]))
        np.testing.assert_allclose(rec.train_loss, expected, rtol=2e-5, err_msg=name)
        finals[name] = float(rec.train_loss[-1])
    values = sorted(finals.values())
    assert np.all(np.diff(values) > 1e-4 * abs(values[0])), finals  # four optimizers, four losses


CLIP_RESIDUAL = """
[experiment]
name = "lanes"
[fixed]
width = 16
depth = 4
steps = 20
log_every = 10
probe_every = 10
learning_rate = 0.1
activation = "tanh"
sigma_w2 = 2.0
[grid]
residual = [false, true]
clip_norm = [0.05, 2.0, 50.0]
residual_scale = [0.3, 1.0]
"""


def test_clip_norm_and_residual_scale_lanes_equal_the_same_configs_run_alone(tmp_path):
    """Twelve configs differing in residual (plain and residual nets share a program), clip_norm and
    residual_scale, vmapped in one chunk, against each run as a chunk of one: every table equal to
    float tolerance, and the lanes really differ."""
    exp = spec.parse(CLIP_RESIDUAL)
    engine.run_experiment(exp, None, tmp_path / "together", progress=False, max_chunk=16, concurrent=1)
    engine.run_experiment(exp, None, tmp_path / "alone", progress=False, max_chunk=1)
    together, alone = (store.read_manifest(tmp_path / k)["groups"] for k in ("together", "alone"))
    assert [(g["chunk_size"], g["chunks"]) for g in together] == [(12, 1)]
    assert [(g["chunk_size"], g["chunks"]) for g in alone] == [(1, 12)]
    a, b = (store.load_results(tmp_path / k) for k in ("together", "alone"))
    cols = ["final_loss", "final_train_accuracy", "last_finite_loss", "clip_rate", "max_grad_norm", "grad_decay"]
    ra, rb = (r.runs.set_index("config_id").sort_index() for r in (a, b))
    pd.testing.assert_frame_equal(ra[cols], rb[cols], rtol=1e-6)
    for table, keys, atol in (("layers", ["config_id", "step", "layer"], 1e-6), ("curves", ["config_id", "step"], 0)):
        # (act_mean and the median of one unit sit near 0, where float32 sums of 256 terms in another
        # order differ by ~1e-7 absolute: relative to their size that is up to 1e-5)
        x, y = (getattr(r, table).set_index(keys).sort_index() for r in (a, b))
        pd.testing.assert_frame_equal(x, y, rtol=1e-6, atol=atol)
    # each lane used its own values: clipping fires more often the lower the threshold, and the
    # branch scale changes the result
    clip = ra.groupby("clip_norm")["clip_rate"].mean()
    assert clip[0.05] == 1.0 and 0 < clip[2.0] < 1 and clip[50.0] == 0.0, clip
    unclipped = ra[ra["clip_norm"] == 50.0]
    by_scale = unclipped[unclipped["residual"]].set_index("residual_scale")["final_loss"]
    assert abs(by_scale[0.3] - by_scale[1.0]) > 1e-3, by_scale
    # a plain lane ignores the branch scale; a residual lane is not the plain one
    plain = unclipped[~unclipped["residual"]].set_index("residual_scale")["final_loss"]
    assert plain[0.3] == plain[1.0] and abs(plain[1.0] - by_scale[1.0]) > 1e-3, (plain, by_scale)
