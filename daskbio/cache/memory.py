"""An in-memory store, for tests and throw-away sessions (one process only)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from daskbio.cache.store import ARRAY, HEADER_BYTES, Store


class MemoryStore(Store):
    """Entries in a dict; nothing survives the process.

    Examples
    --------
    >>> store = MemoryStore()
    >>> _ = store.save("ab" * 16, [1, 2])
    >>> store.has("ab" * 16), store.load("ab" * 16)
    (True, [1, 2])
    """

    location = "memory"

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}
        self._arrays: dict[str, dict[str, Any]] = {}
        self._guard = threading.Lock()

    def _read(self, name: str, header_only: bool = False) -> bytes:
        blob = self._blobs[name]
        return blob[:HEADER_BYTES] if header_only else blob

    def _write(self, name: str, data: bytes) -> None:
        with self._guard:
            self._blobs[name] = bytes(data)

    def _delete(self, name: str) -> int:
        with self._guard:
            blob = self._blobs.pop(name, None)
        return 0 if blob is None else len(blob)

    def _names(self, prefix: str = "") -> Iterable[str]:
        names = list(self._blobs) + [k + ARRAY for k, group in list(self._arrays.items()) if group]
        return [n for n in names if n.startswith(prefix)]

    def _array_store(self, key: str) -> Any:
        from zarr.storage import MemoryStore

        with self._guard:
            return MemoryStore(self._arrays.setdefault(key, {}))

    def _array_bytes(self, key: str) -> int:
        return sum(len(chunk) for chunk in list(self._arrays.get(key, {}).values()))

    def _delete_array(self, key: str) -> int:
        freed = self._array_bytes(key)
        with self._guard:
            self._arrays.pop(key, None)
        return freed
