"""A store inside any Zarr v3 store: a local folder, memory, or a URL fsspec can open."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from daskbio.cache.index import FOLDERS, SUFFIXES, Index, Kind, record_name
from daskbio.cache.payloads import SHARD, Payloads, children, run_sync
from daskbio.cache.store import Store


class ZarrIndex(Index):
    """Records as keys of a Zarr store, in the filesystem store's layout.

    Whether a single write is atomic depends on the Zarr store (object stores and Zarr's
    ``LocalStore`` are); a torn entry is still never served, as its signature fails. So
    does :meth:`create`: exclusive where the store's ``set_if_not_exists`` is (Zarr's
    ``LocalStore``), only nearly so on stores that look before they write.
    """

    def __init__(self, store: Any) -> None:
        self.store = store

    def __reduce__(self) -> tuple:
        return (type(self), (self.store,))

    def __repr__(self) -> str:
        return f"ZarrIndex({self.store})"

    @staticmethod
    def _key(kind: Kind, key: str) -> str:
        return record_name(kind, key, SHARD)

    def describe(self, kind: Kind, key: str) -> str:
        return f"{self.store}/{self._key(kind, key)}"

    def get(self, kind: Kind, key: str, head: int | None = None) -> bytes:
        from zarr.abc.store import RangeByteRequest
        from zarr.core.buffer import default_buffer_prototype

        part = RangeByteRequest(0, head) if head is not None else None
        buffer = run_sync(self.store.get(self._key(kind, key), default_buffer_prototype(), part))
        if buffer is None:
            raise KeyError(key)
        return buffer.to_bytes()

    def put(self, kind: Kind, key: str, data: bytes) -> None:
        from zarr.core.buffer import default_buffer_prototype

        buffer = default_buffer_prototype().buffer.from_bytes(data)
        run_sync(self.store.set(self._key(kind, key), buffer))

    def create(self, kind: Kind, key: str, data: bytes, ttl: float | None = None) -> bool:
        from zarr.core.buffer import default_buffer_prototype

        # Zarr's set_if_not_exists does not say whether it wrote; ``data`` is unique to
        # the caller (see Index.create), so the record there now tells.
        buffer = default_buffer_prototype().buffer.from_bytes(data)
        run_sync(self.store.set_if_not_exists(self._key(kind, key), buffer))
        try:
            return self.get(kind, key) == data
        except KeyError:
            return False

    def remove(self, kind: Kind, key: str) -> int:
        name = self._key(kind, key)
        try:
            size = run_sync(self.store.getsize(name))
        except FileNotFoundError:
            return 0
        run_sync(self.store.delete(name))
        return size

    def list(self, kind: Kind, prefix: str = "") -> Iterable[str]:
        async def listing() -> list[str]:
            if kind in FOLDERS:
                found = [n async for n in children(self.store, FOLDERS[kind])]
                return [n for n in found if not n.endswith(".partial")]
            if len(prefix) >= SHARD:
                shards = [prefix[:SHARD]]
            else:
                shards = [s async for s in children(self.store, "") if len(s) == SHARD]
            suffix = SUFFIXES[kind]
            found = []
            for shard in shards:
                async for n in children(self.store, shard):
                    # Names outside their shard are Zarr's own (implicit groups' zarr.json);
                    # ".partial" ones are its writes in progress.
                    if not n.startswith(shard) or n.endswith(".partial"):
                        continue
                    if suffix and n.endswith(suffix):
                        found.append(n[: -len(suffix)])
                    elif not suffix and "." not in n:
                        found.append(n)
            return found

        return [n for n in run_sync(listing()) if n.startswith(prefix)]


class ZarrStore(Store):
    """The cache inside a Zarr store: an object store (``s3://...`` with ``s3fs``
    installed), a shared filesystem through fsspec, or memory.

    Parameters
    ----------
    store : zarr.abc.store.Store, str or path
        A Zarr store, a URL (``"memory://cache"``, ``"s3://bucket/cache"``, ...) opened
        with ``zarr.storage.FsspecStore.from_url``, or a local folder (also as a
        ``file://`` URL).

    Examples
    --------
    >>> import zarr
    >>> store = ZarrStore(zarr.storage.MemoryStore())
    >>> _ = store.save("ab" * 16, {"a": 1})
    >>> store.load("ab" * 16)
    {'a': 1}
    """

    def __init__(self, store: Any) -> None:
        import urllib.parse

        import zarr.storage

        if isinstance(store, str) and store.startswith("file://"):
            # Zarr's own LocalStore makes folders as needed and writes atomically.
            path = urllib.parse.unquote(store[len("file://") :])
            store = zarr.storage.LocalStore(os.path.abspath(path))
        elif isinstance(store, str) and "://" in store:
            store = zarr.storage.FsspecStore.from_url(store)
        elif isinstance(store, (str, os.PathLike)):
            # Absolute, so that workers running in another folder find the same store.
            store = zarr.storage.LocalStore(os.path.abspath(store))
        elif not isinstance(store, zarr.abc.store.Store):
            raise TypeError(
                f"store must be a Zarr store, a URL or a folder, got {type(store).__name__}"
            )
        self.zarr_store = store
        super().__init__(ZarrIndex(store), Payloads(store), None, str(store))
        if isinstance(store, zarr.storage.LocalStore):
            self.folder = Path(store.root).absolute()

    def __reduce__(self) -> tuple:
        return (type(self), (self.zarr_store,))
