"""The CNN family against independent computations: a forward pass written here without
``lax.conv`` (circular convolution as a sum over taps of rolled images, 'same' padding by
explicit zeros and slicing), its gradients, finite differences, delta-orthogonal isometry,
BatchNorm over batch and positions, vmapped lanes against lone runs, and the spec's rules."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from satbench import cnn, data, inits, models, probes, spec, train

DIGITS = (8, 8, 1)


def _images(n=12):
    """``n`` digits images (n, 8, 8, 1), standardised, and their labels."""
    ds = data.load("digits")
    return ds.x_train[:n].reshape(n, *DIGITS), ds.y_train[:n]


def _arch(depth=4, channels=6, kernel_size=3, padding="circular", activation="tanh",
          init="gaussian", norm="none", layers="scan", readout="pool"):
    return cnn.Architecture(image_shape=DIGITS, n_out=10, channels=channels, depth=depth, activation=activation,
                            init=init, kernel_size=kernel_size, padding=padding, layers=layers, norm=norm,
                            readout=readout)


def _pure(params, dtype=np.float64):
    return {k: np.asarray(v, dtype) for k, v in nnx.to_pure_dict(params).items()}


def _conv(xp, a, kernel, padding):
    """Stride-1 k×k cross-correlation of NHWC ``a`` with an HWIO ``kernel``, the output the
    input's size, as a sum over the kernel's taps of shifted images times the tap's
    C_in × C_out matrix: out[i, j] = Σ_{di, dj} a[i + di − k//2, j + dj − k//2] K[di, dj]."""
    k = kernel.shape[0]
    half = k // 2
    height, width = a.shape[1:3]
    padded = xp.pad(a, ((0, 0), (half, half), (half, half), (0, 0))) if padding == "same" else None
    out = 0.0
    for di in range(k):
        for dj in range(k):
            if padding == "circular":  # roll by s: shifted[i] = a[(i − s) mod n]
                shifted = xp.roll(a, (half - di, half - dj), axis=(1, 2))
            else:  # zeros outside the image
                shifted = padded[:, di : di + height, dj : dj + width]
            out = out + shifted @ kernel[di, dj]
    return out


def _reference(xp, p, x, padding, residual=False, alpha=1.0, phi=None, norm="none", taps=None, readout="pool"):
    """(logits, preacts (depth, n, H, W, C)) of the CNN written out with ``xp`` (numpy or
    jax.numpy): depth convolutions (+ BatchNorm over batch and positions) → φ, residual on
    layers 2..depth, global average pool (``pool``) or every position (``flatten``), dense
    readout. ``taps`` are added to each h_l."""
    phi = phi or xp.tanh
    depth = 1 + len(p["w_hidden"])

    def site(h, l):
        if norm == "batchnorm":
            mean, var = h.mean(axis=(0, 1, 2)), h.var(axis=(0, 1, 2))
            h = (h - mean) / xp.sqrt(var + 1e-5) * p["norm_scale"][l] + p["norm_shift"][l]
        return h if taps is None else h + taps[l]

    h = site(_conv(xp, x, p["w_in"], padding) + p["b_in"], 0)
    hs, a = [h], phi(h)
    for l in range(1, depth):
        h = site(_conv(xp, a, p["w_hidden"][l - 1], padding) + p["b_hidden"][l - 1], l)
        hs.append(h)
        a = a + alpha * phi(h) if residual else phi(h)
    features = a.mean(axis=(1, 2)) if readout == "pool" else a.reshape(a.shape[0], -1)
    return features @ p["w_out"] + p["b_out"], xp.stack(hs)


def _cross_entropy(logits, y):
    top = logits.max(1, keepdims=True)
    log_z = jnp.log(jnp.exp(logits - top).sum(1)) + top[:, 0]
    return jnp.mean(log_z - logits[jnp.arange(len(y)), y])


@functools.partial(jax.jit, static_argnums=0)
def _forward(graphdef, params, x, ctx=None):
    """The network's forward pass, jitted (one compile instead of one per operation)."""
    return nnx.merge(graphdef, params)(x, ctx or models.Context())


CASES = [("circular", False, 3, "scan"), ("circular", True, 5, "unroll"),
         ("same", False, 5, "scan"), ("same", True, 3, "unroll")]
CASE_IDS = [f"{p}-{'residual' if r else 'plain'}-k{k}-{m}" for p, r, k, m in CASES]
ALPHA = 0.5  # residual scale: away from 1, so a forward pass that ignored it would show


@pytest.mark.parametrize("padding, residual, kernel_size, layers", CASES, ids=CASE_IDS)
def test_forward_equals_a_convolution_written_without_lax_conv(padding, residual, kernel_size, layers):
    """Logits and every layer's pre-activation of the network equal the reference (float64,
    numpy only) built from the same weights: measured max |difference| ≤ 2e-6 (|h| up to 14)."""
    arch = _arch(kernel_size=kernel_size, padding=padding, layers=layers)
    graphdef, params = models.init_state(arch, jax.random.key(1), 2.0, 0.1)
    x, _ = _images()
    fwd = _forward(graphdef, params, jnp.asarray(x), models.Context(residual=residual, residual_scale=ALPHA))
    logits, preacts = _reference(np, _pure(params), x.astype(np.float64), padding, residual, ALPHA)
    assert fwd.preacts.shape == (4, 12, 8, 8, 6)
    np.testing.assert_allclose(np.asarray(fwd.preacts), preacts, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(fwd.logits), logits, rtol=1e-5, atol=1e-5)


def test_a_flatten_readout_sees_every_position():
    """``readout = "flatten"``: the dense readout takes every position's channels (row-major
    H, W, C), equal to the reference from the same weights; pooled logits differ."""
    arch = _arch(depth=3, channels=4, readout="flatten")
    graphdef, params = models.init_state(arch, jax.random.key(2), 1.5, 0.05)
    x, _ = _images()
    assert params["w_out"].shape == (8 * 8 * 4, 10)
    fwd = _forward(graphdef, params, jnp.asarray(x))
    logits, _ = _reference(np, _pure(params), x.astype(np.float64), "circular", readout="flatten")
    np.testing.assert_allclose(np.asarray(fwd.logits), logits, rtol=1e-5, atol=1e-5)
    pooled, _ = _reference(np, {**_pure(params), "w_out": _pure(params)["w_out"][:4]}, x.astype(np.float64),
                           "circular")
    assert np.abs(pooled - logits).max() > 1e-2


def test_the_padding_matters():
    """``convolve``'s two paddings agree in the interior and differ at the border (so the
    comparison above is not passing a convolution that ignores ``padding``), and it matches
    the tap sum for a kernel with C_in ≠ C_out."""
    x, _ = _images(4)
    x = x + 1.0  # the digits' border pixels are constant; make them nonzero for the circular wrap
    kernel = jax.random.normal(jax.random.key(0), (3, 3, 1, 2))
    circ = np.asarray(cnn.convolve(jnp.asarray(x), kernel, "circular"))
    same = np.asarray(cnn.convolve(jnp.asarray(x), kernel, "same"))
    np.testing.assert_allclose(circ[:, 1:-1, 1:-1], same[:, 1:-1, 1:-1], rtol=1e-5, atol=1e-5)
    assert np.abs(circ[:, 0] - same[:, 0]).max() > 1e-2
    for padding, got in (("circular", circ), ("same", same)):
        want = _conv(np, x.astype(np.float64), np.asarray(kernel, np.float64), padding)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def _reference_grads(p, x, y, padding, residual):
    """(‖∂L/∂W_l‖ (depth,), ‖∂L/∂h_l‖ (depth,)) of the reference in float64 by jax.grad."""
    with jax.enable_x64(True):
        p64 = {k: jnp.asarray(v, jnp.float64) for k, v in p.items()}
        taps = jnp.zeros((1 + len(p["w_hidden"]), len(y), 8, 8, p["w_in"].shape[-1]), jnp.float64)

        def loss(q, t):
            return _cross_entropy(_reference(jnp, q, jnp.asarray(x, jnp.float64), padding, residual, ALPHA,
                                             taps=t)[0], jnp.asarray(y))

        g, g_taps = jax.jit(jax.grad(loss, argnums=(0, 1)))(p64, taps)
        weights = [jnp.linalg.norm(g["w_in"])] + [jnp.linalg.norm(w) for w in g["w_hidden"]]
        signal = jnp.sqrt(jnp.sum(g_taps**2, axis=(1, 2, 3, 4)))
        return np.asarray(weights), np.asarray(signal)


@pytest.mark.parametrize("padding, residual", [("circular", True), ("same", False)])
def test_probe_norms_equal_the_reference_gradients(padding, residual):
    """grad_norm ‖∂L/∂W_l‖ and signal_norm ‖∂L/∂h_l‖ from ``layer_probes`` (float32) equal
    jax.grad of the cross-entropy of the reference forward pass (float64); preact_rms its
    √mean(h_l²). Measured max relative difference ≤ 3e-7."""
    arch = _arch(padding=padding)
    graphdef, params = models.init_state(arch, jax.random.key(2), 1.5, 0.05)
    x, y = _images(16)
    out = jax.jit(probes.layer_probes, static_argnums=0)(graphdef, params, jnp.asarray(x), jnp.asarray(y),
                                                         models.Context(residual=residual, residual_scale=ALPHA))
    p = _pure(params)
    ref_w, ref_h = _reference_grads(p, x, y, padding, residual)
    _, preacts = _reference(np, p, x.astype(np.float64), padding, residual, ALPHA)
    np.testing.assert_allclose(np.asarray(out["grad_norm"]), ref_w, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(out["signal_norm"]), ref_h, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(out["preact_rms"]), np.sqrt(np.mean(preacts**2, axis=(1, 2, 3, 4))),
                               rtol=1e-5)


def test_weight_derivatives_equal_finite_differences_in_float64():
    """∂L/∂W of single kernel entries (layer 1, a hidden centre tap, a hidden corner tap) of the
    network, by central differences of its own loss in float64, equal jax.grad of the reference:
    deterministic, not flaky: in float64 at eps 1e-5 truncation and rounding are near 1e-9
    relative (measured ≤ 2e-9), far inside rtol 1e-6."""
    padding, residual = "same", True
    arch = _arch(depth=3, channels=4, padding=padding)
    graphdef, params = models.init_state(arch, jax.random.key(5), 1.5, 0.1)
    x, y = _images(8)
    p = _pure(params)
    entries = [("w_in", (0, 1, 0, 2)), ("w_hidden", (1, 1, 1, 3, 0)), ("w_hidden", (0, 0, 2, 1, 3))]
    with jax.enable_x64(True):
        p64 = {k: jnp.asarray(v, jnp.float64) for k, v in p.items()}
        x64, y64 = jnp.asarray(x, jnp.float64), jnp.asarray(y)
        ctx = models.Context(residual=residual, residual_scale=ALPHA)
        state64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)

        def model_loss(d_in, d_hidden):  # the network's loss with its weights moved by (d_in, d_hidden)
            state = jax.tree.map(lambda a: a, state64)
            state["w_in"] = nnx.Param(state["w_in"][...] + d_in)
            state["w_hidden"] = nnx.Param(state["w_hidden"][...] + d_hidden)
            return _cross_entropy(nnx.merge(graphdef, state)(x64, ctx).logits, y64)

        eps = 1e-5
        steps = {"w_in": [], "w_hidden": []}  # ±eps at each entry, all evaluated in one call
        for name, index in entries:
            for sign in (1, -1):
                for key, moves in steps.items():
                    moves.append(jnp.zeros_like(p64[key]).at[index].set(sign * eps) if key == name
                                 else jnp.zeros_like(p64[key]))
        losses = jax.jit(jax.vmap(model_loss))(jnp.stack(steps["w_in"]), jnp.stack(steps["w_hidden"]))
        grads = jax.jit(jax.grad(lambda q: _cross_entropy(_reference(jnp, q, x64, padding, residual, ALPHA)[0],
                                                          y64)))(p64)
        for i, (name, index) in enumerate(entries):
            fd = (losses[2 * i] - losses[2 * i + 1]) / (2 * eps)
            want = float(grads[name][index])
            assert abs(want) > 1e-3, f"{name}{index}: a derivative this small would compare little"
            np.testing.assert_allclose(float(fd), want, rtol=1e-6, err_msg=f"{name}{index}")


