"""``benchmarks/gpu.py``'s report: from raw measurements to ``report.json``'s summaries and
``report.md``. Pure functions, no measuring (the harness's ``report`` module does the medians
and rates; this adds % of each peak, device memory, speed-ups and the issue's targets)."""

from __future__ import annotations

from benchmarks import report
from benchmarks.report import _div, _fmt, _pct

REPRO = "schoenholz2017"


def faster(ratio: float) -> str:
    """A peer/satbench time ratio in words: "12.3× faster" or "4.56× slower"."""
    return f"{ratio:.3g}× faster" if ratio >= 1 else f"{1 / ratio:.3g}× slower"


def mb(n) -> str:
    """Bytes as whole MiB ("–" where unknown, as a CPU's device memory)."""
    return "–" if n is None else f"{n / 2**20:.0f}"


def summarize_workload(w: dict, dev: dict) -> dict:
    """Per system the harness's medians and rates (one repeat), plus % of each peak, device
    memory and satbench's lanes per call; speed-ups of satbench over each PyTorch peer."""
    fp32 = dev["matmul_peak"]["highest"]["gflops"]
    default = dev["matmul_peak"]["default"]["gflops"]
    nom = (dev.get("nominal") or {}).get("fp32_gflops")
    summary = {}
    for r in w["runs"]:
        if r.get("error"):
            summary[r["label"]] = {"error": r["error"]}
            continue
        s = report.summarize_label([r], w["meta"], fp32)
        s.update(peak_fraction_default=_div(s["gflops"], default), peak_fraction_nominal=_div(s["gflops"], nom),
                 device_peak_bytes=r.get("device_peak_bytes"), sample=r.get("sample"),
                 torch_matmul_precision=r.get("torch_matmul_precision"))
        if r["system"] == "satbench":
            groups = r.get("groups") or []
            s.update(lanes_per_call=max((g["chunk_size"] for g in groups), default=None), programs=len(groups),
                     chunk_estimate_bytes=max((g["chunk_size"] * g["bytes_per_config"] + g["fixed_bytes"]
                                               for g in groups), default=None),
                     budget_bytes=(r.get("memory_budget") or {}).get("bytes_per_device"))
        summary[r["label"]] = s
    sat = summary.get("satbench", {})
    speedups = {}
    for peer in ("torch-loop", "torch-vmap"):
        p = summary.get(peer, {})
        if sat.get("wall_s") and p.get("wall_s"):
            speedups[peer] = {"wall": p["wall_s"] / sat["wall_s"], "run": p["run_s"] / sat["run_s"]}
    return {**w, "summary": summary, "speedups": speedups,
            "runs": [{k: v for k, v in r.items() if k != "losses"} for r in w["runs"]]}


def targets(doc: dict) -> list[dict]:
    """The issue's three targets against what was measured (only meaningful at ``gpu`` scale)."""
    rows = []
    small = doc["workloads"].get("small")
    if small:
        sat, sp = small["summary"].get("satbench", {}), small["speedups"].get("torch-loop")
        lanes = sat.get("lanes_per_call")
        rows.append({"target": "small at ≥ 1,000 lanes: ≥ 50× a per-config PyTorch loop (wall)",
                     "measured": (f"{faster(sp['wall'])} at {lanes} lanes per call" if sp else "not measured"),
                     "met": bool(sp and sp["wall"] >= 50 and (lanes or 0) >= 1000) if sp else None})
    init = doc["workloads"].get("init-only")
    if init:
        sat = init["summary"].get("satbench", {})
        frac = sat.get("peak_fraction")
        nom = sat.get("peak_fraction_nominal")
        rows.append({"target": "init-only at width 1000: ≥ 40 % of the float32 peak",
                     "measured": (f"{_pct(frac)} of the measured float32 peak, {_pct(nom)} of nominal"
                                  if frac is not None else "not measured"),
                     "met": None if frac is None else frac >= 0.40})
    rep = doc.get("repro")
    if rep:
        cut = rep.get("timed_out") or rep.get("interrupted")
        total = None if rep.get("error") else rep.get("estimate_total_s") if cut else rep.get("process_s")
        label = "estimated" if cut else "measured"
        measured = f"failed: {rep['error']}" if rep.get("error") else f"{_fmt(total, '.0f')} s, {label}"
        if rep.get("figures_error") and not rep.get("error"):
            measured += f" (figures: {rep['figures_error']})"
        rows.append({"target": f"{REPRO} full profile in ≤ 10 min", "measured": f"{measured} ({rep.get('what')})",
                     "met": None if total is None or (total <= 600 and rep.get("figures_error")) else total <= 600,
                     "estimated": bool(cut)})  # with its figures cut short, the time is a lower bound
    return rows


def _yes(v) -> str:
    return "–" if v is None else ("yes" if v else "no")


