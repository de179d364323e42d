"""``imread``: TIFF, PNG/JPEG and Zarr/OME-Zarr files, or a glob of them, as lazy dask arrays.

Nothing is decoded on the client: a file's shape and dtype come from its header, and
pixels are read by the tasks that need them. A glob's files (or a list of paths) become
the planes of a new first axis, once every file's header agrees on shape and dtype.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from daskbio.io._checks import check_index, pick_level
from daskbio.io.ome_zarr import open_zarr
from daskbio.io.png_jpeg import PlaneFiles, header
from daskbio.io.tiff import TiffLevel

if TYPE_CHECKING:
    import dask.array as da

__all__ = ["imread"]

_FORMATS = {
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".btf": "TIFF",
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".zarr": "Zarr",
}
PathLike = str | os.PathLike
_GLOB_MAGIC = re.compile(r"[*?[]")


def _format_of(path: str) -> str:
    """The format ``path`` is read as: by its suffix, and any Zarr store by its contents."""
    if os.path.isdir(path):
        if any(os.path.exists(os.path.join(path, f)) for f in ("zarr.json", ".zgroup", ".zarray")):
            return "Zarr"
        raise ValueError(
            f"{path!r} is a folder, not an image: give a file, a glob such as "
            f"{os.path.join(path, '*.tif')!r}, or a Zarr store"
        )
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in _FORMATS:
        raise ValueError(
            f"cannot read {path!r}: unknown image format {suffix or '(no suffix)'!r}; imread "
            "reads TIFF (.tif, .tiff, .btf), PNG, JPEG (.jpg, .jpeg) and Zarr (.zarr) files"
        )
    return _FORMATS[suffix]


def _natural_key(path: str) -> list:
    """Sort key putting 'img2' before 'img10': digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path)]


def _files(path: PathLike | Sequence[PathLike]) -> tuple[list[str], bool]:
    """The files ``path`` names, and whether they are to be stacked (a glob or a list)."""
    if isinstance(path, (str, os.PathLike)):
        path = os.fspath(path)
        if os.path.exists(path):
            return [path], False
        if _GLOB_MAGIC.search(path):
            matches = sorted(glob.glob(path, recursive=True), key=_natural_key)
            if not matches:
                raise FileNotFoundError(f"no file matches {path!r}")
            return matches, True
        raise FileNotFoundError(f"no such file: {path!r}")
    if isinstance(path, Sequence) and not isinstance(path, bytes):
        paths = [os.fspath(p) for p in path]
        if not paths:
            raise ValueError("path must name at least one file, got an empty list")
        for p in paths:
            if not os.path.exists(p):
                raise FileNotFoundError(f"no such file: {p!r}")
        return paths, True
    raise TypeError(f"path must be a path, a glob or a list of paths, got {type(path).__name__}")


def _read_one(path: str, kind: str, level: int, series: int, chunks: Any) -> da.Array:
    """One file (or Zarr store) as a dask array."""
    import dask.array as da
    from dask.base import tokenize

    if kind != "TIFF" and series != 0:
        raise ValueError(f"series={series} is for TIFF files, but {path!r} is {kind}")
    if kind == "Zarr":
        return open_zarr(path, level, chunks)
    if kind == "TIFF":
        source: Any = TiffLevel(path, series, level)
        if chunks is None:
            chunks = source.chunks
        elif isinstance(chunks, str) and chunks == "auto":
            # Whole tiles per chunk, so no tile is decoded by two tasks.
            chunks = da.core.normalize_chunks(
                "auto", source.shape, dtype=source.dtype, previous_chunks=source.chunks
            )
    else:
        pick_level(path, level, 1)
        shape, dtype = header(path)
        source = PlaneFiles([path], shape, dtype, stacked=False)
        # A PNG/JPEG file is decoded whole: read it as one chunk and split that.
        whole = _from_source(source, source.shape, f"imread-{tokenize(source)}")
        return whole if chunks is None else whole.rechunk(chunks)
    return _from_source(source, chunks, f"imread-{tokenize(source, chunks)}")


def _from_source(source: Any, chunks: Any, name: str) -> da.Array:
    import dask.array as da

    # ``meta`` given, so Dask never slices the source to guess it (which would read a file).
    return da.from_array(
        source,
        chunks=chunks,
        name=name,
        lock=False,
        asarray=False,
        fancy=False,
        meta=np.empty((0,) * source.ndim, source.dtype),
    )


