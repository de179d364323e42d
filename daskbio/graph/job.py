"""What a worker runs for one Task: call the function, then commit the result to the cache.

A :class:`Job` carries one Task without its upstream graph (dependencies are replaced
by references), so shipping it to a distributed worker costs the size of its own
arguments only.
"""

from __future__ import annotations

import logging
import os
import reprlib
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from daskbio.cache import CacheWriteError, CorruptEntry, Store
from daskbio.cache.arrays import is_dask_array
from daskbio.cache.leases import Lease, host
from daskbio.cache.signing import KeyFileError, token
from daskbio.graph import chunked, events, hashing
from daskbio.graph.files import input_files
from daskbio.graph.task import Task, Tasklet, replace_tasks
from daskbio.tracebacks import own_frames


class TaskFailed(Exception):
    """A Task's function, or the storing of its result, raised; the message names the
    function and hash, and carries the original traceback (``details``; ``summary`` has
    only the frames of the user's code, see :mod:`daskbio.tracebacks`)."""

    def __init__(self, name: str, key: str, details: str, summary: str = "") -> None:
        super().__init__(f"Task {name} ({key}) failed:\n{details}")
        self.name = name
        self.key = key
        self.details = details
        self.summary = summary or details

    def __reduce__(self) -> tuple:
        return (type(self), (self.name, self.key, self.details, self.summary))


class UnstorableResult(TypeError):
    """A Task returned what the cache cannot keep (a generator, an open file, an object
    that cannot be pickled); the message says what to return instead."""


class TaskStartError(RuntimeError):
    """A Task could not be started where it was sent: its function or arguments could
    not be pickled on the client, or unpickled on the worker."""


class TasksFailed(Exception):
    """Several Tasks failed in a run that kept going (``keep_going=True``); the message
    lists each one's function, hash and last line of error."""

    def __init__(self, failures: dict[str, dict[str, Any]]) -> None:
        self.failures = failures
        lines = [f"{len(failures)} Tasks failed:"]
        lines += [f"  {failure_line(key, info)}" for key, info in failures.items()]
        super().__init__("\n".join(lines))

    def __reduce__(self) -> tuple:
        return (type(self), (self.failures,))


def last_error_line(info: dict[str, Any]) -> str:
    """The last line of a failure record's error (its exception and message)."""
    last = (info.get("traceback") or info.get("error") or "").strip().splitlines()
    return last[-1] if last else "?"


def failure_line(key: str, info: dict[str, Any]) -> str:
    """``name hash: last line of the error``, for summaries."""
    return f"{info.get('name', '?')} {key[:12]}: {last_error_line(info)}"


@dataclass
class Run:
    """What the Jobs of one run share: its id (in its locks and entries), whether it keeps
    going after a failure, and the lease length of its locks.

    Jobs on this process's threads also report here what they did; on other processes
    they get a fresh copy (the driver then reads the run id in the entries instead).
    """

    id: str = field(default_factory=lambda: token(8))
    keep_going: bool = False
    lease: float | None = None
    #: Set when a Task failed and the run does not keep going: queued Jobs do not start.
    stop: threading.Event = field(default_factory=threading.Event, repr=False)
    #: Keys this process computed, and keys it found computed by another run once locked.
    ran: set[str] = field(default_factory=set, repr=False)
    elsewhere: set[str] = field(default_factory=set, repr=False)
    #: Alone on the cache: Jobs on this process's threads take no locks (graph/solo.py).
    solo: bool = field(default=False, repr=False)
    _mode: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _unlocked: set[str] = field(default_factory=set, repr=False)
    _adopted: dict[str, Lease] = field(default_factory=dict, repr=False)

    def __reduce__(self) -> tuple:
        # Not ``solo``: Jobs in other processes always lock.
        return (Run, (self.id, self.keep_going, self.lease))

    def start_unlocked(self, key: str) -> bool:
        """Whether the Job of ``key`` may run without its lock (the run is alone); if so
        it counts as running unlocked until :meth:`finish_unlocked`."""
        if not self.solo:
            return False
        with self._mode:
            if not self.solo:
                return False
            self._unlocked.add(key)
            return True

    def finish_unlocked(self, key: str) -> Lease | None:
        """The Job of ``key`` is done; the lock taken for it meanwhile, if any."""
        with self._mode:
            self._unlocked.discard(key)
            return self._adopted.pop(key, None)

    def stop_being_alone(self, lock: Callable[[str], Lease | None]) -> None:
        """Another run has come: from now on Jobs lock, and those running unlocked get
        their locks now, from ``lock``, before the other run computes anything."""
        with self._mode:
            self.solo = False
            for key in self._unlocked:
                if (lease := lock(key)) is not None:
                    self._adopted[key] = lease

    def __dask_tokenize__(self) -> tuple:
        return ("daskbio.Run", self.id, self.keep_going, self.lease)


