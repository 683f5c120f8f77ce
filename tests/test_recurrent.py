"""The recurrent families (rnn, lstm, gru) and the sequence tasks: each cell against a loop written
out in numpy from identical weights, ∂L/∂h_t against finite differences, the per-step factor
against σ_w² (linear, orthogonal) and against mean-field theory (tanh, width 256), vmapped lanes
against the same configs alone, and one program per (cell, T)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from flax import nnx

from satbench import data, engine, fits, models, plan, recurrent, spec, theory, train

SIGMOID = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731


# ------------------------------------------------------------------------------- data
def test_adding_problem_has_two_markers_one_per_half_and_a_baseline_of_one_sixth():
    ds = data.load("adding", seq_len=40)
    x = ds.x_train.reshape(-1, 40, 2)
    values, markers = x[..., 0], x[..., 1]
    assert set(np.unique(markers)) == {0.0, 1.0}
    assert np.all(markers[:, :20].sum(1) == 1) and np.all(markers[:, 20:].sum(1) == 1)
    np.testing.assert_allclose((values * markers).sum(1), ds.y_train, rtol=1e-6)
    assert ds.y_train.dtype == np.float32 and 0 <= values.min() and values.max() <= 1
    baseline = np.mean((ds.y_train - 1.0) ** 2)  # Var(U1 + U2) = 1/6 for the constant prediction 1
    assert abs(baseline - 1 / 6) < 0.01
    again = data.load("adding", seq_len=40)
    assert again.x_train is ds.x_train  # deterministic, read once per process
    other = data.describe("adding").read(seq_len=40, seed=1)
    assert not np.array_equal(other.x_train, ds.x_train)
    assert not np.array_equal(ds.x_test, ds.x_train[: len(ds.x_test)])  # an independent test stream


def test_digit_sequences_are_the_digits_rows_or_pixels_and_a_fixed_permutation_of_them():
    rows, pixels, perm = (data.load(n, seq_len=t) for n, t in
                          (("seq_digits", 8), ("seq_digits", 64), ("permuted_seq_digits", 64)))
    flat = data.load("digits")
    np.testing.assert_array_equal(rows.x_train, flat.x_train)
    np.testing.assert_array_equal(pixels.x_train, flat.x_train)
    info = data.describe("seq_digits")
    assert train.data_arrays(rows, info).x_train.shape[1:] == (8, 8)
    assert train.data_arrays(pixels, info).x_train.shape[1:] == (64, 1)
    np.testing.assert_array_equal(np.sort(perm.x_train, axis=1), np.sort(flat.x_train, axis=1))
    moved = 0
    for j in range(64):  # each pixel of the permuted digits is one pixel of the digits, in train and test alike
        if np.unique(flat.x_train[:, j]).size == 1:
            continue  # a blank pixel: any blank one matches
        (k,) = np.flatnonzero(np.all(perm.x_train == flat.x_train[:, [j]], axis=0))
        np.testing.assert_array_equal(perm.x_test[:, k], flat.x_test[:, j])
        moved += k != j
    assert moved > 50


def test_pixel_mnist_reads_the_data_folder_one_pixel_per_step_in_order_or_permuted(tmp_path):
    from test_data import _mnist_like, _write_idx_folder

    arrays = _mnist_like(30, 10)
    where = _write_idx_folder(tmp_path / "mnist", arrays)
    plain = data.load("seq_mnist", data_dir=tmp_path, n_train=30, n_test=10)
    perm = data.load("permuted_mnist", data_dir=tmp_path, n_train=30, n_test=10)
    assert where.is_dir() and plain.x_train.shape == (30, 784) and plain.meta["seq_len"] == 784
    np.testing.assert_allclose(plain.x_train, arrays["x_train"].reshape(30, -1) / 255 - 0.5, atol=1e-6)
    shaped = train.data_arrays(plain, data.describe("seq_mnist"))
    assert shaped.x_train.shape == (30, 784, 1)
    np.testing.assert_array_equal(np.sort(perm.x_test, axis=1), np.sort(plain.x_test, axis=1))
    assert not np.array_equal(perm.x_test, plain.x_test)
    assert plan.data_shape("permuted_mnist").input_shape == (784, 1)


def test_copy_task_asks_for_the_first_ten_symbols_after_the_delay_and_its_baseline_is_10_ln8_over_t():
    ds = data.load("copy", seq_len=30)
    codes = ds.x_train.reshape(-1, 30, 10).argmax(-1)
    symbols = codes[:, :10]
    assert symbols.max() < 8 and np.all(codes[:, 10:19] == 8) and np.all(codes[:, 19] == 9)
    assert np.all(codes[:, 20:] == 8)
    np.testing.assert_array_equal(ds.y_train[:, 20:], symbols)
    assert np.all(ds.y_train[:, :20] == 8) and ds.y_train.shape == (10_000, 30)
    assert ds.meta["memoryless_loss"] == pytest.approx(10 * np.log(8) / 30)
    # the memoryless net: blanks sure, each recalled symbol a uniform guess among 8
    logits = np.where(np.arange(10) == 8, 50.0, 0.0)[None, None].repeat(30, 1)
    logits[:, 20:, :8], logits[:, 20:, 8:] = 0.0, -50.0
    from satbench import losses

    got = float(losses.for_task("classify_steps").mean(jnp.asarray(logits), jnp.asarray(ds.y_train[:64])))
    assert got == pytest.approx(ds.meta["memoryless_loss"], rel=1e-4)


def test_a_recurrent_net_reads_out_every_step_for_the_copy_task_and_an_mlp_is_refused():
    (cfg,) = spec.parse('[experiment]\nname = "t"\n[fixed]\nmodel = "gru"\ndataset = "copy"\nwidth = 8\n'
                        'seq_len = 24\nsteps = 2\n').configs()
    (group,) = plan.make_plan([cfg])
    arch = group.program.arch
    assert arch.per_step and arch.seq_len == 24 and arch.n_in == 10
    graphdef, params = _build(arch)
    x = data.load("copy", seq_len=24).x_train[:3].reshape(3, 24, 10)
    assert nnx.merge(graphdef, params)(x).logits.shape == (3, 24, 10)
    program = train.make_program(arch, eval_size=64, dataset="copy", seq_len=24, batch_size=8, steps=2, log_every=2)
    rec = jax.jit(functools.partial(train.run, program))(train.one_lane(arch), train.data_arrays(
        data.load("copy", seq_len=24), data.describe("copy")))
    assert np.all(np.isfinite(rec.train_loss)) and rec.train_loss[0] > data.load("copy", seq_len=24).meta["memoryless_loss"]
    message = _spec_error('dataset = "copy"')
    assert "label at every step" in message and "rnn, lstm, gru" in message
    assert "seq_len" in _spec_error('model = "rnn"\ndataset = "copy"\nseq_len = 12')


# ------------------------------------------------------------------------- the cells
def _arch(model="rnn", depth=2, width=6, seq_len=5, n_in=3, n_out=2, activation="tanh",
          recurrent_init="gaussian", init="gaussian"):
    return recurrent.Architecture(model=model, n_in=n_in, n_out=n_out, seq_len=seq_len, width=width, depth=depth,
                                  activation=activation, init=init, recurrent_init=recurrent_init)


def _build(arch, sigma_w2=1.3, sigma_b2=0.2, forget_bias=1.0, input_sigma2=1.0, seed=0):
    lane = {"forget_bias": jnp.float32(forget_bias), "input_sigma2": jnp.float32(input_sigma2)}
    return models.init_state(arch, jax.random.key(seed), sigma_w2, sigma_b2, lane=lane)


def _reference(arch, p, x, phi=np.tanh, nudge=None):
    """The cells as their docstrings write them, in float64 numpy, time step by time step.
    ``nudge``: (t, unit, eps) added to the top layer's state h_t (t 0-based)."""
    seq = np.asarray(x, np.float64)  # (batch, T, F)
    w = arch.width
    for layer in range(arch.depth):
        u = p["u_first"] if layer == 0 else p["u_rest"][layer - 1]
        wr, b = p["w_rec"][layer], p["b"][layer]
        h = np.zeros((seq.shape[0], w))
        c = np.zeros_like(h)
        states = []
        for t in range(arch.seq_len):
            pre = seq[:, t] @ u + b
            rec = h @ wr
            if arch.model == "rnn":
                h = phi(pre + rec)
            elif arch.model == "lstm":
                i, f, g, o = np.split(pre + rec, 4, axis=-1)
                c = SIGMOID(f) * c + SIGMOID(i) * phi(g)
                h = SIGMOID(o) * phi(c)
            else:
                r = SIGMOID(pre[:, :w] + rec[:, :w])
                z = SIGMOID(pre[:, w : 2 * w] + rec[:, w : 2 * w])
                n = phi(pre[:, 2 * w :] + r * rec[:, 2 * w :])
                h = (1 - z) * n + z * h
            if nudge is not None and layer == arch.depth - 1 and t == nudge[0]:
                h = h.copy()
                h[:, nudge[1]] += nudge[2]
            states.append(h)
        seq = np.stack(states, axis=1)
    return seq[:, -1] @ p["w_out"] + p["b_out"]


