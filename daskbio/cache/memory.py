"""An in-memory store, for tests and throw-away sessions (one process only)."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from daskbio.cache.store import HEADER_BYTES, Store


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
        return [n for n in list(self._blobs) if n.startswith(prefix)]
