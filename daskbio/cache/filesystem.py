"""The embedded default store: a folder of files, sharded by hash prefix.

::

    cache/3f/3fa2c1...e9          an entry (signed metadata, and the pickle if any)
    cache/3f/3fa2c1...e9.failed   the last failure of that Task
    cache/3f/3fa2c1...e9.lock     who is computing it
    cache/3f/3fa2c1...e9.zarr/    its payload folder (arrays; see daskbio.cache.arrays)
    cache/code/<function>-<code>  "results of this function were computed by this code"
    cache/inputs/<function>       "results of this function recorded input files"

Folders and files are made owner-only (0700 and 0600) whatever the umask, or group
readable and writable with the Dask config key ``daskbio.cache-access: group``
(docs/security.md).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from daskbio.cache.errors import CacheUnavailable
from daskbio.cache.index import FOLDERS, SUFFIXES, Index, Kind, record_name
from daskbio.cache.payloads import SHARD, SUFFIX, Payloads
from daskbio.cache.signing import token
from daskbio.cache.store import Store


def access_modes() -> tuple[int, int]:
    """The modes of new cache folders and files: owner-only, or shared with the group
    (setgid folders, so files keep the group) under ``daskbio.cache-access: group``."""
    from daskbio import config

    access = config.get("daskbio.cache-access")
    if access == "group":
        return 0o2770, 0o660
    if access != "owner":
        raise ValueError(f"daskbio.cache-access must be 'owner' or 'group', got {access!r}")
    return 0o700, 0o600


def make_folder(path: str, mode: int) -> None:
    """Create ``path`` (and missing parents inside the cache) with exactly ``mode``."""
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        return
    except FileNotFoundError:
        make_folder(os.path.dirname(path), mode)
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, mode)
    os.chmod(path, mode)


#: Records kept as symbolic links whose target is the record: made whole by one call, so
#: never seen empty or half written, and cheap (locks are taken and given up per Task).
#: Only for small records (a link's target holds up to 4 KiB).
LINKED = frozenset({Kind.LOCK, Kind.CLAIM})


class FileIndex(Index):
    """Records as files under ``root`` (see the module's docstring for the layout).

    Each file is written under a hidden temporary name in its folder and renamed into
    place, so a process killed at any instant leaves the whole record or none; both work
    on the POSIX filesystems clusters share. Locks and claims (:data:`LINKED`) are
    symbolic links instead, whose target is the record.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()
        self.location = str(self.root)
        self._made: set[str] = set()
        self._modes: tuple[int, int] | None = None
        # Temporary names: a secret part nobody can guess, and a count that keeps the
        # names of this object's writes apart (itertools.count is atomic in CPython).
        self._secret = token(8)
        self._count = itertools.count()

    def __reduce__(self) -> tuple:
        return (type(self), (self.root,))

    def __repr__(self) -> str:
        return f"FileIndex({self.location!r})"

    def _path(self, kind: Kind, key: str) -> str:
        if kind is Kind.ENTRY:  # the hot path: every Task's commit and load
            return os.path.join(self.location, key[:SHARD], key)
        return os.path.join(self.location, record_name(kind, key, SHARD))

    def describe(self, kind: Kind, key: str) -> str:
        return self._path(kind, key)

    def modes(self) -> tuple[int, int]:
        if self._modes is None:
            self._modes = access_modes()
        return self._modes

    def get(self, kind: Kind, key: str, head: int | None = None) -> bytes:
        if kind in LINKED:
            try:
                return os.fsencode(os.readlink(self._path(kind, key)))
            except FileNotFoundError:
                raise KeyError(key) from None
            except OSError:
                return b""  # not a link: nothing daskbio wrote, so not a holder
        try:
            fd = os.open(self._path(kind, key), os.O_RDONLY)
        except FileNotFoundError:
            raise KeyError(key) from None
        try:
            if head is not None:
                return os.read(fd, head)
            with open(fd, "rb", closefd=False) as f:
                return f.read()
        finally:
            os.close(fd)

    def _made_folder(self, folder: str) -> None:
        if folder not in self._made:
            dir_mode = self.modes()[0]
            if not os.path.isdir(self.location):
                make_folder(self.location, dir_mode)
            make_folder(folder, dir_mode)
            self._made.add(folder)

    def _write_new(self, path: str, data: bytes) -> None:
        """Create the file ``path`` (it must not exist: ``FileExistsError``) holding ``data``."""
        self._made_folder(os.path.dirname(path))
        file_mode = self.modes()[1]
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, file_mode)
        try:
            if file_mode & 0o077:
                # A umask only takes bits away: owner-only needs nothing more, shared
                # modes are set whatever the umask.
                os.fchmod(fd, file_mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except BaseException:
            os.close(fd)
            os.unlink(path)
            raise
        os.close(fd)

    def _temporary(self, kind: Kind, key: str, data: bytes) -> tuple[str, str]:
        """Write ``data`` beside the record's place; return (temporary path, final path)."""
        final = self._path(kind, key)
        # A name nobody can guess, created anew: no file or link planted by someone
        # sharing the folder is ever written through.
        name = f".tmp-{os.path.basename(final)}-{self._secret}-{next(self._count)}"
        tmp = os.path.join(os.path.dirname(final), name)
        if kind in LINKED:
            self._made_folder(os.path.dirname(final))
            os.symlink(os.fsdecode(data), tmp)
        else:
            self._write_new(tmp, data)
        return tmp, final

    def put(self, kind: Kind, key: str, data: bytes) -> None:
        tmp, final = self._temporary(kind, key, data)
        try:
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def create(self, kind: Kind, key: str, data: bytes, ttl: float | None = None) -> bool:
        if kind not in LINKED:
            raise ValueError(f"FileIndex creates {sorted(k.value for k in LINKED)} records only")
        final = self._path(kind, key)
        self._made_folder(os.path.dirname(final))
        try:
            # symlink(2) makes the record whole in one step, and fails if the name
            # exists, atomically, on local disks and on NFS (one SYMLINK call). NFS may
            # report a link made when its reply was lost as existing: ``data`` is unique
            # to the caller (Index.create), so the link's target tells.
            os.symlink(os.fsdecode(data), final)
        except FileExistsError:
            try:
                return os.fsencode(os.readlink(final)) == data
            except OSError:
                return False
        return True

    def remove(self, kind: Kind, key: str) -> int:
        path = self._path(kind, key)
        if kind in LINKED:
            # Once per Task: no stat for the few bytes a link holds in its inode.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            return 0
        try:
            size = os.lstat(path).st_size
            os.unlink(path)
        except FileNotFoundError:
            return 0
        return size

    def _shards(self, prefix: str) -> list[str]:
        if len(prefix) >= SHARD:
            return [prefix[:SHARD]]
        try:
            return [e.name for e in os.scandir(self.root) if len(e.name) == SHARD and e.is_dir()]
        except FileNotFoundError:
            return []

    def list(self, kind: Kind, prefix: str = "") -> Iterable[str]:
        if kind in FOLDERS:
            try:
                names = os.listdir(os.path.join(self.location, FOLDERS[kind]))
            except FileNotFoundError:
                return []
            return [n for n in names if n.startswith(prefix) and not n.startswith(".")]
        suffix = SUFFIXES[kind]
        return [
            _key
            for name in self._listing(set(self._shards(prefix)))
            if (_key := _key_of(name, suffix)) is not None and _key.startswith(prefix)
        ]

    def _listing(self, shards: set[str]) -> set[str]:
        found: set[str] = set()
        for shard in shards:
            with contextlib.suppress(FileNotFoundError):
                found.update(os.listdir(os.path.join(self.location, shard)))
        return found

    def contains(self, kind: Kind, keys: set[str]) -> set[str]:
        if len(keys) < 32 or kind in FOLDERS:
            return {k for k in keys if os.path.lexists(self._path(kind, k))}
        suffix = SUFFIXES[kind]
        names = self._listing({k[:SHARD] for k in keys})
        return keys & {n[: len(n) - len(suffix)] for n in names if n.endswith(suffix)}

    def lookup(self, keys: set[str]) -> tuple[set[str], set[str]]:
        if len(keys) < 32:
            return super().lookup(keys)
        # One listing answers both questions: a failure record sits beside its entry.
        names = self._listing({k[:SHARD] for k in keys})
        n = len(SUFFIXES[Kind.FAILURE])
        # Failure records are few: look for them only among the names that are not keys.
        failed = {name[:-n] for name in names - keys if name.endswith(SUFFIXES[Kind.FAILURE])}
        return keys & names, keys & failed

    def sweep(self, older_than: float) -> int:
        freed = 0
        cutoff = time.time() - older_than
        for tmp in self.root.glob("*/.tmp-*"):
            with contextlib.suppress(FileNotFoundError):
                st = tmp.lstat()
                if st.st_mtime < cutoff:
                    tmp.unlink()
                    freed += st.st_size
        return freed


def _key_of(name: str, suffix: str) -> str | None:
    """The key a file named ``name`` is the record of, for records with ``suffix``."""
    if name.startswith("."):
        return None
    if suffix:
        return name[: -len(suffix)] if name.endswith(suffix) else None
    return None if "." in name else name


def _private_local_store(root: Path) -> Any:
    """A Zarr ``LocalStore`` at ``root`` whose files and folders get the cache's modes."""
    from zarr.storage import LocalStore

    class PrivateLocalStore(LocalStore):
        def __reduce__(self) -> tuple:
            return (_private_local_store, (self.root,))

        async def _open(self) -> None:
            # Before Zarr's own _open makes the cache folder with the umask's mode.
            make_folder(str(self.root), access_modes()[0])
            await super()._open()

        async def _set(self, key: str, value: Any, exclusive: bool = False) -> None:
            dir_mode, file_mode = access_modes()
            # The key's payload folder (``ab/<key>.zarr``) is made here, with its shard and
            # the cache folder if need be; Zarr makes the folders inside it.
            top = self.root.joinpath(*key.split("/")[:2])
            make_folder(str(top), dir_mode)
            await super()._set(key, value, exclusive)
            path = self.root / key
            os.chmod(path, file_mode)
            folder = path.parent
            while folder != top and stat_mode(folder) != dir_mode:
                os.chmod(folder, dir_mode)
                folder = folder.parent

    return PrivateLocalStore(root)


def stat_mode(path: Path) -> int:
    """The permission bits of ``path`` (with setgid)."""
    return os.stat(path).st_mode & 0o7777


class FileSystemStore(Store):
    """The cache in a folder (see :mod:`daskbio.cache.filesystem` for the layout).

    Parameters
    ----------
    root : str or path
        The cache folder; created on first write, owner-only.

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
        index = FileIndex(root)
        if index.root.exists() and not index.root.is_dir():
            raise CacheUnavailable(index.location, "it is a file, not a folder")
        self.root = self.folder = index.root
        opener = functools.partial(_private_local_store, self.root)
        super().__init__(index, Payloads(opener=opener), None, index.location)

    def __reduce__(self) -> tuple:
        return (type(self), (self.root,))


__all__ = ["SUFFIX", "FileIndex", "FileSystemStore", "access_modes"]
