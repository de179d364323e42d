"""An in-memory store, for tests and throw-away sessions (one process only)."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from daskbio.cache.index import Index, Kind
from daskbio.cache.payloads import Payloads
from daskbio.cache.store import Store


class MemoryIndex(Index):
    """Records in a dict; nothing survives the process, and nothing leaves it."""

    def __init__(self) -> None:
        self._records: dict[tuple[Kind, str], bytes] = {}
        self._guard = threading.Lock()

    def __reduce__(self) -> tuple:
        raise TypeError("a memory store lives in one process: use a FileSystemStore or a URL")

    def __repr__(self) -> str:
        return "MemoryIndex()"

    def get(self, kind: Kind, key: str, head: int | None = None) -> bytes:
        record = self._records[kind, key]
        return record if head is None else record[:head]

    def put(self, kind: Kind, key: str, data: bytes) -> None:
        with self._guard:
            self._records[kind, key] = bytes(data)

    def create(self, kind: Kind, key: str, data: bytes, ttl: float | None = None) -> bool:
        with self._guard:
            if (kind, key) in self._records:
                return False
            self._records[kind, key] = bytes(data)
            return True

    def swap(
        self, kind: Kind, key: str, old: bytes, new: bytes | None, ttl: float | None = None
    ) -> bool:
        with self._guard:
            if self._records.get((kind, key)) != old:
                return False
            if new is None:
                del self._records[kind, key]
            else:
                self._records[kind, key] = bytes(new)
            return True

    def remove(self, kind: Kind, key: str) -> int:
        with self._guard:
            record = self._records.pop((kind, key), None)
        return 0 if record is None else len(record)

    def list(self, kind: Kind, prefix: str = "") -> Iterable[str]:
        with self._guard:
            return [k for (c, k) in self._records if c is kind and k.startswith(prefix)]


class MemoryStore(Store):
    """Entries in memory; nothing survives the process.

    Examples
    --------
    >>> store = MemoryStore()
    >>> _ = store.save("ab" * 16, [1, 2])
    >>> store.has("ab" * 16), store.load("ab" * 16)
    (True, [1, 2])
    """

    def __init__(self) -> None:
        import zarr.storage

        super().__init__(MemoryIndex(), Payloads(zarr.storage.MemoryStore()), None, "memory")

    def __reduce__(self) -> tuple:
        return self.index.__reduce__()
