"""The persistent, content-addressed cache of Task results (``Store`` and its backends)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from daskbio.cache.errors import (
    CacheUnavailable,
    CacheWriteError,
    CorruptEntry,
    DamagedEntryWarning,
    ForeignEntry,
)
from daskbio.cache.filesystem import FileIndex, FileSystemStore
from daskbio.cache.index import Index, Kind
from daskbio.cache.memory import MemoryIndex, MemoryStore
from daskbio.cache.payloads import Payloads
from daskbio.cache.store import Store
from daskbio.cache.zarrstore import ZarrIndex, ZarrStore

#: Cache URLs that name a Redis server (daskbio/cache/redisstore.py).
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")

__all__ = [
    "CacheUnavailable",
    "CacheWriteError",
    "CorruptEntry",
    "DamagedEntryWarning",
    "FileIndex",
    "FileSystemStore",
    "ForeignEntry",
    "Index",
    "Kind",
    "MemoryIndex",
    "MemoryStore",
    "NoDefaultCache",
    "Payloads",
    "RedisIndex",
    "RedisStore",
    "Store",
    "ZarrIndex",
    "ZarrStore",
    "default_location",
    "open_store",
]


def default_location(pipeline_file: str | os.PathLike[str] | None = None) -> str | Path:
    """Where the cache lives when nothing says otherwise.

    The Dask config key ``daskbio.cache`` if set (a folder or a URL); else
    ``<stem>.daskbio/`` beside the pipeline file (the running script's file when none is
    given); else, in a Jupyter or VS Code notebook, ``<notebook stem>.daskbio/`` beside the
    notebook. An interactive session with neither (IPython, ``python -c``, ``python -``, the
    plain REPL) has no default: a cache shared by whatever runs in a folder would hand one
    session's results to another session's function of the same name.

    Parameters
    ----------
    pipeline_file : path, optional
        The pipeline file; by default the running script (``__main__``'s file).

    Returns
    -------
    str or Path
        A folder, or a URL when ``daskbio.cache`` is one.

    Raises
    ------
    NoDefaultCache
        In an interactive session with no pipeline file and no known notebook, when
        ``daskbio.cache`` is not set.

    Examples
    --------
    >>> import dask
    >>> with dask.config.set({"daskbio.cache": None}):
    ...     default_location("/data/project/pipeline.py")
    PosixPath('/data/project/pipeline.daskbio')
    """
    from daskbio import config

    configured = config.get("daskbio.cache")
    if configured:
        return str(configured) if _is_url(configured) else Path(configured).expanduser()
    if pipeline_file is None:
        pipeline_file = _script_file() or _notebook_file()
    if not pipeline_file:
        raise NoDefaultCache(
            "no pipeline file to put the cache beside (interactive session): pass "
            'compute(..., cache="folder") or set the Dask config key daskbio.cache'
        )
    path = Path(pipeline_file).absolute()
    return path.with_name(f"{path.stem}.daskbio")


class NoDefaultCache(ValueError):
    """No cache was given and none can be chosen: an interactive session with no pipeline
    file and no notebook whose file is known."""


def _script_file() -> str | None:
    """The running script's file, or None where ``__main__`` has none: ``python -c``, the
    REPL and IPython have no ``__file__``, ``python -`` (stdin) has ``"<stdin>"``."""
    file = getattr(sys.modules.get("__main__"), "__file__", None)
    if not isinstance(file, str) or (file.startswith("<") and file.endswith(">")):
        return None
    return file


def _notebook_file() -> str | None:
    """The file of the notebook this kernel runs, where the front end tells it."""
    namespace = getattr(sys.modules.get("__main__"), "__dict__", {})
    vscode = namespace.get("__vsc_ipynb_file__")
    if isinstance(vscode, str) and vscode:
        return vscode
    # Inherited by any process a notebook starts (``!python -c ...``): only a kernel's own.
    name = os.environ.get("JPY_SESSION_NAME")
    if not name or "ipykernel" not in sys.modules:
        return None
    path = Path(name)
    # jupyter_server >= 2.0.7 gives the notebook's full path; earlier 2.x its path from the
    # server's root, whose folder is the kernel's working folder. A console's session is
    # named like "Console 1": no file.
    if not path.suffix:
        return None
    return str(path if path.is_absolute() else Path.cwd() / path.name)


def _is_url(cache: object) -> bool:
    return isinstance(cache, str) and "://" in cache


def open_store(
    cache: Store | str | os.PathLike[str] | Any | None = None,
    pipeline_file: str | os.PathLike[str] | None = None,
) -> Store:
    """A Store from ``cache``, or the one at the default location.

    ``cache`` may be a :class:`Store`, a folder (a :class:`FileSystemStore`), a Redis URL
    ``"redis://[:password@]host:port/db?payloads=PATH_OR_URL"`` (also ``rediss://`` and
    ``unix://``: a :class:`RedisStore`), another URL such as ``"s3://bucket/cache"`` or a
    Zarr store (a :class:`ZarrStore`), or None.

    Examples
    --------
    >>> open_store("memory://doc-cache")
    ZarrStore('<FsspecStore(AsyncFileSystemWrapper, /doc-cache)>')
    >>> open_store("redis://:secret@127.0.0.1:6379/0?payloads=/data/payloads")
    RedisStore('redis://:***@127.0.0.1:6379/0?payloads=/data/payloads')
    """
    if isinstance(cache, Store):
        return cache
    if cache is None:
        cache = default_location(pipeline_file)
    if isinstance(cache, str) and cache.startswith(REDIS_SCHEMES):
        from daskbio.cache.redisstore import RedisStore

        return RedisStore(cache)
    if _is_url(cache):
        return ZarrStore(cache)
    if isinstance(cache, (str, os.PathLike)):
        return FileSystemStore(cache)
    zarr = sys.modules.get("zarr")
    if zarr is not None and isinstance(cache, zarr.abc.store.Store):
        return ZarrStore(cache)
    raise TypeError(
        f"cache must be a Store, a folder, a URL or a Zarr store, got {type(cache).__name__}"
    )


def __getattr__(name: str) -> Any:
    # The Redis store loads on first use: most runs use a folder, and their start-up
    # should not pay for it.
    if name in ("RedisIndex", "RedisStore"):
        from daskbio.cache import redisstore

        return getattr(redisstore, name)
    raise AttributeError(f"module 'daskbio.cache' has no attribute {name!r}")
