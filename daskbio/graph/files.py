"""Input files as Task arguments.

A plain path string is hashed as a string, so a Task reading it is not recomputed when
the file is overwritten. :class:`File` stands for the file's content instead: its hash is
the xxh3-128 digest of the bytes. For plain path strings, :func:`input_files` records the
size and modification time of the files they name, and :func:`changed_inputs` tells which
of them changed since, so ``run`` and ``status`` can warn without changing any hash.

Reading a large image to hash it on every ``daskbio run`` would cost as much as the run,
so a digest is remembered on disk (:func:`memo_folder`), one record per absolute path,
and trusted while the file's size, times, inode and device are unchanged.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import threading
from pathlib import Path, PurePath
from typing import Any

import xxhash

StatKey = tuple[int, int, int, int, int]

#: The stat fields a memo record must match, in the order of :data:`StatKey`. The change
#: time is in it because it cannot be set back: a rewrite followed by ``os.utime`` (or a
#: ``cp -p``, ``rsync -t``, ``tar x`` of other bytes) restores the mtime but not the ctime.
_FIELDS = ("size", "mtime_ns", "ctime_ns", "ino", "dev")

_BLOCK = 1 << 20
_RECENT = 4096
_NOT_PATHS = frozenset({int, float, bool, complex, bytes, type(None)})
# Longer strings are not file names (PATH_MAX is 4096 on Linux); skipping them keeps
# input_files from stat-ing text arguments.
_LONGEST_PATH = 4096


def memo_folder() -> str:
    """The folder holding the remembered digests of files.

    ``$DASKBIO_FILE_MEMO`` if set, else ``$XDG_CACHE_HOME/daskbio/files``, else
    ``~/.cache/daskbio/files``.

    Examples
    --------
    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {"DASKBIO_FILE_MEMO": "/scratch/memo"}):
    ...     memo_folder()
    '/scratch/memo'
    >>> with mock.patch.dict(os.environ, {"DASKBIO_FILE_MEMO": "", "XDG_CACHE_HOME": "/c"}):
    ...     memo_folder()
    '/c/daskbio/files'
    """
    folder = os.environ.get("DASKBIO_FILE_MEMO")
    if folder:
        return os.path.abspath(os.path.expanduser(folder))
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        # The XDG spec: a relative value is invalid and is ignored.
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "daskbio", "files")


class File:
    """A Task argument standing for a file's content: its hash is a digest of the bytes.

    The Task's function receives the ``File`` itself, which is ``os.PathLike``:
    ``open(f)``, ``numpy.load(f)``, ``tifffile.imread(f)``, ``PIL.Image.open(f)`` and
    ``daskbio.io.imread(f)`` accept it; ``f.path`` is the absolute path as a string.

    Only the content enters the hash, so a renamed or copied file with the same bytes
    makes the same Task, whose cached result is reused. If the function also uses the
    path itself (to name an output, say), pass the path as a separate argument too.

    Parameters
    ----------
    path : str or os.PathLike
        An existing regular file. A relative path is made absolute against the current
        folder. The digest is taken now, when the pipeline makes the argument, so a
        missing file is reported at that line of the pipeline.

    Raises
    ------
    FileNotFoundError, IsADirectoryError
        If ``path`` does not exist or is a folder.
    ValueError
        If ``path`` is another kind of non-regular file (a FIFO, a device).

    Notes
    -----
    A digest is remembered in :func:`memo_folder` and reused while the file's size,
    mtime, ctime, inode and device are unchanged, so an unchanged file is read once, not
    on every ``daskbio run``. A file rewritten with the same size within the
    filesystem's timestamp resolution of its previous write is not noticed. A file
    changed after the pipeline made its Tasks, while they run, is not noticed either.

    A ``File`` pickles as its path and digest: shipping it to a worker does not read or
    copy the file. The worker must see the file at the same absolute path.

    Examples
    --------
    >>> f = File(__file__)
    >>> f.name, os.fspath(f) == f.path == str(f), len(f.digest)
    ('files.py', True, 16)
    >>> with open(f, "rb") as fh:
    ...     f.digest == xxhash.xxh3_128_digest(fh.read())
    True
    """

    __slots__ = ("digest", "path")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        given = os.fsdecode(os.fspath(path))
        # Path.absolute() joins the current folder without folding "a/../b", which
        # would name another file when "a" is a symlink.
        self.path = str(Path(given).absolute())
        self.digest = _content_digest(self.path, f"File({given!r})")

    def __daskbio_hash__(self) -> bytes:
        return self.digest

    def __fspath__(self) -> str:
        return self.path

    def __str__(self) -> str:
        return self.path

    def __repr__(self) -> str:
        return f"File({self.path!r})"

    @property
    def name(self) -> str:
        """The file's name, without its folder."""
        return os.path.basename(self.path)

    def __reduce__(self) -> tuple[Any, tuple[str, bytes]]:
        # The digest travels with the path: unpickling on a worker reads nothing.
        return (_known_file, (self.path, self.digest))


def _known_file(path: str, digest: bytes) -> File:
    f = File.__new__(File)
    f.path = path
    f.digest = digest
    return f


