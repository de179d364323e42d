"""``daskbio check``: exit 0 only when every Task of a pipeline is done."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from daskbio.cli import main
from daskbio.cli._common import cache_option, open_pipeline, pipeline_argument
from daskbio.pipeline import Pipeline


def missing(pipeline: Pipeline, store) -> int:
    """How many known Tasks of ``pipeline`` are not done (a pending barrier counts as one)."""
    hashes = pipeline.hashes()
    return len(hashes - store.has_many(hashes)) + (pipeline.barrier is not None)


@main.command()
@pipeline_argument
@cache_option
def check(file: Path, cache: str | None) -> None:
    """Exit with status 0 if every Task of FILE is done, 1 otherwise (Jug's check).

    \b
    Example:
      daskbio check pipeline.py && echo finished
    """
    with open_pipeline(file, cache) as (pipeline, store):
        left = missing(pipeline, store)
    if left:
        click.echo(f"{left} Task(s) of {file} not done yet.")
        sys.exit(1)
    click.echo(f"All {len(pipeline.tasks)} Tasks of {file} are done.")
