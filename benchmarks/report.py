"""From raw measurements to the report: medians, rates, ratios, markdown. Pure functions,
no measuring here."""

from __future__ import annotations

import math
import statistics

SATBENCH = ("satbench-cold", "satbench-warm")
PEERS = ("jax-loop", "torch-loop", "torch-vmap")


def _median(values):
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return statistics.median(values) if values else None


def _div(a, b):
    return None if a is None or not b else a / b


def summarize_label(runs: list[dict], meta: dict, peak_gflops: float) -> dict:
    """Medians over repeats of one system label, and the rates derived from them.

    cfg_steps_per_s, configs_per_s: over end-to-end wall time; gflops: the workload's
    common FLOPs over run time (compile excluded); gflops_all (satbench): its common and
    extra FLOPs over its run time."""
    ok = [r for r in runs if not r.get("error")]
    med = {k: _median([r.get(k) for r in ok]) for k in
           ("wall_s", "compile_s", "run_s", "other_s", "process_s", "peak_rss_kb", "rss_base_kb")}
    out = {"repeats": len(ok), "failed": len(runs) - len(ok), **med,
           "threads": ok[0].get("threads") if ok else None,
           "torch_threads": ok[0].get("torch_threads") if ok else None}
    out["cfg_steps_per_s"] = _div(meta["n_configs"] * meta["steps"], med["wall_s"])
    out["configs_per_s"] = _div(meta["n_configs"], med["wall_s"])
    out["gflops"] = _div(meta["flops"]["common"] / 1e9, med["run_s"])
    out["peak_fraction"] = _div(out["gflops"], peak_gflops)
    if runs and runs[0]["system"] == "satbench":
        total = meta["flops"]["common"] + meta["flops"]["satbench_extra"]
        out["gflops_all"] = _div(total / 1e9, med["run_s"])
    out["peak_rss_mb"] = None if med["peak_rss_kb"] is None else med["peak_rss_kb"] / 1024
    out["rss_base_mb"] = None if med["rss_base_kb"] is None else med["rss_base_kb"] / 1024
    return out


def best_threads(summary: dict) -> dict[str, str]:
    """For each torch peer, the label (thread count) with the lower median wall time."""
    best = {}
    for peer in ("torch-loop", "torch-vmap"):
        labels = [k for k, v in summary.items() if k.split("@")[0] == peer and v["wall_s"] is not None]
        if labels:
            best[peer] = min(labels, key=lambda k: summary[k]["wall_s"])
    return best


def ratios(summary: dict, best: dict) -> dict:
    """satbench / peer for wall, run and peak RSS (below 1: satbench is faster or smaller)."""
    peers = {"jax-loop": "jax-loop", **best}
    out = {}
    for sat in SATBENCH:
        if sat not in summary:
            continue
        for peer, label in peers.items():
            if label not in summary:
                continue
            s, p = summary[sat], summary[label]
            out[f"{sat}/{peer}"] = {"peer_label": label, "wall": _div(s["wall_s"], p["wall_s"]),
                                    "run": _div(s["run_s"], p["run_s"]),
                                    "peak_rss": _div(s["peak_rss_kb"], p["peak_rss_kb"])}
    return out


def warm_cache(summary: dict) -> dict | None:
    """Compile time of the warm rerun vs the cold run (target: <= 10 %)."""
    cold, warm = summary.get("satbench-cold"), summary.get("satbench-warm")
    if not cold or not warm or not cold["compile_s"] or warm["compile_s"] is None:  # a failed run has no times
        return None
    frac = warm["compile_s"] / cold["compile_s"]
    return {"cold_compile_s": cold["compile_s"], "warm_compile_s": warm["compile_s"], "fraction": frac,
            "target": 0.10, "met": frac <= 0.10}


def memory(sat_runs: list[dict]) -> dict | None:
    """satbench's peak RSS vs ``sum(plan.memory_terms)`` of its largest chunk (target: <= 2x).

    estimate = chunk lanes × bytes per config + the program's fixed bytes (dataset),
    as the engine's manifest records them for every program."""
    runs = [r for r in sat_runs if not r.get("error") and r.get("groups")]
    if not runs:
        return None
    groups = runs[0]["groups"]
    estimate = max(g["chunk_size"] * g["bytes_per_config"] + g["fixed_bytes"] for g in groups)
    peak = _median([r["peak_rss_kb"] * 1024 for r in runs])
    base = _median([r["rss_base_kb"] * 1024 for r in runs])
    return {"largest_chunk_estimate_bytes": estimate, "peak_rss_bytes": peak, "rss_after_imports_bytes": base,
            "ratio": peak / estimate, "ratio_above_imports": (peak - base) / estimate, "target": 2.0,
            "met": peak / estimate <= 2.0}


