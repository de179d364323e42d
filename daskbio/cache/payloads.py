"""Where the payloads of a cache live: a folder of its own per key inside any Zarr store.

Arrays are Zarr groups there (:mod:`daskbio.cache.arrays`); pickles too large to travel
inside their entry are blobs beside them. Nothing here is trusted by itself: an entry
commits a payload by recording its digests, and a payload no entry names is a partial
write (resumed, or removed by ``cleanup``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from daskbio.cache.signing import token

SHARD = 2  # hex digits of the hash that name a key's folder
SUFFIX = ".zarr"


def run_sync(coroutine: Any) -> Any:
    from zarr.core.sync import sync

    return sync(coroutine)


class Payloads:
    """Payload folders ``<first two hex digits>/<key>.zarr`` inside the Zarr store ``store``.

    Examples
    --------
    >>> import zarr
    >>> payloads = Payloads(zarr.storage.MemoryStore())
    >>> name = payloads.write_blob("ab" * 16, b"large pickle")
    >>> payloads.read_blob("ab" * 16, name), payloads.keys()
    (b'large pickle', {'abababababababababababababababab'})
    """

    def __init__(self, store: Any = None, opener: Callable[[], Any] | None = None) -> None:
        self._store = store
        self._opener = opener

    @property
    def store(self) -> Any:
        """The Zarr store, opened on first use (importing Zarr costs a fully cached run
        more than the rest of it)."""
        if self._store is None:
            self._store = self._opener()
        return self._store

    def __reduce__(self) -> tuple:
        if self._store is None:
            return (type(self), (None, self._opener))
        return (type(self), (self._store,))

    @staticmethod
    def prefix(key: str) -> str:
        return f"{key[:SHARD]}/{key}{SUFFIX}"

    def where(self, key: str) -> Any:
        """The ``zarr.storage.StorePath`` of ``key``'s folder (what ``zarr.open_group``
        takes)."""
        from zarr.storage import StorePath

        return StorePath(self.store, self.prefix(key))

    def write_blob(self, key: str, data: bytes) -> str:
        """Store ``data`` in ``key``'s folder under a new name; return the name."""
        from zarr.core.buffer import default_buffer_prototype

        name = f"blob-{token(8)}"
        buffer = default_buffer_prototype().buffer.from_bytes(data)
        run_sync(self.store.set(f"{self.prefix(key)}/{name}", buffer))
        return name

    def read_blob(self, key: str, name: str) -> bytes:
        """The blob ``name`` of ``key``; KeyError when it is gone."""
        from zarr.core.buffer import default_buffer_prototype

        buffer = run_sync(self.store.get(f"{self.prefix(key)}/{name}", default_buffer_prototype()))
        if buffer is None:
            raise KeyError(name)
        return buffer.to_bytes()

    def size(self, key: str) -> int:
        """Bytes stored in ``key``'s folder (0 when there is none)."""
        try:
            return run_sync(self.store.getsize_prefix(self.prefix(key)))
        except FileNotFoundError:
            return 0

    def delete(self, key: str) -> int:
        """Remove ``key``'s folder; the bytes freed."""
        freed = self.size(key)
        if freed:
            run_sync(self.store.delete_dir(self.prefix(key)))
        return freed

    def remove_except(self, key: str, keep: set[str]) -> int:
        """Remove every file of ``key``'s folder whose name (relative to the folder) is
        not in ``keep``, and the subfolders that hold nothing kept; the bytes freed."""
        prefix = self.prefix(key) + "/"

        async def names() -> list[str]:
            return [n[len(prefix) :] async for n in self.store.list_prefix(prefix)]

        kept_tops = {name.split("/", 1)[0] for name in keep}
        doomed_tops: set[str] = set()
        freed = 0
        for name in run_sync(names()):
            if name in keep:
                continue
            freed += run_sync(self.store.getsize(prefix + name))
            top = name.split("/", 1)[0]
            if top in kept_tops or top == name:
                run_sync(self.store.delete(prefix + name))
            else:
                doomed_tops.add(top)
        for top in doomed_tops:
            # One folder at once: a local folder goes with its subfolders.
            run_sync(self.store.delete_dir(prefix + top))
        return freed

    def keys(self) -> set[str]:
        """The keys that have a payload folder."""

        async def listing() -> set[str]:
            shards = [s async for s in children(self.store, "") if len(s) == SHARD]
            return {
                name[: -len(SUFFIX)]
                for shard in shards
                async for name in children(self.store, shard)
                if name.endswith(SUFFIX) and name.startswith(shard)
            }

        return run_sync(listing())

    def describe(self, relative: str) -> str:
        """Where ``relative`` (a name inside the store) is, for messages: a file path for a
        local folder, else the store and the name."""
        root = getattr(self.store, "root", None)
        if root is not None:
            return f"{root}/{relative}"
        return f"{self.store}/{relative}"


async def children(store: Any, prefix: str) -> AsyncIterator[str]:
    try:
        async for name in store.list_dir(prefix):
            yield name
    except FileNotFoundError:
        return
