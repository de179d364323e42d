"""The Store: a content-addressed cache of results keyed by Task hash, whose values are
always the ones that were stored, or refused.

A Store composes an :class:`~daskbio.cache.index.Index` (the records: entries, failures,
code versions, locks) and :class:`~daskbio.cache.payloads.Payloads` (arrays, and pickles
too large for their entry). The backends (:mod:`~daskbio.cache.filesystem`,
:mod:`~daskbio.cache.memory`, :mod:`~daskbio.cache.zarrstore`) choose the two; this
class holds everything else, once.

An entry is one record: a magic line, a signature line, one line of JSON metadata, then
the payload when it is inline. The metadata holds the payload's digest (or, for an array,
its manifest: the digest of every chunk), and the signature, an HMAC under a key kept
outside the cache (:mod:`~daskbio.cache.signing`), covers the metadata. Payloads are
written first and the entry commits them in one operation (ARCHITECTURE.md decision 5).
Anything that fails a check is removed, reported as :class:`CorruptEntry` naming the Task
and the file, and never unpickled.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import xxhash

from daskbio.cache import arrays, formats, leases
from daskbio.cache.errors import CacheWriteError, CorruptEntry, DamagedEntryWarning, ForeignEntry
from daskbio.cache.index import Index, Kind
from daskbio.cache.payloads import Payloads
from daskbio.cache.signing import Signer, digest, load_key, token

MAGIC = b"DASKBIO-ENTRY-2\n"
_OLD_MAGIC = b"DASKBIO-ENTRY-"
# Enough to hold the metadata of all but Tasks with thousands of dependencies or arrays
# with hundreds of chunks (those are read whole).
HEADER_BYTES = 4096
_T = TypeVar("_T")
#: Records read or removed together by the batched methods (``metadata_many`` ...).
BATCH = 1000


class Store:
    """Content-addressed storage for Task results.

    Parameters
    ----------
    index : Index
        Where the records are.
    payloads : Payloads
        Where arrays, and pickles larger than ``inline_limit``, are.
    inline_limit : int, optional
        Pickles up to this many bytes travel inside their entry; None: all of them (for an
        index and payloads in the same place, this saves a file per entry).
    location : str
        Where the store is, for messages.

    Examples
    --------
    >>> import zarr
    >>> from daskbio.cache.memory import MemoryIndex
    >>> store = Store(MemoryIndex(), Payloads(zarr.storage.MemoryStore()), inline_limit=8)
    >>> _ = store.save("ab" * 16, list(range(100)), {"name": "f"})
    >>> store.load("ab" * 16)[-1], store.metadata("ab" * 16)["name"]
    (99, 'f')
    """

    #: The local folder holding the store, if it is in one (None for memory, object stores).
    folder: Path | None = None

    def __init__(
        self,
        index: Index,
        payloads: Payloads,
        inline_limit: int | None = None,
        location: str = "",
    ) -> None:
        self.index = index
        self.payloads = payloads
        self.inline_limit = inline_limit
        self.location = location or repr(index)

    def __reduce__(self) -> tuple:
        return (Store, (self.index, self.payloads, self.inline_limit, self.location))

    @property
    def signer(self) -> Signer:
        """The signer (the key is read once per Store object, and never pickled)."""
        try:
            return self.__dict__["_signer"]
        except KeyError:
            return self.__dict__.setdefault("_signer", Signer(load_key()))

    # Entries -------------------------------------------------------------------------

    def has(self, key: str) -> bool:
        """Whether a result is stored under ``key``."""
        return bool(self.index.contains(Kind.ENTRY, {key}))

    def has_many(self, keys: Iterable[str]) -> set[str]:
        """The subset of ``keys`` that have a stored result, found in one pass."""
        return self.index.contains(Kind.ENTRY, set(keys))

    def lookup(self, keys: Iterable[str]) -> tuple[set[str], set[str]]:
        """Which of ``keys`` have a result, and which a failure record, in one pass."""
        return self.index.lookup(set(keys))

    def keys(self) -> list[str]:
        """Every key with a stored result."""
        return list(self.index.list(Kind.ENTRY))

    def save(
        self,
        key: str,
        value: Any,
        meta: dict[str, Any] | None = None,
        clear_failure: bool = True,
    ) -> int:
        """Store ``value`` under ``key`` with ``meta``; return the stored size in bytes.

        Numeric numpy arrays are written as Zarr, other values pickled (see
        :mod:`daskbio.cache.formats`). A dask array is written chunk by chunk by the graph
        layer (:mod:`daskbio.graph.chunked`) with :meth:`begin_array`,
        :meth:`write_chunk` and :meth:`commit_array`, not here. Any failure record of
        ``key`` is removed, unless ``clear_failure`` is False (the caller knows there is
        none: this saves a call per entry).

        Raises
        ------
        CacheWriteError
            When the cache cannot be written (full disk, read-only folder).
        """
        if arrays.is_dask_array(value):
            raise TypeError("a dask array is stored chunk by chunk: see daskbio.graph.chunked")
        header = dict(meta or {})
        with self._writing():
            if arrays.is_array(value):
                header["array"] = arrays.write_numpy(self.payloads.where(key), value, token(8))
                return self._commit(key, header, arrays.FORMAT, b"", clear_failure)
            fmt, payload = formats.dumps(value)
            return self._commit(key, header, fmt, payload, clear_failure)

    def begin_array(
        self, key: str, shape: tuple[int, ...], dtype: Any, chunks: tuple[int, ...], identity: str
    ) -> dict[tuple[int, ...], str]:
        """Prepare to write an array result of ``key`` chunk by chunk; return the chunks an
        interrupted write of the same array (same ``identity``: what makes the array and
        the code) left that still check out, with their digests (a resumed write skips
        them). Nothing of a partial write is trusted but chunks whose keyed tags match."""
        with self._writing():
            where = self.payloads.where(key)
            kept = arrays.open_for_resume(where, shape, dtype, chunks, identity, fresh=False)
            written = arrays.written_chunks(where, kept[1], self._chunk_tagger(key, identity))
            if not written:
                # Not even the metadata is ours for sure: start afresh.
                arrays.open_for_resume(where, shape, dtype, chunks, identity, fresh=True)
            return written

    def write_chunk(self, key: str, index: tuple[int, ...], block: Any, identity: str) -> str:
        """Write one chunk of the array begun with :meth:`begin_array`; its digest."""
        with self._writing():
            where = self.payloads.where(key)
            return arrays.write_chunk(where, index, block, self._chunk_tagger(key, identity))

    def commit_array(
        self,
        key: str,
        digests: dict[tuple[int, ...], str],
        identity: str,
        meta: dict[str, Any] | None = None,
        clear_failure: bool = True,
    ) -> int:
        """Commit the array written with :meth:`write_chunk` (``digests`` by chunk index),
        once every chunk's tag shows it was written by this write, under the metadata
        there is now."""
        header = dict(meta or {})
        with self._writing():
            where = self.payloads.where(key)
            tagger = self._chunk_tagger(key, identity)
            header["array"] = arrays.manifest(where, arrays.DATA, digests, token(8), tagger)
            return self._commit(key, header, arrays.FORMAT, b"", clear_failure)

    def _chunk_tagger(self, key: str, identity: str) -> arrays.Tagger:
        def tag(metadata_sha: str, chunk: str, sha: str) -> bytes:
            parts = (key, identity, metadata_sha, chunk, sha)
            mac = self.signer.sign(b"chunk", *(p.encode() for p in parts))
            return bytes.fromhex(mac)[: arrays.TAG_BYTES]

        return tag

    def _commit(
        self, key: str, header: dict[str, Any], fmt: str, payload: bytes, clear_failure: bool
    ) -> int:
        size = header["array"]["stored"] if fmt == arrays.FORMAT else len(payload)
        body = {"sha": digest(payload), "bytes": len(payload)}
        if self.inline_limit is not None and len(payload) > self.inline_limit:
            body["blob"] = self.payloads.write_blob(key, payload)
            payload = b""
        header.update(
            key=key,
            format=fmt,
            size=size,
            payload=body,
            written=time.time(),
            key_id=self.signer.key_id,
        )
        line = json.dumps(header, separators=(",", ":"), default=str).encode()
        tag = self.signer.sign(b"entry", key.encode(), line).encode()
        self.index.put(Kind.ENTRY, key, b"".join((MAGIC, tag, b"\n", line, b"\n", payload)))
        if clear_failure:
            self.index.remove(Kind.FAILURE, key)
        return size

    def _writing(self) -> _Writing:
        return _Writing(self.location)

    def _read_entry(
        self, key: str, header_only: bool = False, remove: bool = True, foreign: bool = True
    ) -> tuple[dict, bytes, bytes]:
        """The verified metadata of ``key``, its inline payload and its signature.

        A damaged entry is removed when ``remove``; one signed with another key only when
        ``foreign`` too (it is damaged for nobody: only a run about to compute it again
        replaces it).
        """
        blob = self.index.get(Kind.ENTRY, key, HEADER_BYTES if header_only else None)
        refuse = functools.partial(self._refuse, key, remove=remove)
        if not blob.startswith(MAGIC):
            why = "written by an older daskbio, without a signature"
            if not blob.startswith(_OLD_MAGIC):
                why = "not a daskbio entry"
            refuse(why, _claimed_name(blob), None)
        tag_end = blob.find(b"\n", len(MAGIC))
        end = blob.find(b"\n", tag_end + 1)
        if tag_end < 0 or end < 0:
            if header_only:
                return self._read_entry(key, False, remove, foreign)
            refuse("truncated metadata", "", None)
        tag, line = blob[len(MAGIC) : tag_end], blob[tag_end + 1 : end]
        try:
            header = json.loads(line)
        except (ValueError, RecursionError):
            refuse("unreadable metadata", "", tag)
        name = str(header.get("name", "")) if isinstance(header, dict) else ""
        if not isinstance(header, dict) or header.get("key") != key:
            refuse("metadata of another entry", name, tag)
        key_id = header.get("key_id")
        if key_id != self.signer.key_id:
            self._refuse(
                key,
                f"signed with another key (id {key_id}, yours is {self.signer.key_id}); "
                "to share one key for a shared cache see docs/security.md",
                name,
                tag,
                remove=remove and foreign,
                kind=ForeignEntry,
            )
        if not self.signer.valid(b"entry", key.encode(), line, tag):
            refuse("the signature does not match its metadata", name, tag)
        return header, (b"" if header_only else blob[end + 1 :]), tag

    def _refuse(
        self,
        key: str,
        why: str,
        name: str,
        tag: bytes | None,
        file: str = "",
        remove: bool = True,
        kind: type[CorruptEntry] = CorruptEntry,
    ) -> NoReturn:
        """Raise ``kind`` for ``key``'s entry; first, when ``remove``, remove the entry if it
        is still the one signed ``tag`` (not a newer commit) and say so with a
        :class:`DamagedEntryWarning` where it is found (on a worker, say)."""
        error = kind(key, why, name, file or self.index.describe(Kind.ENTRY, key))
        if remove:
            with contextlib.suppress(KeyError, OSError):
                current = self.index.get(Kind.ENTRY, key, HEADER_BYTES)
                if tag is None or current[len(MAGIC) : len(MAGIC) + len(tag)] == tag:
                    self.delete(key)
                    error.removed = True
                    warnings.warn(error.removal_notice(), DamagedEntryWarning, stacklevel=3)
        raise error

    def _array_of(self, key: str, header: dict, tag: bytes) -> tuple[Any, arrays.OnDamage]:
        """Where ``key``'s array is, and what refuses it when a read finds damage."""
        return self.payloads.where(key), functools.partial(
            self._on_array_damage, key, str(header.get("name", "")), tag
        )

    def _on_array_damage(self, key: str, name: str, tag: bytes, why: str, file: str) -> NoReturn:
        self._refuse(key, why, name, tag, self.payloads.describe(file) if file else "")

    def load(self, key: str) -> Any:
        """The value stored under ``key``, proven to be the one that was stored.

        A stored array larger than the ``daskbio.lazy-above`` setting (256 MiB by default)
        comes back as a lazy dask array over the stored Zarr, chunked as stored, whose
        chunks are checked as they are read.

        Raises
        ------
        KeyError
            When nothing is stored under ``key``.
        CorruptEntry
            When the entry is damaged, unsigned, or signed with another key (it is then
            removed, so that the Task is computed again).
        """
        header, payload, tag = self._read_entry(key)
        if header["format"] == arrays.FORMAT:
            where, on_damage = self._array_of(key, header, tag)
            # Named by the write, so graphs built on it change when it is rewritten.
            dask_name = f"cached-{key}-{header['array']['write']}"
            try:
                return arrays.load(where, header["array"], dask_name, on_damage)
            except (CorruptEntry, OSError, MemoryError):
                # Damage is refused, a store that cannot be read is not damage.
                raise
            except Exception as e:
                on_damage(f"cannot read the array: {e}", "")
        payload = self._checked_payload(key, header, payload, tag)
        try:
            return formats.loads(header["format"], payload)
        except (OSError, MemoryError):
            raise
        except Exception as e:
            # Signed and whole, yet not decodable here (a class gone from the pipeline):
            # unusable, so computed again.
            self._refuse(key, f"cannot decode: {e}", str(header.get("name", "")), tag)

    def verify(self, key: str) -> None:
        """Check everything stored for ``key``: signature, payload, every array file.

        Raises
        ------
        KeyError
            When nothing is stored under ``key``.
        CorruptEntry
            When something does not check out: the entry is then removed, unless it is a
            :class:`ForeignEntry` (signed with another key), which is only reported.
        """
        header, payload, tag = self._read_entry(key, foreign=False)
        if header["format"] == arrays.FORMAT:
            where, on_damage = self._array_of(key, header, tag)
            arrays.verify(where, header["array"], on_damage)
            arrays.open_verified(where, header["array"], on_damage)
        else:
            self._checked_payload(key, header, payload, tag)

    def _checked_payload(self, key: str, header: dict, inline: bytes, tag: bytes) -> bytes:
        """The payload of a (verified) entry, from the entry or its blob, proven to be the
        one its metadata names."""
        body, name = header["payload"], str(header.get("name", ""))
        payload = inline
        if "blob" in body:
            try:
                payload = self.payloads.read_blob(key, body["blob"])
            except KeyError:
                self._refuse(key, f"its payload {body['blob']} is missing", name, tag)
        if digest(payload) != body["sha"]:
            self._refuse(key, "the payload does not match its checksum", name, tag)
        return payload

    def metadata(self, key: str) -> dict[str, Any]:
        """The verified metadata stored with ``key`` (function, dependencies, times ...).

        Reading metadata removes nothing (``status`` and ``invalidate --dry-run`` only
        look); a damaged entry raises :class:`CorruptEntry` all the same.
        """
        return self._read_entry(key, header_only=True, remove=False)[0]

    def metadata_many(self, keys: list[str]) -> list[dict[str, Any] | None]:
        """The metadata of each of ``keys`` (None where there is none, or it is damaged),
        read in batches (one round trip each on an index a round trip away)."""

        def one(key: str) -> dict[str, Any] | None:
            try:
                return self.metadata(key)
            except (KeyError, CorruptEntry):
                return None

        return self._batched(Kind.ENTRY, keys, one, HEADER_BYTES)

    def _batched(
        self, kind: Kind, keys: Iterable[str], one: Callable[[str], _T], head: int | None = None
    ) -> list[_T]:
        """``one(key)`` for each of ``keys``, a batch at a time, each batch's records of
        ``kind`` read ahead (their first ``head`` bytes; whole when None)."""
        keys = list(keys)
        found: list[_T] = []
        for start in range(0, len(keys), BATCH):
            batch = keys[start : start + BATCH]
            with self.index.prefetched(kind, batch, head):
                found += [one(key) for key in batch]
        return found

    def size(self, key: str) -> int:
        """Bytes stored for ``key`` (entry, payload and failure record); 0 when none are."""
        total = self.payloads.size(key)
        for kind in (Kind.ENTRY, Kind.FAILURE):
            with contextlib.suppress(KeyError):
                total += len(self.index.get(kind, key))
        return total

    def size_many(self, keys: Iterable[str]) -> int:
        """The total of :meth:`size` over ``keys``, the records read in batches."""
        keys = list(keys)

        def length(kind: Kind) -> Callable[[str], int]:
            def one(key: str) -> int:
                try:
                    return len(self.index.get(kind, key))
                except KeyError:
                    return 0

            return one

        total = sum(self.payloads.size(key) for key in keys)
        for kind in (Kind.ENTRY, Kind.FAILURE):
            total += sum(self._batched(kind, keys, length(kind)))
        return total

    def delete(self, key: str) -> int:
        """Remove the entry, payload and failure record of ``key``; the bytes freed.

        The entry goes first, so a reader never finds an entry whose payload is half gone.
        """
        return self.delete_many([key])

    def delete_many(self, keys: Iterable[str]) -> int:
        """:meth:`delete` of each of ``keys``, the records removed in batches."""
        keys = list(keys)
        with self._writing():
            freed = self.index.remove_many(Kind.ENTRY, keys)
            freed += sum(self.payloads.delete(key) for key in keys)
            return freed + self.index.remove_many(Kind.FAILURE, keys)

    def tidy_many(self, keys: Iterable[str]) -> int:
        """:meth:`tidy` of each of ``keys``, their entries read in batches."""
        return sum(self._batched(Kind.ENTRY, keys, self.tidy, HEADER_BYTES))

    def tidy(self, key: str) -> int:
        """Remove what ``key``'s payload folder holds beside what its entry names (arrays
        of failed or concurrent writes, a finished write's chunk tags), or the whole folder
        of a key without an entry unless it holds a write to resume; the bytes freed."""
        try:
            header = self._read_entry(key, header_only=True, remove=False)[0]
        except KeyError:
            if arrays.resumable(self.payloads.where(key)):
                return 0
            return self.payloads.delete(key)
        except CorruptEntry:
            return 0
        keep = {arrays.METADATA}
        if header["format"] == arrays.FORMAT:
            keep.update(arrays.expected_files(header["array"]))
        if "blob" in header["payload"]:
            keep.add(header["payload"]["blob"])
        return self.payloads.remove_except(key, keep)

    def partial(self) -> set[str]:
        """Keys with a payload but no entry: writes that were interrupted (the next write
        of an array of the same key resumes them)."""
        started = self.payloads.keys()
        return started - self.index.contains(Kind.ENTRY, started)

    def sweep(self, older_than: float = 3600.0) -> int:
        """Remove what interrupted writes left behind (older than ``older_than`` seconds,
        so writes in progress are spared); return the bytes freed."""
        return self.index.sweep(older_than)

    # Failures ------------------------------------------------------------------------

    def record_failure(self, key: str, info: dict[str, Any]) -> None:
        """Remember that computing ``key`` failed (``status`` counts these)."""
        with self._writing():
            self.index.put(Kind.FAILURE, key, json.dumps(info, default=str).encode())

    def failures(self) -> set[str]:
        """Keys whose last computation failed and that have no result since."""
        return set(self.index.list(Kind.FAILURE))

    def failure_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """:meth:`failure` of each of ``keys`` that has a failure record, read in batches."""

        def one(key: str) -> tuple[str, dict[str, Any] | None]:
            try:
                return key, self.failure(key)
            except KeyError:
                return key, None

        return {k: info for k, info in self._batched(Kind.FAILURE, keys, one) if info is not None}

    def failure(self, key: str) -> dict[str, Any]:
        """What :meth:`record_failure` stored for ``key``."""
        return json.loads(self.index.get(Kind.FAILURE, key))

    # Records about functions -----------------------------------------------------------

    @staticmethod
    def _function_key(identity: str) -> str:
        return xxhash.xxh3_64_hexdigest(identity.encode())

    def _record_once(self, kind: Kind, identity: str, suffix: str = "") -> None:
        # Once per Store object: every Task of a function would write it again. (A store
        # is unpickled afresh for each Task on distributed workers, so there a record is
        # written once per Task: a small file, rewritten in place.)
        recorded = self.__dict__.setdefault("_recorded", set())
        if (kind, identity, suffix) not in recorded:
            with self._writing():
                self.index.put(kind, self._function_key(identity) + suffix, b"")
            recorded.add((kind, identity, suffix))

    def add_code_version(self, identity: str, fingerprint: str) -> None:
        """Record that results of the function ``identity`` were computed by code
        ``fingerprint``."""
        self._record_once(Kind.CODE, identity, f"-{fingerprint}")

    def code_versions(self, identity: str) -> set[str]:
        """The code fingerprints that results of the function ``identity`` were computed
        by: one listing answers "may any be stale?" without reading entries."""
        prefix = f"{self._function_key(identity)}-"
        return {n[len(prefix) :] for n in self.index.list(Kind.CODE, prefix)}

    def note_input_files(self, identity: str) -> None:
        """Record that results of the function ``identity`` recorded input files (so
        ``status`` reads their entries to see whether those files changed)."""
        self._record_once(Kind.INPUTS, identity)

    def reads_input_files(self, identity: str) -> bool:
        """Whether results of the function ``identity`` recorded input files."""
        return bool(self.index.contains(Kind.INPUTS, {self._function_key(identity)}))

    # Locks ---------------------------------------------------------------------------

    def lock(self, key: str, run: str, length: float | None = None) -> leases.Lease | None:
        """Take the lock of ``key`` for ``length`` seconds (:func:`leases.lease_length` by
        default), renewed from a background thread until :meth:`unlock`; None if another
        holds it. A lock that no longer holds (:attr:`leases.Holder.live`) is taken over."""
        with self._writing():
            return leases.take(self.index, key, run, length or leases.lease_length())

    def unlock(self, lease: leases.Lease) -> None:
        """Release a lock taken with :meth:`lock` (or a run's record)."""
        with self._writing():
            leases.release(lease)

    def register_run(self, run: str, solo: bool, length: float | None = None) -> leases.Lease:
        """Record that the run ``run`` computes Tasks here (alone, taking no locks, when
        ``solo``), until :meth:`unlock` of what this returns."""
        with self._writing():
            return leases.register(self.index, run, length or leases.lease_length(), solo)

    def runs(self) -> dict[str, leases.Holder]:
        """The runs computing Tasks here now, by run id."""
        return leases.runs(self.index)

    def holders(self, keys: Iterable[str] | None = None) -> dict[str, leases.Holder]:
        """Who holds the locks of ``keys`` (every lock when None), expired ones included."""
        return leases.holders(self.index, None if keys is None else set(keys))

    def remove_dead_locks(self, dry_run: bool = False) -> dict[str, leases.Holder | None]:
        """Remove the locks whose holders died (lease run out, or a process of this machine
        gone); the holder each named, by key. With ``dry_run``, only say which."""
        with self._writing():
            return leases.remove_dead(self.index, dry_run)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"


def _claimed_name(blob: bytes) -> str:
    """The function name an unverified record claims (for messages only), or ""."""
    for line in blob[:HEADER_BYTES].split(b"\n")[1:3]:
        with contextlib.suppress(ValueError, AttributeError):
            return str(json.loads(line).get("name", ""))
    return ""


class _Writing:
    """Inside it, an OSError is a :class:`CacheWriteError` naming the cache (a class, not
    a generator: every commit enters one)."""

    __slots__ = ("location",)

    def __init__(self, location: str) -> None:
        self.location = location

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, error: BaseException | None, tb: object) -> None:
        if isinstance(error, OSError) and not isinstance(error, CacheWriteError):
            raise CacheWriteError(self.location, error) from error
