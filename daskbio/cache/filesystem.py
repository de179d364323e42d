"""The embedded default store: one file per entry in a folder, sharded by hash prefix."""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from daskbio.cache.store import ARRAY, FAILED, HEADER_BYTES, Store

SHARD = 2  # hex digits of the hash that name an entry's folder


class FileSystemStore(Store):
    """Entries as files under ``root/<first two hex digits>/<hash>``, array results as
    Zarr folders beside them (``<hash>.zarr/``).

    Each file is written under a hidden temporary name in the same folder and renamed
    into place, so a process killed at any instant leaves either the whole entry or
    none. Works on any POSIX filesystem a cluster's nodes share.

    Parameters
    ----------
    root : str or path
        The cache folder; created on first write.

    Examples
    --------
    >>> import tempfile
    >>> store = FileSystemStore(tempfile.mkdtemp())
    >>> store.save("0f" * 16, {"a": 1}) > 0
    True
    >>> store.load("0f" * 16)
    {'a': 1}
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = self.folder = Path(root).absolute()
        self.location = str(self.root)
        self._made: set[str] = set()

    def __reduce__(self) -> tuple:
        return (type(self), (self.root,))

    def _path(self, name: str) -> str:
        return os.path.join(self.location, name[:SHARD], name)

    def _read(self, name: str, header_only: bool = False) -> bytes:
        try:
            fd = os.open(self._path(name), os.O_RDONLY)
        except FileNotFoundError:
            raise KeyError(name) from None
        try:
            if header_only:
                return os.read(fd, HEADER_BYTES)
            with open(fd, "rb", closefd=False) as f:
                return f.read()
        finally:
            os.close(fd)

    def _write(self, name: str, data: bytes) -> None:
        shard = name[:SHARD]
        folder = os.path.join(self.location, shard)
        if shard not in self._made:
            os.makedirs(folder, exist_ok=True)
            self._made.add(shard)
        tmp = os.path.join(folder, f".tmp-{name}-{os.getpid()}-{threading.get_ident()}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.replace(tmp, os.path.join(folder, name))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def _array_store(self, key: str) -> Any:
        from zarr.storage import LocalStore

        return LocalStore(self._path(key) + ARRAY)

    def _array_bytes(self, key: str) -> int:
        total = 0
        for folder, _, files in os.walk(self._path(key) + ARRAY):
            for name in files:
                with contextlib.suppress(FileNotFoundError):
                    total += os.stat(os.path.join(folder, name)).st_size
        return total

    def _delete_array(self, key: str) -> int:
        freed = self._array_bytes(key)
        shutil.rmtree(self._path(key) + ARRAY, ignore_errors=True)
        return freed

    def _delete(self, name: str) -> int:
        path = self._path(name)
        try:
            size = os.stat(path).st_size
            os.unlink(path)
        except FileNotFoundError:
            return 0
        return size

    def _names(self, prefix: str = "") -> Iterable[str]:
        if len(prefix) >= SHARD:
            shards = [os.path.join(self.location, prefix[:SHARD])]
        else:
            try:
                shards = [e.path for e in os.scandir(self.root) if e.is_dir()]
            except FileNotFoundError:
                return
        for shard in shards:
            try:
                names = os.listdir(shard)
            except FileNotFoundError:
                continue
            for name in names:
                if name.startswith(prefix) and not name.startswith("."):
                    yield name

    def sweep(self, older_than: float = 3600.0) -> int:
        freed = 0
        cutoff = time.time() - older_than
        for tmp in self.root.glob("*/.tmp-*"):
            with contextlib.suppress(FileNotFoundError):
                st = tmp.stat()
                if st.st_mtime < cutoff:
                    tmp.unlink()
                    freed += st.st_size
        return freed

    def _contains_many(self, names: set[str]) -> set[str]:
        if len(names) < 32:
            return {n for n in names if os.path.exists(self._path(n))}
        return names & self._listing({n[:SHARD] for n in names})

    def lookup(self, keys: Iterable[str]) -> tuple[set[str], set[str]]:
        keys = set(keys)
        if len(keys) < 32:
            return super().lookup(keys)
        # One listing answers both questions: a failure record sits beside its entry.
        names = self._listing({k[:SHARD] for k in keys})
        n = len(FAILED)
        # Failure records are few: look for them only among the names that are not keys.
        failed = {name[:-n] for name in names - keys if name.endswith(FAILED)}
        return keys & names, keys & failed

    def _listing(self, shards: set[str]) -> set[str]:
        found: set[str] = set()
        for shard in shards:
            with contextlib.suppress(FileNotFoundError):
                found.update(os.listdir(os.path.join(self.location, shard)))
        return found
