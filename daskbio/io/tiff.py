"""TIFF and OME-TIFF as dask arrays, read tile by tile through tifffile's Zarr interface.

tifffile's ``aszarr()`` store presents one level of one series as a Zarr (format 2) array
whose chunks are the file's tiles or strips (one per page along the other axes); a read
decodes only the tiles it touches. The store holds an open file and cannot be pickled, so
the graph carries a :class:`TiffLevel` (the path, series, level and the header's shape,
dtype and chunks), and each process opens the file once, on its first read, into a small
cache of open stores.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import numpy as np

from daskbio.io._checks import FileKey, check_unchanged, file_key, pick_level

if TYPE_CHECKING:
    import zarr

__all__ = ["TiffLevel"]

# Open stores of this process, most recently used last. Each holds a parsed header (tile
# offsets) and at most one open file; an evicted store is dropped, not closed, as another
# thread may still be reading through it.
_OPEN_LIMIT = 32
_open: OrderedDict[tuple, zarr.Array] = OrderedDict()
_open_lock = threading.Lock()


def _open_level(path: str, key: FileKey, series: int, level: int) -> zarr.Array:
    """Level ``level`` of series ``series`` of the TIFF file ``key`` as a read-only Zarr
    array (``path`` is the user's spelling, for messages)."""
    import tifffile
    import zarr

    cache_key = (*key, series, level)
    with _open_lock:
        if cache_key in _open:
            _open.move_to_end(cache_key)
            return _open[cache_key]
    try:
        tif = tifffile.TiffFile(key[0])
    except tifffile.TiffFileError as exc:
        raise ValueError(f"cannot read {path!r} as TIFF: {exc}") from exc
    try:
        n_series = len(tif.series)
        if not 0 <= series < n_series:
            raise ValueError(
                f"series={series} is out of range for {path!r}, which has {n_series} series"
            )
        levels = tif.series[series].levels
        # An explicit maxworkers > 1 makes the store decode tiles in threads: left to
        # itself, with fewer than 3 decoding threads (no imagecodecs, or few cores) it
        # decodes inside zarr's one event-loop thread, serialising all of this process's
        # TIFF decoding whatever the number of Dask threads.
        store = tif.series[series].aszarr(
            level=pick_level(path, level, len(levels)), maxworkers=max(2, os.cpu_count() or 2)
        )
    finally:
        # The store reopens the file for its reads (tifffile's FileCache), so nothing stays
        # open between reading the header on the client and the first chunk read.
        tif.close()
    array = zarr.open_array(store, mode="r", zarr_format=2)
    with _open_lock:
        _open[cache_key] = array
        while len(_open) > _OPEN_LIMIT:
            _open.popitem(last=False)
    return array


class TiffLevel:
    """One resolution level of one series of a TIFF file, as an array Dask can slice.

    Built from the file's header (nothing is decoded) and pickled as the path, indices
    and header facts, so it travels to workers, which open the file on their first read.
    ``chunks`` is the file's tile (or strip) grid. A file changed after this was made is
    refused when read, rather than read as a different image.
    """

    def __init__(self, path: str, series: int = 0, level: int = 0) -> None:
        self.path, self.series, self.level = path, series, level
        self.key = file_key(path)
        array = _open_level(path, self.key, series, level)
        self.shape: tuple[int, ...] = tuple(array.shape)
        self.dtype = np.dtype(array.dtype)
        self.chunks: tuple[int, ...] = tuple(array.chunks)
        self.ndim = len(self.shape)

    def __getitem__(self, index: Any) -> np.ndarray:
        check_unchanged(self.path, self.key)
        return _open_level(self.path, self.key, self.series, self.level)[index]

    def __dask_tokenize__(self) -> tuple:
        return ("daskbio.io.TiffLevel", self.key, self.series, self.level)

    def __repr__(self) -> str:
        return (
            f"TiffLevel({self.path!r}, series={self.series}, level={self.level}, "
            f"shape={self.shape}, dtype={self.dtype}, chunks={self.chunks})"
        )
