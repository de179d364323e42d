"""``daskbio invalidate``: remove a Task's results and everything downstream of them."""

from __future__ import annotations

from pathlib import Path

import click

from daskbio.cli import main
from daskbio.cli._common import cache_option, store_for
from daskbio.invalidation import NoSuchTask, downstream, matching


@main.command()
@click.argument("task")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-f",
    "--file",
    "file_option",
    type=click.Path(dir_okay=False, path_type=Path),
    help="FILE given as an option (as Jug's and earlier daskbio's commands take it).",
)
@cache_option
@click.option("--dry-run", is_flag=True, help="Print what would be removed; remove nothing.")
def invalidate(
    task: str, file: Path | None, file_option: Path | None, cache: str | None, dry_run: bool
) -> None:
    """Remove the results of TASK and of every Task downstream of it in FILE's cache
    (default: pipeline.py), so they recompute.

    TASK is a function name (all its Tasks) or a prefix of a Task's hash. Partly written
    arrays (of runs killed mid-write) go too: nothing records what they were made from.

    \b
    Example:
      daskbio invalidate method1 examples/segmentation/pipeline.py
      daskbio invalidate 3fa2c1 --dry-run
    """
    if file is not None and file_option is not None and file != file_option:
        raise click.UsageError(f"two pipeline files given: {file} and -f {file_option}")
    file = file or file_option or Path("pipeline.py")
    if cache is None and not file.is_file():
        raise click.ClickException(f"pipeline file not found: {file} (give FILE or --cache)")
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