def test_delta_orthogonal_kernel_is_zero_off_centre_and_orthogonal_at_the_centre():
    sigma_w2 = 2.5
    kernel = np.asarray(inits.sample("delta_orthogonal", jax.random.key(0), (3, 3, 5, 5), sigma_w2))
    off = kernel.copy()
    off[1, 1] = 0.0
    assert np.all(off == 0.0)
    q = kernel[1, 1] / np.sqrt(sigma_w2)
    np.testing.assert_allclose(q.T @ q, np.eye(5), atol=1e-5)
    np.testing.assert_allclose(q @ q.T, np.eye(5), atol=1e-5)
    # a rectangular centre (C_in < C_out) has orthonormal rows
    wide = np.asarray(inits.sample("delta_orthogonal", jax.random.key(1), (5, 5, 2, 6), 1.0))
    np.testing.assert_allclose(wide[2, 2] @ wide[2, 2].T, np.eye(2), atol=1e-5)
    assert np.count_nonzero(wide) == np.count_nonzero(wide[2, 2]) == 12


def test_a_linear_delta_orthogonal_cnn_is_an_isometry():
    """σ_w² = 1, σ_b² = 0, linear φ, circular padding: every layer preserves ‖h_l‖ (layer 1 too:
    its 1 × C centre is a unit row), and every singular value of ∂h_L/∂h_1 (256 × 256) is 1
    (measured within 1e-6). A Gaussian kernel at the same σ_w² does neither."""
    x, _ = _images(4)
    x = jnp.asarray(x)
    # both inits in one architecture, picked by init_index: one compile for the two nets
    arch = _arch(depth=5, channels=4, activation="linear", init=("delta_orthogonal", "gaussian"))

    @jax.jit
    def norms_and_spectra(init_index):
        graphdef, params = models.init_state(arch, jax.random.key(3), 1.0, 0.0, init_index)
        preacts = nnx.merge(graphdef, params)(x).preacts
        return (jnp.sqrt(jnp.sum(preacts**2, axis=(1, 2, 3, 4))),
                probes.jacobian_singular_values(graphdef, params, x[:2]))

    x_norm = float(jnp.linalg.norm(x))
    norms, spectra = jax.device_get(norms_and_spectra(0))
    np.testing.assert_allclose(norms, x_norm, rtol=1e-5)
    assert spectra.shape == (2, 8 * 8 * 4)
    np.testing.assert_allclose(spectra, 1.0, atol=1e-4)

    norms, spectra = jax.device_get(norms_and_spectra(1))
    assert np.abs(norms[1:] / norms[:-1] - 1).max() > 0.05
    assert spectra.max() > 1.5 and spectra.min() < 0.5


