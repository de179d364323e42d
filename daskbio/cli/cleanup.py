"""``daskbio cleanup``: remove cache entries that a pipeline no longer reaches."""

from __future__ import annotations

from pathlib import Path

import click

from daskbio.cli import main
from daskbio.cli._common import cache_option, open_pipeline, pipeline_argument
from daskbio.invalidation import cleanup as clean


@main.command()
@pipeline_argument
@cache_option
@click.option("--dry-run", is_flag=True, help="Print what would be removed; remove nothing.")
@click.option(
    "--locks",
    is_flag=True,
    help="Only remove expired locks: those of runs that died (killed, or a lost node) "
    "before their lease ran out. Runs take these over by themselves when they need them.",
)
def cleanup(file: Path, cache: str | None, dry_run: bool, locks: bool) -> None:
    """Remove the cache entries that no Task of FILE reaches, and print the bytes freed.

    Also removes what interrupted writes left behind: hidden temporary files over an
    hour old, partly written arrays of Tasks FILE no longer makes (those of its own Tasks
    are kept: the next run resumes them), and arrays beside a result that it does not
    use (left by a failed write). What a live run is computing is left alone.

    \b
    Example:
      daskbio cleanup examples/segmentation/pipeline.py --dry-run
      daskbio cleanup pipeline.py --locks
    """
    if locks:
        with open_pipeline(file, cache) as (_, store):
            expired = store.remove_dead_locks(dry_run)
        where = ", ".join(sorted({h.where for h in expired.values() if h is not None}))
        verb = "Would remove" if dry_run else "Removed"
        click.echo(
            f"{verb} {len(expired)} expired locks{f' (of {where})' if where else ''} "
            f"(cache {store.location})."
        )
        return
    with open_pipeline(file, cache) as (pipeline, store):
        if pipeline.barrier is not None:
            raise click.ClickException(
                f"{file} stops at a value() call ({pipeline.barrier}); run it first, "
                "or entries that its later Tasks need could be removed"
            )
        unreached, freed = clean(store, pipeline.hashes(), dry_run)
    verb = "Would free" if dry_run else "Freed"
    click.echo(
        f"{verb} {freed} bytes: {len(unreached)} entries that {file} no longer reaches "
        f"(cache {store.location})."
    )
