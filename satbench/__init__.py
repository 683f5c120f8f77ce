"""satbench: measure saturating, vanishing and exploding gradients over vmapped sweeps.

Public API: ``load_results`` (the tables of a results folder), ``run_experiment``
(a sweep from Python), ``load_experiment``; modules ``activations`` (registry,
``register_activation``), ``families`` (model families: ``register``, ``Family``),
``models`` (``LayerStack``, the layered networks' shared forward pass), ``mlp``, ``cnn``,
``inits``, ``probes``, ``train``, ``theory``.
"""

from __future__ import annotations

__version__ = "0.1.0"


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
