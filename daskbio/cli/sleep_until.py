"""``daskbio sleep-until``: wait until every Task of a pipeline is done."""

from __future__ import annotations

import time
from pathlib import Path

import click

from daskbio.cli import main
from daskbio.cli._common import cache_option, open_pipeline, pipeline_argument
from daskbio.cli.check import not_done
from daskbio.graph.job import failure_line
from daskbio.status import remaining


@main.command("sleep-until")
@pipeline_argument
@click.option(
    "--interval",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0.01),
    help="Seconds between checks.",
)
@cache_option
def sleep_until(file: Path, interval: float, cache: str | None) -> None:
    """Wait until every Task of FILE is done (e.g. computed by runs elsewhere). Exit with
    status 1 when all that remains can only wait on failures: Tasks failed, everything
    not done is them or needs them, and no run is computing anything.

    \b
    Example:
      daskbio sleep-until pipeline.py --interval 60 && python make_figures.py
    """
    last = None
    while True:
        # Reloading each time lets a value() barrier in FILE resolve once its input is done.
        with open_pipeline(file, cache) as (pipeline, store):
            left = remaining(pipeline.tasks, store)
        barrier = pipeline.barrier
        if not left.missing and barrier is None:
            click.echo(f"All {len(pipeline.tasks)} Tasks of {file} are done.")
            return
        if left.only_failures and (barrier is None or barrier.task.hash() in left.blocked):
            key, info = next(iter(left.failed.items()))
            raise click.ClickException(
                f"the {len(left.missing)} Task(s) of {file} not done can only wait on "
                f"failures, and no run is computing: {len(left.failed)} failed (e.g. "
                f"{failure_line(key, info)}), the others need them. 'daskbio status --failed "
                f"{file}' lists the failures."
            )
        said = not_done(pipeline, left)
        if said != last:
            click.echo(f"Waiting: {said}")
            last = said
        time.sleep(interval)