@dataclass(frozen=True)
class NotDone:
    """What a Job returns for a Task it did not compute, so that its dependents do not
    run either: held by another run (``"elsewhere"``), failed (with ``keep_going``),
    downstream of one of those (``"upstream"``), or not started after a failure."""

    key: str
    why: str


@dataclass(frozen=True)
class Ref:
    """Stands for the value of a dependency (``key``), or an item of it (``path``)."""

    key: str
    path: tuple = ()

    def __repr__(self) -> str:
        return f"<{self.key[:8]}{''.join(f'[{i!r}]' for i in self.path)}>"


def _ref(t: Task | Tasklet) -> Ref:
    path = []
    node = t
    while isinstance(node, Tasklet):
        path.append(node.index)
        node = node.parent
    return Ref(node.hash(), tuple(reversed(path)))


@dataclass
class Job:
    """One Task, ready to run on a worker."""

    f: Any
    args: tuple
    kwargs: dict
    key: str
    name: str
    identity: str
    deps: tuple[str, ...]
    version: str | None
    fingerprint: str
    store: Store
    run: Run
    failed_before: bool = True
    #: ``f``, ``args`` and ``kwargs`` pickled, in a Job sent to another process (or why
    #: they could not be): unpickled by :func:`run_job`, so that an error there is the
    #: Task's failure record, not a worker's error that names no Task.
    packed: bytes | str | None = field(default=None, repr=False)

    def __reduce__(self) -> tuple:
        packed = self.packed
        if packed is None:  # else still packed, as it came: it goes on as it is
            try:
                import cloudpickle

                packed = cloudpickle.dumps((self.f, self.args, self.kwargs), protocol=5)
            except Exception as e:
                packed = f"cannot pickle Task {self.name} ({self.key}) to send it: {e!r}"
        fields = {k: v for k, v in self.__dict__.items() if k not in ("f", "args", "kwargs")}
        return (_packed_job, (fields, packed))

    def __dask_tokenize__(self) -> tuple:
        # The Task's hash names what it computes; Dask need not walk (or pickle) the
        # user's arguments to name the Job, which they may not even allow.
        return ("daskbio.Job", self.key, self.run.id, self.failed_before)

    @classmethod
    def of(cls, task: Task, store: Store, run: Run, failed_before: bool = True) -> Job:
        return cls(
            f=task.f,
            args=replace_tasks(task.args, _ref),
            kwargs=replace_tasks(task.kwargs, _ref),
            key=task.hash(),
            name=task.name,
            identity=task.identity,
            deps=tuple(d.hash() for d in task.dependencies()),
            version=task.version,
            fingerprint=hashing.code_fingerprint(task.f),
            store=store,
            run=run,
            failed_before=failed_before,
        )


log = logging.getLogger(__name__)

_summary = reprlib.Repr()
_summary.maxstring = 60
_summary.maxother = 60


def run_job(job: Job, *dep_values: Any) -> Any:
    """Run ``job`` given its dependencies' values, store the result and return it.

    The Task is locked first (:meth:`Store.lock`), unless the run is alone on the cache
    (:mod:`daskbio.graph.solo`): a Task another run holds is left to it (a
    :class:`NotDone` comes back), and one committed by another run since the plan was
    made is loaded instead. Only the Task's own error, or one storing its result,
    makes a failure record: a damaged input (already removed, so the run computes it
    again), a cache that cannot be written or a signing key that cannot be read (the run
    stops) is not the Task's.
    """
    for value in dep_values:
        if isinstance(value, NotDone):
            return NotDone(job.key, "upstream")
    if job.run.stop.is_set():
        return NotDone(job.key, "stopped")
    if job.run.start_unlocked(job.key):
        try:
            return _compute(job, dep_values)
        finally:
            if (adopted := job.run.finish_unlocked(job.key)) is not None:
                job.store.unlock(adopted)
    lease = job.store.lock(job.key, job.run.id, job.run.lease)
    if lease is None:
        log.debug("%s %s is held by another run", job.name, job.key)
        return NotDone(job.key, "elsewhere")
    try:
        if job.store.has(job.key):
            job.run.elsewhere.add(job.key)
            events.report(job.key, job.name, "loaded")
            return job.store.load(job.key)
        return _compute(job, dep_values)
    finally:
        job.store.unlock(lease)


