"""Command line: ``satbench run | submit | plot | theory | reproduce | list``.

Every bad input ends in one line on stderr and exit code 2, before any
result is written; click's own usage errors are shortened to one line too.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click

from satbench import data, distributed, spec

_DATA_DIR = click.option(
    "--data-dir", type=click.Path(path_type=Path, file_okay=False), default=None, envvar=data.folder.ENV,
    help=f"folder holding mnist/, fashion_mnist/, cifar10/ (default ${data.folder.ENV}; see satbench list)")


def _fail(err, code: int = 2) -> None:
    click.echo(f"satbench: error: {err}", err=True)
    sys.exit(code)


class _OneLineErrors(click.Group):
    """A click group whose usage errors (bad option values, unknown options) are one line."""

    def main(self, *args, **kwargs):
        kwargs.pop("standalone_mode", None)
        try:
            return super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.NoArgsIsHelpError as err:  # bare `satbench`: the help, as before
            err.show()
            sys.exit(err.exit_code)
        except click.ClickException as err:
            ctx = getattr(err, "ctx", None)
            hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
            _fail(" ".join(err.format_message().split()) + hint, err.exit_code)
        except click.Abort:
            click.echo("aborted", err=True)
            sys.exit(1)


_SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def _parse_memory_budget(text: str | None) -> tuple[int | None, float | None]:
    """'2GB' / '512MiB' / '1000000' -> (bytes, None); '60%' -> (None, 0.6) of device memory."""
    if text is None:
        return None, None
    problem = spec.SpecError(f"--memory-budget must be a size such as 2GB, 512MiB or 60% (of device memory), "
                             f"got {text!r}")
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*|%)\s*", text)
    if not match or (match[2] != "%" and match[2].lower() not in _SIZE_UNITS):
        raise problem
    value = float(match[1])
    if match[2] == "%":
        if not 0 < value <= 100:
            raise problem
        return None, value / 100
    size = int(value * _SIZE_UNITS[match[2].lower()])
    if size < 1:
        raise problem
    return size, None


def _parse_shard(text: str | None) -> tuple[int, int] | None:
    """'I/N' -> (I, N), with 0 <= I < N."""
    if text is None:
        return None
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise spec.SpecError(f"--shard must be I/N with integers 0 <= I < N, got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise spec.SpecError(f"--shard must be I/N with integers 0 <= I < N, got {text!r}")
    return i, n


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """Measure vanishing, exploding and saturating gradients over vmapped sweeps."""


@main.command()
@click.argument("experiment")
@click.option("--profile", default=None, help="profile of the experiment file (default: quick if defined)")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="results folder (default: results/<name>/<profile>)")
@click.option("--max-chunk", type=click.IntRange(min=1), default=None, help="most configs per program call")
@click.option("--memory-budget", default=None, metavar="SIZE",
              help="device memory a chunk may take, per device: 2GB, 512MiB or 60% (default 50%)")
@click.option("--fresh", is_flag=True, help="discard results already in --out instead of resuming")
@click.option("--no-plot", is_flag=True, help="skip the figures")
@click.option("--no-bucketing", is_flag=True, help="one program per depth (no pad-and-mask)")
@click.option("--shard", default=None, metavar="I/N", help="run only the I-th of N cost-balanced slices (job arrays)")
@click.option("--distributed", "distributed_", is_flag=True,
              help="one of several processes under jax.distributed; each runs its own slice")
@click.option("--coordinator", default=None, metavar="HOST:PORT", help="with --distributed: process 0's address")
@click.option("--num-processes", type=int, default=None, help="with --distributed: how many processes")
@click.option("--process-id", type=int, default=None, help="with --distributed: this process, 0..N-1")
@click.option("--quiet", is_flag=True, help="no progress bar")
@click.option("--concurrent", type=click.IntRange(min=1), default=None,
              help="program calls run at once [default: CPU: one per usable core; GPU/TPU: 1]")
@_DATA_DIR
def run(experiment, profile, out, max_chunk, memory_budget, fresh, no_plot, no_bucketing, shard, distributed_,
        coordinator, num_processes, process_id, quiet, concurrent, data_dir):
    """Run EXPERIMENT (a .toml path or a name from experiments/), resuming unfinished work."""
    process = None
    try:
        exp = spec.load(experiment)
        profile = profile or spec.default_profile(exp)
        exp.resolve(profile)
        out = out or spec.default_out(exp, profile)
        shard = _parse_shard(shard)
        budget, fraction = _parse_memory_budget(memory_budget)
        explicit = distributed.check_options(distributed_, coordinator, num_processes, process_id, shard, fresh)
        if distributed_:  # before anything else touches JAX
            process = distributed.initialize(explicit)
        from satbench import engine  # imported late: validation needs no JAX

        options = {"memory_budget": budget} if fraction is None else {"memory_fraction": fraction}
        summary = engine.run_experiment(exp, profile, out, max_chunk=max_chunk, fresh=fresh,
                                        progress=not quiet, bucketing=not no_bucketing, shard=shard,
                                        distributed=distributed_, data_dir=data_dir, concurrent=concurrent,
                                        **options)
    except (spec.SpecError, data.DataError) as err:
        _fail(err)
    except KeyboardInterrupt as err:
        lead = "\n" if sys.stderr.isatty() else ""
        message = str(err) if str(err).startswith("interrupted:") else \
            f"interrupted: finished parts are kept in {out}; rerun the same command to resume"
        click.echo(lead + message, err=True)
        sys.exit(130)
    except RuntimeError as err:
        from satbench import engine

        if not isinstance(err, (engine.OutOfMemory, engine.DiskFull)):
            raise
        _fail(err, 1)
    named = f"{exp.name} [{profile}]" if profile else exp.name
    click.echo(
        f"{named}: {summary.n_configs} configs ({summary.n_skipped} already done) "
        f"in {summary.n_groups} programs; compile {summary.compile_s:.1f}s (programs took "
        f"{summary.compile_total_s:.1f}s, compiled ahead), run {summary.run_s:.1f}s -> {out}"
    )
    if not no_plot and (shard is None and process is None or process is not None and process[0] == 0):
        _plot(exp, out)


@main.command()
@click.argument("experiment")
@click.option("--profile", default=None, help="profile of the experiment file (default: quick if defined)")
@click.option("--shards", type=click.IntRange(min=1), required=True, help="how many jobs (slices, as --shard I/N)")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="results folder, shared by the jobs (default: results/<name>/<profile>)")
@click.option("--executor", type=click.Choice(["slurm", "local"]), default="slurm", show_default=True,
              help="a SLURM job array, or processes on this machine")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="wait for the jobs, resubmit failed shards and merge; or print the job ids and return")
@click.option("--slurm-partition", default=None, help="SLURM partition (default: the cluster's)")
@click.option("--timeout-min", type=click.IntRange(min=1), default=60, show_default=True,
              help="time limit of each job, in minutes")
@click.option("--cpus-per-task", type=click.IntRange(min=1), default=None, help="CPU cores per job")
@click.option("--gpus-per-node", type=click.IntRange(min=0), default=None, help="GPUs per job")
@click.option("--max-retries", type=click.IntRange(min=0), default=2, show_default=True,
              help="times a failed shard is resubmitted (it resumes from its finished parts)")
@click.option("--max-chunk", type=click.IntRange(min=1), default=None, help="most configs per program call, as for run")
@click.option("--no-plot", is_flag=True, help="skip the figures")
@_DATA_DIR
def submit(experiment, profile, shards, out, executor, wait, slurm_partition, timeout_min, cpus_per_task,
           gpus_per_node, max_retries, max_chunk, no_plot, data_dir):
    """Run EXPERIMENT as SHARDS jobs through submitit (a SLURM job array, or local processes) into one
    folder; again with --wait: wait for jobs still running, resubmit the others, merge."""
    try:
        exp = spec.load(experiment)
        profile = profile or spec.default_profile(exp)
        configs = exp.configs(profile)
        out = (out or spec.default_out(exp, profile)).absolute()
        try:
            from satbench import cluster
        except ImportError as err:
            raise spec.SpecError(f"satbench submit needs submitit ({err}); pip install submitit") from None
        cluster.check_request(shards, len(configs), executor, slurm_partition)
        cluster.check_folder(out, exp, profile)
        for name in sorted({c["dataset"] for c in configs}):
            data.require(name, data_dir)  # on this host: nodes usually share its filesystem
    except (spec.SpecError, data.DataError) as err:
        _fail(err)
    params = cluster.parameters(executor, f"satbench-{exp.name}", timeout_min, slurm_partition, cpus_per_task,
                                gpus_per_node)
    later = cluster.command_line(experiment, profile, shards, out, executor, slurm_partition=slurm_partition,
                                 timeout_min=timeout_min, cpus_per_task=cpus_per_task, gpus_per_node=gpus_per_node,
                                 max_retries=max_retries, max_chunk=max_chunk, no_plot=no_plot)
    try:
        outcome = cluster.sweep(exp, profile, out, shards, executor, params, wait=wait, max_retries=max_retries,
                                data_dir=None if data_dir is None else Path(data_dir).absolute(),
                                task=cluster.ShardTask(max_chunk=max_chunk),
                                note=lambda line: click.echo(f"satbench: {line}", err=True))
    except KeyboardInterrupt:
        from satbench import store

        done = len(store.finished_ids(out) & {c.config_id for c in configs}) if out.is_dir() else 0
        click.echo(f"\ninterrupted: {done} of {len(configs)} configs finished in {out}; rerun the same command "
                   "with --wait to wait for jobs still running, resubmit the others and merge", err=True)
        sys.exit(130)
    except spec.SpecError as err:  # the merge found a shard still writing (lock.Busy)
        _fail(err)
    except (cluster.submitit.core.utils.FailedJobError, cluster.submitit.core.utils.FailedSubmissionError) as err:
        _fail(f"--executor {executor}: submission failed: {' '.join(str(err).split())[:300]}", 1)
    named = f"{exp.name} [{profile}]" if profile else exp.name
    jobs = cluster.brief(list(outcome.submitted.values()))
    if not outcome.merged and not outcome.failed:  # --no-wait
        earlier = (f"; {len(outcome.earlier)} shard(s) still running from an earlier submit: job(s) "
                   f"{cluster.brief(list(outcome.earlier.values()))}" if outcome.earlier else "")
        click.echo(f"{named}: {len(outcome.submitted)} of {shards} shards submitted"
                   + (f" as {executor} job(s) {jobs}" if jobs else "")
                   + f" ({outcome.n_configs} configs, {outcome.n_done} already done){earlier}")
        click.echo(f"results: {out} (logs: {cluster.logs(out)})")
        click.echo(f"to wait, resubmit failed shards and merge: {later}")
        return
    if outcome.failed:
        i, why = next(iter(sorted(outcome.failed.items())))
        _fail(f"{len(outcome.failed)} of {shards} shards failed after {max_retries} retries; "
              f"{outcome.n_finished} of {outcome.n_configs} configs finished in {out} (rerun the same command "
              f"to resume); shard {i}: {why}", 1)
    retried = f", {outcome.resubmitted} resubmitted" if outcome.resubmitted else ""
    click.echo(f"{named}: {outcome.n_configs} configs ({outcome.n_done} already done) in {shards} shards"
               f"{retried}; merged -> {out}")
    if not no_plot:
        _plot(exp, out)


def _plot(exp, results_dir: Path) -> None:
    from satbench import plots

    for path in plots.make_figures(exp, results_dir):
        click.echo(f"wrote {path}")


@main.command()
@click.argument("experiment")
@click.option("--profile", default=None, help="profile whose default results folder to read")
@click.option("--results", type=click.Path(path_type=Path), default=None, help="results folder")
def plot(experiment, profile, results):
    """Draw EXPERIMENT's figures from its results folder."""
    try:
        exp = spec.load(experiment)
        profile = profile or spec.default_profile(exp)
        results = results or spec.default_out(exp, profile)
        if not results.is_dir():
            raise spec.SpecError(f"--results {results}: no such folder; run `satbench run {experiment}` first")
        _plot(exp, results)
    except (spec.SpecError, OSError) as err:  # OSError: missing or damaged tables
        _fail(err)


