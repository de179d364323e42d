"""``daskbio submit``: run a pipeline on workers started as SLURM or PBS jobs (or locally)."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from daskbio.cli import main
from daskbio.cli._common import (
    cache_option,
    keep_going_option,
    open_pipeline,
    pipeline_argument,
    store_for,
)
from daskbio.cli.run import progress_options, progress_setting
from daskbio.clusters import KINDS, job_script

if TYPE_CHECKING:
    from daskbio.jobarray import Element, JobArray, Progress


def parse_adapt(value: str | None) -> tuple[int, int] | None:
    """``"MIN:MAX"`` as two ints (None stays None)."""
    if value is None:
        return None
    try:
        low, high = (int(v) for v in str(value).split(":"))
    except ValueError:
        raise click.BadParameter(f"expected MIN:MAX, e.g. 1:10, got {value!r}") from None
    if not 0 <= low <= high:
        raise click.BadParameter(f"expected 0 <= MIN <= MAX, got {value!r}")
    return low, high


@main.command()
@pipeline_argument
@click.option(
    "--cluster",
    "kind",
    type=click.Choice(KINDS),
    help="Where the workers run. Default: the Dask config key daskbio.submit.cluster.",
)
@click.option("--jobs", type=click.IntRange(min=1), help="Batch jobs to start (default 1).")
@click.option(
    "--array",
    type=click.IntRange(min=1),
    metavar="N",
    help="Instead of Dask workers: one job array of N elements (SLURM --array, PBS -J), each "
    "running 'daskbio run FILE' with a local scheduler on the job's --cores. They share the "
    "work through the cache, which must be on a filesystem every node sees (or a Redis URL "
    "every node reaches). Not with --jobs/--adapt.",
)
@click.option(
    "--adapt",
    metavar="MIN:MAX",
    callback=lambda ctx, param, value: parse_adapt(value),
    help="Scale between MIN and MAX jobs.",
)
@click.option("--cores", type=click.IntRange(min=1), help="Cores per job.")
@click.option("--memory", help="Memory per job, e.g. 8GiB.")
@click.option("--processes", type=click.IntRange(min=1), help="Dask worker processes per job.")
@click.option("--walltime", help="Time limit per job, e.g. 02:00:00.")
@click.option("--queue", "--partition", "queue", help="Queue (PBS) or partition (SLURM).")
@click.option("--account", help="Account or project to charge.")
@click.option("--job-extra", multiple=True, help="An extra job directive; repeat for more.")
@click.option("--resource-spec", help="PBS -l resources, e.g. nodes=1:ppn=4 for Torque.")
@click.option("--python", help="The Python that runs the workers on the compute nodes.")
@click.option(
    "--listen",
    metavar="HOST",
    help="Where the scheduler and dashboard listen: a host, an IP address (0.0.0.0: every "
    "interface) or an interface name (ib0). Default: the Dask config key "
    "daskbio.submit.listen, else jobqueue's scheduler-options or interface, else 127.0.0.1.",
)
@cache_option
@keep_going_option
@progress_options
@click.option("--dry-run", is_flag=True, help="Print the job script and the plan; start nothing.")
@click.option(
    "--detach",
    is_flag=True,
    help="Submit this command itself as a batch job and return; print its job id and log. "
    "With --array: submit the array and return without waiting for it.",
)
@click.option(
    "--allow-local-cache",
    is_flag=True,
    help="Accept a cache under /tmp or the like (only when the jobs run on this machine).",
)
def submit(
    file: Path,
    kind: str | None,
    jobs: int | None,
    array: int | None,
    adapt: tuple[int, int] | None,
    cache: str | None,
    keep_going: bool,
    quiet: bool,
    progress_interval: float | None,
    dry_run: bool,
    detach: bool,
    allow_local_cache: bool,
    **job: Any,
) -> None:
    """Run FILE on Dask workers started as SLURM or PBS batch jobs (dask-jobqueue), with
    the cache on a filesystem they share, and cancel every job when the run ends.

    With --array N, run FILE instead as N cooperating 'daskbio run' processes, the
    elements of one job array, and wait for them: exit 0 only if every element did; Ctrl-C
    cancels the array.

    Options left out come from Dask's configuration: jobqueue.slurm.* / jobqueue.pbs.*
    (as dask-jobqueue reads them) and daskbio.submit.cluster / .jobs / .adapt / .listen.

    \b
    Example:
      daskbio submit pipeline.py --cluster slurm --jobs 4 --cores 8 --memory 32GiB \\
          --walltime 04:00:00 --partition short --cache /shared/lab/pipeline.daskbio
      daskbio submit pipeline.py --cluster slurm --adapt 1:20 --dry-run
      daskbio submit pipeline.py --cluster slurm --array 10 --cores 8 --memory 32GiB
    """
    from daskbio import config

    # Imported when used: making its dataclasses on import would cost every daskbio command
    # milliseconds.
    from daskbio.jobarray import default_log_directory

    start = time.perf_counter()
    if not file.is_file():
        raise click.ClickException(f"pipeline file not found: {file}")
    kind = kind or config.get("daskbio.submit.cluster")
    if kind not in KINDS:
        raise click.ClickException(
            "give --cluster slurm, pbs or local (or set the Dask config key "
            f"daskbio.submit.cluster), got {kind!r}"
        )
    job = {k: v for k, v in job.items() if v not in (None, ())}
    if array is not None:
        _check_array_options(kind, jobs, adapt, job)
    else:
        if jobs is not None and adapt is not None:
            raise click.ClickException("give --jobs or --adapt, not both")
        if jobs is None and adapt is None:
            jobs = config.get("daskbio.submit.jobs")
            adapt = None if jobs else parse_adapt(config.get("daskbio.submit.adapt"))
        if "listen" not in job and config.get("daskbio.submit.listen"):
            job["listen"] = config.get("daskbio.submit.listen")
    job.setdefault("log_directory", str(default_log_directory(file)))
    store = store_for(file, cache)
    _check_cache_location(kind, store, allow_local_cache)
    if array is not None:
        job.update(cache=cache, keep_going=keep_going)
        _array(file, kind, array, job, dry_run, detach, start)
    elif dry_run:
        with _settings_checked(kind):
            script = job_script(kind, **job)
        scale = f"{adapt[0]} to {adapt[1]} jobs" if adapt else f"{jobs or 1} job(s)"
        _dry_run(file, cache, kind, script, scale)
    elif detach:
        _detach(file, kind, job)
    else:
        progress = progress_setting(quiet, progress_interval)
        _run(file, cache, kind, jobs, adapt, job, store, start, keep_going, progress)


def _check_array_options(kind: str, jobs: int | None, adapt: Any, job: dict) -> None:
    """An array's elements are ``daskbio run`` processes, not Dask workers: the options
    about workers and their scheduler mean nothing to them."""
    from daskbio.jobarray import ARRAY_KINDS

    if jobs is not None or adapt is not None:
        raise click.UsageError(
            "give --array or --jobs/--adapt, not both: the elements of an --array run "
            "'daskbio run' themselves, without Dask workers"
        )
    if kind not in ARRAY_KINDS:
        raise click.UsageError(f"--array needs --cluster slurm or pbs, got {kind!r}")
    for name in ("processes", "listen"):
        if name in job:
            raise click.UsageError(
                f"--{name} is about Dask workers and their scheduler: each element of an "
                "--array runs one 'daskbio run' with its --cores as threads"
            )


def _array(
    file: Path, kind: str, size: int, settings: dict, dry_run: bool, detach: bool, start: float
) -> None:
    """Print the array's script, or submit the array and (unless ``detach``) wait for it;
    exit 1 when an element failed."""
    from daskbio.jobarray import JobArrayError, array_script, submit_array

    if dry_run:
        with _settings_checked(kind):
            script = array_script(kind, file, size, **settings)
        _dry_run(file, settings["cache"], kind, script, f"an array of {size} jobs")
        return
    status = ["daskbio", "status", str(file)]
    if settings["cache"] is not None:
        status += ["--cache", settings["cache"]]
    try:
        # Not interrupted between the array's submission and knowing its id to cancel it.
        with _settings_checked(kind), _uninterruptible():
            array = submit_array(kind, file, size, **settings)
        click.echo(f"Submitted job array {array.job_id}: {size} x 'daskbio run {file}'.")
        click.echo(f"Logs: {array.log(1)}" + (f" to {array.log(size)}" if size > 1 else ""))
        if detach:
            click.echo(f"Follow it with: {shlex.join(status)}")
            click.echo(f"Cancel it with: {array.cancel_command}")
            return
        elements = _wait_for(array)
    except JobArrayError as e:
        raise click.ClickException(str(e)) from None
    failed = [element for element in elements if not element.ok]
    elapsed = time.perf_counter() - start
    click.echo(
        f"Job array {array.job_id}: {size - len(failed)} of {size} elements done, "
        f"{len(failed)} failed ({elapsed:.1f} s). Logs: {array.log_directory}"
    )
    for element in failed:
        why = (
            "left no exit status (killed: walltime, memory or cancelled?)"
            if element.exit_code is None
            else f"exited with status {element.exit_code}"
        )
        click.echo(f"  element {element.index} {why}; log: {element.log}", err=True)
    click.echo(f"What is done: {shlex.join(status)}")
    if failed:
        sys.exit(1)


def _wait_for(array: JobArray) -> list[Element]:
    """The array's elements once they have all ended, its progress printed meanwhile; on
    Ctrl-C (or SIGTERM, SIGHUP) the array is cancelled and the exit status is 130."""
    click.echo("Waiting for its elements (Ctrl-C cancels the array) ...")
    with _signals_as_interrupt():
        try:
            return array.wait(on_progress=_progress_printer())
        except KeyboardInterrupt:
            with _uninterruptible():
                array.cancel()
    click.echo(
        f"Interrupted: job array {array.job_id} cancelled; every result completed so far "
        "is kept in the cache.",
        err=True,
    )
    sys.exit(130)


def _progress_printer() -> Callable[[Progress], None]:
    """A callback printing an array's progress, with the seconds since it was made."""
    start = time.perf_counter()

    def show(progress: Progress) -> None:
        click.echo(
            f"  {progress.pending} pending, {progress.running} running, {progress.done} done, "
            f"{progress.failed} failed ({time.perf_counter() - start:.0f} s)"
        )

    return show