def _pure(params):
    return {k: np.asarray(v, np.float64) for k, v in nnx.to_pure_dict(params).items()}


@pytest.mark.parametrize("model", ["rnn", "lstm", "gru"])
def test_each_cell_equals_a_loop_written_out_in_numpy_from_identical_weights(model):
    arch = _arch(model)
    graphdef, params = _build(arch)
    x = np.random.default_rng(0).normal(size=(4, arch.seq_len, arch.n_in)).astype(np.float32)
    fwd = jax.jit(lambda p, x: nnx.merge(graphdef, p)(x))(params, x)
    p = _pure(params)
    np.testing.assert_allclose(np.asarray(fwd.logits), _reference(arch, p, x), rtol=1e-5, atol=1e-6)
    assert fwd.preacts.shape == (arch.seq_len, 4, arch.width)
    assert p["w_rec"].shape == (2, 6, 6 * arch.gates) and p["b"].shape == (2, 6 * arch.gates)
    _, louder = _build(arch, input_sigma2=4.0)  # the input weights' gain: U doubles, nothing else moves
    louder = _pure(louder)
    np.testing.assert_allclose(louder["u_first"], 2 * p["u_first"], rtol=1e-6)
    np.testing.assert_allclose(louder["u_rest"], 2 * p["u_rest"], rtol=1e-6)
    for name in ("w_rec", "b", "w_out", "b_out"):
        np.testing.assert_array_equal(louder[name], p[name])
    if model == "lstm":  # the forget gate's bias starts at forget_bias: one lane's, shifted by it
        _, shifted = _build(arch, forget_bias=3.0)
        diff = _pure(shifted)["b"] - p["b"]
        np.testing.assert_allclose(diff[:, 6:12], 2.0, atol=1e-6)
        assert np.all(diff[:, :6] == 0) and np.all(diff[:, 12:] == 0)