def _check_same(paths: Sequence[str], shapes: Sequence[tuple], dtypes: Sequence[Any]) -> None:
    for path, shape, dtype in zip(paths[1:], shapes[1:], dtypes[1:]):
        if shape != shapes[0]:
            raise ValueError(f"{path!r} has shape {shape}, but {paths[0]!r} has {shapes[0]}")
        if dtype != dtypes[0]:
            raise ValueError(f"{path!r} has dtype {dtype}, but {paths[0]!r} has {dtypes[0]}")


def _stack(paths: list[str], kinds: list[str], level: int, series: int) -> da.Array:
    """The files as planes of a new first axis, each plane read lazily."""
    import dask.array as da
    from dask.base import tokenize

    if set(kinds) <= {"PNG", "JPEG"}:
        pick_level(paths[0], level, 1)
        headers = [header(p) for p in paths]
        _check_same(paths, [h[0] for h in headers], [h[1] for h in headers])
        source = PlaneFiles(paths, *headers[0], stacked=True)
        # One chunk per file: each plane is decoded by its own task.
        chunks = ((1,) * len(paths), *((n,) for n in source.plane_shape))
        return _from_source(source, chunks, f"imread-{tokenize(source)}")
    planes = [_read_one(p, k, level, series, None) for p, k in zip(paths, kinds)]
    _check_same(paths, [a.shape for a in planes], [a.dtype for a in planes])
    return da.stack(planes)


def imread(
    path: PathLike | Sequence[PathLike],
    *,
    level: int = 0,
    series: int = 0,
    chunks: Any = None,
) -> da.Array:
    """Read an image file, a Zarr store, or a glob of files, as a lazy dask array.

    Only headers are read here; pixels are read by the tasks that need them, so images
    larger than memory can be processed chunk by chunk.

    - **TIFF / OME-TIFF** (.tif, .tiff, .btf): read through tifffile's Zarr interface,
      one chunk per tile or strip of the file (one page along the other axes); a tile is
      decoded only when a chunk containing it is computed.
    - **PNG / JPEG** (via Pillow): one chunk per file, decoded whole. Palette images are
      read as their RGB(A) colours.
    - **Zarr / OME-Zarr** (.zarr folders, Zarr v2 or v3): chunked as stored. For an
      OME-Zarr multiscale image, ``level`` chooses the resolution level.

    A glob (``"plates/*.png"``) or a list of paths stacks the files along a new first
    axis, in natural order for a glob ("t2" before "t10"); every file's header must agree
    on shape and dtype.

    Parameters
    ----------
    path : str, path-like, or sequence of them
        A file or Zarr store, a glob pattern (``*``, ``?``, ``[...]``, ``**``), or a
        list of paths to stack.
    level : int, optional
        The resolution level of a multiscale image (OME-Zarr, pyramidal OME-TIFF):
        0 is full resolution (default), negative values count from the smallest.
    series : int, optional
        The image series of a TIFF file holding several (default 0).
    chunks : optional
        The chunks of the result. Default: as stored (the file's tiles or strips, the
        Zarr chunks, one file per chunk for PNG/JPEG). For a TIFF file, ``"auto"``
        chooses large chunks made of whole tiles (no tile decoded twice); anything
        else Dask accepts is applied to the result.

    Returns
    -------
    dask.array.Array
        The image, lazy.

    Raises
    ------
    FileNotFoundError
        No such file, or no file matches the glob.
    ValueError
        A file that cannot be read as its format, files of different shapes or dtypes in
        one stack, or a ``level``/``series`` the file does not have; the message names
        the file.

    Examples
    --------
    >>> import numpy as np, tifffile, tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> image = np.arange(256 * 192, dtype=np.uint16).reshape(256, 192)
    >>> tifffile.imwrite(os.path.join(folder, "a.tif"), image, tile=(64, 64))
    >>> x = imread(os.path.join(folder, "a.tif"))
    >>> x.chunksize, int(x.max()) == int(image.max())
    ((64, 64), True)
    >>> from PIL import Image
    >>> for i in range(3):
    ...     Image.fromarray((image[:10, :12] + i).astype(np.uint8)).save(f"{folder}/p{i}.png")
    >>> planes = imread(os.path.join(folder, "p*.png"))
    >>> planes.shape, planes.numblocks
    ((3, 10, 12), (3, 1, 1))
    """
    level = check_index(level, "level")
    series = check_index(series, "series")
    if series < 0:
        raise ValueError(f"series must be non-negative, got {series}")
    paths, stacked = _files(path)
    kinds = [_format_of(p) for p in paths]
    if not stacked:
        return _read_one(paths[0], kinds[0], level, series, chunks)
    array = _stack(paths, kinds, level, series)
    return array if chunks is None else array.rechunk(chunks)
