"""``daskbio status``: per function, how many Tasks are done, failed, waiting or stale."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from daskbio.cache import Store
from daskbio.cache.leases import Holder
from daskbio.cli import main
from daskbio.cli._common import cache_option, open_pipeline, pipeline_argument, print_table
from daskbio.graph.job import failure_line, last_error_line
from daskbio.pipeline import Pipeline
from daskbio.status import failed_tasks, running_where
from daskbio.status import status as pipeline_status

COLUMNS = ["total", "done", "failed", "running", "waiting", "stale"]


def running_summary(running: dict[str, Holder]) -> str:
    """Where the Tasks running now run: one ``host:pid (N)`` per process."""
    shown = ", ".join(f"{w} ({n})" for w, n in running_where(running).items())
    return f"Running now: {len(running)} Tasks, in {shown}"


def stale_summary(stale: dict[str, str]) -> str:
    """One line per reason: how many results are stale, and what to do."""
    reasons: dict[str, int] = {}
    for why in stale.values():
        reason = why.split(":")[0]
        reasons[reason] = reasons.get(reason, 0) + 1
    lines = [f"Stale: {n} {why}" for why, n in sorted(reasons.items())]
    lines.append("  'daskbio run --rerun-stale' recomputes them and what depends on them.")
    return "\n".join(lines)


def print_failed(failures: dict[str, dict], file: Path, as_json: bool) -> None:
    """Each failed Task with the last line of its error."""
    if as_json:
        report = {
            key: {
                "name": info.get("name"),
                "error": last_error_line(info),
                "time": info.get("time"),
                "host": info.get("host"),
            }
            for key, info in failures.items()
        }
        click.echo(json.dumps(report, indent=2))
        return
    if not failures:
        click.echo(f"No Task of {file} has failed.")
        return
    for key, info in failures.items():
        click.echo(failure_line(key, info))
    n = len(failures)
    click.echo(
        f"{n} Task{'s' if n > 1 else ''} of {file} failed; 'daskbio show HASH {file}' prints "
        "the whole traceback."
    )


def print_status(pipeline: Pipeline, store: Store, as_json: bool) -> None:
    """The per-function table of ``pipeline``'s Tasks (or its JSON), and what runs now."""
    report = pipeline_status(pipeline.tasks, store)
    counts = report.counts
    if as_json:
        table = {
            name: {k: v for k, v in asdict(c).items() if k in COLUMNS}
            for name, c in sorted(counts.items())
        }
        click.echo(json.dumps(table, indent=2))
    else:
        print_table(f"{pipeline.path}", counts, COLUMNS)
        click.echo(f"Cache: {store.location}")
        if report.running:
            click.echo(running_summary(report.running))
        alone = [h.where for h in report.runs.values() if h.solo]
        if alone:
            click.echo(
                f"Running now: a run alone on this cache, in {', '.join(alone)}: it takes "
                "no locks, so its Tasks running count as waiting"
            )
        if report.stale:
            click.echo(stale_summary(report.stale))


@main.command()
@pipeline_argument
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object keyed by function name."
)
@click.option(
    "--failed",
    is_flag=True,
    help="List the failed Tasks instead, each with the last line of its error (with --json: "
    "one object keyed by hash).",
)
@cache_option
def status(file: Path, as_json: bool, failed: bool, cache: str | None) -> None:
    """Show, per function, how many of FILE's Tasks are done, failed, running (in any run
    on the cache, on any machine: the hosts and processes are listed), waiting, and stale
    (done, but computed by code that has changed since, from an input file that has
    changed since, or from a stale result).

    \b
    Example:
      daskbio status examples/segmentation/pipeline.py
      daskbio status pipeline.py --json | jq .compare.done
      daskbio status pipeline.py --failed
    """
    with open_pipeline(file, cache) as (pipeline, store):
        if failed:
            print_failed(failed_tasks(pipeline.tasks, store), file, as_json)
        else:
            print_status(pipeline, store, as_json)
        if pipeline.barrier is not None:
            click.echo(
                f"Note: only the Tasks before a value() call are known: {pipeline.barrier}.",
                err=True,
            )
