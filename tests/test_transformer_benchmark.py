"""benchmarks/transformer.py end to end at --tiny (slow): the cross-check from satbench's weights passes
and every system is timed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_transformer_benchmark_runs_end_to_end_at_tiny_scale(tmp_path):
    """satbench, the JAX loop and the two PyTorch peers from identical weights agree to the script's rtol,
    and one repeat of each system is timed (1.6–2.5 minutes on 2 cores at load 4–9)."""
    pytest.importorskip("torch")
    proc = subprocess.run([sys.executable, "-m", "benchmarks.transformer", "--tiny", "--repeats", "1",
                           "--torch-threads", "1", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    check = report["crosscheck"]["depth 2"]
    assert max(check["relative_error"].values()) <= report["rtol"]
    assert check["final_loss"]["satbench"] > 0
    assert set(report["median_wall_s"]) == {"satbench", "satbench-warm", "jax-loop", "torch-loop", "torch-vmap"}
    assert all(s > 0 for s in report["median_wall_s"].values())
    assert report["median"]["satbench"]["n_programs"] == 1