def final_loss_medians(runs: list[dict]) -> dict:
    """Per system, the median final train loss over configs and how many were non-finite: a
    statistical sanity check (each system draws its own init and batches)."""
    out = {}
    for r in runs:
        if r.get("error") or r["label"] in out:
            continue
        losses = [x["final_loss"] for x in r["losses"]]
        finite = [v for v in losses if v is not None and math.isfinite(v)]
        out[r["label"]] = {"median": statistics.median(finite) if finite else None,
                           "non_finite": len(losses) - len(finite), "n": len(losses)}
    return out


# ------------------------------------------------------------------ markdown
def _fmt(v, spec=".3g"):
    if v is None:
        return "–"
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    return format(v, spec)


def _pct(v):
    return "–" if v is None else f"{100 * v:.0f} %"


def system_table(summary: dict, best: dict) -> list[str]:
    head = ("| system | wall s | compile s | run s | other s | configs·steps/s | configs/s | GFLOP/s "
            "| % of peak | peak RSS MB | RSS after imports MB |")
    lines = [head, "|" + "---|" * 11]
    order = [k for k in SATBENCH if k in summary] + sorted(k for k in summary if k not in SATBENCH)
    for label in order:
        s = summary[label]
        name = label
        if label.startswith("torch"):
            name += " (threads {})".format(s["torch_threads"]) + (" **best**" if label in best.values() else "")
        gflops = _fmt(s["gflops"])
        if s.get("gflops_all") is not None:
            gflops += f" ({_fmt(s['gflops_all'])} incl. extra)"
        lines.append(f"| {name} | {_fmt(s['wall_s'])} | {_fmt(s['compile_s'])} | {_fmt(s['run_s'])} "
                     f"| {_fmt(s.get('other_s'))} | {_fmt(s['cfg_steps_per_s'])} | {_fmt(s['configs_per_s'])} "
                     f"| {gflops} | {_pct(s['peak_fraction'])} | {_fmt(s['peak_rss_mb'], '.0f')} "
                     f"| {_fmt(s['rss_base_mb'], '.0f')} |")
    return lines


def ratio_table(rat: dict) -> list[str]:
    lines = ["| satbench / peer | wall | run | peak RSS |", "|---|---|---|---|"]
    for key, r in rat.items():
        lines.append(f"| {key} ({r['peer_label']}) | {_fmt(r['wall'])} | {_fmt(r['run'])} | {_fmt(r['peak_rss'])} |")
    return lines


def crosscheck_lines(cc: dict | None) -> list[str]:
    if not cc:
        return ["Cross-check: not run."]
    grad = f"; PyTorch vs JAX gradient norms {cc['framework_grad_rtol']:g}" if "framework_grad_rtol" in cc else ""
    lines = [f"Cross-check ({'passed' if cc['passed'] else '**FAILED**'}, rtol {cc['rtol']:g}{grad}, "
             f"σ_w² = {cc['sigma_w2']}, {cc['steps']} steps, one config per shape; identical weights "
             "and minibatches — satbench's rebuilt from its seed): largest relative errors"]
    lines += [f"- `{k}`: {v:.2g}" for k, v in cc["max_rel_err"].items()]
    return lines


def workload_section(name: str, w: dict) -> list[str]:
    meta = w["meta"]
    lines = [f"## {name}", "",
             f"{meta['n_configs']} configs ({meta['description']}); "
             f"common work {meta['flops']['common'] / 1e9:.4g} GFLOP, satbench's extra (evaluations, probes) "
             f"{meta['flops']['satbench_extra'] / 1e9:.4g} GFLOP; medians of {w['repeats']} repeat(s).", ""]
    lines += system_table(w["summary"], w["best_threads"]) + [""]
    if w["ratios"]:
        lines += ratio_table(w["ratios"]) + [""]
    warm = w.get("warm_cache")
    if warm:
        lines.append(f"Warm cache: compile {warm['warm_compile_s']:.2f} s warm vs {warm['cold_compile_s']:.2f} s cold "
                     f"= {100 * warm['fraction']:.0f} % (target ≤ 10 %: {'met' if warm['met'] else 'not met'}).")
    mem = w.get("memory")
    if mem:
        lines.append(f"Memory: satbench peak RSS {mem['peak_rss_bytes'] / 2**20:.0f} MB vs the planner's estimate of "
                     f"its largest chunk {mem['largest_chunk_estimate_bytes'] / 2**20:.1f} MB: ratio "
                     f"{mem['ratio']:.1f} (target ≤ 2: {'met' if mem['met'] else 'not met'}); above the "
                     f"RSS after imports ({mem['rss_after_imports_bytes'] / 2**20:.0f} MB): "
                     f"{mem['ratio_above_imports']:.1f}.")
    lines += [""] + crosscheck_lines(w.get("crosscheck")) + [""]
    fl = w.get("final_loss")
    if fl:
        lines.append("Final train loss, median over configs (each system its own init and batches; "
                     "non-finite count): " + "; ".join(f"{k} {_fmt(v['median'], '.4f')} ({v['non_finite']})"
                                                      for k, v in fl.items()))
    errors = [r for r in w["runs"] if r.get("error")]
    for r in errors:
        lines.append(f"- **{r['label']} repeat {r['repeat']} failed**: {r['error']}")
    return lines + [""]


