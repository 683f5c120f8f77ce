"""The containers every dataset module shares: raw arrays as read, the finished
``Dataset``, its static description, and the one error type for bad data."""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import numpy as np


class DataError(ValueError):
    """A dataset that cannot be had as asked: one line naming the file and where it belongs."""


class Raw(NamedTuple):
    """Arrays as a reader returns them: examples along axis 0, any dtype, not yet preprocessed."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    meta: dict


@dataclasses.dataclass(frozen=True)
class Dataset:
    x_train: np.ndarray  # (n_train, n_in) float32
    y_train: np.ndarray  # (n_train,) int32
    x_test: np.ndarray
    y_test: np.ndarray
    meta: dict

    @property
    def n_in(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def n_classes(self) -> int:
        return int(self.meta["n_classes"])


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is before it is read: sizes (at default options), default
    preprocessing, provenance. The planner and ``satbench list`` need no more."""

    name: str
    read: Callable[..., Raw]
    n_train: int
    n_test: int
    n_in: int
    n_classes: int
    preprocess: str  # what preprocess = "auto" means for this dataset
    value_range: tuple[float, float] | None  # nominal range of the raw values (None: unbounded)
    source: str  # one line: where it comes from, licence
    origin: str = "generated"  # generated, bundled, or folder (read from the user's data folder)
    folder: str | None = None  # subfolder of the user's data folder
    #: (height, width, channels) of an image (None: not images); the rows of ``x`` are images
    #: flattened in this order, or channels first where ``channels_first``
    image_shape: tuple[int, int, int] | None = None
    channels_first: bool = False

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One example's shape as a network sees it: an image (H, W, C), or (features,)."""
        return self.image_shape or (self.n_in,)
