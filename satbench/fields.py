"""The schema of a config field, and the value checks fields share.

Kept free of JAX so that ``satbench.spec`` (and the families' declarations,
which add fields of their own) import in milliseconds.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable


@dataclasses.dataclass(frozen=True)
class Field:
    """One config field: its type, default, one-line doc and check.

    batched: a per-lane number (vmapped), not part of the compiled program.
    optional: may be None. ``lane_none``: the number a None becomes in a lane.
    id_omits_default: added after results existed, so left out of the config id while at
      its default (earlier results keep their ids and resume).
    """

    kind: type
    default: Any
    doc: str
    check: Callable[[Any], str | None] | None = None
    batched: bool = False
    optional: bool = False
    id_omits_default: bool = False
    lane_none: float = float("nan")
    lane_dtype: str = ""  # numpy dtype of the lane array ("": float32 for floats, int32 for ints)


def positive(v):
    return None if v > 0 else "must be > 0"


def non_negative(v):
    return None if v >= 0 else "must be >= 0"


def unit_interval(v):
    return None if 0 <= v < 1 else "must be in [0, 1)"


def open_unit_interval(v):
    return None if 0 < v < 1 else "must be in (0, 1)"


def greater_than_one(v):
    return None if v > 1 else "must be > 1"


def choices(names_fn: Callable[[], list[str]]):
    """A check that ``v`` is one of ``names_fn()`` (called when checking: registries grow)."""

    def check(v):
        names = names_fn()
        return None if v in names else f"unknown value {v!r}; allowed: {', '.join(names)}"

    return check


def as_choices(value) -> tuple:
    """A lane-chosen field's value(s) as a tuple: one config's value, or a program's several
    (``spec.LANE_CHOICES``)."""
    return value if isinstance(value, tuple) else (value,)


def choices_as_tuples(arch, names) -> None:
    """Each of ``names`` on a frozen architecture dataclass as a tuple of choices (``as_choices``):
    one value given as a string becomes a 1-tuple, so a program's and a config's look alike."""
    for name in names:
        object.__setattr__(arch, name, as_choices(getattr(arch, name)))


def normalises(norm) -> bool:
    """Whether a config's ``norm``, or some of a program's norms, normalises (then every lane has
    γ and β; a "none" lane's get no gradient and stay at 1 and 0)."""
    return any(n != "none" for n in as_choices(norm))
