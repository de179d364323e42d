"""Counting the Tasks of a run on a local scheduler (sync, threads, processes) as Dask
runs them: a ``dask.callbacks.Callback`` that reads each key and its result.

Dask's callbacks are global while active, so the nested computes of a Task's array
chunks (:func:`daskbio.graph.chunked.compute_here`, on threads) report their chunk writes
here too; keys that are not daskbio's are ignored.
"""

from __future__ import annotations

from typing import Any

from dask.callbacks import Callback

from daskbio.graph.job import NotDone
from daskbio.monitor.keys import parse
from daskbio.monitor.tally import Tally


class Follow(Callback):
    """Reports to ``tally`` each Task that starts and how it ended, and each chunk write
    planned and done; ``elsewhere`` holds the Tasks that this process's Jobs found
    committed by another run (:attr:`daskbio.graph.job.Run.elsewhere`)."""

    def __init__(self, tally: Tally, elsewhere: set[str]) -> None:
        super().__init__()
        self.tally = tally
        self.elsewhere = elsewhere

    def _start_state(self, dsk: Any, state: Any) -> None:
        for key in dsk:
            if (found := parse(key)) is not None and found.kind == "chunk":
                self.tally.chunk(found.name, key, written=False)

    def _pretask(self, key: Any, dsk: Any, state: Any) -> None:
        # Dask hands keys to a worker in batches: "running" is "handed to a worker".
        if (found := parse(key)) is not None and found.kind == "task":
            self.tally.task(found.key, found.name, "running")

    def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
        found = parse(key)
        if found is None:
            return
        if found.kind == "chunk":
            self.tally.chunk(found.name, key, written=True)
        elif found.kind == "task":
            self.tally.task(found.key, found.name, self._outcome(found.key, result))

    def _outcome(self, key: str, result: Any) -> str | None:
        if isinstance(result, NotDone):
            # Not started (held by another run, downstream of a failure): waiting.
            return "failed" if result.why == "failed" else None
        return "loaded" if key in self.elsewhere else "computed"
