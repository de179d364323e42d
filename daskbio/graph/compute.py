"""``compute`` and ``value``: the "what is missing -> schedule it -> commit it" loop."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import sys
import time
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from daskbio.cache import CorruptEntry, DamagedEntryWarning, Store, open_store
from daskbio.cache.leases import Holder, lease_length
from daskbio.graph.job import NotDone, Run, TasksFailed
from daskbio.graph.plan import Plan, plan
from daskbio.graph.solo import registered
from daskbio.graph.task import Task, Tasklet, replace_tasks, walk_tasks
from daskbio.status import stale_among, stale_notes

if TYPE_CHECKING:
    from daskbio.monitor.watch import Watch

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


class Abandoned(KeyboardInterrupt):
    """A second Ctrl-C, while the Tasks still running were being waited for: they are left
    running. None of them has an entry yet (entries appear whole or not at all), but if
    the process then exits normally, its exit shuts down Dask's thread pools under them
    and they fail for that: a process should end at once (``os._exit``), as ``daskbio run``
    does, rather than record those failures."""


@dataclass
class Session:
    """Defaults for :func:`compute` and :func:`value` set by ``daskbio run`` and friends.

    ``progress`` (see :mod:`daskbio.monitor.display`): None shows it in a notebook only,
    False never, True everywhere (where output is not a terminal, as plain lines every
    10 s), a number of seconds everywhere with plain lines that often.
    """

    store: Store | None = None
    scheduler: Any = None
    workers: int | None = None
    may_compute: bool = True
    progress: bool | float | None = None
    keep_going: bool = False


_DEFAULTS = Session()
_session: contextvars.ContextVar[Session] = contextvars.ContextVar("daskbio_session")


def current_session() -> Session:
    """The settings in force here (defaults outside any :func:`session` block)."""
    return _session.get(_DEFAULTS)


def set_defaults(**settings: Any) -> None:
    """Make ``settings`` (fields of :class:`Session`) this process's defaults, outside any
    :func:`session` block: what :func:`daskbio.init` does with a pipeline's cache. (A
    process-wide default, not a context variable: a notebook runs each cell in a copy of
    the context, where a variable set by one cell is gone in the next.)"""
    for name, value in settings.items():
        if not hasattr(_DEFAULTS, name):
            raise TypeError(f"set_defaults got an unknown setting {name!r}")
        setattr(_DEFAULTS, name, value)


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


def _get(
    graph: dict,
    keys: list[str],
    scheduler: Any,
    workers: int | None,
    watch: Watch,
    payloads: bool = False,
) -> list:
    """The values of ``keys`` of ``graph`` computed on ``scheduler`` (a name or a Client),
    its Tasks counted by ``watch`` as they run."""
    # Tasks on threads must not be the first to import Zarr & co. (see daskbio._imports).
    from daskbio._imports import preload

    preload(scheduler, payloads)
    if not isinstance(scheduler, str):
        # The scheduler's plugin counts the Tasks (daskbio.monitor.plugin).
        futures = scheduler.get(graph, keys, sync=False)
        try:
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
    with dask.config.set(nested), watch.following():
        if scheduler != "threads":
            return get(graph, keys, **options)
        from concurrent.futures import ThreadPoolExecutor

        # A pool of the run's own, so that when a Task fails or Ctrl-C comes, the Tasks
        # still running are waited for: they finish and commit instead of meeting an
        # interpreter that is shutting down.
        pool = ThreadPoolExecutor(workers or os.cpu_count() or 1)
        abandoned = False
        try:
            return get(graph, keys, pool=pool, **options)
        except KeyboardInterrupt:
            print(
                "Waiting for the Tasks still running to finish and commit "
                "(Ctrl-C again to abandon them)...",
                file=sys.stderr,
            )
            try:
                pool.shutdown(wait=True, cancel_futures=True)
            except KeyboardInterrupt:
                abandoned = True
                raise Abandoned from None
            raise
        finally:
            pool.shutdown(wait=not abandoned, cancel_futures=True)


@dataclass
class Outcome:
    """What :func:`execute` did.

    Attributes
    ----------
    plan : Plan
        The plan at the start: what was missing then (``plan.run``), and why cached
        results used are stale (``plan.stale``).
    values : dict
        The targets' values by hash (when asked for).
    ran : set
        Hashes of the Tasks this run computed.
    elsewhere : set
        Hashes of the Tasks missing at the start that other runs computed meanwhile.
    failed : dict
        The failure record of each Task that failed during the run, by hash (with
        ``keep_going``; otherwise the first failure is raised).
    skipped : set
        Hashes of the Tasks not computed because they depend on a failed one.
    """

    plan: Plan
    values: dict[str, Any] = field(default_factory=dict)
    ran: set[str] = field(default_factory=set)
    elsewhere: set[str] = field(default_factory=set)
    failed: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: set[str] = field(default_factory=set)


def execute(
    targets: list[Task],
    store: Store,
    scheduler: Any = None,
    want_values: bool = True,
    keep_going: bool | None = None,
) -> Outcome:
    """Compute what ``targets`` miss, sharing the work with other runs on ``store``.

    Each Task is locked while it is computed (unless the run is alone on the cache: see
    :mod:`daskbio.graph.solo`), so runs started at any time on one cache (several shells,
    the elements of a job array) compute it once: Tasks another run holds, and what
    depends on them, wait until their results are committed (or their holder's lease
    runs out, and this run takes them over).

    With ``keep_going`` (default: the session's) a failed Task stops only what depends
    on it; otherwise the first failure is raised (Tasks already running finish and
    commit). Damaged cache entries met on the way are reported and removed by the store
    (a :class:`~daskbio.cache.errors.DamagedEntryWarning` each, where they are found) and
    computed again in the same call, however many there are; an entry damaged again
    right after it was computed again stops the run.
    """
    settings = current_session()
    run = Run(
        keep_going=settings.keep_going if keep_going is None else keep_going,
        lease=lease_length(),
    )
    scheduler = scheduler or settings.scheduler or _default_client() or "threads"
    waiting = _Waiting(bool(settings.progress))
    outcome: Outcome | None = None
    damaged: set[str] = set()
    seen_failures: dict[str, Any] = {}
    last_round: set[str] = set()
    in_process = scheduler in ("sync", "threads")
    watch: Watch | None = None
    # The run is recorded on the cache (solo.registered) once it has something to compute.
    with contextlib.ExitStack() as stack:
        while True:
            p = plan(targets, store)
            if outcome is None:
                outcome = Outcome(p)
                if run.keep_going:
                    seen_failures = _failure_times(store, p.failed)
            try:
                if not p.run:
                    if want_values:
                        outcome.values.update(_load_targets(targets, outcome.values, store))
                    break
                if not settings.may_compute:
                    raise Barrier(next(iter(p.run.values())))
                if watch is None:
                    from daskbio.monitor.watch import watching

                    stack.enter_context(registered(store, run, in_process, bool(settings.progress)))
                    watch = stack.enter_context(watching(scheduler, settings.progress, run))
                if run.keep_going:
                    outcome.failed.update(_new_failures(store, p.failed, seen_failures))
                watch.planned(p, targets)
                now, held = _this_round(p, store, outcome.failed.keys())
                if now.run:
                    if now.run.keys() == last_round:
                        # The same Tasks again: none could be locked (a lock this run does not
                        # see as held, such as one judged differently by a worker). Back off.
                        waiting.pause_once()
                    else:
                        waiting.reset()
                    last_round = set(now.run)
                    outcome.values.update(
                        _run_round(now, targets, store, scheduler, run, settings, watch)
                    )
                elif held:
                    waiting.wait(store, held)
                else:
                    outcome.skipped = set(p.run) - outcome.failed.keys()
                    break
            except Damaged as e:
                found = e.entries
            except CorruptEntry as e:
                found = [e]
                if e.removed and _on_a_cluster(scheduler):
                    # Found on a worker: its warning went to the worker's log, not here.
                    warnings.warn(e.removal_notice(), DamagedEntryWarning, stacklevel=2)
            else:
                continue
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
    outcome.plan.stale = stale_among(_cached_used(outcome.plan, targets), store)
    outcome.ran, outcome.elsewhere = _who_ran(outcome, store, run, scheduler)
    return outcome


def _failure_times(store: Store, keys: set[str]) -> dict[str, Any]:
    """When each failure record among ``keys`` was written (as its writer's clock says)."""
    return {key: info.get("time") for key, info in store.failure_many(keys).items()}


def _new_failures(
    store: Store, failed: set[str], seen: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """The failure records among ``failed`` written since the run began, by any run:
    those not ``seen`` at its start, or rewritten since. Compared by the record, not by
    clocks: a worker's clock may be behind the driver's."""
    return {
        key: info
        for key, info in store.failure_many(failed).items()
        if key not in seen or info.get("time") != seen[key]
    }


def _this_round(p: Plan, store: Store, failed: Iterable[str]) -> tuple[Plan, dict[str, Holder]]:
    """The part of ``p`` to run now: not held by a live lock, not failed in this run, and
    not downstream of either; and those live locks. (Between rounds, a live lock is
    another run's, or one of this run's workers' that died on another machine.)"""
    held = {key: holder for key, holder in store.holders(p.run).items() if holder.live}
    stopped = _downstream(p, held.keys() | set(failed))
    now = {h: t for h, t in p.run.items() if h not in stopped}
    load = {d.hash(): d for t in now.values() for d in t.dependencies() if d.hash() not in now}
    return Plan(run=now, load=load, failed=p.failed & now.keys()), held


def _downstream(p: Plan, seeds: set[str]) -> set[str]:
    """``seeds`` and every Task of ``p.run`` that depends on one of them."""
    seeds &= p.run.keys()
    if not seeds:
        return seeds
    users: dict[str, list[str]] = {}
    for h, t in p.run.items():
        for d in t.dependencies():
            users.setdefault(d.hash(), []).append(h)
    found, stack = set(seeds), list(seeds)
    while stack:
        for user in users.get(stack.pop(), ()):
            if user not in found:
                found.add(user)
                stack.append(user)
    return found


class _Waiting:
    """Waits, with growing pauses, for Tasks that other runs hold; says so now and then.

    While it waits it watches only the Tasks held (are they committed? are their locks
    still the same?), so that a waiting run costs the runs it waits for almost nothing;
    the whole pipeline is planned again once one of them has changed.
    """

    def __init__(self, show: bool) -> None:
        self.show = show
        self.reset()

    def reset(self) -> None:
        self.pause = 0.05
        self.said = 0.0

    def pause_once(self) -> None:
        time.sleep(self.pause)
        self.pause = min(1.0, self.pause * 1.5)

    def wait(self, store: Store, held: dict[str, Holder]) -> None:
        while True:
            if self.show and time.monotonic() - self.said > 5:
                where = sorted({h.where for h in held.values()})
                print(
                    f"Waiting for {len(held)} Tasks running elsewhere "
                    f"({', '.join(where[:3])}{' ...' if len(where) > 3 else ''})",
                    file=sys.stderr,
                )
                self.said = time.monotonic()
            self.pause_once()
            if store.has_many(held):
                return
            now = store.holders(held)
            if any(k not in now or not now[k].live or now[k] != h for k, h in held.items()):
                return


def _who_ran(outcome: Outcome, store: Store, run: Run, scheduler: Any) -> tuple[set, set]:
    """Of the Tasks missing at the start and done now: which this run computed, and which
    other runs did."""
    done = store.has_many(outcome.plan.run)
    if scheduler in ("sync", "threads"):
        ran = run.ran & done
    else:
        # Jobs ran in other processes: their entries say which run made them.
        keys = sorted(done)
        metadata = store.metadata_many(keys)
        ran = {k for k, m in zip(keys, metadata) if m and m.get("run") == run.id}
    return ran, done - ran


def _on_a_cluster(scheduler: Any) -> bool:
    """Whether Tasks run in other processes whose warnings this one does not see."""
    return not isinstance(scheduler, str)


def _cached_used(p: Plan, targets: list[Task]) -> list[Task]:
    return [t for t in targets if t.hash() in p.cached] + list(p.load.values())


class Damaged(Exception):
    """Several cached values were found damaged at once (and removed)."""

    def __init__(self, entries: list[CorruptEntry]) -> None:
        super().__init__(f"{len(entries)} damaged cache entries")
        self.entries = entries


def _run_round(
    p: Plan,
    targets: list[Task],
    store: Store,
    scheduler: Any,
    run: Run,
    settings: Session,
    watch: Watch,
) -> dict[str, Any]:
    """Run the Tasks of ``p``; the values of those of ``targets`` it computed."""
    from daskbio.graph.to_dask import to_dask

    graph, keys = to_dask(p, store, run)
    needed = {d.hash() for t in p.run.values() for d in t.dependencies()}
    wanted = list(dict.fromkeys([t.hash() for t in targets if t.hash() in p.run]))
    wanted += [h for h in p.run if h not in needed and h not in wanted]
    results = _get(
        graph,
        [keys[h] for h in wanted],
        scheduler,
        settings.workers,
        watch,
        payloads=store.inline_limit is not None,
    )
    targeted = {t.hash() for t in targets}
    return {h: v for h, v in zip(wanted, results) if h in targeted and not isinstance(v, NotDone)}


def _load_targets(targets: list[Task], values: dict[str, Any], store: Store) -> dict[str, Any]:
    """The cached values of the ``targets`` not in ``values``."""
    found, loaded = [], {}
    for t in targets:
        h = t.hash()
        if h not in values:
            try:
                loaded[h] = store.load(h)
            except CorruptEntry as e:
                found.append(e)
    if found:
        raise Damaged(found)
    return loaded


def compute(
    tasks: Any,
    scheduler: Any = None,
    cache: Store | str | os.PathLike | None = None,
    keep_going: bool | None = None,
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
    keep_going : bool, optional
        After a Task fails, compute everything that does not depend on it, then raise
        :class:`~daskbio.graph.job.TasksFailed` listing every failure. By default (the
        session's setting, else False) the first failure is raised as it happens.

    Raises
    ------
    TaskFailed
        A Task raised (without ``keep_going``); the Tasks already running finish first.
    TasksFailed
        Tasks failed (with ``keep_going``).

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
    outcome = execute(targets, store, scheduler, keep_going=keep_going)
    if outcome.failed:
        raise TasksFailed(outcome.failed)
    p = outcome.plan
    for note in stale_notes(_cached_used(p, targets), p.stale):
        warnings.warn(note, stacklevel=2)

    def value_of(t: Task | Tasklet) -> Any:
        v = outcome.values[t.task.hash()]
        return t.pick(v) if isinstance(t, Tasklet) else v

    return replace_tasks(tasks, value_of)


def value(tasks: Any, cache: Store | str | os.PathLike | None = None) -> Any:
    """The value of a Task or of any structure of Tasks, computing what is missing first.

    Jug's ``value``/``bvalue``: a pipeline may use it mid-file to decide what to do next,
    and a notebook after :func:`daskbio.init` to read a pipeline's results. ``cache`` as
    for :func:`compute`.

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
    return compute(tasks, cache=cache)


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
