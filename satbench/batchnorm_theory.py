"""Mean-field gradient growth of a BatchNorm MLP at initialisation (Yang, Pennington, Rao,
Sohl-Dickstein & Schoenholz 2019, "A Mean Field Theory of Batch Normalization").

Network: z_l = W_l a_{l-1} + b_l, h_l = BN(z_l) over a batch of B examples (γ = 1, β = 0),
a_l = φ(h_l), W ~ N(0, σ_w²/N). Per unit BN maps the batch vector z to n = √B (z − z̄)/s,
s = ‖z − z̄‖, whose Jacobian G = (√B/s)(I − 11ᵀ/B − nnᵀ/B) is symmetric with G1 = 0. Going back
one layer the B×B covariance of ∂L/∂a over units maps to σ_w² E[G D · D G], D = diag φ'(n); its
image has zero row sums, and at a permutation-symmetric forward fixed point the centred matrix
I − 11ᵀ/B is its eigenvector, with eigenvalue λ: the factor by which ‖∂L/∂h‖² grows per layer
toward the input. There z − z̄ is Gaussian in the (B−1)-dimensional centred subspace, so n is
uniform on its sphere of radius √B, independent of s² = σ_w² v χ²_{B−1}, v = E φ(n₁)² − E φ(n₁)φ(n₂),
and σ_w² cancels (E 1/χ²_{B−1} = 1/(B−3)). Writing the sums over the batch by exchangeability,

    λ(φ, B) = [(B−1) E φ'(n₁)² − E φ'(n₁)² n₁² + E φ'(n₁)φ'(n₂) + E φ'(n₁)n₁ φ'(n₂)n₂] / ((B−3) v),

expectations over one or two coordinates of n. Linear φ gives (B−2)/(B−3); ReLU tends to π/(π−1)
as B → ∞ (coordinates become independent N(0, 1)).

Quadrature, not Monte Carlo: (n₁, n₂) is a linear image of y in the unit disc with density
∝ (1 − |y|²)^((B−5)/2), so |y|² ~ Beta(1, (B−3)/2) (Gauss–Jacobi nodes, by Golub–Welsch) and the
angle is uniform (Gauss–Legendre on the four arcs between the lines n₁ = 0 and n₂ = 0, where
relu-like activations have their kinks). Exact to rounding for activations analytic away from 0;
a kink elsewhere (hard_tanh at ±1) converges algebraically.

Assumptions: infinite width; gradients independent of the forward weights; the forward pass at
its permutation-symmetric fixed point (reached within a few layers for relu and tanh; Yang et al.
discuss activations where it breaks); BN's ε negligible beside the batch variance; B ≥ 4.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from satbench import activations

#: Gauss–Jacobi nodes in |y|² and Gauss–Legendre nodes per arc of the angle
RADIAL_NODES = 48
ANGULAR_NODES = 48


def gauss_jacobi(n: int, a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights (summing to 1) of the n-point Gauss rule for the weight (1−x)^a (1+x)^b
    on [−1, 1], from the eigen-decomposition of the Jacobi matrix of its monic recurrence."""
    k = np.arange(n, dtype=np.float64)
    s = 2 * k + a + b
    with np.errstate(divide="ignore", invalid="ignore"):
        diag = np.where(s == 0, (b - a) / (a + b + 2), (b * b - a * a) / (s * (s + 2)))
    m = k[1:]
    sm = 2 * m + a + b
    off = np.sqrt(4 * m * (m + a) * (m + b) * (m + a + b) / (sm**2 * (sm + 1) * (sm - 1)))
    nodes, vectors = np.linalg.eigh(np.diag(diag) + np.diag(off, 1) + np.diag(off, -1))
    return nodes, vectors[0] ** 2


def sphere_pair(batch_size: int, radial: int = RADIAL_NODES, angular: int = ANGULAR_NODES):
    """Nodes (n₁, n₂) and weights (summing to 1) for expectations over two coordinates of n,
    uniform on the sphere of radius √B in the centred subspace of R^B."""
    if batch_size < 4:
        raise ValueError(f"batch_size must be >= 4 (E 1/χ²_(B−1) is finite from B = 4), got {batch_size}")
    x, w_r = gauss_jacobi(radial, (batch_size - 5) / 2, 0.0)
    radius = np.sqrt((1 + x) / 2)  # |y|² = (1 + x)/2 ~ Beta(1, (B−3)/2)
    shrink = math.sqrt(1 - 2 / batch_size)  # n₁ + n₂ has the smaller variance: Σ n = 0
    edge = math.atan(shrink)  # n₁ = 0 or n₂ = 0 along these angles (mod π)
    cuts = np.array([-edge, edge, math.pi - edge, math.pi + edge, 2 * math.pi - edge])
    t, w_t = np.polynomial.legendre.leggauss(angular)
    lo, hi = cuts[:-1, None], cuts[1:, None]
    theta = ((lo + hi) / 2 + (hi - lo) / 2 * t).ravel()
    w_theta = ((hi - lo) / 2 * w_t).ravel() / (2 * math.pi)
    y1 = radius[:, None] * np.cos(theta) * shrink
    y2 = radius[:, None] * np.sin(theta)
    scale = math.sqrt(batch_size / 2)
    weights = w_r[:, None] * w_theta
    return scale * (y1 + y2), scale * (y1 - y2), weights


def _phi_and_derivative(activation: str):
    """numpy float64 φ and φ' of a registered activation (JAX, x64 for the evaluation)."""
    import jax

    phi, dphi = activations.get_activation(activation), activations.derivative(activation)

    def evaluate(fn, x):
        with jax.enable_x64(True):
            return np.asarray(fn(jax.numpy.asarray(x, jax.numpy.float64)), np.float64)

    return functools.partial(evaluate, phi), functools.partial(evaluate, dphi)


@functools.lru_cache(maxsize=None)
def gradient_growth(activation: str, batch_size: int, radial: int = RADIAL_NODES,
                    angular: int = ANGULAR_NODES) -> float:
    """λ(φ, B): the per-layer factor by which ‖∂L/∂h_l‖² grows going back through a deep
    BatchNorm MLP at initialisation (h: BN's output, φ's input), batch of ``batch_size``; the
    module docstring states the assumptions. Above 1 gradients explode toward the input, whatever
    σ_w² (BN makes the net scale-free); → 1 only as φ becomes linear and B large."""
    n1, n2, w = sphere_pair(int(batch_size), radial, angular)
    phi, dphi = _phi_and_derivative(activation)
    f1, f2, d1, d2 = phi(n1), phi(n2), dphi(n1), dphi(n2)
    b = batch_size
    v = np.sum(w * f1**2) - np.sum(w * f1 * f2)
    numerator = ((b - 1) * np.sum(w * d1**2) - np.sum(w * d1**2 * n1**2)
                 + np.sum(w * d1 * d2) + np.sum(w * d1 * n1 * d2 * n2))
    return float(numerator / ((b - 3) * v))