@pytest.mark.parametrize("model", ["rnn", "lstm"])
def test_signal_norm_is_the_gradient_at_the_state_by_finite_differences(model):
    """∂L/∂h_t from the network's taps (float32 autodiff) against central differences of the
    numpy loop's loss with h_t nudged (float64), for every unit of two time steps."""
    arch = _arch(model, depth=1, width=5, seq_len=6, n_out=1)
    graphdef, params = _build(arch, sigma_w2=1.5)
    x = np.random.default_rng(1).normal(size=(3, arch.seq_len, arch.n_in)).astype(np.float32)
    y = np.array([0.5, -1.0, 2.0], np.float32)
    taps = jnp.zeros((arch.seq_len, 3, arch.width))

    def loss(t):
        return jnp.mean((nnx.merge(graphdef, params)(x, taps=t).logits[:, 0] - y) ** 2)

    grads = np.asarray(jax.grad(loss)(taps))
    p, eps = _pure(params), 1e-6
    for t in (1, 4):
        for unit in range(arch.width):
            up, down = (np.mean((_reference(arch, p, x, nudge=(t, unit, s))[:, 0] - y) ** 2) for s in (eps, -eps))
            # the tap is the same number for every example: its gradient is the batch's sum
            np.testing.assert_allclose(grads[t, :, unit].sum(), (up - down) / (2 * eps), rtol=1e-4, atol=1e-7)