def _check_cache_location(kind: str, store: Any, allow_local_cache: bool) -> None:
    from daskbio.clusters import local_only

    if kind == "local" or allow_local_cache or store.folder is None:
        return
    if local_only(store.folder):
        raise click.ClickException(
            f"the cache {store.location} is in a folder private to this machine, where "
            "workers on other nodes cannot see it: give --cache on a shared filesystem "
            "(or --allow-local-cache if every job runs on this machine)"
        )


@contextmanager
def _settings_checked(kind: str) -> Iterator[None]:
    """Complaints about missing or bad settings (dask-jobqueue's among them), as one-line
    errors; the one about cores and memory says where to give them."""
    try:
        yield
    except ValueError as e:
        first = str(e).splitlines()[0].rstrip(":, ")
        if "cores and memory" in first:
            first += (
                f" (give --cores and --memory, or set jobqueue.{kind}.cores and "
                f".memory in the Dask config)"
            )
        raise click.ClickException(first) from None


def _dry_run(file: Path, cache: str | None, kind: str, script: str, scale: str) -> None:
    """Print the job script and the plan: Tasks in all, cached, and to run on ``scale``."""
    click.echo(script)
    with open_pipeline(file, cache) as (pipeline, store):
        done = store.has_many(pipeline.hashes())
        more = " (Tasks after a value() call are not known yet)" if pipeline.barrier else ""
        click.echo(
            f"Plan: {len(pipeline.tasks)} Tasks, {len(done)} cached, "
            f"{len(pipeline.tasks) - len(done)} to run on {scale} ({kind}){more}. "
            f"Cache: {store.location}"
        )