@main.command()
@click.argument("activation")
@click.option("--sigma-w2", type=float, default=None, help="weight variance gain σ_w² (mean-field convention)")
@click.option("--sigma-b2", type=float, default=0.0, show_default=True, help="bias variance σ_b²")
@click.option("--critical", is_flag=True,
              help="print the critical σ_w² at --sigma-b2 (χ₁ reaches 1) and what kind of point it is")
def theory(activation, sigma_w2, sigma_b2, critical):
    """Mean-field q*, χ₁, depth scales and phase of ACTIVATION (any registered name)."""
    import math

    from satbench import activations
    from satbench import theory as mf

    try:
        activations.parse_name(activation)
        for option, value, allowed in (("--sigma-w2", sigma_w2, "> 0"), ("--sigma-b2", sigma_b2, ">= 0")):
            if value is not None and not math.isfinite(value):
                raise spec.SpecError(f"{option} must be a finite number {allowed}, got {value}")
        if sigma_b2 < 0:
            raise spec.SpecError(f"--sigma-b2 must be >= 0, got {sigma_b2}")
        if not critical and (sigma_w2 is None or sigma_w2 <= 0):
            raise spec.SpecError("--sigma-w2 must be given and > 0 (or use --critical)")
    except (ValueError, spec.SpecError) as err:
        _fail(err)
    if critical:
        point = mf.critical_point(activation, sigma_b2)
        if point["kind"] == "none":
            click.echo(f"{activation}: {point['text']} at σ_b² = {sigma_b2:g}")
        else:
            click.echo(f"{activation}: critical σ_w² = {point['sigma_w2']:.4f} at σ_b² = {sigma_b2:g}: "
                       f"{point['text']}")
        return
    t = mf.summary(activation, sigma_w2, sigma_b2)
    click.echo(f"{activation} at σ_w² = {sigma_w2:g}, σ_b² = {sigma_b2:g}")
    for key, label in [("q_star", "q*"), ("chi1", "χ₁"), ("chi_c", "χ_c"), ("c_star", "c*"),
                       ("xi_q", "ξ_q"), ("xi_c", "ξ_c")]:
        click.echo(f"  {label:<4} = {t[key]:.6g}")
    click.echo(f"  phase = {t['phase']}")


