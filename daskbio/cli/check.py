"""``daskbio check``: exit 0 only when every Task of a pipeline is done."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from daskbio.cli import main
from daskbio.cli._common import cache_option, open_pipeline, pipeline_argument
from daskbio.graph.job import failure_line
from daskbio.pipeline import Pipeline
from daskbio.status import Remaining, remaining


def not_done(pipeline: Pipeline, left: Remaining) -> str:
    """How many Tasks of ``pipeline`` are not done (a pending ``value()`` barrier counts as
    one), how many of them failed, and what the failed ones wait on."""
    n = len(left.missing) + (pipeline.barrier is not None)
    said = f"{n} Task(s) of {pipeline.path} not done yet"
    if not left.failed:
        return said + "."
    key, info = next(iter(left.failed.items()))
    said += f"; {len(left.failed)} of them failed (e.g. {failure_line(key, info)})"
    waiting = len(left.blocked) - len(left.failed)
    if waiting:
        said += f", and {waiting} wait on a failed Task"
    return f"{said}. 'daskbio status --failed {pipeline.path}' lists the failures."


@main.command()
@pipeline_argument
@cache_option
def check(file: Path, cache: str | None) -> None:
    """Exit with status 0 if every Task of FILE is done, 1 otherwise (Jug's check); say
    how many are not, and which failed.

    \b
    Example:
      daskbio check pipeline.py && echo finished
    """
    with open_pipeline(file, cache) as (pipeline, store):
        left = remaining(pipeline.tasks, store)
    if left.missing or pipeline.barrier is not None:
        click.echo(not_done(pipeline, left))
        sys.exit(1)
    click.echo(f"All {len(pipeline.tasks)} Tasks of {file} are done.")
