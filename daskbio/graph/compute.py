"""``compute`` and ``value``: the "what is missing -> schedule it -> commit it" loop."""

from __future__ import annotations

import contextvars
import functools
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from daskbio.cache import CorruptEntry, DamagedEntryWarning, Store, open_store
from daskbio.graph.plan import Plan, plan
from daskbio.graph.task import Task, Tasklet, replace_tasks, walk_tasks
from daskbio.status import stale_among, stale_notes

SCHEDULERS = ("sync", "threads", "processes")


class Barrier(Exception):
    """Raised by :func:`value` where the pipeline needs a result that is not computed yet,
    while it is only being inspected (``status``, ``check``, ``cleanup``, ``shell``)."""

    def __init__(self, task: Task) -> None:
        super().__init__(
            f"the pipeline needs the value of {task.name} ({task.hash()}), "
            "which is not computed yet"
        )
        self.task = task


@dataclass
class Session:
    """Defaults for :func:`compute` and :func:`value` set by ``daskbio run`` and friends."""

    store: Store | None = None
    scheduler: Any = None
    workers: int | None = None
    may_compute: bool = True
    progress: bool = False


_DEFAULTS = Session()
_session: contextvars.ContextVar[Session] = contextvars.ContextVar("daskbio_session")


def current_session() -> Session:
    """The settings in force here (defaults outside any :func:`session` block)."""
    return _session.get(_DEFAULTS)


@contextmanager
def session(**settings: Any) -> Iterator[Session]:
    """Use ``settings`` (fields of :class:`Session`) as defaults inside the block."""
    new = Session(**{**current_session().__dict__, **settings})
    token = _session.set(new)
    try:
        yield new
    finally:
        _session.reset(token)


def _default_client() -> Any:
    if "distributed" not in sys.modules:
        return None
    from distributed import default_client

    try:
        return default_client()
    except ValueError:
        return None


