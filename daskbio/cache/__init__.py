"""The persistent, content-addressed cache of Task results (``Store`` and its backends)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from daskbio.cache.filesystem import FileSystemStore
from daskbio.cache.memory import MemoryStore
from daskbio.cache.store import CorruptEntry, Store

__all__ = [
    "CorruptEntry",
    "FileSystemStore",
    "MemoryStore",
    "Store",
    "default_location",
    "open_store",
]


def default_location(pipeline_file: str | os.PathLike[str] | None = None) -> Path:
    """Where the cache lives when nothing says otherwise.

    The Dask config key ``daskbio.cache`` if set; else ``<stem>.daskbio/`` beside the
    pipeline file (the running script's file when none is given); else ``daskbio.cache/``
    in the current folder (interactive sessions).
    """
    from daskbio import config

    configured = config.get("daskbio.cache")
    if configured:
        return Path(configured).expanduser()
    if pipeline_file is None:
        pipeline_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if pipeline_file:
        path = Path(pipeline_file).absolute()
        return path.with_name(f"{path.stem}.daskbio")
    return Path.cwd() / "daskbio.cache"


def open_store(
    cache: Store | str | os.PathLike[str] | None = None,
    pipeline_file: str | os.PathLike[str] | None = None,
) -> Store:
    """A Store from ``cache`` (a Store, or a folder path), or the default location."""
    if isinstance(cache, Store):
        return cache
    if cache is None:
        return FileSystemStore(default_location(pipeline_file))
    if isinstance(cache, (str, os.PathLike)):
        return FileSystemStore(cache)
    raise TypeError(f"cache must be a Store or a folder path, got {type(cache).__name__}")
