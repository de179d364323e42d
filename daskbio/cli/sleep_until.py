"""``daskbio sleep-until``: wait until every Task of a pipeline is done."""

from __future__ import annotations

import time
from pathlib import Path

import click

from daskbio.cli import main
from daskbio.cli._common import cache_option, open_pipeline, pipeline_argument
from daskbio.cli.check import missing


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
    """Wait until every Task of FILE is done (e.g. computed by runs elsewhere).

    \b
    Example:
      daskbio sleep-until pipeline.py --interval 60 && python make_figures.py
    """
    last = None
    while True:
        # Reloading each time lets a value() barrier in FILE resolve once its input is done.
        with open_pipeline(file, cache) as (pipeline, store):
            left = missing(pipeline, store)
        if not left:
            click.echo(f"All {len(pipeline.tasks)} Tasks of {file} are done.")
            return
        if left != last:
            click.echo(f"Waiting: {left} Task(s) not done yet.")
            last = left
        time.sleep(interval)