def _get(graph: dict, keys: list[str], scheduler: Any, workers: int | None, progress: bool) -> list:
    if scheduler is None:
        scheduler = _default_client() or "threads"
    # Tasks on threads must not be the first to import Zarr & co. (see daskbio._imports).
    from daskbio._imports import preload

    preload(scheduler)
    if not isinstance(scheduler, str):
        futures = scheduler.get(graph, keys, sync=False)
        try:
            if progress:
                from distributed import progress as show_progress

                show_progress(futures)
            return scheduler.gather(futures)
        except BaseException:
            # Release the keys: a second attempt (after a damaged input was removed)
            # would otherwise be handed the same error again by the scheduler.
            scheduler.cancel(futures, force=True)
            raise
    if scheduler == "sync":
        from dask.local import get_sync as get
    elif scheduler == "threads":
        from dask.threaded import get
    elif scheduler == "processes":
        from dask.multiprocessing import get
    else:
        raise ValueError(
            f"scheduler must be one of {SCHEDULERS} or a distributed.Client, got {scheduler!r}"
        )
    import dask

    options: dict[str, Any] = {}
    if scheduler != "sync":
        if workers:
            options["num_workers"] = workers
        # Dask hands local workers one task at a time (~100 us each); batching cuts that
        # for large graphs of small Tasks while leaving every worker many batches.
        options["chunksize"] = max(
            1, min(64, len(graph) // (50 * (workers or os.cpu_count() or 1)))
        )
    # Tasks that return dask arrays compute their chunks from inside their job
    # (daskbio.graph.chunked.compute_here): with the same scheduler and worker count.
    nested = {"scheduler": "sync"} if scheduler == "sync" else {"num_workers": workers}
    nested = {k: v for k, v in nested.items() if v is not None}
    if scheduler == "processes" and nested:
        # The pool's processes do not see this process's config: set it in each.
        options["initializer"] = functools.partial(dask.config.set, nested)
    with dask.config.set(nested), _progress(progress):
        if scheduler != "threads":
            return get(graph, keys, **options)
        from concurrent.futures import ThreadPoolExecutor

        # A pool of the run's own, so that when a Task fails or Ctrl-C comes, the Tasks
        # still running are waited for: they finish and commit instead of meeting an
        # interpreter that is shutting down.
        pool = ThreadPoolExecutor(workers or os.cpu_count() or 1)
        try:
            return get(graph, keys, pool=pool, **options)
        except KeyboardInterrupt:
            print(
                "Waiting for the Tasks still running to finish and commit "
                "(Ctrl-C again to abandon them)...",
                file=sys.stderr,
            )
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


@contextmanager
def _progress(show: bool) -> Iterator[None]:
    if not show:
        yield
        return
    from dask.diagnostics import ProgressBar

    with ProgressBar(out=sys.stdout):
        yield


def execute(
    targets: list[Task],
    store: Store,
    scheduler: Any = None,
    want_values: bool = True,
) -> tuple[Plan, dict[str, Any]]:
    """Compute what ``targets`` miss; return the plan and the targets' values by hash.

    With ``want_values=False`` only the Tasks are run (their values stay in the cache).
    Damaged cache entries met on the way are reported and removed by the store (a
    :class:`~daskbio.cache.errors.DamagedEntryWarning` each, where they are found) and
    computed again in the same call, however many there are; an entry damaged again
    right after it was computed again stops the run.
    """
    settings = current_session()
    damaged: set[str] = set()
    while True:
        p = plan(targets, store)
        if p.run and not settings.may_compute:
            raise Barrier(next(iter(p.run.values())))
        try:
            values = _run_plan(p, targets, store, scheduler, want_values, settings)
        except Damaged as e:
            found = e.entries
        except CorruptEntry as e:
            found = [e]
            if e.removed and _on_a_cluster(scheduler or settings.scheduler):
                # Found on a worker: its warning went to the worker's log, not here.
                warnings.warn(e.removal_notice(), DamagedEntryWarning, stacklevel=2)
        else:
            p.stale = stale_among(_cached_used(p, targets), store)
            return p, values
        for entry in found:
            if not entry.removed:
                raise RuntimeError(
                    f"{entry}; it cannot be removed from the cache {store.location} (is it "
                    "read-only?), so it cannot be computed again here"
                ) from None
            if entry.key in damaged:
                raise RuntimeError(
                    f"{entry} again, right after it was computed again: is the disk or the "
                    f"cache {store.location} sound?"
                ) from None
            damaged.add(entry.key)


def _on_a_cluster(scheduler: Any) -> bool:
    """Whether Tasks run in other processes whose warnings this one does not see."""
    if scheduler is None:
        scheduler = _default_client()
    return scheduler is not None and not isinstance(scheduler, str)


def _cached_used(p: Plan, targets: list[Task]) -> list[Task]:
    return [t for t in targets if t.hash() in p.cached] + list(p.load.values())


class Damaged(Exception):
    """Several cached values were found damaged at once (and removed)."""

    def __init__(self, entries: list[CorruptEntry]) -> None:
        super().__init__(f"{len(entries)} damaged cache entries")
        self.entries = entries


def _run_plan(
    p: Plan,
    targets: list[Task],
    store: Store,
    scheduler: Any,
    want_values: bool,
    settings: Session,
) -> dict:
    values: dict[str, Any] = {}
    if p.run:
        from daskbio.graph.to_dask import to_dask

        graph, keys = to_dask(p, store)
        if want_values:
            wanted = list(dict.fromkeys(t.hash() for t in targets if t.hash() in p.run))
        else:
            needed = {d.hash() for t in p.run.values() for d in t.dependencies()}
            wanted = [h for h in p.run if h not in needed]
        results = _get(
            graph,
            [keys[h] for h in wanted],
            scheduler or settings.scheduler,
            settings.workers,
            settings.progress,
        )
        values.update(zip(wanted, results))
    if want_values:
        found = []
        for t in targets:
            h = t.hash()
            if h not in values:
                try:
                    values[h] = store.load(h)
                except CorruptEntry as e:
                    found.append(e)
        if found:
            raise Damaged(found)
    return values


def compute(
    tasks: Any, scheduler: Any = None, cache: Store | str | os.PathLike | None = None
) -> Any:
    """Compute ``tasks`` (a Task, or any list/tuple/dict of Tasks) and return their values.

    What is cached is loaded, what is missing is run on Dask and committed to the cache.

    Parameters
    ----------
    tasks : Task or structure of Tasks
        What to compute. The result has the same structure, Tasks replaced by values.
    scheduler : {"sync", "threads", "processes"} or distributed.Client, optional
        Where to run. By default the active ``distributed.Client`` if there is one,
        else Dask's threaded scheduler.
    cache : Store, path, URL or Zarr store, optional
        The cache (see :func:`daskbio.cache.open_store`). By default the Dask config key
        ``daskbio.cache``, else ``<stem>.daskbio/`` beside the running pipeline file or
        notebook; elsewhere (``python -c``, a terminal IPython) there is no default and
        :class:`daskbio.cache.NoDefaultCache` says to give one.

    Examples
    --------
    >>> import tempfile
    >>> from daskbio import TaskGenerator
    >>> @TaskGenerator
    ... def square(x):
    ...     return x * x
    >>> compute({"a": square(3), "b": [square(4)]}, cache=tempfile.mkdtemp())
    {'a': 9, 'b': [16]}
    """
    store = open_store(cache if cache is not None else current_session().store)
    targets = list({t.task.hash(): t.task for t in walk_tasks(tasks)}.values())
    p, values = execute(targets, store, scheduler)
    for note in stale_notes(_cached_used(p, targets), p.stale):
        warnings.warn(note, stacklevel=2)

    def value_of(t: Task | Tasklet) -> Any:
        v = values[t.task.hash()]
        return t.pick(v) if isinstance(t, Tasklet) else v

    return replace_tasks(tasks, value_of)


def value(tasks: Any) -> Any:
    """The value of a Task or of any structure of Tasks, computing what is missing first.

    Jug's ``value``/``bvalue``: a pipeline may use it mid-file to decide what to do next.

    Examples
    --------
    >>> import tempfile
    >>> from daskbio import Task, compute
    >>> def add(a, b):
    ...     return a + b
    >>> with session(store=open_store(tempfile.mkdtemp())):
    ...     value([Task(add, 1, 2), 5])
    [3, 5]
    """
    return compute(tasks)


def CachedFunction(f: Any, *args: Any, **kwargs: Any) -> Any:
    """Call ``f(*args, **kwargs)`` through the cache: computed once, loaded afterwards.

    Examples
    --------
    >>> import tempfile
    >>> with session(store=open_store(tempfile.mkdtemp())):
    ...     CachedFunction(divmod, 7, 2)
    (3, 1)
    """
    return compute(Task(f, *args, **kwargs))