def svd_line(w: dict, dev: dict) -> list[str]:
    """How much of satbench's init-only run the Jacobian SVDs alone would take at the device
    stage's rate (SVDs are not counted as FLOPs, so they lower GFLOP/s)."""
    wl, sat = w["meta"]["workload"], w["summary"].get("satbench", {})
    if not wl.get("jacobian_samples") or dev["svd_width"] != wl["width"] or not sat.get("run_s"):
        return []
    n = w["meta"]["n_configs"] * wl["jacobian_samples"]
    seconds = n * dev["svd_s"]
    return [f"- SVDs: {n} of {wl['width']}² matrices × {1e3 * dev['svd_s']:.1f} ms (device stage) ≈ "
            f"{seconds:.1f} s, {100 * seconds / sat['run_s']:.0f} % of satbench's run time."]


def workload_lines(name: str, w: dict, dev: dict) -> list[str]:
    """One workload's table, speed-ups, satbench's lanes and memory, and how the loop was sampled."""
    meta, flops = w["meta"], w["meta"]["flops"]
    lines = [f"## {name}", "", f"{meta['n_configs']} configs ({meta['description']}); common work "
             f"{flops['common'] / 1e9:.4g} GFLOP, satbench's extra {flops['satbench_extra'] / 1e9:.4g} GFLOP; "
             "one run per system.", "",
             "| system | wall s | compile s | run s | GFLOP/s | % of fp32 peak (measured / nominal) "
             "| % of default-precision peak | device peak MB | peak RSS MB |", "|" + "---|" * 9]
    for label, s in w["summary"].items():
        if s.get("error"):
            lines.append(f"| {label} | {s['error']} |" + " |" * 7)
            continue
        name_ = label + (f" ({s['sample']['configs_run']} of {s['sample']['configs']} configs, extrapolated)"
                         if s.get("sample") else "")
        gflops = _fmt(s["gflops"]) + (f" ({_fmt(s['gflops_all'])} incl. extra)"
                                      if s.get("gflops_all") is not None else "")
        lines.append(f"| {name_} | {_fmt(s['wall_s'])} | {_fmt(s['compile_s'])} | {_fmt(s['run_s'])} | {gflops} "
                     f"| {_pct(s['peak_fraction'])} / {_pct(s['peak_fraction_nominal'])} "
                     f"| {_pct(s['peak_fraction_default'])} | {mb(s['device_peak_bytes'])} "
                     f"| {_fmt(s['peak_rss_mb'], '.0f')} |")
    lines.append("")
    for peer, sp in w["speedups"].items():
        lines.append(f"- satbench vs {peer}: **{faster(sp['wall'])}** end to end (wall), "
                     f"{faster(sp['run'])} in run time.")
    sat = w["summary"].get("satbench", {})
    if sat.get("programs"):
        est, peak = sat.get("chunk_estimate_bytes"), sat.get("device_peak_bytes")
        ratio = f", device peak / estimate {peak / est:.2f}" if peak and est else ""
        lines.append(f"- satbench: {sat['programs']} program(s), at most {sat['lanes_per_call']} lanes per call; "
                     f"planner's estimate of the largest chunk {mb(est)} MB{ratio}.")
    loop = w["summary"].get("torch-loop", {})
    if loop.get("sample"):
        smp = loop["sample"]
        lines.append(f"- PyTorch loop sampled: {smp['configs_run']} of {smp['configs']} configs "
                     f"({smp['per_shape']} per (activation, depth) shape, spread over σ_w² and seeds: "
                     f"`workloads.sample_configs`) ran in {smp['measured_run_s']:.2f} s; the whole grid is "
                     "estimated as Σ over shapes of the shape's mean seconds per config × its configs.")
    return lines + svd_line(w, dev) + [""]


