"""``daskbio run``: compute every Task of a pipeline that is not cached yet."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from daskbio.cli import main
from daskbio.cli._common import (
    cache_option,
    keep_going_option,
    open_pipeline,
    pipeline_argument,
    print_table,
    task_failed,
)
from daskbio.invalidation import remove
from daskbio.status import stale_notes, status

if TYPE_CHECKING:
    from daskbio.graph.compute import Outcome

LOCAL_SCHEDULERS = ("sync", "threads", "processes")


def _connect(scheduler: str, workers: int | None, listen: str | None = None):
    """The scheduler for compute, and what closes it (None: nothing to)."""
    if listen is not None and scheduler != "local":
        raise click.UsageError("--listen is for --scheduler local, which starts a scheduler")
    if scheduler in LOCAL_SCHEDULERS:
        return scheduler, None
    if scheduler != "local" and ":" not in scheduler:
        import difflib

        near = difflib.get_close_matches(scheduler, [*LOCAL_SCHEDULERS, "local"], n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise click.ClickException(
            f"--scheduler {scheduler!r} is none of {', '.join(LOCAL_SCHEDULERS)} or local, "
            f"nor a scheduler address (HOST:PORT, tcp://HOST:PORT){hint}"
        )
    from distributed import Client, LocalCluster

    if scheduler == "local":
        from daskbio.clusters import local_network

        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, **local_network(listen))
        client = Client(cluster)
    else:
        cluster = None
        try:
            client = Client(scheduler, timeout="5s")
        except (OSError, TimeoutError, ValueError) as e:
            raise click.ClickException(
                f"cannot reach the Dask scheduler at {scheduler} ({e}): is it running, "
                "and is the address right?"
            ) from None
    echo_dashboard(client)

    def close() -> None:
        client.close()
        if cluster is not None:
            cluster.close()

    return client, close


def echo_dashboard(client: Any) -> None:
    """Print the Dask dashboard's address and daskbio's page on it (registering the page's
    plugin on the scheduler)."""
    from daskbio.monitor.plugin import attach

    click.echo(f"Dask dashboard: {client.dashboard_link}")
    if page := attach(client):
        click.echo(f"daskbio page: {page}")


def progress_options(command: Any) -> Any:
    """``--quiet`` and ``--progress-interval`` (see :func:`progress_setting`)."""
    command = click.option(
        "--progress-interval",
        type=click.FloatRange(min=0, min_open=True),
        metavar="SECONDS",
        help="Seconds between progress lines where output is not a terminal, as in a batch "
        "log (default: the Dask config key daskbio.progress-interval, else 10).",
    )(command)
    return click.option("-q", "--quiet", is_flag=True, help="Show no progress.")(command)


def progress_setting(quiet: bool, interval: float | None) -> bool | float:
    """What ``--quiet`` and ``--progress-interval`` make of ``Session.progress``."""
    if quiet:
        return False
    return True if interval is None else interval


@main.command()
@pipeline_argument
@click.option(
    "--scheduler",
    default="threads",
    show_default=True,
    help="sync, threads, processes, local (starts a LocalCluster) or a scheduler ADDRESS.",
)
@click.option("--workers", type=click.IntRange(min=1), help="Threads, processes or workers to use.")
@click.option(
    "--listen",
    metavar="HOST",
    help="Where --scheduler local's scheduler and dashboard listen: a host, an IP address "
    "(0.0.0.0: every interface) or an interface name. Default: 127.0.0.1, this machine only.",
)
@cache_option
@click.option(
    "--rerun-stale",
    is_flag=True,
    help="First remove the results 'daskbio status' calls stale (computed by other code, "
    "from changed input files, or from stale results), so that they are computed again.",
)
@keep_going_option
@progress_options
def run(
    file: Path,
    scheduler: str,
    workers: int | None,
    listen: str | None,
    cache: str | None,
    rerun_stale: bool,
    keep_going: bool,
    quiet: bool,
    progress_interval: float | None,
) -> None:
    """Compute every Task FILE makes that is not cached yet.

    Several runs of FILE on one cache (other shells, machines or batch jobs) share the
    work: each Task is computed once, by the run that locks it first.

    \b
    Example:
      daskbio run examples/segmentation/pipeline.py
      daskbio run pipeline.py --scheduler local --workers 2
      daskbio run pipeline.py --rerun-stale
      daskbio run pipeline.py --keep-going
      daskbio run pipeline.py --progress-interval 60 > run.log 2>&1
    """
    start = time.perf_counter()
    if not file.is_file():
        raise click.ClickException(f"pipeline file not found: {file}")
    target, close = _connect(scheduler, workers, listen)
    try:
        compute_pipeline(
            file,
            cache,
            target,
            workers,
            start,
            rerun_stale,
            keep_going,
            progress_setting(quiet, progress_interval),
        )
    finally:
        if close is not None:
            close()


def compute_pipeline(
    file: Path,
    cache: str | None,
    scheduler: Any,
    workers: int | None,
    start: float,
    rerun_stale: bool = False,
    keep_going: bool = False,
    progress: float | bool = True,
) -> None:
    """Run what ``file`` makes that is not cached on ``scheduler``, and report it (exit
    status 1 when a Task failed or the cache cannot be written, 130 on Ctrl-C), showing
    ``progress`` as :attr:`daskbio.graph.compute.Session.progress` says.
    ``daskbio submit`` runs this too."""
    from daskbio.cache import CacheUnavailable, CacheWriteError
    from daskbio.graph.compute import Abandoned, execute
    from daskbio.graph.job import TaskFailed, TasksFailed

    with open_pipeline(
        file, cache, may_compute=True, scheduler=scheduler, workers=workers, progress=progress
    ) as (pipeline, store):
        if rerun_stale:
            stale = status(pipeline.tasks, store).stale
            click.echo(f"Recomputing {len(stale)} stale results and what depends on them.")
            remove(store, stale)
        try:
            outcome = execute(pipeline.tasks, store, want_values=False, keep_going=keep_going)
        except TaskFailed as e:
            click.echo(f"Error: {task_failed(e)}", err=True)
            _report(pipeline, store, start, None)
            sys.exit(1)
        except CacheWriteError as e:
            click.echo(f"Error: {e}", err=True)
            if not isinstance(e, CacheUnavailable):
                # A full disk, say: what was committed can still be read and shown (a
                # server that is down would only be waited for again).
                _report(pipeline, store, start, None)
            sys.exit(1)
        except Abandoned:
            click.echo(
                "Interrupted: every result completed so far is kept in the cache; the Tasks "
                "still running were abandoned and leave nothing.",
                err=True,
            )
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)  # see Abandoned: a normal exit would make those Tasks fail
        except KeyboardInterrupt:
            click.echo("Interrupted: every result completed so far is kept in the cache.", err=True)
            sys.exit(130)
        for note in stale_notes(pipeline.tasks, outcome.plan.stale):
            click.echo(f"Note: {note}.")
        _report(pipeline, store, start, outcome)
        if outcome.failed:
            click.echo(str(TasksFailed(outcome.failed)), err=True)
            if outcome.skipped:
                click.echo(
                    f"{len(outcome.skipped)} Tasks that depend on them were not run.", err=True
                )
            sys.exit(1)


def _report(pipeline, store, start: float, outcome: Outcome | None) -> None:
    """Print what the run did (``outcome``; None when it stopped): one line when all was
    cached, else a table per function and how many Tasks other runs computed meanwhile."""
    elapsed = time.perf_counter() - start
    if outcome is not None and not outcome.plan.run:
        click.echo(
            f"All {len(pipeline.tasks)} Tasks were cached; nothing to run ({elapsed:.2f} s). "
            f"Cache: {store.location}"
        )
        return
    counts = status(pipeline.tasks, store, with_stale=False).counts
    ran = outcome.ran if outcome is not None else set()
    for t in pipeline.tasks:
        if t.hash() in ran:
            counts[t.name].ran += 1
    print_table(
        f"{pipeline.path} ({elapsed:.2f} s)",
        counts,
        ["total", "ran", "done", "failed", "running", "waiting"],
    )
    if ran:
        _print_results(pipeline, store)
    if outcome is not None:
        others = len(outcome.elsewhere)
        click.echo(
            f"This run computed {len(ran)} Tasks"
            + (f"; {others} came from other runs on the same cache." if others else ".")
        )
    click.echo(f"Cache: {store.location}")


def _print_results(pipeline, store, most: int = 5) -> None:
    """Show the values of the pipeline's final Tasks (those no other Task uses)."""
    import reprlib

    from daskbio.cache import CorruptEntry

    used = {d.hash() for t in pipeline.tasks for d in t.dependencies()}
    finals = [t for t in pipeline.tasks if t.hash() not in used]
    short = reprlib.Repr()
    short.maxstring = short.maxother = 60
    click.echo("Results:")
    for t in finals[:most]:
        try:
            shown = short.repr(store.load(t.hash()))
        except (KeyError, CorruptEntry) as e:
            shown = f"<not shown: {e}>"
        click.echo(f"  {t.name} {t.hash()[:12]}: {shown}")
    if len(finals) > most:
        click.echo(f"  ... and {len(finals) - most} more final Tasks")