class _RecentDigests:
    """The digests found in this process, by path, with the stat key each is valid for.

    Bounded: past ``size`` paths, the oldest is forgotten. It saves reading the memo
    record again, and the whole file when the memo folder is not writable.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._digests: dict[str, tuple[StatKey, bytes]] = {}
        self._lock = threading.Lock()

    def get(self, path: str, key: StatKey) -> bytes | None:
        entry = self._digests.get(path)
        return entry[1] if entry is not None and entry[0] == key else None

    def put(self, path: str, key: StatKey, digest: bytes) -> None:
        with self._lock:
            self._digests.pop(path, None)
            if len(self._digests) >= self.size:
                # A dict keeps insertion order: its first path is the oldest.
                del self._digests[next(iter(self._digests))]
            self._digests[path] = (key, digest)


_recent = _RecentDigests(_RECENT)


def _stat_key(st: os.stat_result) -> StatKey:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


def _content_digest(path: str, shown: str) -> bytes:
    """The xxh3-128 digest of the bytes of the file at absolute ``path``, remembered."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, f"{shown}: no such file", path) from None
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(
            errno.EISDIR, f"{shown} is a folder; File stands for one file's content", path
        )
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{shown}: {path!r} is not a regular file")
    key = _stat_key(st)
    digest = _recent.get(path, key)
    if digest is not None:
        return digest
    record = os.path.join(memo_folder(), xxhash.xxh3_128_hexdigest(os.fsencode(path)))
    digest = _recorded(record, path, key)
    if digest is None:
        digest, read_key = _read(path)
        if read_key is None:
            return digest
        key = read_key
        _remember(record, path, key, digest)
    _recent.put(path, key, digest)
    return digest


def _read(path: str) -> tuple[bytes, StatKey | None]:
    """The digest of the file's bytes, read in blocks, and the stat key it is valid for
    (None if the file changed while it was read)."""
    h = xxhash.xxh3_128()
    block = bytearray(_BLOCK)
    view = memoryview(block)
    with open(path, "rb", buffering=0) as fh:
        # The key is taken from the open file, not from the earlier stat: the path may
        # have been replaced in between.
        before = _stat_key(os.fstat(fh.fileno()))
        while n := fh.readinto(block):
            h.update(view[:n])
        after = _stat_key(os.fstat(fh.fileno()))
    return h.digest(), after if after == before else None


def _recorded(record: str, path: str, key: StatKey) -> bytes | None:
    """The digest in ``record`` if it is of ``path`` in the state ``key``."""
    try:
        with open(record, encoding="utf-8") as fh:
            data = json.load(fh)
        if data["path"] == path and tuple(data[f] for f in _FIELDS) == key:
            digest = bytes.fromhex(data["digest"])
            if len(digest) == 16:
                return digest
    except (OSError, ValueError, KeyError, TypeError):
        # Missing, unreadable, half-written by an older version or not ours: read the file.
        pass
    return None


def _remember(record: str, path: str, key: StatKey, digest: bytes) -> None:
    """Write the record atomically, readable by its owner only; skip it if not writable."""
    # Imported here: only a new record needs it, not the start-up of every run.
    import tempfile

    data = dict(zip(_FIELDS, key), path=path, digest=digest.hex())
    folder = os.path.dirname(record)
    try:
        _private_folder(folder)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        try:
            # mkstemp asks for 0600, which a umask can still narrow.
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh)
            os.replace(tmp, record)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError:
        # A read-only home, a full disk: the digest is right, it is only not remembered.
        pass


def _private_folder(folder: str) -> None:
    """Make ``folder`` and its missing parents, each 0700 whatever the umask."""
    missing = []
    while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
        missing.append(folder)
        folder = os.path.dirname(folder)
    for path in reversed(missing):
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            # Made by another process meanwhile; its permissions are its maker's.
            continue
        os.chmod(path, 0o700)


def input_files(args: Any, kwargs: Any) -> dict[str, list[int]]:
    """The files named by the path strings in a Task's arguments, with their state.

    Every ``str`` and ``pathlib`` path anywhere inside ``args`` and ``kwargs`` (lists,
    tuples, dicts and sets, recursively) that names an existing regular file, as its
    absolute path mapped to ``[size, mtime_ns]``. A relative path is made absolute
    against the current folder, now. :class:`File` arguments are left out: their content
    is already in the hash. Costs one ``os.stat`` per string that could be a path.

    Examples
    --------
    >>> found = input_files((__file__, ["not a file"]), {"n": 3})
    >>> list(found) == [__file__], found[__file__][0] == os.path.getsize(__file__)
    (True, True)
    """
    found: dict[str, list[int]] = {}
    seen: set[str] = set()
    for text in _path_strings((args, kwargs)):
        path = str(Path(text).absolute())
        if path in seen:
            continue
        seen.add(path)
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            continue
        if stat.S_ISREG(st.st_mode):
            found[path] = [st.st_size, st.st_mtime_ns]
    return found


def _path_strings(x: Any) -> list[str]:
    """The strings and paths inside ``x`` that could name a file.

    A loop over a stack, not recursion: every Task a run computes pays for it, and most
    arguments are numbers and references to other Tasks.
    """
    found = []
    stack = [x]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind in _NOT_PATHS:
            continue
        if kind is tuple or kind is list or kind is set or kind is frozenset:
            stack.extend(item)
        elif kind is dict:
            stack.extend(item.values())
        elif isinstance(item, str):
            if item and len(item) <= _LONGEST_PATH and "\n" not in item and "\x00" not in item:
                found.append(item)
        elif isinstance(item, PurePath):
            found.append(str(item))
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
    return found


def changed_inputs(recorded: dict[str, list[int]]) -> list[str]:
    """The paths in ``recorded`` (from :func:`input_files`) whose size or mtime differ
    now, or that are gone or no longer regular files.

    Examples
    --------
    >>> changed_inputs(input_files((__file__,), {}))
    []
    >>> changed_inputs({"/no/such/file": [0, 0]})
    ['/no/such/file']
    """
    changed = []
    for path, (size, mtime_ns) in recorded.items():
        try:
            st = os.stat(path)
        except OSError:
            changed.append(path)
            continue
        if not stat.S_ISREG(st.st_mode) or (st.st_size, st.st_mtime_ns) != (size, mtime_ns):
            changed.append(path)
    return changed
