"""``daskbio why``: why a Task is not in the cache."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import click

from daskbio.cli import main
from daskbio.cli._common import cache_option, open_pipeline, pipeline_argument
from daskbio.invalidation import NoSuchTask
from daskbio.provenance import Difference, Explanation, explain_all, group, select

#: Groups of Tasks shown for a function name; the rest are counted.
GROUPS_SHOWN = 10
#: Parts shown in full (and parts named that differ alike).
PARTS_SHOWN = 6


def _status(e: Explanation) -> str:
    if e.cached:
        return "is cached" + (f" (stale: {e.stale})" if e.stale else "")
    failed = f" (its last computation failed: {e.failed})" if e.failed else ""
    return f"is not in the cache{failed}"


def print_explanation(e: Explanation, indent: str = "", replaces: bool = False) -> None:
    """``e`` as lines: what differs from the nearest cached Task (an upstream Task: from
    the one it ``replaces``), each upstream Task below the part that names it; parts that
    differ alike are shown once."""
    if e.nearest is not None and e.differences:
        which = "the one used before" if replaces else "the nearest cached"
        click.echo(f"{indent}compared with {e.name} {e.nearest[:12]}, {which}:")
    alike: dict[str, list[Difference]] = {}
    for d in e.differences:
        alike.setdefault(d.change(), []).append(d)
    for same in islice(alike.values(), PARTS_SHOWN):
        d = same[0]
        click.echo(f"{indent}  {d}")
        if d.upstream is not None:
            up = d.upstream
            click.echo(f"{indent}    {up.name} {up.task[:12]} {_status(up)};")
            print_explanation(up, indent + "    ", replaces=True)
        if len(same) > 1:
            parts = ", ".join(o.part for o in same[1:PARTS_SHOWN])
            more = f" and {len(same) - PARTS_SHOWN} more" if len(same) > PARTS_SHOWN else ""
            click.echo(f"{indent}  likewise {parts}{more}")
    if len(alike) > PARTS_SHOWN:
        rest = sum(len(same) for same in list(alike.values())[PARTS_SHOWN:])
        click.echo(f"{indent}  ... and {rest} more parts differ")
    if e.note:
        click.echo(f"{indent}  {e.note}")
    for line in e.needs_failed:
        task, _, error = line.partition(": ")
        click.echo(f"{indent}  it needs {task}, which failed: {error}")


@main.command()
@click.argument("task")
@pipeline_argument
@cache_option
def why(task: str, file: Path, cache: str | None) -> None:
    """Say why TASK of FILE is not in the cache: which part of its key differs from the
    nearest cached Task of the same function (the function, an argument such as sigma or
    args[1]['mask'] with its old and new value, an upstream Task and why that one misses
    in turn, or the code version), or that it is cached (and whether it is stale).

    TASK is a function name (its Tasks that miss are grouped by reason) or a prefix of a
    Task's hash.

    \b
    Example:
      daskbio why smooth pipeline.py
      daskbio why 3fa2c1 pipeline.py
    """
    with open_pipeline(file, cache) as (pipeline, store):
        try:
            found = select(pipeline.tasks, task, str(pipeline.path), store)
        except NoSuchTask as e:
            raise click.ClickException(str(e)) from None
        explanations = explain_all(found, store, pipeline.tasks)
    if len(explanations) == 1:
        e = explanations[0]
        click.echo(f"{e.name} {e.task[:12]} {_status(e)}.")
        print_explanation(e)
        return
    missing = [e for e in explanations if not e.cached]
    stale = sum(e.stale is not None for e in explanations if e.cached)
    cached = len(explanations) - len(missing)
    click.echo(
        f"{task}: {len(explanations)} Tasks in {pipeline.path}: {cached} cached"
        f"{f' ({stale} stale)' if stale else ''}, {len(missing)} not in the cache"
        f"{':' if missing else '.'}"
    )
    groups = group(missing)
    for g in groups[:GROUPS_SHOWN]:
        n = len(g.tasks)
        first = g.tasks[0]
        example = f"{first.task[:12]}" + (
            f", nearest cached {first.nearest[:12]}" if first.nearest else ""
        )
        click.echo(f"  {n} Task{'s' if n > 1 else ''}: {g.reason} (e.g. {example})")
    if len(groups) > GROUPS_SHOWN:
        rest = sum(len(g.tasks) for g in groups[GROUPS_SHOWN:])
        click.echo(f"  ... and {rest} Tasks more, for {len(groups) - GROUPS_SHOWN} other reasons")
    if missing:
        click.echo(f"'daskbio why HASH {file}' explains one of them in full.")
