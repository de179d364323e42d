"""SURF descriptors on a regular grid of points, computed chunk by chunk.

``surf_dense`` places its points exactly as ``mahotas.features.surf.dense`` does: rows
``spacing // 2, spacing // 2 + spacing, ...`` crossed with the same columns, minus the points
mahotas drops because the descriptor window would leave the image (a point is kept when it is
at least ``int(31 * scale) // 2`` pixels from the top and left edges and more than that from
the bottom and right ones). The kept points are a regular grid too, so how many fall in each
chunk is known before anything is computed.

Each grid point belongs to the chunk containing it. That chunk is read with a halo deep enough
for everything mahotas reads around a point (:func:`surf_halo`): the descriptor samples a
square of 20 x 20 steps of ``scale`` pixels turned by the point's orientation, so up to
``10 * sqrt(2) * scale`` pixels away, each sample a Haar wavelet ``int(2 * scale + 0.5)``
pixels wide read from the integral image one pixel before its rectangle; the orientation reads
less far (``5 * scale`` plus a wavelet of ``4 * scale``). At the array's true edges no padding
is added, so mahotas' own clamping there is reproduced. The rows come back in mahotas' order
(column of the grid first, then row).

mahotas reads outside its integral image for points whose window touches an edge: past the
left or right edge it reads the neighbouring row's last or first value (reproduced here: each
chunk is given those columns of the whole image's integral), past the top or bottom edge memory
outside the array, so mahotas' own result for those few points is undefined. daskbio reads
zeros there (a row of zeros above and below), which is mahotas' result with its integral image
so guarded; elsewhere the two are the same.

Exactness: mahotas sums rectangles from an integral image, which here starts at the chunk's
origin instead of the image's. For bool and integer images every such sum is an integer, exact
in float64 whatever the origin (as long as the image's total is below 2**53), so the
descriptors are bit for bit mahotas'. Each chunk's integral image is placed at the chunk's
position in a lazily mapped array, so that sample positions are computed from the image's own
coordinates: when a point's orientation is exactly +-pi/2 or pi (e.g. structure along one axis
only), mahotas turns its samples by ``cos(pi/2) = 6e-17`` and whether that residue survives
the addition of the coordinate depends on the coordinate's magnitude. For float images the
sums round differently: the set, order and coordinates of the points are still exact, the
descriptors and angles agree within ``atol=1e-6`` (descriptors have unit norm; about 1e-13 is
seen), unless a rounding flips a near-tie in the choice of orientation (not seen in tests).

Interest points (``mahotas.features.surf.surf``) are not chunked here: mahotas samples its
Hessian pyramid and suppresses non-maxima on grids anchored at the image's origin and bounded
by its far edges, needs a halo of about 650 pixels at its default 4 octaves, and orders the
points with an unstable sort before keeping ``max_points``, so ties could not be reproduced.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from daskbio.kernels._chunked import as_dask, check_dtype, working_chunks

__all__ = ["surf_dense", "surf_halo"]

_N_DESCRIPTOR = 64
_N_POINT = 6  # y, x, scale, score, laplacian, angle


def _check_scale(scale: Any) -> float:
    if isinstance(scale, bool) or not isinstance(scale, (int, float, np.integer, np.floating)):
        raise TypeError(f"scale must be a number, got {type(scale).__name__}")
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be positive and finite, got {scale}")
    return float(scale)


def _border(scale: float) -> int:
    """How near the edge mahotas keeps a point: ``int(31 * scale) // 2`` pixels."""
    return int(31 * scale) // 2


def surf_halo(scale: float) -> int:
    """The halo (pixels, each axis) ``surf_dense`` reads around each chunk at ``scale``.

    The furthest descriptor sample is ``10 * sqrt(2) * scale`` away (rounded down, so one
    more), its Haar wavelet reaches half its width beyond, and the integral image is read
    one pixel before a rectangle. The halo is never less than mahotas' border, so that a
    point mahotas keeps on the whole image is not dropped near a chunk's edge.

    Examples
    --------
    >>> surf_halo(1), surf_halo(2), surf_halo(8)
    (19, 34, 125)
    """
    scale = _check_scale(scale)
    reach = math.ceil(10 * math.sqrt(2) * scale) + int(2 * scale + 0.5) // 2 + 3
    return max(reach, _border(scale))


