"""``daskbio verify``: check every entry of a pipeline, or of the whole cache."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from daskbio.cli import main
from daskbio.cli._common import cache_option, open_pipeline, pipeline_argument, store_for
from daskbio.status import verify as verify_entries


@main.command()
@pipeline_argument
@click.option("--all", "everything", is_flag=True, help="Check every entry of the cache.")
@cache_option
def verify(file: Path, everything: bool, cache: str | None) -> None:
    """Check the cached results of FILE's Tasks: signature, payload, every array chunk.

    A run reads only the entries it uses; this reads them all. Damaged entries are
    removed (the next run computes them again) and listed; exit status 1 if any were.

    \b
    Example:
      daskbio verify examples/segmentation/pipeline.py
      daskbio verify --all --cache /shared/cache
    """
    if everything:
        if cache is None and not file.is_file():
            raise click.ClickException(f"pipeline file not found: {file} (give FILE or --cache)")
        store = store_for(file, cache)
        keys = store.keys()
    else:
        with open_pipeline(file, cache) as (pipeline, store):
            keys = list(pipeline.hashes())
    found = verify_entries(store, keys)
    for entry in found.damaged:
        click.echo(f"removed: {entry}")
    click.echo(
        f"Checked {found.checked} entries: {found.checked - len(found.damaged)} sound, "
        f"{len(found.damaged)} damaged. Cache: {store.location}"
    )
    if found.damaged:
        sys.exit(1)
