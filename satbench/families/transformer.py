"""The transformer family: ``depth`` blocks of multi-head self-attention and an MLP over the tokens
of a sequence task, each block one site (the implementation is ``satbench.transformer``). Its
per-block probes measure what goes wrong in deep attention stacks: token representations that
align (rank collapse, Dong et al. 2021; Noci et al. 2022) and the gradient profile of Post-LN
against Pre-LN blocks (Xiong et al. 2020)."""

from __future__ import annotations

from types import MappingProxyType

from satbench import families
from satbench.fields import Field, choices, positive

LN_PLACES = ("pre", "post", "none")


def _positive_int(v):
    return None if v > 0 else "must be > 0"


FIELDS = MappingProxyType({
    "heads": Field(int, 4, "attention heads; width must be a multiple of it (transformer)", _positive_int,
                   id_omits_default=True),
    "ln": Field(str, "pre", "where each block's LayerNorms sit: pre (on the branch's input, and one before the "
                "readout), post (after the residual sum) or none (transformer)", choices(lambda: list(LN_PLACES)),
                id_omits_default=True),
    "attention_only": Field(bool, False, "blocks of self-attention alone, no MLP (Dong et al. 2021) (transformer)",
                            id_omits_default=True),
    "causal": Field(bool, False, "each token attends only to itself and earlier tokens (transformer)",
                    id_omits_default=True),
    "qk_sigma2": Field(float, 1.0, "gain σ² of the query and key weights, drawn by init: N(0, σ²/width) for "
                       "gaussian (transformer)", positive, batched=True, id_omits_default=True),
})

#: probes that assume a layer's φ input or a Jacobian between sites: not defined for blocks yet
UNSUPPORTED_PROBES = ("jacobian_samples", "histogram_bins")


def check(values) -> str | None:
    """A sequence task, heads that divide the width, and no probe that needs a layer's φ input."""
    problem = families.sequence_task_problem(values)
    if problem is None and values["width"] % values["heads"]:
        problem = f"heads ({values['heads']}) must divide width ({values['width']})"
    return problem or families.unprobed_problem(values, UNSUPPORTED_PROBES, "not defined for attention blocks")


TRANSFORMER = families.register(families.Family(
    name="transformer",
    description="transformer encoder: depth blocks of multi-head self-attention and an MLP (4·width hidden units) "
                "over a sequence task's tokens, sinusoidal positions, LayerNorm pre, post or none",
    implementation="satbench.transformer",
    reads=("width", "residual", "residual_scale"),
    fields=FIELDS,
    defaults={"dataset": "seq_digits", "depth": 4, "residual": True},
    check=check,
    per_step_outputs=True,
))
