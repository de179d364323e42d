"""Per-function counts of one run's Tasks: what the dashboard page serves and the
progress displays show.

The client's plan says how many Tasks of each function were found in the cache and how
many are to run; the Jobs then say which of those run, are computed, fail, or turn out
to have been committed by another run meanwhile (``loaded``); the chunk writes of array
Tasks are counted apart. On a distributed scheduler a :class:`Tally` lives in the
dashboard plugin, which hands out its :class:`Summary` as JSON; on local schedulers it
lives in the client. Either way the displays render a :class:`Summary`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from daskbio.graph.events import STATES

#: The name of the tables' last row: all functions together (no function is named so).
TOTAL = "(all)"
#: The columns of the tables, in order (``done`` is cached + loaded + computed).
COLUMNS = ("total", "done", "cached", "loaded", "running", "computed", "failed", "remaining")


@dataclass
class Counts:
    """One function's Tasks in a run.

    Attributes
    ----------
    total : int
        Tasks in the plan: found in the cache, or to run.
    cached : int
        Found in the cache by the plan.
    loaded, running, computed, failed : int
        Of those to run: committed by another run meanwhile, running now, computed by this
        run, failed in it.
    chunks, chunks_total : int
        Chunks of dask array results written, and to write.
    first, last : float or None
        Seconds into the run when the first of its Tasks started (or finished) and when
        the last one finished: the span its rate is measured over.
    """

    total: int = 0
    cached: int = 0
    loaded: int = 0
    running: int = 0
    computed: int = 0
    failed: int = 0
    chunks: int = 0
    chunks_total: int = 0
    first: float | None = None
    last: float | None = None

    @property
    def done(self) -> int:
        return self.cached + self.loaded + self.computed

    @property
    def finished(self) -> int:
        """The Tasks this run is through with (its own work: not the cached ones)."""
        return self.loaded + self.computed + self.failed

    @property
    def remaining(self) -> int:
        """Tasks to run that have not started (or wait on another run, or on a failure)."""
        return max(0, self.total - self.done - self.running - self.failed)

    def span(self, elapsed: float) -> float:
        """Seconds this function's Tasks have been worked on, up to ``elapsed``."""
        if self.first is None:
            return 0.0
        end = elapsed if self.running or self.remaining or self.last is None else self.last
        return max(0.0, end - self.first)

    def rate(self, elapsed: float) -> float | None:
        """Tasks finished per second (None before any did)."""
        # At least a second: a few Tasks done in a millisecond are not "1000/s".
        return self.finished / max(self.span(elapsed), 1.0) if self.finished else None


@dataclass
class Summary:
    """Every function's :class:`Counts`, ``elapsed`` seconds into the run."""

    elapsed: float = 0.0
    functions: dict[str, Counts] = field(default_factory=dict)

    def total(self) -> Counts:
        """The counts of all functions together."""
        together = Counts()
        for counts in self.functions.values():
            for f in fields(Counts):
                if f.name not in ("first", "last"):
                    setattr(together, f.name, getattr(together, f.name) + getattr(counts, f.name))
        firsts = [c.first for c in self.functions.values() if c.first is not None]
        lasts = [c.last for c in self.functions.values() if c.last is not None]
        together.first = min(firsts, default=None)
        together.last = max(lasts, default=None)
        return together

    def rows(self) -> list[dict[str, Any]]:
        """One row per function, then the :data:`TOTAL`: the :data:`COLUMNS`, ``chunks`` ("12/40",
        or "" without arrays), ``elapsed`` (s) and ``rate`` (Tasks/s or None)."""
        named = [*sorted(self.functions.items()), (TOTAL, self.total())]
        rows = []
        for name, counts in named:
            row: dict[str, Any] = {"function": name}
            row.update((column, getattr(counts, column)) for column in COLUMNS)
            row["chunks"] = f"{counts.chunks}/{counts.chunks_total}" if counts.chunks_total else ""
            row["elapsed"] = round(counts.span(self.elapsed), 1)
            rate = counts.rate(self.elapsed)
            row["rate"] = None if rate is None else round(rate, 2)
            rows.append(row)
        return rows

    def to_json(self) -> dict[str, Any]:
        """The summary as JSON-ready data: what ``/daskbio/json`` serves, with its rows."""
        return {
            "elapsed": round(self.elapsed, 3),
            "functions": {name: asdict(c) for name, c in self.functions.items()},
            "columns": ["function", *COLUMNS, "chunks", "elapsed", "rate"],
            "rows": self.rows(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Summary:
        """The summary :meth:`to_json` gave."""
        return cls(data["elapsed"], {name: Counts(**c) for name, c in data["functions"].items()})


class Tally:
    """Counts the Tasks of one run by function, as the plan and the Jobs report them.

    Thread-safe: local schedulers report from their worker threads.

    Examples
    --------
    >>> tally = Tally()
    >>> tally.plan({"square": (2, 3)})
    >>> tally.task("a" * 32, "square", "running")
    >>> tally.task("a" * 32, "square", "computed")
    >>> tally.task("b" * 32, "square", "failed")
    >>> c = tally.summary().functions["square"]
    >>> (c.total, c.done, c.cached, c.computed, c.failed, c.remaining)
    (5, 3, 2, 1, 1, 1)
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.plan({})

    def plan(self, planned: Mapping[str, tuple[int, int]]) -> None:
        """Start counting a new run whose plan found, per function, ``(cached, to_run)``
        Tasks; what was counted before is forgotten."""
        with self._lock:
            self._start = time.monotonic()
            self._functions = {
                name: Counts(total=cached + to_run, cached=cached)
                for name, (cached, to_run) in planned.items()
            }
            self._states: dict[str, str] = {}
            self._chunks: dict[str, bool] = {}

    def task(self, key: str, name: str, state: str | None) -> None:
        """Task ``key`` of function ``name`` is in ``state`` (one of
        :data:`daskbio.graph.events.STATES`; None: waiting again, as when another run
        holds it). Functions the plan did not name are not counted."""
        if state is not None and state not in STATES:
            raise ValueError(f"state must be one of {STATES} or None, got {state!r}")
        with self._lock:
            self._change(key, name, state)

    def found(self, keys: Mapping[str, str]) -> None:
        """The Tasks ``keys`` (by key, their function names) left the plan while this run
        did not touch them: another run committed them (``loaded``)."""
        with self._lock:
            for key, name in keys.items():
                if key not in self._states:
                    self._change(key, name, "loaded")

    def _change(self, key: str, name: str, state: str | None) -> None:
        counts = self._functions.get(name)
        old = self._states.get(key)
        if counts is None or old == state:
            return
        if old is not None:
            setattr(counts, old, getattr(counts, old) - 1)
        if state is None:
            del self._states[key]
            return
        self._states[key] = state
        setattr(counts, state, getattr(counts, state) + 1)
        now = time.monotonic() - self._start
        if counts.first is None:
            counts.first = now
        if state != "running":
            counts.last = now

    def chunk(self, name: str, dask_key: str, written: bool) -> None:
        """A chunk write of an array Task of ``name`` (its Dask key) is planned, or
        ``written``; each is counted once however often it is reported."""
        with self._lock:
            counts = self._functions.get(name)
            before = self._chunks.get(dask_key)
            if counts is None or before is True or (before is False and not written):
                return
            if before is None:
                counts.chunks_total += 1
            if written:
                counts.chunks += 1
            self._chunks[dask_key] = written

    def summary(self) -> Summary:
        """A copy of the counts as they are now."""
        with self._lock:
            return Summary(
                time.monotonic() - self._start,
                {name: Counts(**asdict(c)) for name, c in self._functions.items()},
            )