def _kept(size: int, spacing: int, border: int) -> np.ndarray:
    """Grid coordinates along an axis of ``size`` that mahotas keeps."""
    grid = np.arange(spacing // 2, size, spacing)
    return grid[(grid >= border) & (grid + border < size)]


def _lazy_zeros(shape: tuple[int, int]) -> np.ndarray:
    """A float64 array of zeros whose memory is taken only where it is written.

    An anonymous private mapping, with huge pages refused: with them (as ``np.zeros`` asks
    for large arrays) writing one block would touch 2 MB per few rows of the whole width.
    """
    import mmap

    if not hasattr(mmap, "MAP_ANONYMOUS"):  # not Linux or macOS
        return np.zeros(shape)
    memory = mmap.mmap(-1, shape[0] * shape[1] * 8, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if hasattr(mmap, "MADV_NOHUGEPAGE"):
        memory.madvise(mmap.MADV_NOHUGEPAGE)
    return np.frombuffer(memory, np.float64).reshape(shape)


def _descriptors(
    block: np.ndarray,
    edges: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    origin: tuple[int, int],
    width: int,
    scale: float,
    include_interest_point: bool,
) -> np.ndarray:
    """mahotas' descriptors of the points ``rows x cols`` (image coordinates) of ``block``,
    whose top-left pixel is ``origin``: shape ``(len(rows), len(cols), n_values)``.

    mahotas is given the block's integral image at the block's place in an array of zeros
    reaching the image's origin and ``width`` wide, so that it computes every sample
    position from the same coordinates as on the whole image (their rounding depends on the
    coordinates' magnitude) and finds what it reads past the left and right edges where it
    does on the whole image: the previous row's total and the next row's first column, from
    ``edges`` (the integral image's last and first columns at the block's rows). One row of
    zeros above and below stands for what mahotas reads past the top and bottom edges. The
    array is mapped lazily (:func:`_lazy_zeros`): only the block's own pages take memory.
    """
    from mahotas.features import surf

    n_values = _N_POINT + _N_DESCRIPTOR if include_interest_point else _N_DESCRIPTOR
    if rows.size == 0 or cols.size == 0:
        return np.empty((rows.size, cols.size, n_values))
    top, left = origin
    bottom, right = top + block.shape[0], left + block.shape[1]
    placed = _lazy_zeros((bottom + 2, width))[1:-1]
    placed[top:, left:right] = surf.integral(block)
    if left == 0 and right < width:
        placed[top:, width - 1] = edges[:, 0]
    if right == width and left > 0:
        placed[top:, 0] = edges[:, 1]
    y, x = np.meshgrid(rows, cols, indexing="ij")
    ones = np.ones(y.size)
    points = np.stack([y.ravel(), x.ravel(), scale * ones, ones, ones], axis=1)
    out = surf.descriptors(placed, points, is_integral=True)
    if len(out) != len(points):
        raise RuntimeError(
            f"surf_dense: the halo was too small, mahotas dropped {len(points) - len(out)} points"
        )
    if not include_interest_point:
        out = out[:, _N_POINT:]
    return out.reshape(rows.size, cols.size, n_values)


def surf_dense(
    image: Any,
    spacing: int,
    scale: float | None = None,
    include_interest_point: bool = False,
) -> Any:
    """SURF descriptors at a regular grid of points, as ``mahotas.features.surf.dense``.

    Parameters
    ----------
    image : numpy or dask array, 2D, bool, integer or float
        The image (mahotas converts it to float64).
    spacing : int
        Distance between grid points, in pixels (positive). The first point of each axis is
        at ``spacing // 2``.
    scale : float, optional
        Scale of the descriptors (positive); default ``sqrt(spacing)``, as mahotas.
    include_interest_point : bool, optional
        Prefix each row with the point, as mahotas: ``(y, x, scale, score, laplacian,
        angle)``, where score and laplacian are 1 and angle is the orientation (default
        False: the 64 descriptor values only).

    Returns
    -------
    descriptors : dask array of float64, shape ``(n_points, 64)`` (or ``(n_points, 70)``)
        Row for row mahotas' result on the whole image: the same points (those mahotas
        drops near the border are dropped), in the same order (by column, then row), with
        known chunk sizes. Coordinates are exact; descriptors are bit for bit for integer
        images and within ``atol=1e-6`` for float ones (see the module's notes).

    Examples
    --------
    >>> import dask.array as da, numpy as np, mahotas as mh
    >>> x = np.random.default_rng(0).integers(0, 256, (120, 100)).astype(np.uint8)
    >>> d = surf_dense(da.from_array(x, chunks=50), 16, scale=2)
    >>> d.shape
    (8, 64)
    >>> bool((d.compute() == mh.features.surf.dense(x, 16, 2)).all())
    True
    """
    import dask.array as da

    image = as_dask(image, ndims=(2,))
    check_dtype(image, "biuf")
    if isinstance(spacing, bool) or not isinstance(spacing, (int, np.integer)):
        raise TypeError(f"spacing must be an integer, got {type(spacing).__name__}")
    if spacing < 1:
        raise ValueError(f"spacing must be positive, got {spacing}")
    spacing = int(spacing)
    scale = math.sqrt(spacing) if scale is None else _check_scale(scale)
    if not isinstance(include_interest_point, (bool, np.bool_)):
        raise TypeError(
            f"include_interest_point must be a bool, got {type(include_interest_point).__name__}"
        )
    include_interest_point = bool(include_interest_point)

    width = _N_POINT + _N_DESCRIPTOR if include_interest_point else _N_DESCRIPTOR
    border = _border(scale)
    kept = [_kept(n, spacing, border) for n in image.shape]
    if any(k.size == 0 for k in kept):
        return da.from_array(np.empty((0, width)))

    halo = surf_halo(scale)
    chunks, depths = working_chunks(image, (halo, halo), (0, 0))
    image = image if image.chunks == chunks else image.rechunk(chunks)
    starts = [np.cumsum((0, *c)) for c in chunks]
    points = [  # the kept coordinates in each chunk, per axis
        [k[(k >= lo) & (k < hi)] for lo, hi in itertools.pairwise(s)] for k, s in zip(kept, starts)
    ]
    as_float = image.astype(np.float64)
    edges = da.stack(  # the whole image's integral at its last and first columns
        [as_float.sum(axis=1).cumsum(0), as_float[:, 0].cumsum(0)], axis=1
    ).rechunk((chunks[0], 2))
    if depths[0]:
        edges = da.overlap.overlap(edges, depth={0: depths[0], 1: 0}, boundary="none")
    if any(depths):
        blocks = da.overlap.overlap(image, depth=dict(enumerate(depths)), boundary="none")
    else:
        blocks = image

    def chunk_descriptors(
        block: np.ndarray, edges: np.ndarray, block_id: tuple[int, ...]
    ) -> np.ndarray:
        i, j = block_id[:2]  # the output's third axis is new
        origin = (
            int(starts[0][i]) - (depths[0] if i else 0),
            int(starts[1][j]) - (depths[1] if j else 0),
        )
        return _descriptors(
            block,
            edges,
            points[0][i],
            points[1][j],
            origin,
            image.shape[1],
            scale,
            include_interest_point,
        )

    grid = da.map_blocks(
        chunk_descriptors,
        blocks,
        edges,
        chunks=(tuple(p.size for p in points[0]), tuple(p.size for p in points[1]), (width,)),
        new_axis=2,
        dtype=np.float64,
        meta=np.empty((0, 0, 0), np.float64),
        token="surf-dense",
    )
    return grid.transpose(1, 0, 2).reshape(-1, width)
