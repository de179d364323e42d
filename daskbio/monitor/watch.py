"""Following one :func:`daskbio.graph.compute.execute`: its plan goes to the dashboard
plugin (on a distributed scheduler) or to a :class:`~daskbio.monitor.tally.Tally` here
(on a local one, when progress is shown), and a display shows the counts at its interval.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from daskbio.graph.job import Run, TaskFailed
from daskbio.graph.plan import Plan
from daskbio.graph.task import Task
from daskbio.monitor import display
from daskbio.monitor.tally import Summary, Tally

logger = logging.getLogger(__name__)


class Watch:
    """The counts of one run, where they are kept, and their display.

    Parameters
    ----------
    scheduler : str or distributed.Client
        Where the run's Tasks go: a Client's scheduler keeps the counts (for its dashboard
        page, shown or not here); for the local schedulers they are kept here.
    progress : bool, float or None
        As :attr:`daskbio.graph.compute.Session.progress`.
    run : Run
        The run (Jobs on this process's threads tell it which Tasks another run had
        committed).
    """

    def __init__(self, scheduler: Any, progress: bool | float | None, run: Run) -> None:
        self.client = None if isinstance(scheduler, str) else scheduler
        self.display = display.choose(progress)
        self.run = run
        self.tally = Tally() if self.client is None and self.display is not None else None
        if self.client is not None:
            from daskbio.monitor import plugin

            self._on_scheduler = plugin.attach(self.client) is not None
        else:
            self._on_scheduler = False
        self._planned: dict[str, str] | None = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._last: Summary | None = None

    def planned(self, p: Plan, targets: list[Task]) -> None:
        """The plan of a round: the first one gives the counts, and the Tasks that later
        ones no longer have to run were committed by another run (unless this one did)."""
        to_run = {h: t.name for h, t in p.run.items()}
        if self._planned is None:
            cached = {t.hash(): t.name for t in targets if t.hash() in p.cached}
            cached.update((h, t.name) for h, t in p.load.items())
            n_cached, n_run = Counter(cached.values()), Counter(to_run.values())
            counts = {name: (n_cached[name], n_run[name]) for name in n_cached | n_run}
            self._send("plan", counts)
            self._start()
        elif gone := {h: n for h, n in self._planned.items() if h not in to_run}:
            self._send("found", gone)
        self._planned = to_run

    def _send(self, what: str, data: dict) -> None:
        if self.tally is not None:
            getattr(self.tally, what)(data)
        elif self._on_scheduler:
            from daskbio.monitor import plugin

            getattr(plugin, what)(self.client, data)

    @contextmanager
    def following(self) -> Iterator[None]:
        """Around a local scheduler's compute: count its keys as they run, and the chunk
        writes that its Tasks compute inside their Jobs."""
        if self.tally is None:
            yield
            return
        import dask

        from daskbio.graph.chunked import CALLBACKS
        from daskbio.monitor.local import Follow

        follow = Follow(self.tally, self.run.elsewhere)
        with follow, dask.config.set({CALLBACKS: (follow._callback,)}):
            yield

    def summary(self) -> Summary:
        """The counts now (from the scheduler, for a distributed one)."""
        if self.tally is not None:
            return self.tally.summary()
        from daskbio.monitor import plugin

        return plugin.summary(self.client)

    def _start(self) -> None:
        if self.display is None or (self.tally is None and not self._on_scheduler):
            return
        self.display.show(self.summary())
        self._ticker = threading.Thread(target=self._tick, name="daskbio-progress", daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(self.display.interval):
            self._show_once(self.display.show)

    def _show_once(self, show: Any) -> None:
        try:
            self._last = self.summary()
        except Exception as e:  # a scheduler going away while the run ends, say
            logger.debug("no progress from the scheduler: %s", e)
            if show is not self.display.close or self._last is None:
                return
        show(self._last)

    def close(self, error: BaseException | None = None) -> None:
        """Stop the display, showing the counts a last time."""
        if self._ticker is None:
            return
        self._stop.set()
        # Bounded: a tick may be waiting on a scheduler that is gone.
        self._ticker.join(timeout=5)
        if isinstance(error, TaskFailed) and self.tally is not None:
            # Its Job raised: Dask reports no result for it.
            self.tally.task(error.key, error.name, "failed")
        self._show_once(self.display.close)


@contextmanager
def watching(scheduler: Any, progress: bool | float | None, run: Run) -> Iterator[Watch]:
    """A :class:`Watch` of the run, closed (its display shown a last time) on the way out."""
    watch = Watch(scheduler, progress, run)
    try:
        yield watch
    except BaseException as e:
        watch.close(e)
        raise
    else:
        watch.close()
