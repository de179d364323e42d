"""``daskbio invalidate``: remove a Task's results and everything downstream of them."""

from __future__ import annotations

import re
from pathlib import Path

import click

from daskbio.cache import Store
from daskbio.cli import main
from daskbio.cli._common import cache_option, store_for


def downstream(store: Store, start: set[str]) -> dict[str, dict]:
    """``start`` and every entry that depends on it, transitively, from entry metadata
    alone; maps each key to its metadata ({} for failure records)."""
    keys = store.keys()
    metas = dict(zip(keys, store.metadata_many(keys)))
    users: dict[str, list[str]] = {}
    for key, meta in metas.items():
        for dep in (meta or {}).get("deps", ()):
            users.setdefault(dep, []).append(key)
    found: dict[str, dict] = {}
    stack = list(start)
    while stack:
        key = stack.pop()
        if key not in found:
            found[key] = metas.get(key) or {}
            stack.extend(users.get(key, ()))
    return found


def matching(store: Store, task: str) -> set[str]:
    """Keys whose function is named ``task``, else the one key starting with ``task``."""
    keys = store.keys()
    failed = store.failures()
    by_name = {
        k
        for k, m in zip(keys, store.metadata_many(keys))
        if m and task in (m.get("name"), m.get("function"))
    }
    by_name |= {
        k
        for k in failed
        if task in (store.failure(k).get("name"), store.failure(k).get("function"))
    }
    if by_name:
        return by_name
    if not re.fullmatch(r"[0-9a-f]+", task):
        raise click.ClickException(f"no Task named {task!r} in the cache {store.location}")
    found = {k for k in set(keys) | failed if k.startswith(task)}
    if not found:
        raise click.ClickException(
            f"no Task with a hash starting {task!r} in the cache {store.location}"
        )
    if len(found) > 1:
        raise click.ClickException(
            f"hash prefix {task!r} is ambiguous: it matches {len(found)} entries "
            f"({', '.join(sorted(found)[:3])}, ...); give more digits"
        )
    return found


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
    doomed = downstream(store, matching(store, task))
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
