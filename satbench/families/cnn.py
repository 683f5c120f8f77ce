"""The convolutional net of Xiao et al. (2018): ``depth`` k×k convolutions of ``channels``
channels at stride 1, global average pooling (or none: ``readout = "flatten"``), a dense
readout (the implementation is ``satbench.cnn``). With ``residual`` it is a plain ResNet."""

from __future__ import annotations

from types import MappingProxyType

from satbench import families
from satbench.fields import Field, choices

PADDINGS = ("circular", "same")
READOUTS = ("pool", "flatten")


def _odd_positive(v):
    return None if v > 0 and v % 2 == 1 else "must be an odd number >= 1 (the kernel has a centre tap)"


FIELDS = MappingProxyType({
    "channels": Field(int, 16, "channels of every convolution (cnn)",
                      lambda v: None if v > 0 else "must be > 0", id_omits_default=True),
    "kernel_size": Field(int, 3, "convolution kernel size k, k×k (cnn)", _odd_positive, id_omits_default=True),
    "padding": Field(str, "circular", "convolution padding: circular (a torus) or same (zeros) (cnn)",
                     choices(lambda: list(PADDINGS)), id_omits_default=True),
    "readout": Field(str, "pool", "what the dense readout sees: pool (the channels' averages over positions) or "
                     "flatten (every position's channels) (cnn)", choices(lambda: list(READOUTS)),
                     id_omits_default=True),
})


def check(values) -> str | None:
    """An image dataset, and a kernel no wider than the image."""
    from satbench import data

    shape = data.describe(values["dataset"]).image_shape
    if shape is None:
        images = [n for n in data.known_datasets() if data.describe(n).image_shape is not None]
        return f"dataset {values['dataset']!r} has no images for model cnn; allowed: {', '.join(images)}"
    if values["kernel_size"] > min(shape[:2]):
        return f"kernel_size ({values['kernel_size']}) must be at most the image side ({min(shape[:2])})"
    return None


CNN = families.register(families.Family(
    name="cnn",
    description="convolutional net: depth k×k convolutions of channels channels, global average pool, "
                "dense readout (Xiao et al. 2018)",
    implementation="satbench.cnn",
    reads=("channels", "kernel_size", "padding", "readout", "norm", "residual", "residual_scale", "dropout", "layers"),
    fields=FIELDS,
    check=check,
    # circular padding: the q-map and χ₁ are the fully connected ones with fan-in k²·C (Xiao et al. 2018)
    mean_field=lambda values: (values["norm"] == "none" and not values["residual"]
                               and values["padding"] == "circular" and values["init"] != "identity"),
    cpu_optimization_level=2,  # im2col's gathers ran 11 % slower at level 1 (depth 16, 16 channels)
))