def repro_lines(rep: dict | None) -> list[str]:
    """The reproduction: finished (times, rate, claims) or interrupted (progress, estimate)."""
    if not rep:
        return []
    lines = ["## Reproduction", "", f"{rep.get('what')}: {rep.get('n_configs')} configs, width {rep.get('width')}, "
             f"{rep.get('steps')} steps, training {_fmt((rep.get('total_flops') or 0) / 1e12)} TFLOP "
             f"(6·steps·batch·ΣW; evaluations and probes not counted); budget {rep['budget_s']:.0f} s.", ""]
    if rep.get("error"):
        lines.append(f"**Failed**: {rep['error']}")
    elif rep.get("timed_out") or rep.get("interrupted"):
        lines.append(f"Interrupted after {rep['process_s']:.0f} s with {rep.get('n_finished_programs')} program(s), "
                     f"{rep.get('n_finished_configs')} configs finished; whole sweep estimated at "
                     f"**{_fmt(rep.get('estimate_total_s'), '.0f')} s** (seconds so far × total / finished "
                     "training FLOPs).")
    else:
        rate = _div((rep.get("total_flops") or 0) / 1e9, rep.get("run_s"))
        done = "Sweep finished, figures cut short," if rep.get("figures_error") else "Finished"
        lines.append(f"{done} in **{rep['process_s']:.0f} s** (process; sweep {rep['sweep_s']:.1f} s: compile "
                     f"{rep['compile_s']:.1f} s, run {rep['run_s']:.1f} s in {rep['n_groups']} program(s); "
                     f"figures and claims {rep.get('figures_s', 0):.1f} s); training "
                     f"{_fmt(rate)} GFLOP/s over run time; device peak {mb(rep.get('device_peak_bytes'))} MB.")
        for c in rep.get("claims") or []:
            lines.append(f"- {'PASS' if c['holds'] else 'FAIL'} {c['claim']} (measured: {c['measured']})")
        if rep.get("figures_error"):
            lines.append(f"- figures: {rep['figures_error']}")
    return lines + [""]


COLUMNS = ("Columns: wall = the system's sweep inside its worker process after imports (satbench: "
           "`run_experiment` end to end, cold compilation cache); compile = satbench's tracing and compiling; run = "
           "executing; GFLOP/s = the workload's common FLOPs / run s (`benchmarks/workloads.py`); device peak = the "
           "allocator's high-water mark (JAX `memory_stats()`, `torch.cuda.max_memory_allocated`; none on CPU).")


def peak_lines(doc: dict) -> list[str]:
    """The device's yardsticks: measured matmul peaks at both precisions beside the datasheet's."""
    dev, pk = doc["device"], doc["device"]["matmul_peak"]
    nom = dev.get("nominal") or {}
    tf32 = dev["tf32_by_default"]
    default_nominal = nom.get("tf32_gflops") if tf32 else nom.get("fp32_gflops")
    return ["| float32 matmul, jitted `jnp.dot` | n | GFLOP/s (median of 7) | nominal GFLOP/s |", "|---|---|---|---|",
            f"| JAX's default precision (`jax_default_matmul_precision` = {dev['jax_default_matmul_precision']}; "
            f"TF32: {'yes' if tf32 else 'no'}, error vs float64 {dev['default_precision_rel_error']:.1e}) "
            f"| {pk['default']['n']} | {pk['default']['gflops']:.0f} | {_fmt(default_nominal, '.0f')} |",
            f"| precision \"highest\" (float32) | {pk['highest']['n']} | {pk['highest']['gflops']:.0f} "
            f"| {_fmt(nom.get('fp32_gflops'), '.0f')} |", "",
            f"Nominal: datasheet ({nom.get('matched', 'device not in the table')}). \"% of fp32 peak\" below is "
            "over the measured \"highest\" row and the nominal float32 figure; satbench and the JAX side run at "
            f"JAX's default precision. One {dev['svd_width']}² SVD (batched, as satbench's Jacobian spectra): "
            f"{1e3 * dev['svd_s']:.1f} ms.", ""]


def markdown(doc: dict) -> str:
    """report.md: the run's context, the device's peaks, the targets, each workload, the reproduction."""
    dev, host = doc["device"], doc["machine"]
    limit = f", allocator limit {mb(dev['bytes_limit'])} MB" if dev.get("bytes_limit") else ""
    lines = [f"# satbench on one device — scale `{doc['scale']}`", "",
             f"{doc['started']} – {doc['finished']}, {doc['wall_s']:.0f} s in the driver (budget "
             f"{doc['budget_s']:.0f} s). Device: {dev['n_devices']} × {dev['platform']} `{dev['device_kind']}`"
             f"{limit}; host {host['nproc']} CPUs, load {host['load_average']}.", "",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in doc["versions"].items()) + ".", ""]
    missing = [f"{k} ({v['without']})" for k, v in doc["dependencies"].items() if not v["found"]]
    lines += ["Missing packages: " + "; ".join(missing) + "." if missing else "Every satbench dependency was found.",
              ""]
    lines += peak_lines(doc) + [f"PyTorch: {doc['torch'].get('note')}", "", COLUMNS, ""]
    rows = targets(doc)
    if rows:
        lines += ["| target | measured | met |", "|---|---|---|"]
        lines += [f"| {r['target']} | {r['measured']} | {_yes(r['met'])}{' (estimate)' if r.get('estimated') else ''} |"
                  for r in rows]
        if doc["scale"] != "gpu":
            lines.append(f"\n(Scale `{doc['scale']}`: a smoke run of the script, not the targets' setting.)")
        lines.append("")
    for name, w in doc["workloads"].items():
        lines += workload_lines(name, w, dev)
    lines += repro_lines(doc.get("repro"))
    return "\n".join(lines) + "\n"
