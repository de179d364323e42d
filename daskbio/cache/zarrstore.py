"""A store inside any Zarr v3 store: a local folder, memory, or a URL fsspec can open."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from daskbio.cache.filesystem import SHARD
from daskbio.cache.store import ARRAY, HEADER_BYTES, Store


class ZarrStore(Store):
    """Entries and array results kept in a Zarr store, with the filesystem store's layout
    (``<first two hex digits>/<hash>``, arrays as ``<hash>.zarr`` groups).

    Use it to keep a cache wherever Zarr can write: an object store (``s3://...`` with
    ``s3fs`` installed), a shared filesystem through fsspec, or memory. Whether a single
    write is atomic depends on the Zarr store (object stores and Zarr's ``LocalStore`` are);
    a torn entry is still never served, as its checksum fails and it is recomputed.

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
        self.location = str(store)
        if isinstance(store, zarr.storage.LocalStore):
            self.folder = Path(store.root).absolute()

    def __reduce__(self) -> tuple:
        return (type(self), (self.zarr_store,))

    @staticmethod
    def _key(name: str) -> str:
        return f"{name[:SHARD]}/{name}"

    def _run(self, coroutine: Any) -> Any:
        from zarr.core.sync import sync

        return sync(coroutine)

    def _read(self, name: str, header_only: bool = False) -> bytes:
        from zarr.abc.store import RangeByteRequest
        from zarr.core.buffer import default_buffer_prototype

        part = RangeByteRequest(0, HEADER_BYTES) if header_only else None
        buffer = self._run(self.zarr_store.get(self._key(name), default_buffer_prototype(), part))
        if buffer is None:
            raise KeyError(name)
        return buffer.to_bytes()

    def _write(self, name: str, data: bytes) -> None:
        from zarr.core.buffer import default_buffer_prototype

        buffer = default_buffer_prototype().buffer.from_bytes(data)
        self._run(self.zarr_store.set(self._key(name), buffer))

    def _delete(self, name: str) -> int:
        key = self._key(name)
        try:
            size = self._run(self.zarr_store.getsize(key))
        except FileNotFoundError:
            return 0
        self._run(self.zarr_store.delete(key))
        return size

    def _names(self, prefix: str = "") -> Iterable[str]:
        async def listing() -> list[str]:
            if len(prefix) >= SHARD:
                shards = [prefix[:SHARD]]
            else:
                shards = [s async for s in self.zarr_store.list_dir("") if len(s) == SHARD]
            # Names outside their hash's shard are Zarr's own (the implicit groups'
            # zarr.json) and ".partial" ones its writes in progress.
            return [
                n
                for shard in shards
                async for n in _children(self.zarr_store, shard)
                if n.startswith(shard) and not n.endswith(".partial")
            ]

        return [n for n in self._run(listing()) if n.startswith(prefix)]

    def _array_store(self, key: str) -> Any:
        from zarr.storage import StorePath

        return StorePath(self.zarr_store, self._key(key) + ARRAY)

    def _array_bytes(self, key: str) -> int:
        return self._run(self.zarr_store.getsize_prefix(self._key(key) + ARRAY))

    def _delete_array(self, key: str) -> int:
        freed = self._array_bytes(key)
        if freed:
            self._run(self.zarr_store.delete_dir(self._key(key) + ARRAY))
        return freed


async def _children(store: Any, shard: str) -> AsyncIterator[str]:
    try:
        async for name in store.list_dir(shard):
            yield name
    except FileNotFoundError:
        return
