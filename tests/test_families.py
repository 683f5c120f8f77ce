"""The model-family seam: a family declared and implemented in this file runs through
``satbench run`` like a shipped one; the schema stays free of JAX; unknown models are one line."""

import dataclasses
import subprocess
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from click.testing import CliRunner
from flax import nnx

import satbench
from satbench import activations, cli, families, inits, mlp, models, spec
from satbench.fields import Field, positive

TINY = "tinylinear"


@dataclasses.dataclass(frozen=True)
class TinyArchitecture:
    """What the contract asks of an architecture (model, depth, site_shape, activation, init,
    norm), the gain, and ``layers`` (the family reads it)."""

    n_in: int
    n_out: int
    width: int
    depth: int
    activation: tuple[str, ...]
    init: tuple[str, ...]
    gain: float
    layers: str
    norm = "none"
    model = TINY

    @property
    def site_shape(self) -> tuple[int]:
        return (self.width,)


class TinyNetwork(nnx.Module):
    """x (flattened) → depth × (gain · dense, no bias → φ) → dense readout, written out layer by
    layer: a network that shares no code with ``models.LayerStack``."""

    def __init__(self, arch, sigma_w2, sigma_b2, *, rngs: nnx.Rngs, init_index=0):
        del sigma_b2, init_index  # no biases; one init per program (the test's sweeps have one)
        self.arch = arch
        rule = inits.get_init(arch.init[0])
        keys = jax.random.split(rngs.params(), arch.depth + 1)
        w = arch.width
        self.w_in = nnx.Param(rule(jax.random.normal(keys[0], (arch.n_in, w)), sigma_w2))
        self.w_hidden = nnx.Param(jnp.stack([rule(jax.random.normal(k, (w, w)), sigma_w2)
                                             for k in keys[1 : arch.depth]]))
        self.w_out = nnx.Param(rule(jax.random.normal(keys[-1], (w, arch.n_out)), sigma_w2))

    def __call__(self, x, ctx=None, taps=None) -> models.Forward:
        arch, ctx = self.arch, ctx or models.Context()
        a = x.reshape(x.shape[0], -1)
        if taps is None:
            taps = jnp.zeros((arch.depth, a.shape[0], arch.width), a.dtype)
        phi = activations.switch([activations.get_activation(n) for n in arch.activation], ctx.activation_index)
        hs = []
        for l, w in enumerate([self.w_in[...], *self.w_hidden[...]]):
            h = arch.gain * (a @ w) + taps[l]
            hs.append(h)
            a = phi(h) if ctx.active is None or l == 0 else jnp.where(ctx.active[l], phi(h), a)
        return models.Forward(a @ self.w_out[...], jnp.stack(hs), None)

    def site_param_norms(self):
        return jnp.stack([jnp.linalg.norm(self.w_in[...]), *(jnp.linalg.norm(w) for w in self.w_hidden[...])])


def _architecture(values, depth, shape, activations_, inits_, layers):
    return TinyArchitecture(shape.n_in, shape.n_out, values["width"], depth, activations_, inits_,
                            values["tiny_gain"], layers)


def _cost(values, depth, shape):
    w = values["width"]
    weights = shape.n_in * w + (depth - 1) * w * w + w * shape.n_out
    return families.Cost(params=weights, forward_flops=2.0 * weights, site_units=w, matmul_width=w)


TINY_FIELDS = {"tiny_gain": Field(float, 1.0, "gain of every tinylinear layer", positive, id_omits_default=True)}


@pytest.fixture
def tiny_family():
    """The tinylinear family, registered for one test; afterwards the registry and the schema
    are as before (other tests in this worker see no trace of it)."""
    fields_before, families_before = dict(spec.FIELDS), dict(families._FAMILIES)
    family = families.register(families.Family(
        name=TINY,
        description="dense layers with a gain, no biases (a test's family)",
        implementation=types.SimpleNamespace(architecture=_architecture, cost=_cost, Network=TinyNetwork),
        reads=("width", "layers"),
        fields=TINY_FIELDS,
    ))
    try:
        yield family
    finally:
        families._FAMILIES.pop(TINY, None)
        for name in TINY_FIELDS:
            spec.FIELDS.pop(name, None)
        assert spec.FIELDS == fields_before and list(spec.FIELDS) == list(fields_before)
        assert families._FAMILIES == families_before


