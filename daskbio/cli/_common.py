"""What several commands share: the FILE argument, --cache, loading, the per-function table."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from daskbio.cache import Store, open_store
from daskbio.graph.execute import code_mark, fingerprint
from daskbio.graph.task import Task
from daskbio.pipeline import Pipeline, PipelineNotFound, load

pipeline_argument = click.argument(
    "file", default="pipeline.py", type=click.Path(dir_okay=False, path_type=Path)
)
cache_option = click.option(
    "--cache",
    metavar="PATH|URL",
    help="Cache folder, or a URL Zarr can open (s3://bucket/cache). Default: the Dask "
    "config key daskbio.cache, else FILE's stem + '.daskbio' beside FILE.",
)


def store_for(file: Path, cache: str | None) -> Store:
    """The store ``--cache`` names, or the one beside ``file``."""
    return open_store(cache, pipeline_file=file)


@contextmanager
def open_pipeline(
    file: Path, cache: str | None, may_compute: bool = False, **settings: Any
) -> Iterator[tuple[Pipeline, Store]]:
    """Load ``file`` with its store, turning a missing file into a one-line error."""
    store = store_for(file, cache)
    try:
        with load(file, store, may_compute=may_compute, **settings) as pipeline:
            yield pipeline, store
    except PipelineNotFound as e:
        raise click.ClickException(str(e)) from None


@dataclass
class Counts:
    total: int = 0
    done: int = 0
    failed: int = 0
    waiting: int = 0
    stale: int = 0
    ran: int = 0
    hashes: list[str] = field(default_factory=list)


def count_by_function(
    pipeline: Pipeline, store: Store, with_stale: bool = True
) -> dict[str, Counts]:
    """Per function name: how many of the pipeline's Tasks are done, failed, waiting,
    and (with ``with_stale``) done with a code fingerprint that differs from the code now."""
    present, failed = store.lookup(pipeline.hashes())
    counts: dict[str, Counts] = {}
    stale_candidates = []
    for t in pipeline.tasks:
        c = counts.get(t.name)
        if c is None:
            c = counts[t.name] = Counts()
        c.total += 1
        h = t.hash()
        if h in present:
            c.done += 1
            stale_candidates.append(t)
        elif h in failed:
            c.failed += 1
    for c in counts.values():
        c.waiting = c.total - c.done - c.failed
    if with_stale:
        for t in _maybe_stale(store, stale_candidates):
            counts[t.name].stale += 1
    return counts


def _maybe_stale(store: Store, done: list[Task]) -> list[Task]:
    """The Tasks in ``done`` whose result was computed by code other than today's.

    Entries are only read for functions whose code markers show more than one version.
    """
    by_function: dict[Any, list[Task]] = {}
    for t in done:
        group = by_function.get(t.f)
        if group is None:
            group = by_function[t.f] = []
        group.append(t)
    stale = []
    for f, tasks in by_function.items():
        now = fingerprint(f)
        prefix = code_mark(tasks[0].identity)
        if {m[len(prefix) :] for m in store.marks(prefix)} <= {now}:
            continue
        metas = store.metadata_many([t.hash() for t in tasks])
        stale += [t for t, m in zip(tasks, metas) if m is not None and m.get("fingerprint") != now]
    return stale


def print_table(title: str, counts: dict[str, Counts], columns: list[str]) -> None:
    """A table of ``counts`` with one row per function and a total row.

    Plain aligned text, not rich: importing rich costs ~25 ms, a seventh of a whole
    ``daskbio status`` of 20,000 Tasks (``benchmarks/bench_pipeline.py``), and plain
    columns are easy to read with ``awk`` too.
    """
    header = ["function", *columns]
    rows = [[name, *(getattr(c, col) for col in columns)] for name, c in sorted(counts.items())]
    total = ["total", *(sum(getattr(c, col) for c in counts.values()) for col in columns)]
    widths = [max(len(str(row[i])) for row in (header, *rows, total)) for i in range(len(header))]

    def line(row: list) -> str:
        cells = [str(row[0]).ljust(widths[0])]
        cells += [str(v).rjust(w) for v, w in zip(row[1:], widths[1:])]
        return "  ".join(cells)

    click.echo(title)
    for row in (header, *rows):
        click.echo(line(row))
    click.echo("-" * len(line(header)))
    click.echo(line(total))
