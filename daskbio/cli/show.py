"""``daskbio show``: one Task's provenance."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import click

from daskbio.cache import CorruptEntry, Store
from daskbio.cli import main
from daskbio.cli._common import cache_option, open_pipeline, pipeline_argument
from daskbio.graph.task import Task
from daskbio.invalidation import NoSuchTask
from daskbio.pipeline import Pipeline
from daskbio.provenance import Description, arguments, describe, select

#: Dependencies listed one by one; the rest are counted.
DEPENDENCIES_SHOWN = 10


def one_task(text: str, pipeline: Pipeline, store: Store) -> Task:
    """The one Task of ``pipeline`` that ``text`` (a function name or hash prefix) names,
    or a one-line error listing a few candidates."""
    where = str(pipeline.path)
    try:
        found = select(pipeline.tasks, text, where, store)
    except NoSuchTask as e:
        raise click.ClickException(str(e)) from None
    if len(found) > 1:
        shown = "; ".join(f"{t.hash()[:12]} ({_call(arguments(t, store))})" for t in found[:3])
        raise click.ClickException(
            f"{text} names {len(found)} Tasks of {where}: give a hash prefix, e.g. {shown}"
            f"{'; ...' if len(found) > 3 else ''}"
        )
    return found[0]


def _call(args: dict[str, str]) -> str:
    return ", ".join(f"{name}={value}" for name, value in args.items())


def _when(seconds: float | None) -> str:
    return datetime.fromtimestamp(seconds).isoformat(" ", "seconds") if seconds else "?"


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.3g} ms" if seconds < 1 else f"{seconds:.2f} s"


def _size(n: float) -> str:
    if n < 1024:
        return f"{n:.0f} bytes"
    units = iter(("KiB", "MiB", "GiB", "TiB"))
    unit = next(units)
    n /= 1024
    while n >= 1024 and unit != "TiB":
        n, unit = n / 1024, next(units)
    return f"{n:.1f} {unit}"


def print_description(d: Description) -> None:
    rows = [
        ("function", d.function + (f" (version {d.version})" if d.version else "")),
        ("arguments", _call(d.arguments) or "(none)"),
    ]
    for i, dep in enumerate(d.dependencies[:DEPENDENCIES_SHOWN]):
        state = "done" if dep.done else "not done"
        rows.append(("depends on" if i == 0 else "", f"{dep.name} {dep.hash} ({state})"))
    if len(d.dependencies) > DEPENDENCIES_SHOWN:
        rest = d.dependencies[DEPENDENCIES_SHOWN:]
        done = sum(dep.done for dep in rest)
        rows.append(("", f"... and {len(rest)} more ({done} done)"))
    code = f"fingerprint {d.fingerprint or '(none: not Python code)'} (not computed yet)"
    if d.computed_by is not None:
        if d.code_matches:
            code = f"fingerprint {d.computed_by}, the same as the code now"
        else:
            code = f"computed by fingerprint {d.computed_by}; the code now is {d.fingerprint}"
    rows.append(("code", code))
    state = d.state
    if d.stale:
        state += f" (stale: {d.stale})"
    if d.running_in:
        state += f" in {d.running_in}"
    if d.error:
        state += f": {d.error}" if d.state == "failed" else f" (it failed before: {d.error})"
    rows.append(("state", state))
    if d.state == "done":
        took = _duration(d.end - d.start) if d.start and d.end else "?"
        rows.append(
            ("computed", f"{_when(d.start)}, in {took}, on {d.host} (pid {d.pid}), run {d.run}")
        )
        result = f"{d.result}, " if d.result else ""
        rows.append(("result", f"{result}stored as {d.format}, {_size(d.size or 0)}"))
    if d.traceback:
        rows.append(("failed", f"{_when(d.failed_at)}, on {d.failed_host}"))
    width = max(len(label) for label, _ in rows) + 2
    click.echo(f"{d.name} {d.hash}")
    for label, value in rows:
        click.echo(f"  {(label + ':') if label else '':<{width}}{value}")
    if d.traceback:
        click.echo("  traceback:")
        for line in d.traceback.rstrip().splitlines():
            click.echo(f"    {line}")


@main.command()
@click.argument("task")
@pipeline_argument
@click.option("--json", "as_json", is_flag=True, help="Print it as one JSON object.")
@cache_option
def show(task: str, file: Path, as_json: bool, cache: str | None) -> None:
    """Show one Task of FILE: its function, arguments, hash, dependencies, code
    fingerprint (and whether it matches the code now), when, where and how long it ran,
    its result's type and size, or the full traceback if it failed.

    TASK is a function name (of exactly one Task) or a prefix of a Task's hash.

    \b
    Example:
      daskbio show combine pipeline.py
      daskbio show 3fa2c1 pipeline.py --json
    """
    with open_pipeline(file, cache) as (pipeline, store):
        try:
            d = describe(one_task(task, pipeline, store), store, pipeline.tasks)
        except CorruptEntry as e:
            raise click.ClickException(str(e)) from None
    if as_json:
        click.echo(json.dumps(asdict(d), indent=2))
    else:
        print_description(d)
