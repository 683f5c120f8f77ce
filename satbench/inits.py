"""Weight initialisations as variance rules times a gain² ``sigma_w2``.

Every rule is a pure function ``(noise, sigma_w2) -> weight`` that turns
standard normal noise of the weight's shape into the weight: a dense
``(fan_in, fan_out)`` matrix, or a convolution kernel ``(k, k, C_in, C_out)``
whose fans count the kernel's taps (``fans``). ``sigma_w2`` is a traced value, so a
sweep over init scales is a ``vmap`` axis, not a recompilation. Biases are
always N(0, sigma_b2): standard noise times √σ_b².
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp

#: rule(noise, sigma_w2) -> weight, with noise ~ N(0, 1) of the weight's shape (fan_in, fan_out)
InitFn = Callable[[jax.Array, jax.Array], jax.Array]


def _uniform(noise):
    """Map N(0, 1) noise to U(-1, 1) exactly (probability integral transform).

    All randomness of an init is drawn in one call: each random call costs
    compile time on CPU, and the rules below need only standard noise.
    """
    return jax.scipy.special.erf(noise / jnp.sqrt(2.0))


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight: a matrix's rows and columns; a kernel (k, k, C_in, C_out)
    has k²·C_in inputs and k²·C_out outputs per unit."""
    taps = 1
    for k in shape[:-2]:
        taps *= k
    return taps * shape[-2], taps * shape[-1]


def gaussian(noise, sigma_w2):
    """N(0, σ_w²/fan_in): the mean-field convention (LeCun when σ_w² = 1)."""
    return noise * jnp.sqrt(sigma_w2 / fans(noise.shape)[0])


def he(noise, sigma_w2):
    """N(0, 2σ_w²/fan_in) (He et al. 2015): keeps ReLU pre-activation variance flat."""
    return noise * jnp.sqrt(2.0 * sigma_w2 / fans(noise.shape)[0])


def glorot_normal(noise, sigma_w2):
    """N(0, 2σ_w²/(fan_in + fan_out)) (Glorot & Bengio 2010, normal form)."""
    fan_in, fan_out = fans(noise.shape)
    return noise * jnp.sqrt(2.0 * sigma_w2 / (fan_in + fan_out))


def glorot_uniform(noise, sigma_w2):
    """U[±√(6/(fan_in + fan_out))]·σ_w: Glorot & Bengio's "normalized" init."""
    fan_in, fan_out = fans(noise.shape)
    return _uniform(noise) * jnp.sqrt(6.0 / (fan_in + fan_out)) * jnp.sqrt(sigma_w2)


def standard(noise, sigma_w2):
    """U[±1/√fan_in]·σ_w: Glorot & Bengio's "standard" init (variance σ_w²/(3 fan_in))."""
    return _uniform(noise) / jnp.sqrt(fans(noise.shape)[0]) * jnp.sqrt(sigma_w2)


def orthogonal(noise, sigma_w2):
    """σ_w·Q with Q Haar-distributed (semi-)orthogonal (Saxe et al. 2014).

    Q is the polar factor U Vᵀ of the Gaussian noise (its SVD is U S Vᵀ):
    the noise is invariant under orthogonal maps on both sides, so Q is
    uniform on the orthogonal group / Stiefel manifold. (A QR-based draw made
    XLA:CPU's compiler hang on deep programs.) Q has orthonormal rows or
    columns, whichever are fewer, so a square layer preserves every norm
    exactly when σ_w = 1.
    """
    matrix = noise.reshape(-1, noise.shape[-1])  # a kernel's taps and inputs as rows
    u, _, vt = jnp.linalg.svd(matrix, full_matrices=False)
    return (u @ vt).reshape(noise.shape) * jnp.sqrt(sigma_w2)


