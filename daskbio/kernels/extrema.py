"""Regional extrema and hole filling: local tests with a halo, plateaus merged across chunks.

``regmax``/``regmin`` reproduce mahotas' two steps. First the local extrema
(``mahotas.locmax``/``locmin``), exact per chunk with a halo of the reach ``r`` of ``Bc``; in
the same pass each local extremum is marked *spoiled* if a neighbour that is not a local
extremum is as high (as low) — that reads the marks of the neighbours too, hence a halo of
``2 r``. Then a plateau of local extrema (its pixels are all equal, ``Bc`` being symmetric) is
a regional extremum unless one of its pixels is spoiled; plateaus may cross any number of
chunks, so they are found and reduced with the label merge of :mod:`.labeling` (a handful of
tasks per chunk, one global task on small data).

``close_holes`` fills the background components that do not touch the array's border: the
background is labelled with the same merge, each component flagged if it reaches the border.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._chunked import as_dask, check_dtype, map_local, structuring_element
from .labeling import (
    component_output,
    components,
    is_symmetric,
    neighbour_offsets,
)

__all__ = ["close_holes", "regmax", "regmin"]


def _symmetric_element(Bc: Any, ndim: int, dtype: Any) -> np.ndarray:
    Bc = structuring_element(Bc, ndim, dtype)
    if not is_symmetric(Bc, dtype):
        raise ValueError(
            "Bc must be symmetric (equal to itself reversed on every axis): mahotas' result "
            "for an asymmetric Bc depends on its scan order"
        )
    return Bc


def _extrema_code(block: np.ndarray, Bc: np.ndarray, is_min: bool) -> np.ndarray:
    """Per pixel: bit 0 a local extremum, bit 1 one with a neighbour that is not but ties or
    beats it (``p + delta`` inside the block only, as mahotas' check)."""
    import mahotas as mh

    marked = mh.locmin(block, Bc) if is_min else mh.locmax(block, Bc)
    spoiled = np.zeros_like(marked)
    for delta in neighbour_offsets(Bc, block.dtype):
        here = tuple(slice(max(0, -d), s - max(0, d)) for d, s in zip(delta, block.shape))
        there = tuple(slice(max(0, d), s + min(0, d)) for d, s in zip(delta, block.shape))
        value, other = block[here], block[there]
        beats = (other <= value) if is_min else (other >= value)
        spoiled[here] |= beats & ~marked[there]
    return (marked | (spoiled & marked) << 1).astype(np.uint8)


def _regional(image: Any, Bc: Any, is_min: bool, name: str) -> Any:
    image = as_dask(image)
    check_dtype(image, "biuf", "image", "bool, integer or float")
    Bc = _symmetric_element(Bc, image.ndim, image.dtype)
    reach = tuple(s // 2 for s in Bc.shape)
    code = map_local(
        _extrema_code,
        image,
        depth=tuple(2 * r for r in reach),
        dtype=np.uint8,
        token=f"{name}-local",
        Bc=Bc,
        is_min=is_min,
    )
    on = Bc.astype(image.dtype) != 0
    merge = components(code, on, raster=False, flag="bit", clamp=False, token=name)
    out = component_output(merge, "unflagged", bool, name)
    return out if out.chunks == image.chunks else out.rechunk(image.chunks)


def regmax(image: Any, Bc: Any = None) -> Any:
    """Regional maxima: plateaus with no higher neighbour, exact across chunks.

    Equal to ``mahotas.regmax`` on the whole array, bit for bit.

    Parameters
    ----------
    image : numpy or dask array, 2D or 3D, bool, integer or float
    Bc : array or int, optional
        Neighbourhood (default: the cross). Must be symmetric: mahotas' result for an
        asymmetric ``Bc`` depends on its scan order.

    Returns
    -------
    maxima : dask array of bool
        With ``image``'s chunks.

    Examples
    --------
    >>> import dask.array as da, mahotas as mh, numpy as np
    >>> image = np.random.default_rng(0).integers(0, 4, (30, 40))
    >>> got = regmax(da.from_array(image, chunks=6)).compute()
    >>> bool((got == mh.regmax(image)).all())
    True
    """
    return _regional(image, Bc, False, "regmax")


def regmin(image: Any, Bc: Any = None) -> Any:
    """Regional minima: plateaus with no lower neighbour, exact across chunks.

    Equal to ``mahotas.regmin`` on the whole array, bit for bit.

    Parameters
    ----------
    image : numpy or dask array, 2D or 3D, bool, integer or float
    Bc : array or int, optional
        Neighbourhood (default: the cross). Must be symmetric.

    Returns
    -------
    minima : dask array of bool
        With ``image``'s chunks.

    Examples
    --------
    >>> import dask.array as da, mahotas as mh, numpy as np
    >>> image = np.random.default_rng(0).integers(0, 4, (30, 40))
    >>> got = regmin(da.from_array(image, chunks=6)).compute()
    >>> bool((got == mh.regmin(image)).all())
    True
    """
    return _regional(image, Bc, True, "regmin")


def close_holes(binary: Any, Bc: Any = None) -> Any:
    """Fill the holes of a binary image: background regions that do not touch the border.

    Equal to ``mahotas.close_holes`` on the whole array, bit for bit (mahotas only takes 2D;
    in 3D the same definition applies: background components under ``Bc`` that touch no
    face of the array are filled).

    Parameters
    ----------
    binary : numpy or dask array, 2D or 3D, bool or integer
        Read as binary (non-zero is foreground).
    Bc : array or int, optional
        Connectivity of the background (default: the cross). Must be symmetric.

    Returns
    -------
    closed : dask array of bool
        ``binary`` with its holes filled, with ``binary``'s chunks.

    Examples
    --------
    >>> import dask.array as da, mahotas as mh, numpy as np
    >>> ring = np.zeros((9, 9), bool)
    >>> ring[2:7, 2:7] = True
    >>> ring[3:6, 3:6] = False
    >>> closed = close_holes(da.from_array(ring, chunks=4)).compute()
    >>> bool((closed == mh.close_holes(ring)).all()), int(closed.sum())
    (True, 25)
    """
    image = as_dask(binary, "binary")
    check_dtype(image, "biu", "binary", "bool or integer")
    Bc = _symmetric_element(Bc, image.ndim, bool)
    background = image == 0
    merge = components(
        background, Bc.astype(bool), raster=False, flag="border", clamp=False, token="close_holes"
    )
    holes = component_output(merge, "unflagged", bool, "close_holes")
    if holes.chunks != image.chunks:
        holes = holes.rechunk(image.chunks)
    return holes | (image != 0)