def test_spectral_radius_matches_an_eigensolver():
    rng = np.random.default_rng(0)
    gaussian = rng.normal(size=(128, 128)) / np.sqrt(128) * 1.3
    q, _ = np.linalg.qr(rng.normal(size=(64, 64)))
    radius = jax.jit(recurrent.spectral_radius)
    for m in (gaussian, 0.7 * q, 1.1 * np.eye(32), rng.normal(size=(16, 16)) + 3 * np.eye(16)):
        want = np.abs(np.linalg.eigvals(m)).max()
        got = float(radius(jnp.asarray(m, jnp.float32)))
        assert got == pytest.approx(want, rel=2e-3), (got, want)
    jordan = np.triu(rng.normal(size=(16, 16)), 1) + 0.5 * np.eye(16)  # defective: a bound, not the value
    assert 0.5 <= float(radius(jnp.asarray(jordan, jnp.float32))) < 1.0
    assert float(recurrent.spectral_radius(jnp.zeros((8, 8)))) == 0.0
    assert np.isnan(float(recurrent.spectral_radius(jnp.full((8, 8), jnp.nan))))


# ---------------------------------------------------------------- through the engine
def _run(tmp_path, toml: str, **options) -> tuple[pd.DataFrame, pd.DataFrame]:
    exp = spec.parse(toml)
    engine.run_experiment(exp, None, tmp_path, progress=False, concurrent=1, **options)
    return pd.read_parquet(tmp_path / "runs.parquet"), pd.read_parquet(tmp_path / "timesteps.parquet")


def test_linear_orthogonal_rnn_multiplies_the_signal_by_sigma_w2_per_step(tmp_path):
    """With h_t = h_{t−1}·σ_w Q + x_t U + b, ∂L/∂h_{t−1} = ∂L/∂h_t (σ_w Q)ᵀ keeps every norm up to
    σ_w: the fitted per-step factor of signal_norm² is σ_w² (Done-when: within 1e-3)."""
    runs, steps = _run(tmp_path, """
        [experiment]
        name = "linear"
        [fixed]
        model = "rnn"
        activation = "linear"
        recurrent_init = "orthogonal"
        width = 64
        seq_len = 40
        steps = 0
        probe_batch = 64
        [grid]
        sigma_w2 = [0.64, 1.0, 1.44]
        seed = [0, 1]
        """)
    assert len(runs) == 6 and steps["t"].max() == 40 and len(steps) == 6 * 40
    np.testing.assert_allclose(runs["time_decay"], runs["sigma_w2"], rtol=1e-3)
    np.testing.assert_allclose(runs["recurrent_radius"], np.sqrt(runs["sigma_w2"]), rtol=1e-3)
    # the same from adjacent steps directly: every ratio, not just the fit
    for cid, sub in steps.groupby("config_id"):
        s = sub.sort_values("t")["signal_norm"].to_numpy(np.float64)
        sw2 = float(runs.set_index("config_id").loc[cid, "sigma_w2"])
        np.testing.assert_allclose((s[:-1] / s[1:]) ** 2, sw2, rtol=1e-3)