def _compute(job: Job, dep_values: tuple) -> Any:
    events.report(job.key, job.name, "running")
    try:
        _unpack(job)
        args, kwargs = _arguments(job, dep_values)
        # Before the call: the state of the input files the result is computed from.
        inputs = input_files(job.args, job.kwargs)
        start = time.time()
        result = chunked.computed(job.f(*args, **kwargs))
        _commit(job, result, _metadata(job, start, inputs))
    except (CorruptEntry, CacheWriteError, KeyFileError):
        raise
    except Exception as e:
        _record_failure(job, e)
        events.report(job.key, job.name, "failed")
        if job.run.keep_going:
            return NotDone(job.key, "failed")
        job.run.stop.set()
        raise TaskFailed(job.name, job.key, traceback.format_exc(), own_frames(e)) from e
    job.run.ran.add(job.key)
    events.report(job.key, job.name, "computed")
    job.store.add_code_version(job.identity, job.fingerprint)
    if inputs:
        job.store.note_input_files(job.identity)
    if is_dask_array(result):
        # Dependents read the written array rather than compute its graph a second time.
        return job.store.load(job.key)
    return result


def _packed_job(fields: dict[str, Any], packed: bytes | str) -> Job:
    return Job(f=None, args=(), kwargs={}, **{**fields, "packed": packed})


def _unpack(job: Job) -> None:
    """Give a Job sent from another process its function and arguments back."""
    if job.packed is None:
        return
    if isinstance(job.packed, str):
        raise TaskStartError(job.packed)
    import pickle

    try:
        job.f, job.args, job.kwargs = pickle.loads(job.packed)
    except Exception as e:
        hint = ""
        if isinstance(e, ImportError):
            hint = (
                f": is {e.name or 'the module'} installed on the workers, and its folder on "
                "their PYTHONPATH?"
            )
        raise TaskStartError(
            f"cannot unpickle Task {job.name} ({job.key}) on {host()}: {e!r}{hint}"
        ) from e
    job.packed = None


def _check_storable(job: Job, result: Any) -> None:
    """Refuse results that pickle cannot keep, or keeps as something else than the
    user meant, with what to return instead."""
    import io
    from collections.abc import Iterator

    if isinstance(result, (io.BytesIO, io.StringIO)):
        return  # buffers in memory pickle with what they hold
    if isinstance(result, io.IOBase):
        name = getattr(result, "name", None)
        raise UnstorableResult(
            f"{job.name} returned an open file{f' ({name})' if name else ''}, which cannot be "
            "stored: return what you read from it, or its path"
        )
    if isinstance(result, Iterator):
        kind = type(result).__name__
        raise UnstorableResult(
            f"{job.name} returned a {kind}, an iterator (used up once read), which cannot be "
            "stored: return a list, e.g. list(...)"
        )


def _arguments(job: Job, dep_values: tuple) -> tuple[tuple, dict]:
    """The Task's arguments, with the dependencies' values in place of their references."""
    values = dict(zip(job.deps, dep_values))

    def value_of(ref: Ref) -> Any:
        value = values[ref.key]
        for index in ref.path:
            value = value[index]
        return value

    return replace_tasks(job.args, value_of, kinds=Ref), replace_tasks(
        job.kwargs, value_of, kinds=Ref
    )


def _commit(job: Job, result: Any, meta: dict[str, Any]) -> None:
    _check_storable(job, result)
    kind = type(result)
    # For ``daskbio show``, which thus never unpickles a result to name its type.
    meta["type"] = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else (f"{kind.__module__}.{kind.__qualname__}")
    )
    if is_dask_array(result):
        chunked.write(job.store, job.key, result, job.fingerprint, meta, job.failed_before)
    else:
        job.store.save(job.key, result, meta, clear_failure=job.failed_before)


def _record_failure(job: Job, e: Exception) -> None:
    job.store.record_failure(
        job.key,
        {
            "name": job.name,
            "function": job.identity,
            "error": repr(e),
            "traceback": traceback.format_exc(),
            "time": time.time(),
            "host": host(),
            "run": job.run.id,
        },
    )


def _metadata(job: Job, start: float, inputs: dict[str, list[int]]) -> dict[str, Any]:
    # The key's parts let ``daskbio why`` say which part of a later Task's key differs.
    from daskbio.provenance import key_parts

    meta = {
        "name": job.name,
        "function": job.identity,
        "args": _summary.repr((job.args, job.kwargs)),
        "deps": job.deps,
        "fingerprint": job.fingerprint,
        "version": job.version,
        "hash_format": hashing.HASH_FORMAT_VERSION,
        "start": start,
        "end": time.time(),
        "host": host(),
        "pid": os.getpid(),
        "run": job.run.id,
    }
    try:
        meta["key_parts"] = key_parts(job.f, job.args, job.kwargs)
    except Exception:
        # A record for ``daskbio why`` only: never a reason to lose a computed result.
        log.warning("cannot record the key parts of %s %s", job.name, job.key, exc_info=True)
    if inputs:
        meta["inputs"] = inputs
    return meta


def load_result(store: Store, key: str) -> Any:
    """Load a cached dependency's value (runs on a worker)."""
    return store.load(key)
