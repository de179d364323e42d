"""``daskbio status``: per function, how many Tasks are done, failed, waiting or stale."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from daskbio.cli import main
from daskbio.cli._common import (
    cache_option,
    count_by_function,
    open_pipeline,
    pipeline_argument,
    print_table,
)

COLUMNS = ["total", "done", "failed", "waiting", "stale"]


@main.command()
@pipeline_argument
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object keyed by function name."
)
@cache_option
def status(file: Path, as_json: bool, cache: str | None) -> None:
    """Show, per function, how many of FILE's Tasks are done, failed, waiting, and stale
    (done, but computed by code that has changed since).

    \b
    Example:
      daskbio status examples/segmentation/pipeline.py
      daskbio status pipeline.py --json | jq .compare.done
    """
    with open_pipeline(file, cache) as (pipeline, store):
        counts = count_by_function(pipeline, store)
        if as_json:
            report = {
                name: {k: v for k, v in asdict(c).items() if k in COLUMNS}
                for name, c in sorted(counts.items())
            }
            click.echo(json.dumps(report, indent=2))
        else:
            print_table(f"{pipeline.path}", counts, COLUMNS)
            click.echo(f"Cache: {store.location}")
        if pipeline.barrier is not None:
            click.echo(
                f"Note: only the Tasks before a value() call are known: {pipeline.barrier}.",
                err=True,
            )
