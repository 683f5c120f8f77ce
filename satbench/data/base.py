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
    y_train: np.ndarray  # (n_train,) int32 labels, or float32 targets of a regression task
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
class Sequence:
    """What makes a dataset a sequence task: its default length T, the lengths it has (None: any
    T >= 2, generated to order) and the features of one time step at each length."""

    default_len: int
    features: Callable[[int], int]
    lengths: tuple[int, ...] | None = None
    minimum: int = 2  # the shortest length (generated tasks)

    def problem(self, seq_len: int) -> str | None:
        """Why ``seq_len`` (0: the default) is not a length of this task, or None."""
        if seq_len == 0:
            return None
        if self.lengths is not None and seq_len not in self.lengths:
            return f"must be one of {', '.join(map(str, self.lengths))} (or 0: {self.default_len})"
        if seq_len < self.minimum:
            return f"must be >= {self.minimum} (or 0: {self.default_len})"
        return None


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
    #: "classify" (integer labels, cross-entropy), "regress" (one float target, squared error) or
    #: "classify_steps" (a label at every time step of a sequence: an output per step)
    task: str = "classify"
    #: a sequence task (rows are T steps of F features, time-major); None: not a sequence
    sequence: Sequence | None = None

    def input_shape_at(self, seq_len: int = 0) -> tuple[int, ...]:
        """One example's shape as a network sees it: an image (H, W, C), a sequence (T, F) of
        ``seq_len`` steps (0: the task's default), or (features,)."""
        if self.sequence is not None:
            t = seq_len or self.sequence.default_len
            return (t, self.sequence.features(t))
        return self.image_shape or (self.n_in,)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.input_shape_at()

    @property
    def n_out(self) -> int:
        """Outputs of a network for this task: a logit per class, or one number."""
        return 1 if self.task == "regress" else self.n_classes
