"""Showing a run's progress: a live table on a terminal (rich), plain lines at a steady
interval where output is not a terminal (batch logs, CI), an updating table in a notebook.

Each display is shown a :class:`~daskbio.monitor.tally.Summary` every ``interval``
seconds (by :class:`~daskbio.monitor.watch.Watch`) and a last time when the run ends.
rich and IPython are imported only by the display that uses them.
"""

from __future__ import annotations

import sys
from typing import Any, Protocol, TextIO

from daskbio.monitor import html
from daskbio.monitor.tally import Summary


class Display(Protocol):
    #: Seconds between two showings while the run goes on.
    interval: float

    def show(self, summary: Summary) -> None: ...

    def close(self, summary: Summary) -> None: ...


def choose(progress: bool | float | None, stream: TextIO | None = None) -> Display | None:
    """The display for ``progress`` here: None (no progress) when it is False, or when it is
    None outside a notebook; in a notebook a :class:`Notebook`; on a terminal a
    :class:`Terminal`; else :class:`Plain` lines every ``progress`` seconds when it is a
    number (the Dask config key ``daskbio.progress-interval``, 10 by default, when it is
    True). Shown on ``stream`` (stderr)."""
    if progress is False or (not isinstance(progress, bool) and progress == 0):
        return None
    if in_notebook():
        return Notebook()
    if progress is None:
        return None
    stream = stream or sys.stderr
    if stream.isatty():
        return Terminal(stream)
    if isinstance(progress, bool):
        from daskbio import config

        progress = float(config.get("daskbio.progress-interval"))
    return Plain(stream, float(progress))


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (whose output is a notebook's, not a
    terminal's)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def line(elapsed: float, row: dict[str, Any]) -> str:
    """One function's row as a plain line.

    Examples
    --------
    >>> from daskbio.monitor.tally import Counts, Summary
    >>> counts = Counts(total=10, cached=2, computed=3, running=1, first=0.0)
    >>> row = Summary(4.0, {"square": counts}).rows()[0]
    >>> print(line(4.0, row))  # doctest: +NORMALIZE_WHITESPACE
    progress 4.0 s: square 5/10 done: cached 2, loaded 0, computed 3, running 1, failed 0,
    remaining 4, 45.0/min
    """
    parts = [
        f"progress {html.seconds(elapsed)}: {row['function']} {row['done']}/{row['total']} done:",
        ", ".join(
            f"{name} {row[name]}"
            for name in ("cached", "loaded", "computed", "running", "failed", "remaining")
        ),
    ]
    text = " ".join(parts)
    if row["rate"] is not None:
        text += f", {html.rate(row['rate'])}"
    if row["chunks"]:
        text += f", chunks {row['chunks']}"
    return text


class Plain:
    """Plain lines, for logs: at each showing one line per function whose counts changed
    since the last, and the total; every function at the end. No carriage returns, no
    escape codes."""

    def __init__(self, stream: TextIO, interval: float) -> None:
        self.stream = stream
        self.interval = interval
        self._shown: dict[str, tuple] = {}

    def show(self, summary: Summary, every: bool = False) -> None:
        *rows, total = summary.rows()
        for row in rows:
            counts = tuple(row[c] for c in ("done", "running", "failed", "remaining", "chunks"))
            if every or self._shown.get(row["function"]) != counts:
                self._shown[row["function"]] = counts
                print(line(summary.elapsed, row), file=self.stream)
        print(line(summary.elapsed, total), file=self.stream, flush=True)

    def close(self, summary: Summary) -> None:
        self.show(summary, every=True)


class Terminal:
    """A live table on a terminal (rich), redrawn in place."""

    interval = 0.25

    def __init__(self, stream: TextIO) -> None:
        from rich.console import Console
        from rich.live import Live

        self._live = Live(console=Console(file=stream), auto_refresh=False, transient=False)

    def show(self, summary: Summary) -> None:
        if not self._live.is_started:
            self._live.start()
        self._live.update(self._table(summary), refresh=True)

    def close(self, summary: Summary) -> None:
        self.show(summary)
        self._live.stop()

    @staticmethod
    def _table(summary: Summary) -> Any:
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        table = Table(title=f"daskbio: {html.seconds(summary.elapsed)}", title_justify="left")
        table.add_column("function")
        table.add_column("", width=24)
        for name in ("done/total", "cached", "running", "failed", "chunks", "elapsed", "rate"):
            table.add_column(name, justify="right")
        rows = summary.rows()
        for i, row in enumerate(rows):
            table.add_row(
                row["function"],
                ProgressBar(total=max(row["total"], 1), completed=row["done"], width=24),
                f"{row['done']}/{row['total']}",
                str(row["cached"]),
                str(row["running"]),
                f"[red]{row['failed']}[/red]" if row["failed"] else "0",
                row["chunks"],
                html.seconds(row["elapsed"]),
                html.rate(row["rate"]),
                end_section=i == len(rows) - 2,  # a rule above the total
            )
        return table


class Notebook:
    """An HTML table in the notebook, updated in place (``display_id``: no ipywidgets)."""

    interval = 0.5

    def __init__(self) -> None:
        from IPython.display import HTML, display

        self._html, self._display = HTML, display
        self._handle: Any = None
        self._last = ""

    def show(self, summary: Summary) -> None:
        text = html.table(summary)
        if self._handle is None:
            self._handle = self._display(self._html(text), display_id=True)
        elif text != self._last:
            self._handle.update(self._html(text))
        self._last = text

    def close(self, summary: Summary) -> None:
        self.show(summary)