def test_tanh_rnn_factor_matches_mean_field_theory_at_width_256(tmp_path):
    """Done-when: the measured per-step factor of a tanh RNN at width 256 within 3 % of the
    mean-field prediction (the q-map run along the adding problem's inputs), averaged over 12 seeds:
    one net's factor scatters by 3–5 % around it (its own W), so the mean's standard error is about
    1.4 %. The plain χ₁ at the average input is printed beside it (it misses by up to 6 % where the
    input's variance dominates q: see the docstring of ``theory.recurrent_step_factor``)."""
    runs, _ = _run(tmp_path, """
        [experiment]
        name = "tanh"
        [fixed]
        model = "rnn"
        width = 256
        seq_len = 60
        steps = 0
        probe_batch = 256
        [grid]
        sigma_w2 = [0.5, 2.0]
        seed = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
        """)
    by_gain = runs.groupby("sigma_w2").agg(measured=("time_decay", "mean"), theory=("time_decay_theory", "first"),
                                           chi1=("chi1", "first"))
    print(by_gain)
    np.testing.assert_allclose(by_gain["measured"], by_gain["theory"], rtol=0.03)
    assert by_gain["measured"].is_monotonic_increasing  # a larger gain vanishes more slowly
    assert np.all(runs["q_star"] > 0) and np.all(runs["mf_sigma_b2"] > 0)  # the input enters as a bias


def test_theory_columns_follow_each_config_input_gain():
    """Configs that differ only in a per-lane field the theory reads (input_sigma2) get their own
    prediction, not the first one's; seeds share theirs."""
    from satbench import tables

    exp = spec.parse('[experiment]\nname = "t"\n[fixed]\nmodel = "rnn"\nwidth = 8\nseq_len = 20\nsteps = 0\n'
                     '[grid]\ninput_sigma2 = [0.1, 4.0]\nseed = [0, 1]\n')
    rows = pd.DataFrame([{"config_id": c.config_id, **c.values} for c in exp.configs()])
    cols = tables.theory_columns(rows).join(rows.set_index("config_id")[["input_sigma2", "seed"]])
    by_gain = cols.groupby("input_sigma2")
    assert (by_gain["time_decay_theory"].nunique() == 1).all() and (by_gain["mf_sigma_b2"].nunique() == 1).all()
    low, high = by_gain["time_decay_theory"].first()
    assert low > high  # a larger input variance saturates tanh more: a smaller factor
    mean_square = np.mean(data.load("adding", seq_len=20).x_train[:1000].astype(np.float64) ** 2)
    np.testing.assert_allclose(by_gain["mf_sigma_b2"].first().to_numpy(), np.array([0.1, 4.0]) * mean_square,
                               rtol=1e-6)


def test_recurrent_step_factor_with_a_constant_input_is_chi1_at_that_bias():
    v = np.full((3, 40), 0.3)
    got = float(theory.recurrent_step_factor("tanh", 1.5, 0.1, v, first=10))
    assert got == pytest.approx(float(theory.chi1("tanh", 1.5, 0.4)), rel=1e-4)