TINY_TOML = f"""
[experiment]
name = "tiny_family"
figures = []
[fixed]
model = "{TINY}"
width = 8
depth = 3
steps = 4
log_every = 2
batch_size = 16
probe_batch = 32
learning_rate = 0.05
norm = "batchnorm"  # not read by the family: reset to none
tiny_gain = 2.0
[grid]
activation = ["tanh", "linear"]
seed = [0, 1]
"""


def test_a_family_registered_in_process_runs_through_satbench_run(tiny_family, tmp_path):
    assert TINY in families.known() and "tiny_gain" in spec.FIELDS
    assert "tiny_gain" not in spec.program_fields()  # the family reads it: not a shared setting
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_TOML)
    configs = spec.load(str(path)).configs()
    assert len(configs) == 4 and all(c["norm"] == "none" for c in configs)

    out = tmp_path / "out"
    r = CliRunner().invoke(cli.main, ["run", str(path), "--out", str(out), "--no-plot", "--quiet"])
    assert r.exit_code == 0, r.output + (r.stderr or "") + repr(r.exception)
    res = satbench.load_results(out)
    runs, layers = res.runs, res.layers
    assert len(runs) == 4 and set(runs["model"]) == {TINY}
    assert (runs["tiny_gain"] == 2.0).all()
    assert runs["chi1"].isna().all()  # no mean-field theory declared
    assert set(layers["config_id"]) == set(runs["config_id"])
    # a row for every (config, probe step, layer)
    assert len(layers) == 4 * 2 * 3
    for _, rows in layers.groupby(["config_id", "step"]):
        assert sorted(rows["layer"]) == [1, 2, 3]
    assert sorted(set(layers["step"])) == [0, 4]
    for col in ("grad_norm", "signal_norm", "preact_rms", "act_std"):
        assert np.isfinite(layers[col]).all() and (layers[col] > 0).all(), col
    assert np.isfinite(runs["final_loss"]).all()
    # h_1 does not depend on φ: at step 0 both activations of a seed have the same W_1 and h_1
    first = layers[(layers["step"] == 0) & (layers["layer"] == 1)].merge(runs[["config_id", "seed", "activation"]])
    for _, pair in first.groupby("seed"):
        assert len(pair) == 2
        np.testing.assert_allclose(pair["preact_rms"].iloc[0], pair["preact_rms"].iloc[1], rtol=1e-6)


def test_a_family_field_reaches_its_architecture(tiny_family):
    """The planner builds each program's architecture from the config's values, the family's
    own field included: two gains, two programs (without compiling them)."""
    from satbench import plan

    toml = TINY_TOML.replace("tiny_gain = 2.0\n", "").replace("seed = [0, 1]", "tiny_gain = [1.0, 2.0]")
    groups = plan.make_plan(spec.parse(toml).configs())
    gains = sorted((g.program.arch.gain, len(g.configs)) for g in groups)
    assert gains == [(1.0, 2), (2.0, 2)]
    assert all(isinstance(g.program.arch, TinyArchitecture) and g.program.arch.width == 8 for g in groups)


def test_the_tiny_family_is_gone_after_its_test():
    """Runs after the registering test in the same worker (--dist loadfile keeps a file together)."""
    assert TINY not in families.known()
    assert "tiny_gain" not in spec.FIELDS
    with pytest.raises(spec.SpecError, match="unknown field 'tiny_gain'"):
        spec.parse('[experiment]\nname = "t"\n[fixed]\ntiny_gain = 2.0\n')


def test_a_second_family_of_the_same_name_is_refused(tiny_family):
    with pytest.raises(ValueError, match="already registered"):
        families.register(dataclasses.replace(tiny_family, description="another"))
    assert families.get(TINY) is tiny_family


def test_importing_the_schema_loads_no_jax():
    code = "import sys, satbench.spec; assert not {'jax','flax','optax'} & set(sys.modules), sorted(sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr[-2000:]


