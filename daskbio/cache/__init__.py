"""The persistent, content-addressed cache of Task results (``Store`` and its backends)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from daskbio.cache.filesystem import FileSystemStore
from daskbio.cache.memory import MemoryStore
from daskbio.cache.store import CorruptEntry, Store
from daskbio.cache.zarrstore import ZarrStore

__all__ = [
    "CorruptEntry",
    "FileSystemStore",
    "MemoryStore",
    "Store",
    "ZarrStore",
    "default_location",
    "open_store",
]


def default_location(pipeline_file: str | os.PathLike[str] | None = None) -> str | Path:
    """Where the cache lives when nothing says otherwise.

    The Dask config key ``daskbio.cache`` if set (a folder or a URL); else
    ``<stem>.daskbio/`` beside the pipeline file (the running script's file when none is
    given); else ``daskbio.cache/`` in the current folder (interactive sessions).
    """
    from daskbio import config

    configured = config.get("daskbio.cache")
    if configured:
        return str(configured) if _is_url(configured) else Path(configured).expanduser()
    if pipeline_file is None:
        pipeline_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if pipeline_file:
        path = Path(pipeline_file).absolute()
        return path.with_name(f"{path.stem}.daskbio")
    return Path.cwd() / "daskbio.cache"


def _is_url(cache: object) -> bool:
    return isinstance(cache, str) and "://" in cache


def open_store(
    cache: Store | str | os.PathLike[str] | Any | None = None,
    pipeline_file: str | os.PathLike[str] | None = None,
) -> Store:
    """A Store from ``cache``, or the one at the default location.

    ``cache`` may be a :class:`Store`, a folder (a :class:`FileSystemStore`), a URL such as
    ``"s3://bucket/cache"`` or a Zarr store (a :class:`ZarrStore`), or None.

    Examples
    --------
    >>> open_store("memory://doc-cache")
    ZarrStore('<FsspecStore(AsyncFileSystemWrapper, /doc-cache)>')
    """
    if isinstance(cache, Store):
        return cache
    if cache is None:
        cache = default_location(pipeline_file)
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
