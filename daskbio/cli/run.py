"""``daskbio run``: compute every Task of a pipeline that is not cached yet."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from daskbio.cli import main
from daskbio.cli._common import (
    cache_option,
    count_by_function,
    open_pipeline,
    pipeline_argument,
    print_table,
)

LOCAL_SCHEDULERS = ("sync", "threads", "processes")


def _connect(scheduler: str, workers: int | None):  # -> (scheduler for compute, closer)
    if scheduler in LOCAL_SCHEDULERS:
        return scheduler, None
    from distributed import Client, LocalCluster

    if scheduler == "local":
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=":0")
        client = Client(cluster)
    else:
        cluster, client = None, Client(scheduler, timeout="10s")
    click.echo(f"Dask dashboard: {client.dashboard_link}")

    def close() -> None:
        client.close()
        if cluster is not None:
            cluster.close()

    return client, close


@main.command()
@pipeline_argument
@click.option(
    "--scheduler",
    default="threads",
    show_default=True,
    help="sync, threads, processes, local (starts a LocalCluster) or a scheduler ADDRESS.",
)
@click.option("--workers", type=click.IntRange(min=1), help="Threads, processes or workers to use.")
@cache_option
def run(file: Path, scheduler: str, workers: int | None, cache: str | None) -> None:
    """Compute every Task FILE makes that is not cached yet.

    \b
    Example:
      daskbio run examples/segmentation/pipeline.py
      daskbio run pipeline.py --scheduler local --workers 2
    """
    start = time.perf_counter()
    if not file.is_file():
        raise click.ClickException(f"pipeline file not found: {file}")
    target, close = _connect(scheduler, workers)
    try:
        compute_pipeline(file, cache, target, workers, start)
    finally:
        if close is not None:
            close()


def compute_pipeline(
    file: Path, cache: str | None, scheduler: Any, workers: int | None, start: float
) -> None:
    """Run what ``file`` makes that is not cached on ``scheduler``, and report it (exit
    status 1 when a Task failed, 130 on Ctrl-C). ``daskbio submit`` runs this too."""
    from daskbio.graph.compute import execute
    from daskbio.graph.execute import TaskFailed

    with open_pipeline(
        file, cache, may_compute=True, scheduler=scheduler, workers=workers, progress=True
    ) as (pipeline, store):
        try:
            plan, _ = execute(pipeline.tasks, store, want_values=False)
        except TaskFailed as e:
            click.echo(str(e), err=True)
            _report(pipeline, store, start, None)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("Interrupted: every result completed so far is kept in the cache.", err=True)
            sys.exit(130)
        _report(pipeline, store, start, set(plan.run))


def _report(pipeline, store, start: float, ran: set[str] | None) -> None:
    """Print what the run did: one line when all was cached, else a table per function."""
    elapsed = time.perf_counter() - start
    if ran is not None and not ran:
        click.echo(
            f"All {len(pipeline.tasks)} Tasks were cached; nothing to run ({elapsed:.2f} s). "
            f"Cache: {store.location}"
        )
        return
    counts = count_by_function(pipeline, store, with_stale=False)
    if ran is not None:
        for t in pipeline.tasks:
            if t.hash() in ran:
                counts[t.name].ran += 1
    print_table(
        f"{pipeline.path} ({elapsed:.2f} s)", counts, ["total", "ran", "done", "failed", "waiting"]
    )
    if ran:
        _print_results(pipeline, store)
    click.echo(f"Cache: {store.location}")


def _print_results(pipeline, store, most: int = 5) -> None:
    """Show the values of the pipeline's final Tasks (those no other Task uses)."""
    import reprlib

    used = {d.hash() for t in pipeline.tasks for d in t.dependencies()}
    finals = [t for t in pipeline.tasks if t.hash() not in used]
    short = reprlib.Repr()
    short.maxstring = short.maxother = 60
    click.echo("Results:")
    for t in finals[:most]:
        click.echo(f"  {t.name} {t.hash()[:12]}: {short.repr(store.load(t.hash()))}")
    if len(finals) > most:
        click.echo(f"  ... and {len(finals) - most} more final Tasks")
