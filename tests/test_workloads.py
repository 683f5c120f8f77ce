"""The benchmark workloads' fixed parts that must track satbench's own defaults."""

from benchmarks import workloads
from satbench import schedule, spec


def test_the_heldout_workload_logs_at_satbench_s_default_interval():
    """heldout stands for a sweep run with satbench's defaults: its explicit log interval must be the
    one satbench picks when ``log_every`` is left out, at every scale it runs."""
    for scale in ("full", "tiny"):
        wl = workloads.get("heldout", scale)
        default = schedule.auto_log_every(wl.steps, 0, wl.batch_size, wl.dataset, 0)
        assert wl.log_every == default, (scale, wl.log_every, default)
        (config, *_) = spec.parse(workloads.experiment_toml(wl)).configs(None)
        assert config["log_every"] == default and config["batch_size"] == spec.FIELDS["batch_size"].default
    assert workloads.get("heldout", "full").n_configs == 72
    assert "heldout" not in workloads.DEFAULT_WORKLOADS
