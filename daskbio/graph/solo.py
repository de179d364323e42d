"""A run alone on its cache takes no locks, until another run comes.

Taking and giving up a Task's lock costs two metadata operations per Task: for tiny Tasks
on a disk, as much again as computing and committing them. Most runs are alone on their
cache, so each run records itself (a :attr:`~daskbio.cache.index.Kind.RUN` record with a
lease, like a lock) and says whether it is ``solo``:

- A run that finds no other live run goes solo: its Jobs on this process's threads run
  without locks. A watcher thread looks for other runs every :data:`WATCH` seconds; when
  one comes, the run takes the locks of the Jobs running unlocked, from then on every Job
  locks, and it rewrites its record as not solo.
- A run that finds others is never solo, and computes nothing until every other live run
  says it is not solo either (or dies): so no Task is computed by a solo run and another
  at once.

Jobs in other processes (``processes``, distributed workers) always lock: a run whose
Jobs run elsewhere is never solo; nor is any run when the Dask config key ``daskbio.solo``
is false (then ``daskbio status`` shows every Task running, even of a run alone). Commands
that must know what runs are computing (``cleanup``) join as runs that are not solo, and
so make solo runs take their locks first.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from daskbio.cache import Store
from daskbio.graph.job import Run

log = logging.getLogger(__name__)

#: Seconds between a solo run's looks for other runs (and a newcomer's for their answer).
WATCH = 0.5


@contextmanager
def registered(store: Store, run: Run, in_process: bool, show: bool = False) -> Iterator[None]:
    """Inside it, ``run`` is recorded on ``store``, solo if it is alone and its Jobs run
    in this process (``in_process``), and the others know it is there."""
    from daskbio import config

    others = store.runs()
    alone = in_process and not others and config.get("daskbio.solo") not in (False, "false")
    record = store.register_run(run.id, solo=alone)
    # Two runs starting together may both have found the other missing: the later one
    # to register sees the earlier, but the earlier must look again.
    others = {k: h for k, h in store.runs().items() if k != run.id}
    if record.holder.solo and others:
        record.change(solo=False)
    run.solo = record.holder.solo
    log.info(
        "run %s on %s: %s",
        run.id,
        store.location,
        "alone, takes no locks" if run.solo else f"with {len(others)} other runs, locks each Task",
    )
    stop = threading.Event()
    watcher = None
    try:
        if run.solo:
            watcher = threading.Thread(
                target=_watch, args=(store, run, record, stop), name="daskbio-solo", daemon=True
            )
            watcher.start()
        else:
            _wait_for_solo_runs(store, run, show)
        yield
    finally:
        stop.set()
        if watcher is not None:
            watcher.join()
        store.unlock(record)


def _watch(store: Store, run: Run, record, stop: threading.Event) -> None:
    """While ``run`` is solo: when another run comes, stop being alone."""
    while not stop.wait(WATCH):
        try:
            others = [k for k in store.runs() if k != run.id]
        except OSError:
            continue  # the cache briefly unreachable: look again
        if others:
            log.info("another run has come: run %s locks its Tasks from now on", run.id)
            run.stop_being_alone(lambda key: store.lock(key, run.id, run.lease))
            record.change(solo=False)
            return


def _wait_for_solo_runs(store: Store, run: Run, show: bool) -> None:
    """Wait until no other live run is solo (each takes its locks when it sees this one)."""
    said = 0.0
    while solo := [h for k, h in store.runs().items() if k != run.id and h.solo]:
        if show and time.monotonic() - said > 5:
            where = ", ".join(sorted(h.where for h in solo))
            print(f"Waiting for {len(solo)} runs to start taking locks ({where})", file=sys.stderr)
            said = time.monotonic()
        time.sleep(WATCH / 5)
