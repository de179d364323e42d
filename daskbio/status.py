"""What a pipeline's cache holds: done, failed, waiting, stale, and whether it is sound
(a Python API that ``daskbio status``, ``run``, ``verify`` and notebooks share).

A result is *stale* when the code that computed it differs from the code now (see
:func:`daskbio.graph.hashing.code_fingerprint`), when an input file it read (a plain path
argument) changed since, or when it was computed from a stale result. Nothing recomputes
by itself (Jug's rule): ``daskbio run --rerun-stale`` or ``daskbio invalidate`` does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from daskbio.cache import CorruptEntry, Store
from daskbio.cache.leases import Holder
from daskbio.graph.files import changed_inputs
from daskbio.graph.hashing import code_fingerprint
from daskbio.graph.task import Task

#: Why a result is stale, as :func:`stale_results` says it.
CODE = "computed by other code"
INPUT = "an input file changed since"
UPSTREAM = "computed from a stale result"


@dataclass
class Counts:
    """How many Tasks of one function are in each state."""

    total: int = 0
    done: int = 0
    failed: int = 0
    running: int = 0
    waiting: int = 0
    stale: int = 0
    ran: int = 0


@dataclass
class Status:
    """The state of a pipeline's Tasks in a store.

    Attributes
    ----------
    counts : dict
        :class:`Counts` by function name.
    stale : dict
        Why each stale result is stale, by Task hash (see :func:`stale_results`).
    running : dict
        Who is computing each Task being computed now (a run's live lock), by hash.
    runs : dict
        The runs computing Tasks on the cache now, by run id. One alone there
        (``Holder.solo``) takes no locks: its Tasks count as waiting.
    """

    counts: dict[str, Counts] = field(default_factory=dict)
    stale: dict[str, str] = field(default_factory=dict)
    running: dict[str, Holder] = field(default_factory=dict)
    runs: dict[str, Holder] = field(default_factory=dict)


def status(tasks: list[Task], store: Store, with_stale: bool = True) -> Status:
    """Count ``tasks`` by function: done, failed, running (locked by a live run: a Task
    that failed before and runs again counts as running), waiting and (``with_stale``)
    stale.

    Examples
    --------
    >>> from daskbio.cache import MemoryStore
    >>> def inc(x):
    ...     return x + 1
    >>> store, tasks = MemoryStore(), [Task(inc, 1), Task(inc, 2)]
    >>> _ = store.save(tasks[0].hash(), 2)
    >>> c = status(tasks, store).counts["inc"]
    >>> c.total, c.done, c.waiting
    (2, 1, 1)
    """
    present, failed = store.lookup(t.hash() for t in tasks)
    result = Status()
    missing = {t.hash() for t in tasks} - present
    if missing:
        result.runs = store.runs()
    if result.runs:
        result.running = {k: holder for k, holder in store.holders(missing).items() if holder.live}
    for t in tasks:
        c = result.counts.get(t.name)
        if c is None:
            c = result.counts[t.name] = Counts()
        c.total += 1
        h = t.hash()
        if h in present:
            c.done += 1
        elif h in result.running:
            c.running += 1
        elif h in failed:
            c.failed += 1
    for c in result.counts.values():
        c.waiting = c.total - c.done - c.failed - c.running
    if with_stale:
        result.stale = stale_results(tasks, store, present)
        for t in tasks:
            if t.hash() in result.stale:
                result.counts[t.name].stale += 1
    return result


def failed_tasks(tasks: list[Task], store: Store) -> dict[str, dict[str, Any]]:
    """The failure record of each of ``tasks`` whose last computation failed and that has
    no result since, by hash, in the order of ``tasks`` (records read in batches, only
    for those that failed).

    Examples
    --------
    >>> from daskbio.cache import MemoryStore
    >>> def inc(x):
    ...     return x + 1
    >>> store, t = MemoryStore(), Task(inc, 1)
    >>> store.record_failure(t.hash(), {"name": "inc", "error": "ValueError('no')"})
    >>> [info["error"] for info in failed_tasks([t], store).values()]
    ["ValueError('no')"]
    """
    present, failed = store.lookup(t.hash() for t in tasks)
    records = store.failure_many(failed - present)
    return {t.hash(): records[t.hash()] for t in tasks if t.hash() in records}


@dataclass
class Remaining:
    """What keeps a pipeline from being done (:func:`remaining`).

    Attributes
    ----------
    missing : set of str
        The hashes of the Tasks without a result.
    failed : dict
        The failure records of those whose last computation failed, by hash.
    blocked : set of str
        The missing Tasks that failed or need, directly or not, one that failed.
    running : bool
        Whether a run is computing Tasks on the cache now (it may compute failed ones
        again).
    """

    missing: set[str] = field(default_factory=set)
    failed: dict[str, dict[str, Any]] = field(default_factory=dict)
    blocked: set[str] = field(default_factory=set)
    running: bool = False

    @property
    def only_failures(self) -> bool:
        """Whether all that remains can only wait on failures: Tasks failed, everything
        missing is them or downstream of them, and no run is computing anything."""
        return bool(self.failed) and self.blocked >= self.missing and not self.running


def remaining(tasks: list[Task], store: Store) -> Remaining:
    """Which of ``tasks`` have no result yet, and whether they wait on failures only
    (what ``daskbio check`` and ``sleep-until`` say). One pass over the cache's records;
    the failure records and the runs are read only when Tasks failed.

    Examples
    --------
    >>> from daskbio.cache import MemoryStore
    >>> def inc(x):
    ...     return x + 1
    >>> store = MemoryStore()
    >>> first = Task(inc, 1)
    >>> second = Task(inc, first)
    >>> store.record_failure(first.hash(), {"name": "inc", "error": "ValueError('no')"})
    >>> left = remaining([first, second], store)
    >>> len(left.missing), len(left.failed), left.only_failures
    (2, 1, True)
    """
    present, failed = store.lookup(t.hash() for t in tasks)
    result = Remaining(missing={t.hash() for t in tasks} - present)
    if not failed - present:
        return result
    result.failed = store.failure_many(failed - present)
    # Tasks are made after the Tasks they use, so one pass in order reaches downstream.
    for t in tasks:
        h = t.hash()
        if h in result.missing and (
            h in result.failed or any(d.hash() in result.blocked for d in t.dependencies())
        ):
            result.blocked.add(h)
    if result.blocked >= result.missing:
        result.running = bool(store.runs())
    return result


def stale_results(tasks: list[Task], store: Store, done: set[str]) -> dict[str, str]:
    """Why each stale result among ``tasks`` (of which ``done`` have results) is stale.

    Entries are read only for functions whose records show more than one code version,
    or results that read input files; a pipeline of unchanged pure functions costs one
    small listing per function.
    """
    stale = _stale_here(tasks, store, done)
    if not stale:
        return stale
    # Tasks are made after the Tasks they use, so one pass in order reaches downstream.
    for t in tasks:
        h = t.hash()
        if h in done and h not in stale and any(d.hash() in stale for d in t.dependencies()):
            stale[h] = UPSTREAM
    return stale


def _stale_here(
    tasks: Iterable[Task], store: Store, done: set[str], inputs: bool = True
) -> dict[str, str]:
    by_function: dict[Any, list[Task]] = {}
    for t in tasks:
        if t.hash() in done:
            by_function.setdefault(t.f, []).append(t)
    stale: dict[str, str] = {}
    for f, group in by_function.items():
        identity = group[0].identity
        now = code_fingerprint(f)
        other_code = not store.code_versions(identity) <= {now}
        if not (other_code or (inputs and store.reads_input_files(identity))):
            continue
        for t, meta in zip(group, store.metadata_many([t.hash() for t in group])):
            if meta is None:
                continue
            if other_code and meta.get("fingerprint") != now:
                stale[t.hash()] = CODE
            elif inputs and (changed := changed_inputs(meta.get("inputs", {}))):
                stale[t.hash()] = f"{INPUT}: {changed[0]}"
    return stale


def stale_among(tasks: list[Task], store: Store) -> dict[str, str]:
    """Why each of ``tasks`` (all done) is stale by itself (other code, changed input
    files), by hash: what ``run`` and ``compute()`` say before using cached results."""
    return _stale_here(tasks, store, {t.hash() for t in tasks})


def stale_notes(tasks: list[Task], stale: dict[str, str]) -> list[str]:
    """One sentence per function and reason saying how many of ``tasks`` are stale."""
    counts: dict[tuple[str, str], int] = {}
    example: dict[tuple[str, str], str] = {}
    for t in tasks:
        why = stale.get(t.hash())
        if why is not None:
            reason = (t.name, why.split(":")[0])
            counts[reason] = counts.get(reason, 0) + 1
            example.setdefault(reason, why.partition(": ")[2])
    notes = []
    for (name, reason), n in sorted(counts.items()):
        results = f"{n} cached result{'s' if n > 1 else ''} of {name}"
        were = "were" if n > 1 else "was"
        if reason == CODE:
            why = f"{were} computed by other code (the function or a helper it uses changed)"
        else:
            why = f"{were} computed from input files changed since (e.g. {example[name, reason]})"
        notes.append(
            f"{results} {why}: used as they are; 'daskbio run --rerun-stale' recomputes them"
        )
    return notes


@dataclass
class Verified:
    """What :func:`verify` found: the keys checked, and the damaged entries (removed)."""

    checked: int = 0
    damaged: list[CorruptEntry] = field(default_factory=list)


def verify(store: Store, keys: Iterable[str]) -> Verified:
    """Check every entry of ``keys`` that exists: signature, payload, every array file.

    Damaged entries are removed (the next run computes them again) and listed.

    Examples
    --------
    >>> from daskbio.cache import MemoryStore
    >>> store = MemoryStore()
    >>> _ = store.save("ab" * 16, [1, 2])
    >>> found = verify(store, store.keys())
    >>> found.checked, found.damaged
    (1, [])
    """
    result = Verified()
    for key in sorted(store.has_many(keys)):
        result.checked += 1
        try:
            store.verify(key)
        except CorruptEntry as e:
            result.damaged.append(e)
        except KeyError:
            result.checked -= 1  # removed meanwhile
    return result


def running_where(running: dict[str, Holder]) -> dict[str, int]:
    """How many of the Tasks ``running`` (:attr:`Status.running`) each process computes,
    by ``host:pid``."""
    where: dict[str, int] = {}
    for holder in running.values():
        where[holder.where] = where.get(holder.where, 0) + 1
    return dict(sorted(where.items()))
