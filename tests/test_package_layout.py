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
