"""Locks with leases: one per Task key, so that runs sharing a cache compute each Task once.

A lock record says who holds it (host, pid, run), since when, and until when. The holder's
process renews it while the Task runs (array writes included) and removes it when the
result is committed or the Task has failed. A holder that dies (SIGKILL, a lost node)
stops renewing: once its lease has run out, the next run that needs the Task takes the
lock over; a holder that was a process of the reader's own machine (same boot, same process
namespace) and is gone frees its locks at once. Locks only save work: results are
content-addressed and committed atomically, so a Task computed twice (a holder paused past
its lease) is still right.

Leases are compared with the wall clock of whoever reads them: machines sharing a cache
must keep their clocks within a fraction of the lease (NTP does).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import logging
import os
import socket
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daskbio.cache.index import Index, Kind, claim_is_stale
from daskbio.cache.signing import token

log = logging.getLogger(__name__)

#: Seconds a lease lasts unless renewed (the Dask config key ``daskbio.lease``).
DEFAULT_LENGTH = 60.0


def lease_length() -> float:
    """The lease length in force: ``daskbio.lease`` (seconds), else :data:`DEFAULT_LENGTH`."""
    from daskbio import config

    value = config.get("daskbio.lease")
    length = DEFAULT_LENGTH if value is None else float(value)
    if not length > 0:
        raise ValueError(f"daskbio.lease must be a positive number of seconds, got {value!r}")
    return length


@functools.cache
def host() -> str:
    """This machine's name, as locks and entries record it."""
    return socket.gethostname()


@functools.cache
def _process() -> tuple[int, str, itertools.count]:
    """This process's pid, and a secret and a count that make each lock record unique
    (tokens from os.urandom would cost a system call per Task)."""
    return os.getpid(), token(8), itertools.count()


@functools.cache
def machine() -> str:
    """What tells this machine's processes from those of another machine or container of
    the same name: the boot id and the process namespace ("" where Linux's /proc does
    not say; then a lock's lease alone says whether its holder still runs)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}:{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return ""


@dataclass(frozen=True)
class Holder:
    """What a lock record says: who holds the lock, since and until when."""

    host: str
    pid: int
    run: str
    start: float
    expires: float
    token: str
    machine: str = ""
    #: In a run's record (:attr:`Kind.RUN`): it is alone on the cache and takes no locks.
    solo: bool = False

    @property
    def expired(self) -> bool:
        return time.time() > self.expires

    @property
    def live(self) -> bool:
        """Whether the lock still holds: its lease runs, and, when the holder is a process
        of this machine (same boot and process namespace), that process exists. So a run
        killed here frees its Tasks at once; one killed elsewhere when its lease runs out.
        """
        if self.expired:
            return False
        if not self.machine or self.machine != machine():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # another user's process
        return True

    @property
    def where(self) -> str:
        """``host:pid``, for messages."""
        return f"{self.host}:{self.pid}"

    def to_bytes(self) -> bytes:
        # By hand: dataclasses.asdict costs more than the rest of taking a lock.
        fields = {
            "host": self.host,
            "pid": self.pid,
            "run": self.run,
            "start": self.start,
            "expires": self.expires,
            "token": self.token,
            "machine": self.machine,
        }
        if self.solo:
            fields["solo"] = True
        return json.dumps(fields).encode()

    @classmethod
    def from_bytes(cls, record: bytes) -> Holder | None:
        """The holder a record names; None for a record that is not one. Fields this
        version does not know (written by a newer one) are left out."""
        try:
            fields = json.loads(record)
            return cls(**{k: v for k, v in fields.items() if k in _FIELDS})
        except (ValueError, TypeError, AttributeError):
            return None


_FIELDS = {f.name for f in dataclasses.fields(Holder)}


@dataclass
class Lease:
    """A lock this process holds."""

    key: str
    index: Index
    holder: Holder
    record: bytes
    length: float
    #: A Task's lock, or a run's record.
    kind: Kind = Kind.LOCK
    #: Set when the lease could not be renewed (it ran out and another run took it).
    lost: bool = False
    released: bool = False
    # A renewal and the release of one lease, on two threads, take turns: else a renewal
    # could write the record back just after the release removed it.
    _turn: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)

    def _renew(self, **changes: Any) -> None:
        with self._turn:
            if self.released or self.lost:
                return
            expires = time.time() + self.length
            holder = dataclasses.replace(self.holder, expires=expires, **changes)
            record = holder.to_bytes()
            if self.index.swap(self.kind, self.key, self.record, record, ttl=self.length):
                self.holder, self.record = holder, record
            else:
                self.lost = True

    def change(self, **changes: Any) -> None:
        """Rewrite the record with ``changes`` to its holder's fields (and a renewed
        lease), e.g. a run's ``solo``."""
        self._renew(**changes)


class Renewer:
    """Renews the leases of one process from one background thread.

    Most Tasks finish long before their lease needs renewing: adding and discarding a
    lease is a dict operation (atomic under the GIL), and the thread wakes every third
    of the shortest lease held (woken early by a shorter one).
    """

    def __init__(self) -> None:
        self._leases: dict[int, Lease] = {}
        self._start = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pause = float("inf")
        self._shorter = threading.Event()

    def add(self, lease: Lease) -> None:
        self._leases[id(lease)] = lease
        if lease.length / 3 < self._pause:
            with self._start:
                self._pause = min(self._pause, lease.length / 3)
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._loop, name="daskbio-leases", daemon=True
                    )
                    self._thread.start()
                self._shorter.set()

    def discard(self, lease: Lease) -> None:
        self._leases.pop(id(lease), None)

    def _loop(self) -> None:
        while True:
            self._shorter.wait(self._pause)
            self._shorter.clear()
            leases = list(self._leases.values())
            self._pause = min((x.length / 3 for x in leases), default=self._pause)
            now = time.time()
            for lease in leases:
                if lease.holder.expires - now > lease.length * 2 / 3:
                    continue
                try:
                    lease._renew()
                except OSError:
                    # A cache briefly unreachable: try again at the next turn, while
                    # the lease still runs.
                    continue
                except Exception as e:
                    lease.lost = True
                    if not sys.is_finalizing():
                        warnings.warn(
                            f"the lock of Task {lease.key} could not be renewed ({e!r}): "
                            "another run may compute it too once its lease runs out",
                            RuntimeWarning,
                            stacklevel=1,
                        )
                if lease.lost:
                    self.discard(lease)


