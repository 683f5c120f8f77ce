"""benchmarks/gpu.sh: its sampling and extrapolation (fast), and the whole script at --tiny (slow)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # benchmarks/ is a folder of the checkout, not an installed package

from benchmarks import gpu, workloads  # noqa: E402


def test_the_loop_sample_covers_every_shape_and_spreads_over_sigma_and_seeds():
    wl = workloads.get("small", "gpu")
    picks = workloads.sample_configs(wl, 1)
    assert [(c["activation"], c["depth"]) for c in picks] == wl.shapes()
    assert len({c["sigma_w2"] for c in picks}) == len(picks)  # one σ_w² per shape, none repeated
    assert len({c["seed"] for c in picks}) > 1
    assert all(c in wl.configs() for c in picks)
    assert picks == workloads.sample_configs(wl, 1)  # deterministic


def test_a_sampled_loop_is_extrapolated_shape_by_shape():
    wl = workloads.get("small", "tiny")  # 4 shapes of 4 configs
    rows = [{**c, "seconds": 1.0 if c["depth"] == 4 else 3.0, "final_loss": 0.0}
            for c in workloads.sample_configs(wl, 1)]
    res = {"losses": rows, "run_s": 8.0, "wall_s": 8.5}
    gpu.extrapolate_loop(res, wl)
    assert res["run_s"] == pytest.approx(4 * (1.0 + 3.0 + 1.0 + 3.0))
    assert res["wall_s"] == pytest.approx(res["run_s"] + 0.5)
    assert res["sample"] == {"configs_run": 4, "configs": 16, "per_shape": 1, "measured_run_s": 8.0,
                             "measured_wall_s": 8.5}


def test_an_interrupted_reproduction_is_estimated_from_its_finished_programs(tmp_path):
    (tmp_path / "plan.json").write_text(json.dumps({"flops_by_depth": {"10": 1.0, "20": 2.0, "40": 4.0},
                                                    "total_flops": 2 * (1.0 + 2.0 + 4.0)}))
    groups = [{"depths": [10, 20], "n_configs": 4}]  # 2 configs at each depth: 6 of 14 FLOPs
    (tmp_path / "manifest.json").write_text(json.dumps({"groups": groups}))
    est = gpu.partial_estimate(tmp_path, 30.0)
    assert est["n_finished_configs"] == 4
    assert est["estimate_total_s"] == pytest.approx(30.0 * 14 / 6)


def test_known_gpus_get_their_datasheet_peaks():
    assert gpu.nominal("NVIDIA H200")["fp32_gflops"] == 67_000
    assert gpu.nominal("NVIDIA H100 PCIe")["matched"] == "H100 PCIe"
    assert gpu.nominal("cpu") is None


@pytest.mark.slow
def test_gpu_script_runs_end_to_end_at_tiny_scale(tmp_path):
    """Every stage of the script on the CPU: the device probe, one workload against the peers, the
    reproduction slice, the report (about 1.5 minutes on 2 cores)."""
    env = {**os.environ, "PYTHON": sys.executable}
    env.pop("OUT", None)
    proc = subprocess.run(["bash", "benchmarks/gpu.sh", "--tiny", "--no-install", "--out", str(tmp_path),
                           "--workloads", "small"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((tmp_path / "report.json").read_text())
    systems = {"satbench"} | ({"torch-loop", "torch-vmap"} if importlib.util.find_spec("torch") else set())
    summary = doc["workloads"]["small"]["summary"]
    assert set(summary) == systems
    assert not [k for k, s in summary.items() if s.get("error")]
    assert doc["repro"]["run_s"] is not None and not doc["repro"].get("error")
    assert "## small" in (tmp_path / "report.md").read_text()
