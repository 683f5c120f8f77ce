"""Packaging: figures/ and experiments/ sit at the top of the repository and ship as the
subpackages ``satbench.figures`` and ``satbench.experiments`` (pyproject's package-dir mapping).

A checkout is used through an editable install (``pip install -e ".[test]"``), whose finder maps
both folders; satbench has no import hook of its own. A non-editable install beside a checkout
would pair the checkout's code with the installed copy's figures and experiments: the first test
says so in one line.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_figures_and_experiments_come_from_the_imported_checkout():
    import satbench
    import satbench.experiments
    import satbench.figures

    package = Path(satbench.__file__).resolve().parent
    found = [Path(p).resolve() for m in (satbench.figures, satbench.experiments) for p in m.__path__]
    assert found == [package.parent / "figures", package.parent / "experiments"], (
        f"satbench from {package} uses figures/experiments from {found}: install this checkout editable, "
        "pip install -e '.[test]'")


def test_every_subpackage_of_the_source_is_shipped():
    """A subpackage missing from pyproject's ``packages`` is absent from a non-editable install,
    while tests run from a checkout still find it (satbench.families once was: ``pip install .``
    then ``satbench run`` failed on import)."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    shipped = set(config["packages"])
    source = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "satbench").rglob("__init__.py")
              if "__pycache__" not in p.parts}
    assert source <= shipped, sorted(source - shipped)