def _run(
    file: Path,
    cache: str | None,
    kind: str,
    jobs: Any,
    adapt: Any,
    job: dict,
    store: Any,
    start: float,
    keep_going: bool,
    progress: bool | float,
) -> None:
    from distributed import Client

    from daskbio.cli.run import compute_pipeline, echo_dashboard
    from daskbio.clusters import cluster, loopback_only

    with _signals_as_interrupt():
        started = None
        try:
            with _settings_checked(kind):
                started = cluster(kind, jobs=jobs, adapt=adapt, **job)
            if kind != "local" and loopback_only(started.scheduler_address):
                click.echo(LOOPBACK_HINT, err=True)
            with Client(started) as client:
                echo_dashboard(client)
                dashboard = file.absolute().with_suffix(".dashboard")
                dashboard.write_text(client.dashboard_link + "\n")
                click.echo("Waiting for a worker to start (Ctrl-C cancels the jobs) ...")
                _check_workers_see(client, store)
                compute_pipeline(
                    file, cache, client, None, start, keep_going=keep_going, progress=progress
                )
        finally:
            if started is not None:
                _cancel_jobs(started)


LOOPBACK_HINT = (
    "Note: the scheduler listens on 127.0.0.1, which only jobs on this machine reach: on a "
    "multi-node cluster pass --listen 0.0.0.0 or --listen INTERFACE (e.g. ib0), or set the "
    "Dask config key daskbio.submit.listen."
)


