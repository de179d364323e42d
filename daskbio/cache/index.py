"""The index of a cache: small records, by kind and key, with atomic commit and create.

A :class:`Store` keeps its records in an ``Index`` and its payloads (pickles, arrays) in a
:class:`~daskbio.cache.payloads.Payloads`; the two may live in different places (an index
in a database service, payloads on a shared filesystem or an object store). Backends
implement the few primitives below and know nothing of Tasks.
"""

from __future__ import annotations

import contextlib
import enum
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator

import xxhash

from daskbio.cache.signing import token


class Kind(enum.Enum):
    """What a record is."""

    #: A committed result: signed metadata, and the payload when it is small.
    ENTRY = "entry"
    #: What the last failed computation of a Task raised.
    FAILURE = "failure"
    #: "Results of this function were computed by this code" (an empty record).
    CODE = "code"
    #: "Results of this function recorded the state of input files" (an empty record).
    INPUTS = "inputs"
    #: "This Task is being computed by ..." (taken with :meth:`Index.create`).
    LOCK = "lock"
    #: "A swap of this record is under way" (see :meth:`Index.swap`), held for an instant.
    CLAIM = "claim"
    #: "A run is computing Tasks on this cache, and whether it takes locks" (a lease too).
    RUN = "run"


#: How the file-like backends lay records out: a Task's records beside each other in its
#: hash's shard (``3f/<key>``, ``3f/<key>.failed`` ...), records about functions in a
#: folder per kind.
SUFFIXES = {Kind.ENTRY: "", Kind.FAILURE: ".failed", Kind.LOCK: ".lock", Kind.CLAIM: ".claim"}

#: Seconds after which a swap's claim is what a process killed mid-swap left (a claim is
#: held for the instant of one swap), and is removed.
CLAIM_STALE = 30.0
FOLDERS = {Kind.CODE: "code", Kind.INPUTS: "inputs", Kind.RUN: "runs"}


def record_name(kind: Kind, key: str, shard: int = 2) -> str:
    """Where a record of ``kind`` and ``key`` lives in that layout (``/``-separated)."""
    if kind in FOLDERS:
        return f"{FOLDERS[kind]}/{key}"
    return f"{key[:shard]}/{key}{SUFFIXES[kind]}"


class Index(ABC):
    """Records by ``(kind, key)``. Keys are short strings of ``[0-9a-z-]``."""

    @abstractmethod
    def get(self, kind: Kind, key: str, head: int | None = None) -> bytes:
        """The record (its first ``head`` bytes at least, when given).

        Raises
        ------
        KeyError
            When there is no such record.
        """

    @abstractmethod
    def put(self, kind: Kind, key: str, data: bytes) -> None:
        """Store the record, replacing any: readers see the old or the new one, whole.

        This is the commit of an entry."""

    @abstractmethod
    def create(self, kind: Kind, key: str, data: bytes, ttl: float | None = None) -> bool:
        """Store the record only if there is none, atomically; whether it was created.

        ``data`` must be unique to the caller (a lease holds a random token): a backend
        that cannot tell whether its write won compares the record there with it.

        ``ttl`` is a hint for lock records: a backend that can expire records by itself
        (Redis) drops the record some time after that many seconds unless it is swapped
        for a new one. Others keep it; the record's own content says when it expires.
        """

    def swap(
        self, kind: Kind, key: str, old: bytes, new: bytes | None, ttl: float | None = None
    ) -> bool:
        """Replace the record by ``new`` (None: remove it) only if it is exactly ``old``;
        whether it was replaced.

        The leases of :mod:`daskbio.cache.leases` are renewed and taken over with it. This
        fallback, for backends that cannot compare and replace in one step, first takes a
        claim (a :attr:`Kind.CLAIM` record named after ``old``, made with :meth:`create`),
        so that of several callers swapping the same record one wins; backends that can
        override it.
        """
        claim = f"{key}-{xxhash.xxh64_hexdigest(old)}"
        if not self._claim(claim):
            return False
        try:
            if self.get(kind, key) != old:
                return False
            if new is None:
                self.remove(kind, key)
            else:
                self.put(kind, key, new)
            return True
        except KeyError:
            return False
        finally:
            self.remove(Kind.CLAIM, claim)

    def _claim(self, claim: str) -> bool:
        record = json.dumps({"time": time.time(), "token": token(8)}).encode()
        if self.create(Kind.CLAIM, claim, record):
            return True
        if not claim_is_stale(self, claim):
            return False
        # Left by a process killed mid-swap: it would block every later swap of the record.
        self.remove(Kind.CLAIM, claim)
        return self.create(Kind.CLAIM, claim, record)

    @abstractmethod
    def remove(self, kind: Kind, key: str) -> int:
        """Remove the record; the bytes freed (0 when there was none)."""

    @abstractmethod
    def list(self, kind: Kind, prefix: str = "") -> Iterable[str]:
        """The keys of every record of ``kind`` (that start with ``prefix``)."""

    def remove_many(self, kind: Kind, keys: Iterable[str]) -> int:
        """Remove the records of ``kind`` of every one of ``keys``; the bytes freed."""
        return sum(self.remove(kind, key) for key in keys)

    @contextlib.contextmanager
    def prefetched(self, kind: Kind, keys: list[str], head: int | None = None) -> Iterator[None]:
        """Inside it, :meth:`get` of ``keys``' records of ``kind`` may be answered from
        one batched read made on entering (their first ``head`` bytes at least; whole
        records when None). Backends whose reads are cheap (files) read nothing ahead;
        those a round trip away (Redis) do."""
        yield

    def contains(self, kind: Kind, keys: set[str]) -> set[str]:
        """The subset of ``keys`` that have a record of ``kind``, in one pass."""
        return keys.intersection(self.list(kind))

    def lookup(self, keys: set[str]) -> tuple[set[str], set[str]]:
        """Which ``keys`` have an entry, and which a failure record."""
        return self.contains(Kind.ENTRY, keys), self.contains(Kind.FAILURE, keys)

    def describe(self, kind: Kind, key: str) -> str:
        """Where the record is, for messages (a file's path where there is one)."""
        return f"{kind.value} {key} in {self!r}"

    def sweep(self, older_than: float) -> int:
        """Remove what interrupted writes left (older than ``older_than`` seconds); the
        bytes freed. Nothing for backends whose writes leave nothing behind."""
        return 0


def claim_is_stale(index: Index, claim: str) -> bool:
    """Whether the swap claim ``claim`` is older than :data:`CLAIM_STALE` (or unreadable)."""
    try:
        record = index.get(Kind.CLAIM, claim)
    except KeyError:
        return False
    try:
        made = float(json.loads(record)["time"])
    except (ValueError, TypeError, KeyError):
        return True
    return time.time() - made > CLAIM_STALE
