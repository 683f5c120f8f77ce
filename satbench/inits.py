"""Weight initialisations as variance rules times a gain² ``sigma_w2``.

Every rule is a pure function ``(noise, sigma_w2) -> weight`` that turns
standard normal noise of the weight's shape ``(fan_in, fan_out)`` into the
weight. ``sigma_w2`` is a traced value, so a
sweep over init scales is a ``vmap`` axis, not a recompilation. Biases are
always N(0, sigma_b2): standard noise times √σ_b².
"""

from __future__ import annotations

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


def gaussian(noise, sigma_w2):
    """N(0, σ_w²/fan_in): the mean-field convention (LeCun when σ_w² = 1)."""
    return noise * jnp.sqrt(sigma_w2 / noise.shape[0])


def he(noise, sigma_w2):
    """N(0, 2σ_w²/fan_in) (He et al. 2015): keeps ReLU pre-activation variance flat."""
    return noise * jnp.sqrt(2.0 * sigma_w2 / noise.shape[0])


def glorot_normal(noise, sigma_w2):
    """N(0, 2σ_w²/(fan_in + fan_out)) (Glorot & Bengio 2010, normal form)."""
    fan_in, fan_out = noise.shape
    return noise * jnp.sqrt(2.0 * sigma_w2 / (fan_in + fan_out))


def glorot_uniform(noise, sigma_w2):
    """U[±√(6/(fan_in + fan_out))]·σ_w: Glorot & Bengio's "normalized" init."""
    fan_in, fan_out = noise.shape
    return _uniform(noise) * jnp.sqrt(6.0 / (fan_in + fan_out)) * jnp.sqrt(sigma_w2)


def standard(noise, sigma_w2):
    """U[±1/√fan_in]·σ_w: Glorot & Bengio's "standard" init (variance σ_w²/(3 fan_in))."""
    return _uniform(noise) / jnp.sqrt(noise.shape[0]) * jnp.sqrt(sigma_w2)


def orthogonal(noise, sigma_w2):
    """σ_w·Q with Q Haar-distributed (semi-)orthogonal (Saxe et al. 2014).

    Q is the polar factor U Vᵀ of the Gaussian noise (its SVD is U S Vᵀ):
    the noise is invariant under orthogonal maps on both sides, so Q is
    uniform on the orthogonal group / Stiefel manifold. (A QR-based draw made
    XLA:CPU's compiler hang on deep programs.) Q has orthonormal rows or
    columns, whichever are fewer, so a square layer preserves every norm
    exactly when σ_w = 1.
    """
    u, _, vt = jnp.linalg.svd(noise, full_matrices=False)
    return (u @ vt) * jnp.sqrt(sigma_w2)


INITS: dict[str, InitFn] = {
    "gaussian": gaussian,
    "lecun": gaussian,
    "he": he,
    "glorot_normal": glorot_normal,
    "glorot_uniform": glorot_uniform,
    "standard": standard,
    "orthogonal": orthogonal,
}


def family(name: str) -> str:
    """Inits of one family share a compiled program, the rule picked per lane by index.

    Elementwise rules cost one pass over the noise, so a program evaluates all
    of them and selects; orthogonal needs an SVD per layer, so it stays apart.
    """
    get_init(name)
    return "orthogonal" if name == "orthogonal" else "elementwise"


#: fan_in · Var(W) / σ_w² of a square hidden layer: the σ_w² of mean-field theory is
#: ``MEAN_FIELD_GAIN[init] * sigma_w2`` (He doubles it, the uniform "standard" init thirds it).
MEAN_FIELD_GAIN = {
    "gaussian": 1.0, "lecun": 1.0, "he": 2.0, "glorot_normal": 1.0, "glorot_uniform": 1.0,
    "standard": 1.0 / 3.0, "orthogonal": 1.0,
}


def mean_field_sigma_w2(name: str, sigma_w2):
    """The σ_w² that mean-field theory sees for hidden layers initialised by ``name``."""
    get_init(name)
    return MEAN_FIELD_GAIN[name] * sigma_w2


def known_inits() -> list[str]:
    return sorted(INITS)


def get_init(name: str) -> InitFn:
    """The init rule for ``name``; unknown names list the known ones."""
    try:
        return INITS[name]
    except KeyError:
        raise ValueError(f"unknown init {name!r}; known: {', '.join(known_inits())}") from None


def sample(name: str, key, shape: tuple[int, int], sigma_w2=1.0) -> jax.Array:
    """One weight matrix drawn with rule ``name`` (convenience for tests and users)."""
    return get_init(name)(jax.random.normal(key, shape), sigma_w2)
