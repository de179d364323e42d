"""Locks with leases: one per Task key, so that runs sharing a cache compute each Task once.

A lock record says who holds it (host, pid, run), since when, and until when. The holder's
process renews it while the Task runs (array writes included) and removes it when the
result is committed or the Task has failed. A holder that dies (SIGKILL, a lost node)
stops renewing: once its lease has run out, the next run that needs the Task takes the
lock over. Locks only save work: results are content-addressed and committed atomically,
so a Task computed twice (a holder paused past its lease) is still right.

Leases are compared with the wall clock of whoever reads them: machines sharing a cache
must keep their clocks within a fraction of the lease (NTP does).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import socket
import threading
import time
from dataclasses import dataclass

from daskbio.cache.index import Index, Kind
from daskbio.cache.signing import token

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
def _host() -> str:
    return socket.gethostname()


@dataclass(frozen=True)
class Holder:
    """What a lock record says: who holds the lock, since and until when."""

    host: str
    pid: int
    run: str
    start: float
    expires: float
    token: str

    @property
    def expired(self) -> bool:
        return time.time() > self.expires

    @property
    def live(self) -> bool:
        """Whether the lock still holds: its lease runs, and, when the holder is a process
        of this machine, that process exists (a run killed here frees its Tasks at once,
        not after its lease; one killed elsewhere frees them when the lease runs out)."""
        if self.expired:
            return False
        if self.host != _host():
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
        }
        return json.dumps(fields).encode()

    @classmethod
    def from_bytes(cls, record: bytes) -> Holder | None:
        """The holder a record names; None for a record that is not one (half written)."""
        try:
            return cls(**json.loads(record))
        except (ValueError, TypeError):
            return None


@dataclass
class Lease:
    """A lock this process holds."""

    key: str
    index: Index
    holder: Holder
    record: bytes
    length: float
    #: Set when the lease could not be renewed (it ran out and another run took it).
    lost: bool = False

    def _renew(self) -> None:
        holder = dataclasses.replace(self.holder, expires=time.time() + self.length)
        record = holder.to_bytes()
        if self.index.swap(Kind.LOCK, self.key, self.record, record, ttl=self.length):
            self.holder, self.record = holder, record
        else:
            self.lost = True


class Renewer:
    """Renews the leases of one process from one background thread.

    Most Tasks finish long before their lease needs renewing: adding and discarding a
    lease is a dict operation (atomic under the GIL), and the thread wakes every third
    of the shortest lease it has seen (woken early only by a shorter one).
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
            now = time.time()
            for lease in list(self._leases.values()):
                if lease.holder.expires - now > lease.length * 2 / 3:
                    continue
                try:
                    lease._renew()
                except OSError:
                    # A cache briefly unreachable: try again at the next turn, while
                    # the lease still runs.
                    continue
                except Exception:
                    # The store cannot be used any more (the interpreter is exiting):
                    # the lease will run out, as its holder's would.
                    lease.lost = True
                    self.discard(lease)


@functools.cache
def renewer() -> Renewer:
    """The process's renewer: one thread for all its leases, on every cache."""
    return Renewer()


def take(index: Index, key: str, run: str, length: float) -> Lease | None:
    """Lock ``key`` for this process (taking over an expired lease); None if another
    holds it."""
    now = time.time()
    holder = Holder(_host(), os.getpid(), run, now, now + length, token(8))
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
        break
    else:
        return None
    lease = Lease(key, index, holder, record, length)
    renewer().add(lease)
    return lease


def release(lease: Lease) -> None:
    """Give the lock up (after the commit, or the failure record, is written)."""
    renewer().discard(lease)
    if lease.lost:
        return
    if time.time() < lease.holder.expires - lease.length / 4:
        lease.index.remove(Kind.LOCK, lease.key)
    else:
        lease.index.swap(Kind.LOCK, lease.key, lease.record, None)


def holders(index: Index, keys: set[str] | None = None) -> dict[str, Holder]:
    """Who holds the locks of ``keys`` (every lock when None), expired ones included."""
    locked = list(index.list(Kind.LOCK) if keys is None else index.contains(Kind.LOCK, keys))
    found = {}
    with index.prefetched(Kind.LOCK, locked):
        for key in locked:
            try:
                holder = Holder.from_bytes(index.get(Kind.LOCK, key))
            except KeyError:
                continue
            if holder is not None:
                found[key] = holder
    return found


def remove_expired(index: Index) -> int:
    """Remove every lock that no longer holds (see :attr:`Holder.live`); how many."""
    removed = 0
    for key in index.list(Kind.LOCK):
        try:
            record = index.get(Kind.LOCK, key)
        except KeyError:
            continue
        holder = Holder.from_bytes(record)
        if holder is None or not holder.live:
            removed += index.swap(Kind.LOCK, key, record, None)
    return removed
