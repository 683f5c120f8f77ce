"""Regression: a checkout imported by path uses its own figures/ and experiments/.

With satbench installed editable from another checkout, that install's finder
also answers for ``satbench.figures``; the package must still attach the
folders beside the ``satbench/`` it was imported from, or ``satbench reproduce``
runs one checkout's code against another's experiment files and figures.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_figures_and_experiments_come_from_the_imported_checkout(tmp_path):
    code = ("import json, satbench, satbench.figures, satbench.experiments; "
            "print(json.dumps([satbench.__file__, list(satbench.figures.__path__), "
            "list(satbench.experiments.__path__)]))")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                         text=True, check=True).stdout
    package, figures, experiments = json.loads(out)
    assert Path(package).resolve().parent.parent == ROOT
    assert [Path(p).resolve() for p in figures] == [ROOT / "figures"]
    assert [Path(p).resolve() for p in experiments] == [ROOT / "experiments"]


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