def test_vmapped_recurrent_lanes_equal_each_config_alone():
    """LSTM lanes that differ in seed, gain and forget_bias (one program) against each run alone:
    curves and every per-step probe (rtol 1e-5)."""
    arch = _arch("lstm", depth=1, width=8, seq_len=10, n_in=2, n_out=1)
    program = train.make_program(arch, eval_size=64, dataset="adding", seq_len=10, batch_size=16, steps=4,
                                 log_every=2, probe_every=2, probe_batch=32)
    lanes = [train.one_lane(arch, seed=s, sigma_w2=w, forget_bias=f, learning_rate=0.1)
             for s, w, f in ((0, 1.0, 1.0), (3, 2.0, -1.0))]
    stacked = jax.tree.map(lambda *v: jnp.stack(v), *lanes)
    d = train.data_arrays(data.load("adding", seq_len=10), data.describe("adding"))
    run = functools.partial(train.run, program)
    swept = jax.device_get(jax.jit(jax.vmap(run, in_axes=(0, None)))(stacked, d))
    for i, lane in enumerate(lanes):
        one = jax.device_get(jax.jit(run)(lane, d))
        assert one.layers == {} and one.tables["timesteps"]["signal_norm"].shape == (3, 10)
        np.testing.assert_allclose(swept.train_loss[i], one.train_loss, rtol=1e-5)
        for name, value in one.tables["timesteps"].items():
            np.testing.assert_allclose(swept.tables["timesteps"][name][i], value, rtol=1e-5, atol=1e-6, err_msg=name)
    forget = swept.tables["timesteps"]["forget_gate"][:, 0]  # (lanes, T) at initialisation
    assert forget[0].mean() > 0.6 > 0.4 > forget[1].mean()  # σ(+1) ≈ .73, σ(−1) ≈ .27: each lane's forget_bias
    assert not np.allclose(swept.train_loss[0], swept.train_loss[1])


def test_a_sweep_over_gain_seeds_and_learning_rates_compiles_once_per_cell_and_length():
    exp = spec.parse("""
        [experiment]
        name = "gain"
        [fixed]
        width = 16
        steps = 10
        [grid]
        model = ["rnn", "lstm"]
        seq_len = [20, 40]
        sigma_w2 = [0.5, 1.0, 2.0]
        seed = [0, 1]
        learning_rate = [0.01, 0.001]
        """)
    configs = exp.configs()
    assert len(configs) == 48 and {c["depth"] for c in configs} == {1}  # a recurrent net's own default
    groups = plan.make_plan(configs)
    assert sorted((g.program.arch.model, g.program.arch.seq_len) for g in groups) == [
        ("lstm", 20), ("lstm", 40), ("rnn", 20), ("rnn", 40)]


def _spec_error(fixed: str) -> str:
    with pytest.raises(spec.SpecError) as err:
        spec.parse(f'[experiment]\nname = "t"\n[fixed]\n{fixed}\n')
    assert "\n" not in str(err.value)
    return str(err.value)


def test_recurrent_spec_errors_are_one_line_naming_the_field():
    message = _spec_error('model = "rnn"\ndataset = "digits"')
    assert "not a sequence task" in message and "adding" in message and "seq_digits" in message
    message = _spec_error('seq_len = 10')  # the MLP's default dataset, digits, is not a sequence
    assert "seq_len (10)" in message and "adding" in message
    message = _spec_error('model = "gru"\ndataset = "seq_digits"\nseq_len = 10')
    assert "seq_len" in message and "8, 64" in message
    message = _spec_error('model = "lstm"\njacobian_samples = 4')
    assert "jacobian_samples" in message
    message = _spec_error('model = "rnn"\nrecurrent_init = "eye"')
    assert "recurrent_init" in message and "identity" in message and "orthogonal" in message
    message = _spec_error('dataset = "adding"\ntrain_subset = 100')
    assert "train_subset" in message
    # an MLP reads the adding problem flattened: a regression with one output
    (cfg,) = spec.parse('[experiment]\nname = "t"\n[fixed]\ndataset = "adding"\n').configs()
    assert cfg["seq_len"] == data.ADDING_DEFAULT_LEN and plan.data_shape("adding", cfg["seq_len"]).n_out == 1


def test_through_time_factor_fits_where_the_signal_is_a_number():
    t = np.arange(1, 41)
    signal = 0.5 ** ((40 - t) / 2)  # signal² halves per step back
    assert fits.through_time_factor(signal) == pytest.approx(0.5)
    signal[:12] = 0.0  # underflowed at the start: fitted on the rest
    assert fits.through_time_factor(signal) == pytest.approx(0.5)
    signal[:38] = 0.0
    assert np.isnan(fits.through_time_factor(signal))
