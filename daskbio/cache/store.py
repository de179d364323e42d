"""The Store interface: a content-addressed cache of results, keyed by Task hash.

A backend implements five byte-level primitives (``_read``, ``_write``, ``_delete``,
``_names`` and optionally ``_contains_many``) and three for array data (``_array_store``,
``_array_bytes``, ``_delete_array``); everything else — entry layout, checksums, failure
records — lives here, once. Backends know nothing of Tasks.

An entry is one blob: a magic line, one line of JSON metadata, then the payload. The
blob is written under a temporary name and renamed, so a reader sees a whole entry or
none (ARCHITECTURE.md decision 5). The metadata's checksum is verified on every load.
Numeric arrays are not in the blob: they are a Zarr group named ``<key>.zarr`` beside it
(see :mod:`daskbio.cache.arrays`), written first, and committed by the blob.
"""

from __future__ import annotations

import contextlib
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import xxhash

from daskbio.cache import arrays, formats

MAGIC = b"DASKBIO-ENTRY-1\n"
FAILED = ".failed"
ARRAY = ".zarr"
MARK = "mark."
# Enough to hold the metadata of all but Tasks with thousands of dependencies.
HEADER_BYTES = 4096


class CorruptEntry(Exception):
    """A cache entry failed its checksum or could not be decoded."""

    def __init__(self, key: str, why: str) -> None:
        super().__init__(f"cache entry {key} is corrupt ({why})")
        self.key = key
        self.why = why

    def __reduce__(self) -> tuple:
        return (type(self), (self.key, self.why))


