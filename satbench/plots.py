"""Turn a results folder into the figures its experiment names (PNG + PDF).

Figure scripts live in the top-level ``figures/`` folder (installed as
``satbench.figures``); each has ``plot(results) -> matplotlib Figure`` and
reads nothing but the results tables (and theory).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402

from satbench import spec, store  # noqa: E402


def figure_module(name: str):
    """The module ``figures/<name>.py``; unknown names list the known ones."""
    try:
        return importlib.import_module(f"satbench.figures.{name}")
    except ModuleNotFoundError as err:
        if err.name != f"satbench.figures.{name}":
            raise
        raise spec.SpecError(f"unknown figure {name!r}; known: {', '.join(known_figures())}") from None


def known_figures() -> list[str]:
    folder = Path(importlib.import_module("satbench.figures").__file__).parent
    return sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))


def save(fig, folder: Path, name: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.png", folder / f"{name}.pdf"]
    for path in paths:
        fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return paths


def make_figures(exp: spec.Experiment, results_dir: Path) -> list[Path]:
    """Draw every figure of ``exp`` from ``results_dir`` into ``results_dir/figures``."""
    results = store.load_results(results_dir)
    written = []
    for name in exp.figures:
        fig = figure_module(name).plot(results)
        written += save(fig, Path(results_dir) / "figures", name)
    return written


def claims(exp: spec.Experiment, results_dir: Path) -> list[dict]:
    """The checkable claims of every figure of ``exp`` that defines ``claims(results)``."""
    results = store.load_results(results_dir)
    rows = []
    for name in exp.figures:
        module = figure_module(name)
        if hasattr(module, "claims"):
            rows += module.claims(results)
    return rows
