"""satbench: measure saturating, vanishing and exploding gradients over vmapped sweeps.

Public API: ``load_results`` (the tables of a results folder), ``run_experiment``
(a sweep from Python), ``load_experiment``; modules ``activations`` (registry,
``register_activation``), ``families`` (model families: ``register``, ``Family``),
``models`` (``LayerStack``, the layered networks' shared forward pass), ``mlp``, ``cnn``,
``inits``, ``probes``, ``train``, ``theory``.
"""

from __future__ import annotations

import importlib.util as _util
import sys as _sys
from pathlib import Path as _Path

__version__ = "0.1.0"


def _installed_inside_package(full: str) -> bool:
    """True if ``full`` is a real subpackage inside this package's folder (an installed
    copy). A finder elsewhere (an editable install of another checkout) does not count:
    it would pair this checkout's code with that checkout's figures and experiments."""
    try:
        found = _util.find_spec(full)
    except ModuleNotFoundError:
        return False
    here = _Path(__file__).resolve().parent
    return bool(found and found.origin and _Path(found.origin).resolve().is_relative_to(here))


def _attach_checkout_folders() -> None:
    """Installed, ``figures/`` and ``experiments/`` are the subpackages ``satbench.figures``
    and ``satbench.experiments``; imported straight from a source checkout they sit beside
    the package, so attach them under the same names. A checkout's own folders win over
    an editable install of another checkout, whose finder would otherwise supply them."""
    root = _Path(__file__).resolve().parent.parent
    checkout = (root / "pyproject.toml").is_file()
    for name in ("figures", "experiments"):
        full = f"{__name__}.{name}"
        folder = root / name
        if full in _sys.modules or not (folder / "__init__.py").exists():
            continue
        if _installed_inside_package(full):
            continue
        spec = _util.spec_from_file_location(full, folder / "__init__.py",
                                             submodule_search_locations=[str(folder)])
        module = _util.module_from_spec(spec)
        _sys.modules[full] = module
        spec.loader.exec_module(module)
        globals()[name] = module


_attach_checkout_folders()


def load_results(out):
    """The runs/layers/curves tables of a results folder (see ``satbench.store``)."""
    from satbench.store import load_results as _load

    return _load(out)


def load_experiment(name_or_path: str):
    """An experiment by .toml path or shipped name (see ``satbench.spec``)."""
    from satbench.spec import load

    return load(name_or_path)


def run_experiment(experiment, profile=None, out=None, **options):
    """Run a sweep from Python; returns a summary (see ``satbench.engine``)."""
    from satbench import engine, spec

    exp = spec.load(experiment) if isinstance(experiment, str) else experiment
    profile = profile or spec.default_profile(exp)
    out = out or spec.default_out(exp, profile)
    return engine.run_experiment(exp, profile, out, **options)
