"""Named remedies: bundles of field settings, so a sweep can put them on one axis.

The textbook cures for vanishing gradients are not one field each — He init
is an ``init``, BatchNorm a ``norm``, SELU an activation *and* an init scale.
``remedy = "batchnorm"`` in an experiment applies the bundle on top of the
config's other fields (the bundle wins), so "activation × remedy × depth" is
an ordinary grid. Every bundle sets ``init``, ``norm``, ``residual`` and ``residual_branch``, so
remedies differ from ``none`` in exactly what they name.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType


@dataclasses.dataclass(frozen=True)
class Remedy:
    description: str
    settings: MappingProxyType


def _remedy(description: str, **settings) -> Remedy:
    base = {"init": "standard", "norm": "none", "residual": False, "residual_branch": "fixed"}
    return Remedy(description, MappingProxyType({**base, **settings}))


REMEDIES: dict[str, Remedy] = {
    "none": _remedy("plain net, Glorot & Bengio's 'standard' U[±1/√n] init: the pre-2010 default"),
    "glorot": _remedy("normalised init U[±√(6/(n_in+n_out))] (Glorot & Bengio 2010)", init="glorot_uniform"),
    "he": _remedy("N(0, 2/n) init (He et al. 2015)", init="he"),
    "orthogonal": _remedy("orthogonal weights (Saxe et al. 2014)", init="orthogonal"),
    "batchnorm": _remedy("BatchNorm before each φ (Ioffe & Szegedy 2015)", norm="batchnorm"),
    "layernorm": _remedy("LayerNorm before each φ (Ba et al. 2016)", norm="layernorm"),
    "residual": _remedy("h ← h + α·φ(W h + b) on layers 2..depth (He et al. 2016)", residual=True),
    "fixup": _remedy("residual net, no normalisation, two-layer branches h + α·φ(W h + b) V: α learned from "
                     "residual_scale, W × depth^-1/2, V and the readout zero (Zhang et al. 2019)",
                     init="he", residual=True, residual_branch="fixup"),
    "rezero": _remedy("residual net, no normalisation: x + α_l·F(x) with a learned α_l = 0 at init (Bachlechner et al. "
                      "2020)", init="he", residual=True, residual_branch="rezero"),
    "skipinit": _remedy("residual net, BatchNorm removed: a learned scalar at the end of each branch starting at 0 (De & "
                        "Smith 2020); with one-layer branches the same net as rezero", init="he", residual=True,
                        residual_branch="rezero"),
    "selu": _remedy("SELU with N(0, 1/n) init: self-normalising (Klambauer et al. 2017)",
                    activation="selu", init="gaussian", sigma_w2=1.0),
    "clip": _remedy("global gradient-norm clipping at 1 (Pascanu et al. 2013)", clip_norm=1.0),
    "dks": _remedy("the config's φ transformed by DKS for its depth, N(0, 1/n) weights, no biases "
                   "(Martens et al. 2021)",
                   act_transform="dks", init="gaussian", sigma_w2=1.0, sigma_b2=0.0),
    "tat": _remedy("leaky ReLU with its slope and scale set by TAT for the depth, N(0, 1/n) weights, no biases "
                   "(Zhang et al. 2022)", activation="leaky_relu", act_transform="tat", init="gaussian",
                   sigma_w2=1.0, sigma_b2=0.0),
    "irnn": _remedy("recurrent nets: ReLU, identity recurrent matrix, input weights of gain 1e-3 (Le et al. 2015)",
                    activation="relu", recurrent_init="identity", input_sigma2=1e-3),
}


def known_remedies() -> list[str]:
    return list(REMEDIES)


def apply(values: dict) -> dict:
    """``values`` with its ``remedy`` bundle (if any) applied on top."""
    name = values.get("remedy")
    if name is None:
        return values
    return {**values, **REMEDIES[name].settings}