@main.command()
@click.argument("names", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="every shipped experiment")
@click.option("--profile", default="quick", show_default=True, help="quick (CPU minutes) or full (paper scale)")
@click.option("--results-root", type=click.Path(path_type=Path), default=Path("results"), show_default=True)
@_DATA_DIR
def reproduce(names, all_, profile, results_root, data_dir):
    """Run, plot and check the paper claims of each named reproduction (resumes finished work)."""
    import time

    from satbench import engine, plots

    try:
        if all_:
            names = spec.known_experiments()
        if not names:
            raise spec.SpecError("name at least one experiment, or --all; known: " + ", ".join(spec.known_experiments()))
        exps = [spec.load(n) for n in names]
        for exp in exps:
            for name in sorted({c["dataset"] for c in exp.configs(profile)}):
                data.require(name, data_dir)  # before the first experiment runs
    except (spec.SpecError, data.DataError) as err:
        _fail(err)
    failed = []
    for exp in exps:
        out = spec.default_out(exp, profile, results_root)
        t0 = time.perf_counter()
        try:
            engine.run_experiment(exp, profile, out, progress=True, data_dir=data_dir)
        except (data.DataError, spec.SpecError) as err:  # a damaged data file, a busy --out
            _fail(err)
        except (engine.OutOfMemory, engine.DiskFull) as err:
            _fail(err, 1)
        _plot(exp, out)
        seconds = time.perf_counter() - t0
        click.echo(f"\n{exp.name} [{profile}] — {exp.reference} ({seconds:.0f} s)")
        for row in plots.claims(exp, out):
            mark = "PASS" if row["holds"] else "FAIL"
            click.echo(f"  {mark}  {row['claim']}\n        paper: {row['paper']} | measured: {row['measured']}")
            if not row["holds"]:
                failed.append(f"{exp.name}: {row['claim']}")
    if failed:
        click.echo(f"\n{len(failed)} claim(s) did not hold:\n  " + "\n  ".join(failed), err=True)
        sys.exit(1)


