"""Entry-point plugins: each registry (activations, model families) reads its group once, when it
is first asked for its names, so installing a package is enough to add to it."""

from __future__ import annotations

from importlib import metadata
from typing import Any, Callable, Container

_loaded: set[str] = set()  # groups already read


def load_once(group: str, registered: Container[str], add: Callable[[str, Any], Any]) -> None:
    """``add(name, object)`` for every entry point of ``group`` whose name is not ``registered``
    yet; later calls for the same group do nothing."""
    if group in _loaded:
        return
    _loaded.add(group)
    for ep in metadata.entry_points(group=group):
        if ep.name not in registered:
            add(ep.name, ep.load())
