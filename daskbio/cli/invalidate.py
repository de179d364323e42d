"""``daskbio invalidate``: remove a Task's results and everything downstream of them."""

from __future__ import annotations

from pathlib import Path

import click

from daskbio.cli import main
from daskbio.cli._common import cache_option, store_for
from daskbio.invalidation import NoSuchTask, downstream, matching


@main.command()
@click.argument("task")
@click.option(
    "-f",
    "--file",
    "file",
    default="pipeline.py",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The pipeline whose cache to use (default: pipeline.py).",
)
@cache_option
@click.option("--dry-run", is_flag=True, help="Print what would be removed; remove nothing.")
def invalidate(task: str, file: Path, cache: str | None, dry_run: bool) -> None:
    """Remove the results of TASK and of every Task downstream of it, so they recompute.

    TASK is a function name (all its Tasks) or a prefix of a Task's hash. Partly written
    arrays (of runs killed mid-write) go too: nothing records what they were made from.

    \b
    Example:
      daskbio invalidate method1 -f examples/segmentation/pipeline.py
      daskbio invalidate 3fa2c1 --dry-run
    """
    if cache is None and not file.is_file():
        raise click.ClickException(f"pipeline file not found: {file} (give -f FILE or --cache)")
    store = store_for(file, cache)
    try:
        doomed = downstream(store, matching(store, task))
    except NoSuchTask as e:
        raise click.ClickException(str(e)) from None
    freed = 0
    for key, meta in sorted(doomed.items(), key=lambda kv: (kv[1].get("name", ""), kv[0])):
        if not dry_run:
            freed += store.delete(key)
        click.echo(f"{'would remove' if dry_run else 'removed'} {meta.get('name', '?')} {key}")
    # A partly written array has no metadata to say what it was computed from: it may
    # hold chunks made from what is being invalidated, so it must not be resumed.
    partial = store.partial() - doomed.keys()
    for key in sorted(partial):
        if not dry_run:
            freed += store.delete(key)
        click.echo(f"{'would remove' if dry_run else 'removed'} a partly written array {key}")
    verb = "Would remove" if dry_run else "Removed"
    click.echo(
        f"{verb} {len(doomed)} entries and {len(partial)} partly written arrays ({freed} bytes) "
        f"from {store.location}"
    )