@main.command(name="list")
@_DATA_DIR
def list_(data_dir):
    """Models, activations, inits, optimizers, remedies, datasets (and whether each is available), experiments,
    figures."""
    from satbench import activations, families, inits, plots, remedies, train

    def section(title, rows):
        click.echo(f"{title}:")
        for row in rows:
            click.echo(f"  {row}")

    section("models (model = NAME)", [
        f"{n:<12} {families.get(n).description}  [fields: {', '.join(dict.fromkeys((*families.get(n).reads, *families.get(n).fields)))}]"
        for n in families.known()
    ])
    section("activations", [
        f"{n:<12} {'saturating ' if activations.get_entry(n).saturating else ''}"
        f"max|φ'|={activations.max_abs_derivative(n):.4g}  {activations.get_entry(n).doc}"
        for n in activations.known_activations()
    ])
    section("inits", [f"{n:<15} {(inits.INITS[n].rule.__doc__ or '').splitlines()[0]}" for n in inits.known_inits()])
    section("optimizers", list(train.OPTIMIZERS))
    section("remedies (remedy = NAME applies these settings)", [
        f"{n:<11} {r.description}  [{', '.join(f'{k}={v}' for k, v in r.settings.items())}]"
        for n, r in remedies.REMEDIES.items()
    ])
    section("datasets", _dataset_rows(data_dir))
    exps = []
    for name in spec.known_experiments():
        exp = spec.load(name)
        exps.append(f"{name:<15} {exp.description}  [profiles: {', '.join(exp.profiles) or '-'}]")
    section("experiments", exps)
    section("figures", plots.known_figures())
    section("fields", [f"{k:<14} default {f.default!r:<10} {f.doc}" for k, f in spec.FIELDS.items()])


def _dataset_rows(data_dir) -> list[str]:
    """One line per dataset: sizes, default preprocessing, availability; what a missing one needs."""
    rows = []
    for name in data.known_datasets():
        info = data.describe(name)
        ok, where = data.availability(name, data_dir)
        status = where if ok else "unavailable"
        shape = "×".join(map(str, info.input_shape))  # an image's H×W×C, a sequence's T×F (at its default T)
        targets = {"regress": "regression", "classify_steps": f"{info.n_classes} classes per step"}.get(
            info.task, f"{info.n_classes:>2} classes")
        rows.append(f"{name:<20} {info.n_train:>6} train {info.n_test:>6} test {shape:>8} features "
                    f"{targets}  auto={info.preprocess:<11}  [{status}]  {info.source}")
        if not ok:
            rows.append(f"    {where}")
    return rows


if __name__ == "__main__":
    main()