def _cancel_jobs(started: Any) -> None:
    """Close the cluster, cancelling every job it started, however the run ended."""
    with _uninterruptible():
        started.close()


@contextmanager
def _uninterruptible() -> Iterator[None]:
    """Ignore Ctrl-C, SIGTERM and SIGHUP: submitting or cancelling jobs cut short could
    leave jobs queued that nothing cancels."""
    handlers = {s: signal.signal(s, signal.SIG_IGN) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


# Ctrl-C, scancel/qdel of a detached driver or a shutdown, and a closed SSH session.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextmanager
def _signals_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM and SIGHUP like Ctrl-C, so the jobs are cancelled on the way out."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, interrupt) for s in STOP_SIGNALS[1:]}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _check_workers_see(client: Any, store: Any) -> None:
    """Fail early, and clearly, when the workers cannot see the cache folder."""
    if store.folder is None:
        return
    store.folder.mkdir(parents=True, exist_ok=True)
    probe = store.folder / f".probe-{uuid.uuid4().hex}"
    probe.touch()
    try:
        seen = client.submit(os.path.exists, str(probe), pure=False).result()
    finally:
        probe.unlink()
    if not seen:
        raise click.ClickException(
            f"the workers cannot see the cache {store.location}: put it on a filesystem "
            "that the compute nodes share (--cache)"
        )


def _detach(file: Path, kind: str, job: dict) -> None:
    """Submit this same command, without --detach, as a batch job (local: a background
    process), and say where to follow it."""
    log = file.absolute().with_suffix(".submit.log")
    dashboard = file.absolute().with_suffix(".dashboard")
    command = shlex.join([sys.executable, "-m", "daskbio", "submit", *_same_options()])
    if kind == "local":
        with open(log, "w") as out:
            child = subprocess.Popen(
                shlex.split(command), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        job_id = f"process {child.pid}"
    else:
        script = _driver_script(kind, file, command, log, job)
        submit = ["sbatch", "--parsable"] if kind == "slurm" else ["qsub"]
        try:
            done = subprocess.run(submit, input=script, capture_output=True, text=True)
        except FileNotFoundError:
            raise click.ClickException(f"{submit[0]} not found: is {kind} here?") from None
        if done.returncode != 0:
            raise click.ClickException(f"{submit[0]} failed: {done.stderr.strip()}")
        job_id = f"job {done.stdout.strip().split(';')[0]}"
    click.echo(f"Submitted the driver as {job_id}.")
    click.echo(f"Log: {log}")
    click.echo(f"Dashboard address (once running): {dashboard}")
    click.echo(f"Follow it with: daskbio status {file}")


def _same_options() -> list[str]:
    """This command's arguments, as given, less ``--detach``: what the driver job runs."""
    ctx = click.get_current_context()
    args = []
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if not isinstance(param, click.Option) or param.name == "detach":
            continue
        if value is None or value is False or value == ():
            continue
        flag = param.opts[0]
        if param.is_flag:
            args.append(flag)
        elif param.multiple:
            args += [f"{flag}={v}" for v in value]
        else:
            text = ":".join(map(str, value)) if isinstance(value, tuple) else str(value)
            args.append(f"{flag}={text}")
    return [*args, "--", str(ctx.params["file"])]


def _driver_script(kind: str, file: Path, command: str, log: Path, job: dict) -> str:
    """A batch script running the driver: one core, the workers' queue, account and time."""
    if kind == "slurm":
        lines = [f"#SBATCH -J daskbio-{file.stem}", f"#SBATCH -o {log}", "#SBATCH -n 1"]
        flags = {"queue": "-p", "account": "-A", "walltime": "-t"}
        prefix = "#SBATCH"
    else:
        lines = [f"#PBS -N daskbio-{file.stem}", f"#PBS -o {log}", "#PBS -j oe"]
        flags = {"queue": "-q", "account": "-A", "walltime": "-l walltime="}
        prefix = "#PBS"
    for key, flag in flags.items():
        if key in job:
            sep = "" if flag.endswith("=") else " "
            lines.append(f"{prefix} {flag}{sep}{job[key]}")
    body = [f"cd {shlex.quote(os.getcwd())}", f"exec {command}"]
    return "\n".join(["#!/usr/bin/env bash", *lines, "", *body, ""])