def delta_orthogonal(noise, sigma_w2):
    """σ_w·Q at a kernel's centre tap and zero elsewhere, Q a Haar orthogonal C_in × C_out
    matrix (Xiao et al. 2018): every layer of a CNN then preserves norms exactly like an
    orthogonal dense layer, the condition for dynamical isometry. A matrix gets ``orthogonal``."""
    if noise.ndim == 2:
        return orthogonal(noise, sigma_w2)
    centre = tuple(k // 2 for k in noise.shape[:-2])
    q = orthogonal(noise[centre], sigma_w2)
    return jnp.zeros_like(noise).at[centre].set(q)


def identity(noise, sigma_w2):
    """σ_w·I (the noise unused): a recurrent matrix that keeps the state (the IRNN of Le et al.
    2015); a rectangular matrix gets the identity's leading block, a kernel the identity at its
    centre tap and zero elsewhere. Not random, so mean-field theory does not describe it."""
    eye = jnp.eye(noise.shape[-2], noise.shape[-1], dtype=noise.dtype) * jnp.sqrt(sigma_w2)
    if noise.ndim == 2:
        return eye
    centre = tuple(k // 2 for k in noise.shape[:-2])
    return jnp.zeros_like(noise).at[centre].set(eye)


#: where a weight sits in a layered net: a rule with ``Init.pairs`` builds each differently
ROLES = ("first", "hidden", "readout")


def _mirror(a, axis):
    """[a, −a] along ``axis``."""
    return jnp.concatenate([a, -a], axis=axis)


def looks_linear(noise, sigma_w2, role="hidden"):
    """Looks-linear init (Balduzzi et al. 2017): units in mirrored pairs, an orthogonal
    σ_w·A (``orthogonal``, drawn from the noise's leading block) per layer.

    A hidden layer (2m × 2m) is [[A, −A], [−A, A]]: on mirrored inputs a = [φ(u), φ(−u)] it gives
    h = (φ(u) − φ(−u)) A, mirrored again as [v, −v], and for ReLU φ(u) − φ(−u) = u, so the net is
    linear at initialisation (affine with the mirrored biases of ``Init.pairs``) while each unit
    is still a ReLU. The first layer only mirrors its outputs, [A, −A]; the readout only takes
    the pairs' difference, [B; −B]. Dense weights only (a kernel has no such block form).
    """
    rows, cols = noise.shape
    if role == "first":
        return _mirror(orthogonal(noise[:, : cols // 2], sigma_w2), axis=1)
    if role == "readout":
        return _mirror(orthogonal(noise[: rows // 2], sigma_w2), axis=0)
    a = orthogonal(noise[: rows // 2, : cols // 2], sigma_w2)
    return _mirror(_mirror(a, axis=1), axis=0)


def mirrored_bias(noise):
    """[c, −c] from the leading half of standard noise (last axis): a mirrored pair's two
    pre-activations stay each other's negatives, so a looks-linear net stays affine whatever σ_b²."""
    return _mirror(noise[..., : noise.shape[-1] // 2], axis=-1)


@dataclasses.dataclass(frozen=True)
class Init:
    """A registered rule. ``mean_field_gain``: fan_in · Var(W) / σ_w² of a square hidden layer,
    so the σ_w² of mean-field theory is gain · sigma_w2 (He doubles it, "standard" thirds it).
    ``program``: rules that share a program evaluate all and select per lane (elementwise ones);
    an SVD per layer is worth a program of its own.
    ``pairs``: units come in mirrored pairs (looks-linear): the rule also takes the weight's role
    (``ROLES``), layer biases are mirrored (``mirrored_bias``), and only an MLP of even width
    can have it (``config_problem``)."""

    rule: InitFn
    mean_field_gain: float
    program: str = "elementwise"
    pairs: bool = False


INITS: dict[str, Init] = {
    "gaussian": Init(gaussian, 1.0),
    "lecun": Init(gaussian, 1.0),
    "he": Init(he, 2.0),
    "glorot_normal": Init(glorot_normal, 1.0),
    "glorot_uniform": Init(glorot_uniform, 1.0),
    "standard": Init(standard, 1.0 / 3.0),
    "orthogonal": Init(orthogonal, 1.0, program="orthogonal"),
    "delta_orthogonal": Init(delta_orthogonal, 1.0, program="delta_orthogonal"),
    "identity": Init(identity, 1.0),
    # fan_in · Var(W) = 2m · σ_w²/m (A's entries have variance σ_w²/m); a linear net at init, which
    # mean-field theory does not describe (families.mlp leaves its theory columns NaN)
    "looks_linear": Init(looks_linear, 2.0, program="looks_linear", pairs=True),
}


def family(name: str) -> str:
    """Inits of one family share a compiled program, the rule picked per lane by index."""
    return _entry(name).program


def mean_field_sigma_w2(name: str, sigma_w2):
    """The σ_w² that mean-field theory sees for hidden layers initialised by ``name``."""
    return _entry(name).mean_field_gain * sigma_w2


def known_inits() -> list[str]:
    return sorted(INITS)


def _entry(name: str) -> Init:
    try:
        return INITS[name]
    except KeyError:
        raise ValueError(f"unknown init {name!r}; known: {', '.join(known_inits())}") from None


def get_init(name: str, role: str = "hidden") -> InitFn:
    """The init rule for ``name`` of a weight in ``role`` (``ROLES``; only a rule with ``pairs``
    tells them apart); unknown names list the known ones."""
    entry = _entry(name)
    return functools.partial(entry.rule, role=role) if entry.pairs else entry.rule


def bias_rule(name: str) -> Callable[[jax.Array], jax.Array]:
    """Standard noise → a layer's standard bias noise (times √σ_b² after): unchanged, or
    ``mirrored_bias`` for a rule with ``pairs``. The readout's bias is never mirrored."""
    return mirrored_bias if _entry(name).pairs else (lambda noise: noise)


def config_problem(values) -> str | None:
    """Why a config cannot have its init (None if it can): a rule with ``pairs`` needs an MLP of
    even width (a recurrent net's ``recurrent_init`` too, so it has none)."""
    for field in ("init", "recurrent_init"):
        name = values.get(field)
        if name not in INITS or not INITS[name].pairs:
            continue
        if values["model"] != "mlp":
            return f"{field} {name} needs model mlp (mirrored unit pairs of dense layers), got {values['model']}"
        if values["width"] % 2:
            return f"width must be even for init {name} (units in mirrored pairs), got {values['width']}"
    return None


def sample(name: str, key, shape: tuple[int, ...], sigma_w2=1.0) -> jax.Array:
    """One weight matrix drawn with rule ``name`` (convenience for tests and users)."""
    return get_init(name)(jax.random.normal(key, shape), sigma_w2)