class Store(ABC):
    """Content-addressed storage for Task results.

    Keys are Task hashes (hexadecimal strings). Subclasses provide the byte-level
    primitives; this class turns them into entries with metadata and checksums.
    """

    #: Where the store lives, for messages.
    location: str = ""
    #: The local folder holding the store, if it is in one (None for memory, object stores).
    folder: Path | None = None

    @property
    def _marked(self) -> set[str]:
        # Markers this process already wrote; not shipped to workers with the store.
        try:
            return self.__dict__["_marked_names"]
        except KeyError:
            return self.__dict__.setdefault("_marked_names", set())

    @abstractmethod
    def _read(self, name: str, header_only: bool = False) -> bytes:
        """The blob stored under ``name`` (at least its first HEADER_BYTES when
        ``header_only``); raise KeyError when there is none."""

    @abstractmethod
    def _write(self, name: str, data: bytes) -> None:
        """Store ``data`` under ``name`` atomically: readers see all of it or nothing."""

    @abstractmethod
    def _delete(self, name: str) -> int:
        """Remove ``name``; return the bytes freed (0 when it was absent)."""

    @abstractmethod
    def _names(self, prefix: str = "") -> Iterable[str]:
        """Every name stored (that starts with ``prefix``)."""

    @abstractmethod
    def _array_store(self, key: str) -> Any:
        """Where the Zarr group of ``key``'s array lives: anything ``zarr.open_group``
        accepts (a Zarr store, or a ``StorePath`` inside one)."""

    @abstractmethod
    def _array_bytes(self, key: str) -> int:
        """Bytes stored in ``key``'s Zarr group (0 when there is none)."""

    @abstractmethod
    def _delete_array(self, key: str) -> int:
        """Remove ``key``'s Zarr group; return the bytes freed (0 when it was absent)."""

    def _contains_many(self, names: set[str]) -> set[str]:
        return names.intersection(self._names())

    def has(self, key: str) -> bool:
        """Whether a result is stored under ``key``."""
        return bool(self._contains_many({key}))

    def has_many(self, keys: Iterable[str]) -> set[str]:
        """The subset of ``keys`` that have a stored result, found in one pass."""
        return self._contains_many(set(keys))

    def lookup(self, keys: Iterable[str]) -> tuple[set[str], set[str]]:
        """Which of ``keys`` have a result, and which a failure record, in one pass."""
        keys = set(keys)
        found = self._contains_many(keys | {k + FAILED for k in keys})
        n = len(FAILED)
        return found & keys, {f[:-n] for f in found if f.endswith(FAILED)}

    def save(
        self,
        key: str,
        value: Any,
        meta: dict[str, Any] | None = None,
        clear_failure: bool = True,
    ) -> int:
        """Store ``value`` under ``key`` with ``meta``; return the stored size in bytes.

        Numeric numpy and dask arrays are written as Zarr (a dask array chunk by chunk, by
        the workers, resuming an interrupted write of the same key); the entry commits
        once the whole array is written. Any failure record of ``key`` is removed, unless
        ``clear_failure`` is False (the caller knows there is none: this saves a
        file-system call per entry).
        """
        header = dict(meta or {})
        if arrays.is_dask_array(value) and self.has(key):
            # Committed already (a recomputation after a lost worker, or another run of
            # the same pipeline): rewriting it in place would expose a half-written array.
            return self.metadata(key)["size"]
        if arrays.is_array(value):
            fmt, payload = arrays.FORMAT, b""
            header["array"] = arrays.write(self._array_store(key), value, header.get("fingerprint"))
            size = header["array"]["stored"]
        else:
            fmt, payload = formats.dumps(value)
            size = len(payload)
        header.update(
            key=key,
            format=fmt,
            size=size,
            checksum=xxhash.xxh3_64_hexdigest(payload),
            written=time.time(),
        )
        self._write(key, _pack(header, payload))
        if clear_failure:
            self._delete(key + FAILED)
        return size

    def load(self, key: str) -> Any:
        """The value stored under ``key``.

        A stored array larger than the ``daskbio.lazy-above`` setting (256 MiB by default)
        comes back as a lazy dask array over the stored Zarr, chunked as stored.

        Raises
        ------
        KeyError
            When nothing is stored under ``key``.
        CorruptEntry
            When the stored bytes do not match their checksum.
        """
        blob = self._read(key)
        header, payload = _unpack(key, blob)
        if xxhash.xxh3_64_hexdigest(payload) != header.get("checksum"):
            raise CorruptEntry(key, "checksum mismatch")
        try:
            if header["format"] == arrays.FORMAT:
                # Zarr checks each chunk's CRC32C as it reads it: here for a numpy
                # result, in the computation that reads it for a lazy one.
                # Named by the write, so graphs built on it change when it is rewritten.
                name = f"cached-{key}-{xxhash.xxh3_64_hexdigest(str(header['written']).encode())}"
                return arrays.load(self._array_store(key), header["array"]["path"], name)
            return formats.loads(header["format"], payload)
        except Exception as e:
            raise CorruptEntry(key, f"cannot decode: {e}") from e

    def metadata(self, key: str) -> dict[str, Any]:
        """The metadata stored with ``key`` (function, dependencies, times, size ...)."""
        blob = self._read(key, header_only=True)
        try:
            return _unpack(key, blob, header_only=True)[0]
        except CorruptEntry:
            return _unpack(key, self._read(key))[0]

    def metadata_many(self, keys: list[str]) -> list[dict[str, Any] | None]:
        """The metadata of each of ``keys`` (None where there is no entry), in order."""

        def one(key: str) -> dict[str, Any] | None:
            try:
                return self.metadata(key)
            except (KeyError, CorruptEntry):
                return None

        return [one(k) for k in keys]

    def size(self, key: str) -> int:
        """Bytes stored for ``key`` (entry, array and failure record); 0 when none are."""
        total = self._array_bytes(key)
        for name in (key, key + FAILED):
            with contextlib.suppress(KeyError):
                total += len(self._read(name))
        return total

    def delete(self, key: str) -> int:
        """Remove the entry, array and failure record of ``key``; return the bytes freed.

        The entry goes first, so a reader never finds an entry whose array is half gone.
        """
        return self._delete(key) + self._delete_array(key) + self._delete(key + FAILED)

    def keys(self) -> list[str]:
        """Every key with a stored result."""
        return [n for n in self._names() if "." not in n]

    def partial(self) -> set[str]:
        """Keys with array data but no entry: array writes that were interrupted (the
        next write of the same key resumes them)."""
        n = len(ARRAY)
        started = {name[:-n] for name in self._names() if name.endswith(ARRAY)}
        return started - self._contains_many(started)

    def mark(self, name: str) -> None:
        """Leave an empty marker ``name`` (e.g. "this function was run with this code").

        Markers let a reader answer a question about many entries with one listing
        instead of reading every entry.
        """
        if name not in self._marked:
            self._write(MARK + name, b"")
            self._marked.add(name)

    def marks(self, prefix: str = "") -> set[str]:
        """The names of the markers that start with ``prefix``."""
        return {n[len(MARK) :] for n in self._names(MARK + prefix)}

    def sweep(self, older_than: float = 3600.0) -> int:
        """Remove what interrupted writes left behind (older than ``older_than`` seconds,
        so writes in progress are spared); return the bytes freed. Nothing by default."""
        return 0

    def record_failure(self, key: str, info: dict[str, Any]) -> None:
        """Remember that computing ``key`` failed (``status`` counts these)."""
        self._write(key + FAILED, json.dumps(info, default=str).encode())

    def failures(self) -> set[str]:
        """Keys whose last computation failed and that have no result since."""
        n = len(FAILED)
        return {name[:-n] for name in self._names() if name.endswith(FAILED)}

    def failure(self, key: str) -> dict[str, Any]:
        """What :meth:`record_failure` stored for ``key``."""
        return json.loads(self._read(key + FAILED))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"


def _pack(header: dict[str, Any], payload: bytes) -> bytes:
    line = json.dumps(header, separators=(",", ":"), default=str).encode()
    return b"".join((MAGIC, line, b"\n", payload))


def _unpack(key: str, blob: bytes, header_only: bool = False) -> tuple[dict[str, Any], bytes]:
    if not blob.startswith(MAGIC):
        raise CorruptEntry(key, "not a daskbio entry")
    end = blob.find(b"\n", len(MAGIC))
    if end < 0:
        raise CorruptEntry(key, "truncated header")
    try:
        header = json.loads(blob[len(MAGIC) : end])
    except ValueError as e:
        raise CorruptEntry(key, "unreadable header") from e
    payload = b"" if header_only else blob[end + 1 :]
    return header, payload