def test_batchnorm_normalises_each_channel_over_batch_and_positions():
    """With γ = 1, β = 0 (their initial values) each channel of every pre-activation has mean 0
    and variance 1 over examples × positions, while single positions do not (the statistics
    are not per position); the whole tensor equals the reference's, and ``batch_stats`` hold the
    un-normalised per-channel statistics."""
    arch = _arch(depth=3, channels=5, activation="relu", norm="batchnorm", padding="same")
    graphdef, params = models.init_state(arch, jax.random.key(4), 2.0, 0.1)
    x, _ = _images(16)
    fwd = _forward(graphdef, params, jnp.asarray(x))
    h = np.asarray(fwd.preacts, np.float64)
    np.testing.assert_allclose(h.mean(axis=(1, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(h.var(axis=(1, 2, 3)), 1.0, atol=1e-3)
    assert np.abs(h.mean(axis=1)).max() > 0.3  # per (position, channel) means are far from 0
    p = _pure(params)
    _, ref = _reference(np, p, x.astype(np.float64), "same", phi=lambda v: np.maximum(v, 0), norm="batchnorm")
    np.testing.assert_allclose(h, ref, atol=1e-5)
    first = _conv(np, x.astype(np.float64), p["w_in"], "same") + p["b_in"]
    np.testing.assert_allclose(np.asarray(fwd.batch_stats.mean[0]), first.mean(axis=(0, 1, 2)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(fwd.batch_stats.var[0]), first.var(axis=(0, 1, 2)), rtol=1e-5)


def test_a_vmapped_cnn_lane_equals_the_same_config_run_alone():
    """train.run under vmap over 2 lanes (seeds and σ_w² differ) gives each lane's record of a
    lone run: curves and every layer field (rtol 1e-5). Without Jacobian spectra: they double
    the two compiles (≈ 7 s of CPU), and the isometry test above covers the CNN's Jacobian."""
    arch = _arch(depth=3, channels=4, padding="same")
    program = train.make_program(arch, eval_size=64, dataset="digits", batch_size=16, steps=4, log_every=2,
                                 probe_every=2, probe_batch=32)
    lanes = [train.one_lane(arch, seed=s, sigma_w2=w, learning_rate=0.05) for s, w in ((0, 1.0), (7, 2.5))]
    stacked = jax.tree.map(lambda *v: jnp.stack(v), *lanes)
    d = train.data_arrays(data.load("digits"), data.describe("digits"))
    assert d.x_train.shape[1:] == DIGITS
    run = functools.partial(train.run, program)
    swept = jax.device_get(jax.jit(jax.vmap(run, in_axes=(0, None)))(stacked, d))
    alone = jax.jit(run)
    for i, lane in enumerate(lanes):
        one = jax.device_get(alone(lane, d))
        assert one.layers["grad_norm"].shape == (3, 3)  # probes at steps 0, 2, 4 × 3 layers
        for name in ("train_loss", "train_accuracy", "test_accuracy", "last_finite_loss", "max_grad_norm"):
            np.testing.assert_allclose(getattr(swept, name)[i], getattr(one, name), rtol=1e-5, atol=1e-7,
                                       err_msg=name)
        for name, value in one.layers.items():
            # atol for fields near 0 (mean activations, one unit's percentiles), as conftest's comparisons
            np.testing.assert_allclose(swept.layers[name][i], value, rtol=1e-5, atol=1e-6, err_msg=name)
        assert np.all(np.isfinite(one.train_loss))
    assert not np.allclose(swept.train_loss[0], swept.train_loss[1])  # the lanes are different runs


def _spec_error(fixed: str) -> str:
    text = f'[experiment]\nname = "t"\n[fixed]\n{fixed}\n'
    with pytest.raises(spec.SpecError) as err:
        spec.parse(text)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_cnn_spec_errors_are_one_line_naming_the_field():
    message = _spec_error('model = "cnn"\ndataset = "teacher"')
    assert "dataset 'teacher'" in message and "model cnn" in message
    allowed = message.split("allowed: ")[1].split(", ")
    assert {"digits", "shapeset", "cifar10"} <= set(allowed) and "teacher" not in allowed
    message = _spec_error('model = "cnn"\nkernel_size = 4')
    assert "kernel_size" in message and "odd" in message
    message = _spec_error('model = "cnn"\nkernel_size = 9')
    assert "kernel_size (9)" in message and "image side (8)" in message
    message = _spec_error('model = "cnn"\npadding = "valid"')
    assert "padding" in message and "circular" in message and "same" in message
    message = _spec_error('model = "cnn"\nchannels = 0')
    assert "channels" in message
    # an MLP does not read the kernel: a 9×9 kernel on 8×8 digits is reset, not an error
    spec.parse('[experiment]\nname = "t"\n[fixed]\nkernel_size = 9\n')


def test_cnn_fields_stay_out_of_mlp_config_ids():
    plain = spec.parse('[experiment]\nname = "t"\n[fixed]\nwidth = 16\n').configs()
    extra = spec.parse('[experiment]\nname = "t"\n[fixed]\nwidth = 16\nmodel = "mlp"\n'
                       'channels = 32\nkernel_size = 5\npadding = "same"\n').configs()
    assert len(plain) == len(extra) == 1
    assert extra[0].config_id == plain[0].config_id
    assert (extra[0]["channels"], extra[0]["kernel_size"], extra[0]["padding"]) == (16, 3, "circular")
    values = spec.for_family({**extra[0].values, "channels": 32})
    assert values["channels"] == 16

    configs = spec.parse('[experiment]\nname = "t"\n[grid]\nmodel = ["mlp", "cnn"]\nwidth = [16, 32]\n').configs()
    by_model = {}
    for c in configs:
        by_model.setdefault(c["model"], []).append(c)
    assert sorted(c["width"] for c in by_model["mlp"]) == [16, 32]
    assert len(by_model["cnn"]) == 1 and by_model["cnn"][0]["width"] == spec.FIELDS["width"].default
    assert len({c.config_id for c in configs}) == 3
    # the CNN's own fields do enter its id
    cnn_ids = {c.config_id for c in spec.parse('[experiment]\nname = "t"\n[fixed]\nmodel = "cnn"\n'
                                               '[grid]\nchannels = [8, 16]\n').configs()}
    assert len(cnn_ids) == 2


def test_mean_field_columns_are_the_fully_connected_ones_for_circular_plain_cnns():
    """Xiao et al. (2018): with circular padding the q-map and χ₁ are those of a dense layer with
    fan-in k²·C, so a plain circular CNN gets the MLP's theory at the same (init, σ_w², σ_b²); zero
    ('same') padding, BatchNorm and residual nets get NaN."""
    import pandas as pd

    from satbench import tables

    exp = spec.parse('[experiment]\nname = "t"\n[fixed]\nsigma_b2 = 0.05\nsigma_w2 = 2.5\n'
                     '[grid]\nmodel = ["mlp", "cnn"]\npadding = ["circular", "same"]\n'
                     'init = ["gaussian", "delta_orthogonal"]\n')
    configs = pd.DataFrame([{"config_id": c.config_id, **c.values} for c in exp.configs()])
    cols = tables.theory_columns(configs).join(configs.set_index("config_id")[["model", "padding", "init"]])
    reference = cols[(cols["model"] == "mlp") & (cols["init"] == "gaussian")]["chi1"].iloc[0]
    assert np.isfinite(reference) and reference > 1  # σ_w² = 2.5 is chaotic for tanh at σ_b² = 0.05
    circular = cols[(cols["model"] == "cnn") & (cols["padding"] == "circular")]
    assert len(circular) == 2 and np.allclose(circular["chi1"], reference, rtol=1e-6)
    assert cols[(cols["model"] == "cnn") & (cols["padding"] == "same")]["chi1"].isna().all()
