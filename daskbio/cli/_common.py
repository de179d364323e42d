"""What several commands share: the FILE argument, --cache, -v, loading, errors, the
per-function table."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from daskbio.cache import Store, open_store
from daskbio.pipeline import Pipeline, PipelineNotFound, load
from daskbio.status import Counts

pipeline_argument = click.argument(
    "file", default="pipeline.py", type=click.Path(dir_okay=False, path_type=Path)
)
cache_option = click.option(
    "--cache",
    metavar="PATH|URL",
    help="Cache folder, a URL Zarr can open (s3://bucket/cache), or a Redis server "
    "(redis://:PASSWORD@HOST:6379/0?payloads=FOLDER_OR_URL). Default: the Dask config key "
    "daskbio.cache, else FILE's stem + '.daskbio' beside FILE.",
)


VERBOSE = "daskbio.verbose"


class _Echo(logging.Handler):
    """Log records as lines on stderr (click's, so that tests capturing output see them)."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(self.format(record), err=True)


def _set_verbosity(ctx: click.Context, _param: click.Parameter, count: int) -> None:
    root = ctx.find_root()
    # ``daskbio -v run -v`` is -vv.
    level = root.meta.get(VERBOSE, 0) + count
    root.meta[VERBOSE] = level
    logger = logging.getLogger("daskbio")
    logger.setLevel({0: logging.WARNING, 1: logging.INFO}.get(level, logging.DEBUG))
    if not any(isinstance(h, _Echo) for h in logger.handlers):
        handler = _Echo()
        handler.setFormatter(logging.Formatter("daskbio %(levelname)s: %(message)s"))
        logger.addHandler(handler)


def verbose_option() -> click.Option:
    """``-v``: what every command takes (``-v`` full tracebacks and the ``daskbio``
    logger's INFO lines, ``-vv`` its DEBUG lines too)."""
    return click.Option(
        ["-v", "--verbose"],
        count=True,
        expose_value=False,
        is_eager=True,
        callback=_set_verbosity,
        help="-v: full tracebacks and what daskbio does; -vv: in detail.",
    )


def verbosity() -> int:
    """How many ``-v`` the command line has (0 outside a command)."""
    ctx = click.get_current_context(silent=True)
    return ctx.find_root().meta.get(VERBOSE, 0) if ctx is not None else 0


def error(message: str, cause: BaseException | None = None) -> click.ClickException:
    """The one-line ``Error: message`` (exit status 1) for ``cause``; with ``-v``, its
    full traceback is printed first."""
    if cause is not None and verbosity():
        click.echo("".join(traceback.format_exception(cause)).rstrip(), err=True)
    return click.ClickException(message)


def task_failed(error: Any) -> str:
    """What a :class:`~daskbio.graph.job.TaskFailed` says on the command line: the Task,
    then the frames of the user's code (all frames with ``-v``)."""
    shown = error.details if verbosity() else f"{error.summary}\n(-v: the full traceback)"
    return f"Task {error.name} ({error.key}) failed:\n{shown}"


def store_for(file: Path, cache: str | None) -> Store:
    """The store ``--cache`` names, or the one beside ``file``."""
    return open_store(cache, pipeline_file=file)


@contextmanager
def open_pipeline(
    file: Path, cache: str | None, may_compute: bool = False, **settings: Any
) -> Iterator[tuple[Pipeline, Store]]:
    """Load ``file`` with its store, turning a missing file, or one that makes no Task,
    into a one-line error."""
    store = store_for(file, cache)
    try:
        with load(file, store, may_compute=may_compute, **settings) as pipeline:
            if not pipeline.tasks and pipeline.barrier is None:
                raise click.ClickException(
                    f"no Task found in {file}: is a function missing @TaskGenerator?"
                )
            yield pipeline, store
    except PipelineNotFound as e:
        raise click.ClickException(str(e)) from None


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


keep_going_option = click.option(
    "--keep-going",
    is_flag=True,
    help="After a Task fails, compute everything that does not depend on it; list every "
    "failure at the end (exit status 1). Without it, the first failure stops the run.",
)