def scaling_lines(sc: dict | None) -> list[str]:
    if not sc:
        return []
    lines = ["## Scaling (satbench)", ""]
    if sc.get("configs"):
        lines += [f"![wall vs configs]({sc['configs_png']})", "",
                  "| configs | wall s | compile s | run s | run s per config |", "|---|---|---|---|---|"]
        lines += [f"| {r['n_configs']} | {r['wall_s']:.2f} | {r['compile_s']:.2f} | {r['run_s']:.3f} "
                  f"| {r['run_s'] / r['n_configs']:.4f} |" for r in sc["configs"]]
        lines.append("")
    if sc.get("depth"):
        lines += [f"![compile vs depth]({sc['depth_png']})", "",
                  "| depth | compile s (scan) | compile s (unroll) | run s (scan) | run s (unroll) |",
                  "|---|---|---|---|---|"]
        by = {(r["layers"], r["depth"]): r for r in sc["depth"]}
        for d in sorted({r["depth"] for r in sc["depth"]}):
            s, u = by.get(("scan", d), {}), by.get(("unroll", d), {})
            lines.append(f"| {d} | {_fmt(s.get('compile_s'))} | {_fmt(u.get('compile_s'))} "
                         f"| {_fmt(s.get('run_s'))} | {_fmt(u.get('run_s'))} |")
        lines.append("")
    return lines


def markdown(report: dict) -> str:
    m, v, peak = report["machine"], report["versions"], report["matmul_peak"]
    lines = [f"# satbench vs peers — scale `{report['scale']}`", ""]
    if report.get("label"):
        lines += [f"**{report['label']}**", ""]
    lines += [
        f"Machine: {m['nproc']} CPUs (affinity {m['affinity']}), {m['cpu_model']}; load average at start "
        f"{m['load_average']}, at end {report.get('load_average_end')}. {report['started']} – {report['finished']}.",
        "",
        "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + ".",
        "",
        f"float32 matmul peak (jitted `jnp.dot`, {peak['n']}², median of {peak['repeats']} at the start and at the "
        f"end of the run, the better one): **{peak['gflops']:.1f} GFLOP/s** (start {peak['start_gflops']:.1f}, "
        f"end {peak['end_gflops']:.1f}).",
        "",
        "Columns: wall = the sweep end to end inside the worker process (after imports; satbench: "
        "`run_experiment`, incl. data loading, compile, run, theory columns, Parquet writing); compile = "
        "tracing + XLA compile (satbench's summary; the JAX loop's `lower().compile()` per shape; eager "
        "PyTorch has none); run = executing the compiled programs; other = wall − compile − run; "
        "GFLOP/s = common FLOPs / run s (6·batch·ΣW per training step, 2·n·ΣW for the final train loss; "
        "cnn: a convolution's ΣW term is H·W·k²·C_in·C_out, i.e. 2·H·W·k²·C_in·C_out FLOPs per example "
        "forward, plus the readout's C·n_out; "
        "init-only adds a probe-batch forward+backward and the Jacobian's 2·width·ΣW_hidden per sample; "
        "SVD, biases, activations not counted); peak RSS = the worker process's high-water mark "
        "(VmHWM), one fresh process per system and repeat; RSS after imports = the same mark once the "
        "system's framework is imported and before the sweep. Systems alternate within each repeat.",
        "",
    ]
    for name, w in report["workloads"].items():
        lines += workload_section(name, w)
    lines += scaling_lines(report.get("scaling"))
    return "\n".join(lines) + "\n"