def test_an_unknown_model_is_one_line_listing_the_allowed_models():
    with pytest.raises(spec.SpecError) as err:
        spec.parse('[experiment]\nname = "t"\n[fixed]\nmodel = "mamba"\n')
    message = str(err.value)
    assert "\n" not in message
    assert "model" in message and "'mamba'" in message
    assert "allowed: " in message and "mlp" in message and "cnn" in message and "transformer" in message
    with pytest.raises(ValueError, match="unknown model 'mamba'; allowed: ") as err:
        families.get("mamba")
    assert {"mlp", "cnn", "lstm", "transformer"} <= set(str(err.value).split("allowed: ")[1].split(", "))


# --- the seam's edges ----------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_a_one_layer_net_builds_and_runs(model):
    """depth = 1 is allowed by the spec: the readout then waits on no hidden weights."""
    from satbench import plan

    values = {**{k: f.default for k, f in spec.FIELDS.items()}, "model": model, "depth": 1, "width": 8,
              "channels": 4}
    shape = plan.data_shape("digits")
    arch = families.get(model).impl().architecture(values, 1, shape, ("tanh",), ("orthogonal",), "scan")
    graphdef, params = models.init_state(arch, jax.random.key(0), 1.0, 0.0)
    fwd = nnx.merge(graphdef, params)(jnp.ones((3, *shape.input_shape)))
    assert fwd.logits.shape == (3, 10) and fwd.preacts.shape == (1, 3, *arch.site_shape)
    assert np.all(np.isfinite(np.asarray(fwd.logits)))


SCALED = "scaled_logits_test"


class _ScaledLogits(models.LayerStack):
    """The MLP with its logits multiplied by a per-lane field of its family (read from ctx.lane)."""

    param_shapes = staticmethod(mlp.Network.param_shapes)
    first_layer = mlp.Network.first_layer
    hidden_affine = mlp.Network.hidden_affine

    def readout(self, a):
        return a @ self.w_out[...] + self.b_out[...]

    def __call__(self, x, ctx=models.Context(), taps=None):
        fwd = super().__call__(x, ctx, taps)
        scale = 1.0 if ctx.lane is None else ctx.lane["logit_scale"]
        return fwd._replace(logits=fwd.logits * scale)


@dataclasses.dataclass(frozen=True)
class _ScaledArchitecture(mlp.Architecture):
    model = SCALED


@pytest.fixture
def scaled_family():
    impl = types.SimpleNamespace(
        Network=_ScaledLogits, cost=mlp.cost,
        architecture=lambda values, depth, shape, acts, inits_, layers: _ScaledArchitecture(
            shape.n_in, shape.n_out, values["width"], depth, acts, inits_, layers))
    field = Field(float, 1.0, "logit multiplier (test)", positive, batched=True)
    family = families.register(families.Family(SCALED, "test", impl, reads=("width", "layers"),
                                               fields={"logit_scale": field}))
    yield family
    del families._FAMILIES[SCALED]
    del spec.FIELDS["logit_scale"]


def test_a_family_field_per_lane_shares_one_program_and_reaches_the_forward_pass(scaled_family):
    """A family's own batched field is lane data: two values, one program, two different losses."""
    import functools

    from satbench import engine, plan, train

    toml = ('[experiment]\nname = "s"\n[fixed]\nmodel = "scaled_logits_test"\nwidth = 8\ndepth = 2\n'
            'steps = 0\nprobe_batch = 16\n[grid]\nlogit_scale = [1.0, 3.0]\n')
    (group,) = plan.make_plan(spec.parse(toml).configs())
    assert len(group.configs) == 2
    lanes = engine.lanes_for(group.configs, group.program, 2)
    assert np.asarray(lanes["logit_scale"]).tolist() == [1.0, 3.0]
    ds = satbench.data.load("digits")
    data = train.data_arrays(ds, satbench.data.describe("digits"))
    program = dataclasses.replace(group.program, eval_size=64)
    rec = jax.jit(jax.vmap(functools.partial(train.run, program), in_axes=(0, None)))(lanes, data)
    loss = np.asarray(rec.train_loss)[:, 0]
    assert abs(loss[0] - loss[1]) > 1e-3  # the scale reached the logits of its own lane