@functools.cache
def renewer() -> Renewer:
    """The process's renewer: one thread for all its leases, on every cache."""
    return Renewer()


def _forked() -> None:
    # A forked child has the parent's renewer but not its thread, and another pid.
    renewer.cache_clear()
    _process.cache_clear()


os.register_at_fork(after_in_child=_forked)


def take(index: Index, key: str, run: str, length: float) -> Lease | None:
    """Lock ``key`` for this process, renewed until :func:`release`.

    Parameters
    ----------
    index : Index
        Where the lock record goes (``Kind.LOCK``).
    key : str
        The Task's hash.
    run : str
        The id of the run taking it (shown by ``daskbio status``).
    length : float
        Seconds the lease lasts unless renewed.

    Returns
    -------
    Lease or None
        None when another holds the lock; a lock that no longer holds
        (:attr:`Holder.live`) is taken over.

    Examples
    --------
    >>> from daskbio.cache.memory import MemoryIndex
    >>> index = MemoryIndex()
    >>> lease = take(index, "ab" * 16, "run1", 60)
    >>> take(index, "ab" * 16, "run2", 60) is None
    True
    >>> release(lease)
    >>> holders(index)
    {}
    """
    now = time.time()
    pid, secret, count = _process()
    holder = Holder(host(), pid, run, now, now + length, f"{secret}-{next(count)}", machine())
    record = holder.to_bytes()
    # A second attempt only when the lock was released between the create and the read.
    for _ in range(2):
        if index.create(Kind.LOCK, key, record, ttl=length):
            break
        try:
            found = index.get(Kind.LOCK, key)
        except KeyError:
            continue
        seen = Holder.from_bytes(found)
        # A record that names no holder is debris (no backend shows one half written).
        if seen is not None and seen.live:
            return None
        if not index.swap(Kind.LOCK, key, found, record, ttl=length):
            return None
        log.info(
            "took over the lock of %s from %s", key, seen.where if seen else "a damaged record"
        )
        break
    else:
        return None
    lease = Lease(key, index, holder, record, length)
    renewer().add(lease)
    return lease


def release(lease: Lease) -> None:
    """Give the lock of ``lease`` up (after the commit, or the failure record, is
    written); nothing if it was lost to another run meanwhile."""
    renewer().discard(lease)
    with lease._turn:
        lease.released = True
        if lease.lost:
            return
        if time.time() < lease.holder.expires - lease.length / 4:
            # Nobody may take over a lease with this much left: no need to compare.
            lease.index.remove(lease.kind, lease.key)
        else:
            lease.index.swap(lease.kind, lease.key, lease.record, None)


def register(index: Index, run: str, length: float, solo: bool) -> Lease:
    """Record that the run ``run`` computes Tasks on the cache of ``index`` (alone and
    without locks, when ``solo``), renewed like a lock until :func:`release`."""
    now = time.time()
    pid, secret, count = _process()
    holder = Holder(host(), pid, run, now, now + length, f"{secret}-{next(count)}", machine(), solo)
    lease = Lease(run, index, holder, holder.to_bytes(), length, Kind.RUN)
    index.put(Kind.RUN, run, lease.record)
    renewer().add(lease)
    return lease


def runs(index: Index) -> dict[str, Holder]:
    """The runs computing Tasks on the cache now (their records whose lease holds)."""
    found = _holders(index, Kind.RUN, list(index.list(Kind.RUN)))
    return {name: holder for name, holder in found.items() if holder.live}


def holders(index: Index, keys: set[str] | None = None) -> dict[str, Holder]:
    """Who holds the locks of ``keys`` (every lock when None), dead holders included
    (see :attr:`Holder.live`), read in one batch."""
    locked = index.list(Kind.LOCK) if keys is None else index.contains(Kind.LOCK, keys)
    return _holders(index, Kind.LOCK, list(locked))


def _holders(index: Index, kind: Kind, keys: list[str]) -> dict[str, Holder]:
    """The holders the records of ``kind`` of ``keys`` name, read in one batch."""
    found = {}
    with index.prefetched(kind, keys):
        for key in keys:
            try:
                holder = Holder.from_bytes(index.get(kind, key))
            except KeyError:
                continue
            if holder is not None:
                found[key] = holder
    return found


def remove_dead(index: Index, dry_run: bool = False) -> dict[str, Holder | None]:
    """Remove every lock that no longer holds (see :attr:`Holder.live`), and the claims
    of swaps that processes killed mid-swap left.

    Returns
    -------
    dict
        The holder each removed lock named, by key (None for a record naming none).
    """
    removed: dict[str, Holder | None] = {}
    for key in index.list(Kind.LOCK):
        try:
            record = index.get(Kind.LOCK, key)
        except KeyError:
            continue
        holder = Holder.from_bytes(record)
        if holder is not None and holder.live:
            continue
        if dry_run or index.swap(Kind.LOCK, key, record, None):
            removed[key] = holder
    if not dry_run:
        for claim in index.list(Kind.CLAIM):
            if claim_is_stale(index, claim):
                index.remove(Kind.CLAIM, claim)
    return removed
