"""The transformer family: the forward pass against a loop written out in numpy from identical
weights (every LayerNorm place, causal, attention only, residual on and off), ∂L/∂X_l against
finite differences, the block probes (token cosine, rank residual, attention entropy, per-role
gradient norms) against numpy, vmapped lanes against the same configs alone, and one program
for a sweep over α, the query/key gain, seeds and learning rates."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from satbench import data, executables, models, plan, probes, spec, train, transformer


def _arch(**kw):
    base = dict(n_in=3, n_out=4, seq_len=5, width=8, depth=3, activation=("tanh",), init=("gaussian",), heads=2)
    return transformer.Architecture(**{**base, **kw})


def _build(arch, sigma_w2=1.0, sigma_b2=0.1, **lane):
    full = train.one_lane(arch, sigma_w2=sigma_w2, sigma_b2=sigma_b2, **lane) if lane else None
    return models.init_state(arch, jax.random.key(0), sigma_w2, sigma_b2, lane=full)


def _pure(params):
    return {k: np.asarray(v, np.float64) for k, v in nnx.to_pure_dict(params).items()}


def _layer_norm(x, gamma, beta):
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5) * gamma + beta


def _softmax(s):
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _reference(arch, p, x, alpha=1.0, residual=True, nudge=None):
    """Logits and each block's output, one example and one head at a time in float64."""
    n, t, d, hd = x.shape[0], arch.seq_len, arch.width, arch.width // arch.heads
    pos = np.array([[np.sin(i / 10000 ** (2 * (j // 2) / d)) if j % 2 == 0 else np.cos(i / 10000 ** (2 * (j // 2) / d))
                     for j in range(d)] for i in range(t)])
    logits, outs = [], []
    for e in range(n):
        h = x[e].reshape(t, arch.n_in) @ p["w_in"] + p["b_in"] + pos
        blocks = []
        for b in range(arch.depth):
            def ln(v, which):
                return _layer_norm(v, p["ln_scale"][b, which], p["ln_shift"][b, which])

            def join(h, branch, which):
                out = h + alpha * branch if residual else branch
                return ln(out, which) if arch.ln == "post" else out

            inp = ln(h, 0) if arch.ln == "pre" else h
            heads = []
            for k in range(arch.heads):
                cols = slice(k * hd, (k + 1) * hd)
                q, kk, v = (inp @ p[w][b][:, cols] for w in ("w_q", "w_k", "w_v"))
                s = q @ kk.T / np.sqrt(hd)
                if arch.causal:
                    s = np.where(np.tril(np.ones((t, t))) > 0, s, -np.inf)
                heads.append(_softmax(s) @ v)
            h = join(h, np.concatenate(heads, axis=1) @ p["w_o"][b], 0)
            if not arch.attention_only:
                inp = ln(h, 1) if arch.ln == "pre" else h
                h = join(h, np.tanh(inp @ p["w_mlp1"][b] + p["b_mlp1"][b]) @ p["w_mlp2"][b] + p["b_mlp2"][b], 1)
            if nudge is not None and nudge[0] == b:
                h = h.copy()
                h[nudge[1], nudge[2]] += nudge[3]
            blocks.append(h)
        if arch.ln == "pre":
            h = _layer_norm(h, p["final_scale"], p["final_shift"])
        read = h if arch.per_step else h.mean(0)
        logits.append(read @ p["w_out"] + p["b_out"])
        outs.append(np.stack(blocks))
    return np.stack(logits), np.stack(outs, axis=1)


@pytest.mark.parametrize("ln,causal,attention_only,residual", [
    ("pre", False, False, True), ("post", True, False, True), ("none", False, True, True), ("none", False, True, False),
])
def test_the_forward_pass_equals_a_loop_written_out_in_numpy_from_identical_weights(ln, causal, attention_only,
                                                                                  residual):
    # the causal net reads out every token (a task with a label per step)
    arch = _arch(ln=ln, causal=causal, attention_only=attention_only, per_step=causal)
    graphdef, params = _build(arch)
    p = _pure(params)
    if ln != "none":  # learned LN parameters away from 1 and 0, so the test sees where they apply
        rng = np.random.default_rng(5)
        p["ln_scale"] = 1 + 0.3 * rng.normal(size=p["ln_scale"].shape)
        p["ln_shift"] = 0.3 * rng.normal(size=p["ln_shift"].shape)
        nnx.replace_by_pure_dict(params, {k: jnp.asarray(v, jnp.float32) for k, v in p.items()})
    x = np.random.default_rng(0).normal(size=(4, arch.seq_len * arch.n_in)).astype(np.float32)
    ctx = models.Context(residual=residual, residual_scale=0.7)
    fwd = jax.jit(lambda p, x: nnx.merge(graphdef, p)(x, ctx))(params, x)
    logits, outs = _reference(arch, p, x, alpha=0.7, residual=residual)
    np.testing.assert_allclose(np.asarray(fwd.logits), logits, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(np.asarray(fwd.preacts), outs, rtol=2e-5, atol=2e-5)
    assert fwd.preacts.shape == (arch.depth, 4, arch.seq_len, arch.width)
    assert ("w_mlp1" in p) is not attention_only and ("final_scale" in p) is (ln == "pre")


def test_query_key_gain_scales_only_the_query_and_key_weights_and_blocks_do_not_depend_on_depth():
    arch = _arch()
    p = _pure(_build(arch, qk_sigma2=1.0)[1])
    louder = _pure(_build(arch, qk_sigma2=4.0)[1])
    for name in ("w_q", "w_k"):
        np.testing.assert_allclose(louder[name], 2 * p[name], rtol=1e-6)
    for name in set(p) - {"w_q", "w_k"}:
        np.testing.assert_array_equal(louder[name], p[name])
    np.testing.assert_allclose(p["w_q"].var(), 1.0 / arch.width, rtol=0.3)  # N(0, σ²/d)
    deeper = _pure(_build(_arch(depth=5))[1])
    for name in ("w_q", "w_v", "w_mlp1", "b_mlp2"):
        np.testing.assert_array_equal(deeper[name][:3], p[name])


def test_signal_norm_is_the_gradient_at_a_block_output_by_finite_differences():
    """∂L/∂X_l from the taps (float32 autodiff) against central differences of the numpy loop's
    loss with X_l nudged (float64), for one feature of two tokens of each block."""
    arch = _arch(ln="post", depth=2)
    graphdef, params = _build(arch, sigma_w2=1.5)
    x = np.random.default_rng(1).normal(size=(3, arch.seq_len * arch.n_in)).astype(np.float32)
    y = np.array([0, 2, 3])
    taps = jnp.zeros((arch.depth, 3, arch.seq_len, arch.width))
    ctx = models.Context(residual=True)

    def loss(t):
        return probes.cross_entropy(nnx.merge(graphdef, params)(x, ctx, taps=t).logits, y)

    grads = np.asarray(jax.grad(loss)(taps))
    p, eps = _pure(params), 1e-5

    def ref_loss(nudge):
        logits, _ = _reference(arch, p, x, nudge=nudge)
        z = logits - logits.max(1, keepdims=True)
        return np.mean(np.log(np.exp(z).sum(1)) - z[np.arange(3), y])

    for block in range(arch.depth):
        for token, feature in ((0, 3), (4, 6)):
            fd = (ref_loss((block, token, feature, eps)) - ref_loss((block, token, feature, -eps))) / (2 * eps)
            # the tap is the same number for every example: its gradient is the batch's sum
            assert grads[block, :, token, feature].sum() == pytest.approx(fd, rel=1e-3, abs=1e-6)


def test_block_probes_equal_numpy_and_the_role_norms_make_up_the_block_norm():
    arch = _arch(ln="pre", depth=3)
    graphdef, params = _build(arch)
    x = np.random.default_rng(2).normal(size=(6, arch.seq_len * arch.n_in)).astype(np.float32)
    y = np.arange(6) % arch.n_out
    ctx = models.Context(residual=True)
    out = jax.jit(lambda p: probes.layer_probes(graphdef, p, x, y, ctx))(params)
    _, blocks = _reference(arch, _pure(params), x)
    for b in range(arch.depth):
        xb = blocks[b]
        unit = xb / np.linalg.norm(xb, axis=-1, keepdims=True)
        cos = [(u @ u.T)[~np.eye(arch.seq_len, dtype=bool)].mean() for u in unit]
        assert float(out["token_cosine"][b]) == pytest.approx(np.mean(cos), rel=1e-4)
        res = [np.linalg.norm(m - m.mean(0)) / np.linalg.norm(m) for m in xb]
        assert float(out["rank_residual"][b]) == pytest.approx(np.mean(res), rel=1e-4)
    assert np.all((0 < out["attn_entropy"]) & (out["attn_entropy"] <= np.log(arch.seq_len) + 1e-6))
    parts = sum(out[f"grad_norm_{g}"] ** 2 for g in ("q", "k", "v", "o", "mlp"))
    np.testing.assert_allclose(parts, out["grad_norm"] ** 2, rtol=1e-5)
    g = jax.grad(lambda p: probes.cross_entropy(nnx.merge(graphdef, p)(x, ctx).logits, y))(params)
    np.testing.assert_allclose(out["grad_norm_q"], np.linalg.norm(np.asarray(g["w_q"][...]), axis=(1, 2)), rtol=1e-5)
    block = np.sqrt(sum(np.sum(np.asarray(g[w][...], np.float64) ** 2, axis=(1, 2))
                        for w in ("w_q", "w_k", "w_v", "w_o", "w_mlp1", "w_mlp2")))
    np.testing.assert_allclose(out["grad_norm"], block, rtol=1e-5)  # every weight of the block, by jax.grad
    for column in probes.PHI_COLUMNS:  # a block's output is not an input of φ
        assert np.all(np.isnan(out[column]))


def test_attention_only_blocks_without_skips_collapse_the_tokens_and_skips_keep_them_apart():
    """Dong et al. (2021) in miniature: 8 pure-attention blocks of width 32, digit rows as tokens."""
    arch = _arch(n_in=8, n_out=10, seq_len=8, width=32, depth=8, heads=4, ln="none", attention_only=True)
    graphdef, params = _build(arch, sigma_b2=0.0)
    x = data.load("seq_digits", seq_len=8).x_train[:16]
    out = {r: jax.jit(lambda p, r=r: probes.layer_probes(graphdef, p, x, np.zeros(16, int),
                                                         models.Context(residual=r)))(params) for r in (False, True)}
    plain, skips = out[False]["rank_residual"], out[True]["rank_residual"]
    assert plain[-1] < 1e-3 * plain[0] and out[False]["token_cosine"][-1] > 0.999
    assert skips[-1] > 100 * plain[-1]



def test_identical_tokens_leave_the_queries_and_keys_without_gradient_but_not_the_values():
    """Noci et al. (2022)'s Theorem 3.2 on the family's attention: when every token is the same
    vector, each query scores every key alike whatever W_Q and W_K are, so their gradient is 0,
    while W_V still moves the output; distinct tokens give W_Q and W_K a gradient of the same order."""
    d, t = 16, 6
    kq, kk, kv, ko, kx, kg = jax.random.split(jax.random.key(3), 6)
    weights = [jax.random.normal(k, (d, d)) / np.sqrt(d) for k in (kq, kk, kv, ko)]
    pull = jax.random.normal(kg, (1, t, d))  # a fixed random linear loss of the output

    def grads(x):
        loss = lambda w: jnp.sum(transformer.attention(x, *w, heads=4, causal=False)[0] * pull)  # noqa: E731
        return [float(jnp.linalg.norm(g)) for g in jax.grad(loss)(weights)]

    tokens = jax.random.normal(kx, (1, t, d))
    same = jnp.broadcast_to(tokens[:, :1], tokens.shape)
    q, k, v, _ = grads(same)
    q_apart, k_apart, v_apart, _ = grads(tokens)
    assert v > 0.1 and q_apart > 0.1 * v_apart and k_apart > 0.1 * v_apart
    assert q < 1e-5 * v and k < 1e-5 * v

def test_vmapped_transformer_lanes_equal_each_config_alone():
    """Lanes that differ in seed, α, the query/key gain and the learning rate (one program) against
    each run alone: curves and every per-block probe."""
    arch = _arch(n_in=8, n_out=10, seq_len=8, width=16, depth=2, heads=2)
    program = train.make_program(arch, eval_size=64, dataset="seq_digits", seq_len=8, batch_size=16, steps=4,
                                 log_every=2, probe_every=2, probe_batch=16)
    lanes = [train.one_lane(arch, seed=s, residual=True, residual_scale=a, qk_sigma2=q, learning_rate=lr)
             for s, a, q, lr in ((0, 1.0, 1.0, 0.1), (3, 0.3, 4.0, 0.05))]
    stacked = jax.tree.map(lambda *v: jnp.stack(v), *lanes)
    d = train.data_arrays(data.load("seq_digits", seq_len=8), data.describe("seq_digits"))
    run = functools.partial(train.run, program)
    options = executables.compiler_options(program)  # the family's XLA:CPU level, as a sweep compiles it

    def compiled(fn, *args):
        return jax.device_get(jax.jit(fn).lower(*args).compile(options)(*args))

    swept = compiled(jax.vmap(run, in_axes=(0, None)), stacked, d)
    for i, lane in enumerate(lanes):
        one = compiled(run, lane, d)
        np.testing.assert_allclose(swept.train_loss[i], one.train_loss, rtol=1e-5)
        for name, value in one.layers.items():
            np.testing.assert_allclose(swept.layers[name][i], value, rtol=1e-4, atol=1e-6, err_msg=name)
    assert not np.allclose(swept.layers["grad_norm_q"][0], swept.layers["grad_norm_q"][1])


def test_a_sweep_over_alpha_query_key_gain_seeds_and_learning_rates_compiles_once_per_shape():
    exp = spec.parse("""
        [experiment]
        name = "alpha"
        [fixed]
        model = "transformer"
        width = 16
        steps = 10
        [grid]
        depth = [2, 4]
        ln = ["pre", "post"]
        residual_scale = [1.0, 0.5]
        qk_sigma2 = [0.5, 2.0]
        seed = [0, 1]
        learning_rate = [0.01, 0.001]
        """)
    configs = exp.configs()
    assert len(configs) == 64 and {c["dataset"] for c in configs} == {"seq_digits"}
    groups = plan.make_plan(configs)
    assert sorted((g.program.arch.ln, g.program.arch.depth) for g in groups) in (
        [("post", 4), ("pre", 4)], [("post", 2), ("post", 4), ("pre", 2), ("pre", 4)])


def _spec_error(fixed: str) -> str:
    with pytest.raises(spec.SpecError) as err:
        spec.parse(f'[experiment]\nname = "t"\n[fixed]\nmodel = "transformer"\n{fixed}\n')
    assert "\n" not in str(err.value)
    return str(err.value)


def test_transformer_spec_errors_are_one_line_naming_the_field():
    assert "heads (3) must divide width" in _spec_error("heads = 3\nwidth = 16")
    message = _spec_error('dataset = "digits"')
    assert "not a sequence task" in message and "seq_digits" in message
    assert "jacobian_samples" in _spec_error("jacobian_samples = 4")
    message = _spec_error('ln = "middle"')
    assert "ln" in message and "pre, post, none" in message
    assert "qk_sigma2" in _spec_error("qk_sigma2 = 0.0")
