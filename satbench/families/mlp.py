"""The multilayer perceptron: ``depth`` dense layers of ``width`` units (the implementation is
``satbench.mlp``)."""

from __future__ import annotations

from satbench import families

#: inits whose nets mean-field theory does not describe: not random (identity), or linear at
#: initialisation (looks_linear's mirrored pairs)
NOT_MEAN_FIELD = ("identity", "looks_linear")

MLP = families.register(families.Family(
    name="mlp",
    description="multilayer perceptron: depth dense layers of width units (inputs flattened)",
    implementation="satbench.mlp",
    reads=("width", "norm", "residual", "residual_scale", "residual_branch", "dropout", "layers"),
    mean_field=lambda values: (values["norm"] == "none" and not values["residual"]
                               and values["init"] not in NOT_MEAN_FIELD),
))
