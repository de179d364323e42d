"""SURF descriptors, on a regular grid of points or at interest points, computed chunk by chunk.

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
seen), unless a rounding moves the choice of orientation: with flat patches and values that
are not dyadic (e.g. uint8 / 255), see ``surf_points``' notes below.

Interest points (``surf_points``, as ``mahotas.features.surf.surf``). mahotas samples a
Hessian pyramid: octave ``o`` every ``step = initial_step_size * 2**o`` pixels from the
image's origin, its scale ``i`` with box filters of lobe ``2**(o+1) * (i+1) + 1``, no value
computed within ``border = (3 * (2**(o+1) * (nr_scales+1) + 1) + 1) // 2`` samples of an edge.
It looks for maxima in blocks of 3 x 3 x 3 samples anchored at sample ``border + 1`` and cut at
``size // step - border - 1`` (a grid anchored at the image's origin and bounded by its far
edges), keeps a block's first largest value if it exceeds the threshold (read as a 32-bit
float) and none of its 26 neighbours is larger, refines it by a quadratic fit and drops it
unless the fit moves it less than half a sample each way. It sorts all points by score, keeps
the ``max_points`` strongest, then drops those nearer an edge than ``int(31 * scale) // 2``
and describes the rest as ``surf_dense`` does (so fewer than ``max_points`` may come back
although more were found).

daskbio computes the pyramid, maxima and fits itself, with mahotas' operations in mahotas'
order (bit for bit mahotas' on whole images), at the image's own sample positions: each
chunk's integral image is indexed in the image's coordinates, so no chunk needs aligning to a
step. A point belongs to the chunk holding its sample (before the fit); that chunk evaluates
every block holding one of its samples, so it needs the pyramid two samples beyond its edges,
each value reading ``(3 * lobe + 1) // 2`` pixels around its sample, and the descriptor of a
point fitted up to half a sample outside reads :func:`surf_halo` of its scale around it. The
halo is ``max(2 * step + (3 * lobe + 1) // 2, surf_halo(scale) + (step + 1) // 2)`` (the
octave's largest lobe and scale), the largest over the octaves that can hold a maximum in this
image: an octave needs ``size // step >= 2 * border + 3`` each way (182 pixels for octave 1,
700 for octave 2, 2,744 for octave 3 at the defaults), and the halo is 77, 144, 281 and 555
pixels with 1 to 4 such octaves. Each chunk keeps its ``max_points`` strongest points and
describes those mahotas would keep, merges of 8 keep the strongest of theirs, and one last
task keeps the strongest overall less those near the border: the graph is linear in the
number of chunks, and the result has an unknown number of rows until computed.

Exactness of ``surf_points``: for bool and integer images, the same rows as mahotas bit for
bit, strongest first, in mahotas' order except among equal scores. mahotas sorts with an
unstable sort (``std::sort``), so its rows of equal score come in an order that depends on all
the points found; daskbio keeps the order mahotas finds them in (octave, block of scales,
block row, block column), which is mahotas' order when it finds at most 16 points, and the
same for any chunking. Equal scores are common: octave ``o``'s scale ``2k+1`` and octave
``o+1``'s scale ``k`` use the same filter, so a maximum at an even sample of both gives two
rows of one score. When the ``max_points``-th and the next strongest point found have equal
scores, which of them is kept may differ too. Descriptors near the top and bottom edges are
as ``surf_dense``'s (mahotas reads outside its array there; daskbio reads zeros).

For float images the sums round differently (each chunk's integral image starts at the
chunk): positions and scales agree within 1e-8 pixels, scores within 1e-8 relative (4e-9
seen), angles and descriptors within ``atol=1e-6`` (1e-10 seen), the set and order of the
points being the same unless a rounding decides a near-tie between neighbouring samples or at
the cut otherwise (not seen in tests). On images with flat patches and values that are not
dyadic (e.g. uint8 / 255), a Haar sample exactly 0 in one integral image is a rounding residue
in the other, and its angle can move a point's orientation: about 2.5% of points seen, by up
to 0.09 rad, descriptor values by up to 0.06 (``surf_dense`` alike, by up to 3 rad where its
window is nearly flat).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from daskbio.kernels._chunked import as_dask, check_dtype, check_integer, working_chunks

if TYPE_CHECKING:
    import dask.array as da

__all__ = ["surf_dense", "surf_halo", "surf_points"]

_N_DESCRIPTOR = 64
_N_POINT = 6  # y, x, scale, score, laplacian, angle
_N_ROW = _N_POINT + _N_DESCRIPTOR
# surf_points carries each point as a record: mahotas' row, then where mahotas finds it
# (octave, block of scales, first row and first column of its block), then whether mahotas
# describes it (1) or drops it near the border (0).
_FOUND = slice(_N_ROW, _N_ROW + 4)
_DESCRIBED = _N_ROW + 4
_N_RECORD = _N_ROW + 5
_MERGED = 8  # records of this many chunks (or merges) are merged by one task


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


def _described(
    integral: np.ndarray, edges: np.ndarray, points: np.ndarray, origin: tuple[int, int], width: int
) -> np.ndarray:
    """mahotas' rows (the point, its angle and 64 descriptor values) for ``points``, rows of
    (y, x, scale, score, laplacian) in the image's coordinates, from the integral image of a
    block whose top-left pixel is ``origin``.

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

    top, left = origin
    bottom, right = top + integral.shape[0], left + integral.shape[1]
    placed = _lazy_zeros((bottom + 2, width))[1:-1]
    placed[top:, left:right] = integral
    if left == 0 and right < width:
        placed[top:, width - 1] = edges[:, 0]
    if right == width and left > 0:
        placed[top:, 0] = edges[:, 1]
    out = surf.descriptors(placed, points, is_integral=True)
    if len(out) != len(points):
        raise RuntimeError(
            f"daskbio.kernels.surf: the halo was too small, mahotas dropped "
            f"{len(points) - len(out)} points"
        )
    return out


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
    whose top-left pixel is ``origin``: shape ``(len(rows), len(cols), n_values)`` (see
    :func:`_described`)."""
    from mahotas.features import surf

    n_values = _N_ROW if include_interest_point else _N_DESCRIPTOR
    if rows.size == 0 or cols.size == 0:
        return np.empty((rows.size, cols.size, n_values))
    y, x = np.meshgrid(rows, cols, indexing="ij")
    ones = np.ones(y.size)
    points = np.stack([y.ravel(), x.ravel(), scale * ones, ones, ones], axis=1)
    out = _described(surf.integral(block), edges, points, origin, width)
    if not include_interest_point:
        out = out[:, _N_POINT:]
    return out.reshape(rows.size, cols.size, n_values)


def _overlapped(
    image: da.Array, halo: int
) -> tuple[da.Array, da.Array, list[np.ndarray], tuple[int, ...]]:
    """``image``'s blocks with ``halo`` (its chunks merged as :func:`working_chunks` says),
    the whole image's integral at its last and first columns for the same rows (what
    :func:`_described` reads past the left and right edges), where each chunk starts on each
    axis, and the halo kept on each axis."""
    import dask.array as da

    chunks, depths = working_chunks(image, (halo, halo), (0, 0))
    image = image if image.chunks == chunks else image.rechunk(chunks)
    starts = [np.cumsum((0, *c)) for c in chunks]
    as_float = image.astype(np.float64)
    edges = da.stack([as_float.sum(axis=1).cumsum(0), as_float[:, 0].cumsum(0)], axis=1).rechunk(
        (chunks[0], 2)
    )
    if depths[0]:
        edges = da.overlap.overlap(edges, depth={0: depths[0], 1: 0}, boundary="none")
    if any(depths):
        image = da.overlap.overlap(image, depth=dict(enumerate(depths)), boundary="none")
    return image, edges, starts, depths


def _origin(
    starts: list[np.ndarray], depths: tuple[int, ...], index: tuple[int, ...]
) -> tuple[int, ...]:
    """The top-left pixel of block ``index`` of :func:`_overlapped` (no halo before the first)."""
    return tuple(int(s[k]) - (d if k else 0) for s, d, k in zip(starts, depths, index))


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

    width = _N_ROW if include_interest_point else _N_DESCRIPTOR
    border = _border(scale)
    kept = [_kept(n, spacing, border) for n in image.shape]
    if any(k.size == 0 for k in kept):
        return da.from_array(np.empty((0, width)))

    blocks, edges, starts, depths = _overlapped(image, surf_halo(scale))
    points = [  # the kept coordinates in each chunk, per axis
        [k[(k >= lo) & (k < hi)] for lo, hi in itertools.pairwise(s)] for k, s in zip(kept, starts)
    ]

    def chunk_descriptors(
        block: np.ndarray, edges: np.ndarray, block_id: tuple[int, ...]
    ) -> np.ndarray:
        i, j = block_id[:2]  # the output's third axis is new
        return _descriptors(
            block,
            edges,
            points[0][i],
            points[1][j],
            _origin(starts, depths, (i, j)),
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


@dataclass(frozen=True)
class _Octave:
    """Octave ``index`` of mahotas' Hessian pyramid: ``nr_scales`` box filters sampled every
    ``step`` pixels from the image's origin."""

    index: int
    step: int
    nr_scales: int

    def lobe(self, scale: int) -> int:
        """The lobe of the box filters of ``scale`` (0 to ``nr_scales - 1``), in pixels."""
        return 2 ** (self.index + 1) * (scale + 1) + 1

    @property
    def border(self) -> int:
        """Samples along each edge where mahotas computes no value (half the filter of a
        scale one beyond the last, rounded up)."""
        return (3 * self.lobe(self.nr_scales) + 1) // 2

    def searched(self, size: int) -> range:
        """The samples of an axis of ``size`` pixels where mahotas looks for maxima."""
        return range(self.border + 1, size // self.step - self.border - 1)

    @property
    def halo(self) -> int:
        """Pixels read beyond a chunk for the points of this octave its own samples hold:
        the pyramid two samples out (blocks of three), each sample's largest filter, and the
        descriptor of the largest scale a point refined half a sample out can have."""
        pyramid = 2 * self.step + (3 * self.lobe(self.nr_scales - 1) + 1) // 2
        largest = 1.2 / 9.0 * (3 * (2.0 ** (self.index + 1) * (self.nr_scales - 0.5) + 1))
        return max(pyramid, surf_halo(largest) + (self.step + 1) // 2)


def _octaves(
    shape: tuple[int, ...], nr_octaves: int, nr_scales: int, initial_step_size: int
) -> list[_Octave]:
    """The octaves in which mahotas can find a point in an image of ``shape`` (none with
    fewer than 3 scales: it looks for maxima at scales 1 to ``nr_scales - 2``)."""
    octaves: list[_Octave] = []
    for index in range(nr_octaves if nr_scales >= 3 else 0):
        octave = _Octave(index, initial_step_size * 2**index, nr_scales)
        if any(len(octave.searched(n)) == 0 for n in shape):
            break  # the border grows and the samples thin out with each octave
        octaves.append(octave)
    return octaves


class _Samples(NamedTuple):
    """Along one axis, for one chunk and octave (in samples, from the image's origin): the
    chunk's own samples where mahotas looks for maxima, the first sample of each block of
    three holding one of them, where mahotas' blocks stop, and the samples whose values the
    blocks and the neighbours of the chunk's own samples need."""

    own: range
    blocks: range
    end: int
    needed: range


def _samples(octave: _Octave, size: int, owned: tuple[int, int]) -> _Samples | None:
    """:class:`_Samples` of the ``owned`` pixels (first, last + 1) of an axis of ``size``."""
    searched = octave.searched(size)
    first_pixel, end_pixel = owned
    own = range(
        max(-(-first_pixel // octave.step), searched.start),
        min(-(-end_pixel // octave.step), searched.stop),
    )
    if not own:
        return None
    first = own.start - (own.start - searched.start) % 3
    last = own[-1] - (own[-1] - searched.start) % 3
    needed = range(min(first, own.start - 1), max(min(last + 3, searched.stop), own.stop + 1))
    return _Samples(own, range(first, last + 1, 3), searched.stop, needed)


def _hessian(
    integral: np.ndarray,
    origin: tuple[int, int],
    rows: range,
    cols: range,
    step: int,
    lobe: int,
) -> tuple[np.ndarray, np.ndarray]:
    """mahotas' Hessian response with box filters of ``lobe`` at samples ``rows x cols`` of
    an octave of ``step``: its determinant (0 where negative) and where the Laplacian is
    negative. ``integral`` is a block's integral image, its first pixel at ``origin``.

    The same operations in the same order as mahotas, so for integral images of integers the
    values are bit for bit mahotas' on the whole image."""

    span = (step * (len(rows) - 1) + 1, step * (len(cols) - 1) + 1)  # pixels per corner

    def box(dy: int, dx: int, height: int, width: int) -> np.ndarray:
        # mahotas reads the integral image one pixel before the rectangle
        top = rows.start * step + dy - height // 2 - 1 - origin[0]
        left = cols.start * step + dx - width // 2 - 1 - origin[1]
        if (
            min(top, left) < 0
            or top + height + span[0] > integral.shape[0]
            or left + width + span[1] > integral.shape[1]
        ):
            raise RuntimeError("surf_points: the halo was too small for the Hessian pyramid")
        a, b, c, d = (
            integral[y : y + span[0] : step, x : x + span[1] : step]
            for y in (top, top + height)
            for x in (left, left + width)
        )
        return (d - b) - (c - a)

    dxx = box(0, 0, 2 * lobe - 1, 3 * lobe) - 3.0 * box(0, 0, 2 * lobe - 1, lobe)
    dyy = box(0, 0, 3 * lobe, 2 * lobe - 1) - 3.0 * box(0, 0, lobe, 2 * lobe - 1)
    off = lobe // 2 + 1
    dxy = (
        (box(-off, off, lobe, lobe) + box(off, -off, lobe, lobe)) - box(off, off, lobe, lobe)
    ) - box(-off, -off, lobe, lobe)
    area = 1.0 / (3.0 * lobe) ** 2
    dxx, dyy, dxy = dxx * area, dyy * area, dxy * area
    determinant = dxx * dyy - 0.36 * dxy * dxy
    determinant = np.where(determinant < 0, 0.0, determinant)
    return determinant, (dxx + dyy < 0) & (determinant > 0)


def _larger(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``std::max(a, b)``: ``a`` unless ``a < b`` (so NaN as mahotas compares it)."""
    return np.where(a < b, b, a)


def _refined(
    value: np.ndarray, s: np.ndarray, r: np.ndarray, c: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """mahotas' quadratic fit of ``value`` (scale, row, column) around the maxima at
    ``(s, r, c)``: its offsets along rows, columns and scales, and whether mahotas keeps the
    point (the fit is not singular and moves it less than half a sample each way).

    The formulas are mahotas' as written, in its order of operations (its Hessian's axes are
    columns, rows, scales and its gradient's rows, columns, scales; so kept here)."""

    def at(ds: int, dr: int, dc: int) -> np.ndarray:
        return value[s + ds, r + dr, c + dc]

    centre = at(0, 0, 0)
    dxx = (at(0, 0, 1) + at(0, 0, -1)) - 2 * centre
    dyy = (at(0, 1, 0) + at(0, -1, 0)) - 2 * centre
    dss = (at(1, 0, 0) + at(-1, 0, 0)) - 2 * centre
    dxy = (((at(0, 1, 1) + at(0, -1, -1)) - at(0, -1, 1)) - at(0, 1, -1)) / 4.0
    dxs = (((at(1, 0, 1) + at(-1, 0, -1)) - at(-1, 0, 1)) - at(1, 0, -1)) / 4.0
    dys = (((at(1, 1, 0) + at(-1, -1, 0)) - at(-1, 1, 0)) - at(1, -1, 0)) / 4.0
    gradient = (
        (at(0, 1, 0) - at(0, -1, 0)) / 2.0,
        (at(0, 0, 1) - at(0, 0, -1)) / 2.0,
        (at(1, 0, 0) - at(-1, 0, 0)) / 2.0,
    )
    # cofactors of the symmetric matrix [[dxx, dxy, dxs], [dxy, dyy, dys], [dxs, dys, dss]]
    a, b, cc = dyy * dss - dys * dys, dxx * dss - dxs * dxs, dxx * dyy - dxy * dxy
    d, e, f = dxs * dys - dxy * dss, dxy * dys - dxs * dyy, dxy * dxs - dys * dxx
    determinant = (dxx * a - dxy * d) + dxs * e
    with np.errstate(divide="ignore", invalid="ignore"):
        along_rows, along_cols, along_scales = (
            (m0 / determinant * gradient[0] + m1 / determinant * gradient[1])
            + m2 / determinant * gradient[2]
            for m0, m1, m2 in ((a, d, e), (d, b, f), (e, f, cc))
        )
    largest = _larger(np.abs(along_rows), _larger(np.abs(along_cols), np.abs(along_scales)))
    return along_rows, along_cols, along_scales, (determinant != 0) & (largest < 0.5)


def _octave_points(
    integral: np.ndarray,
    origin: tuple[int, int],
    owned: tuple[tuple[int, int], tuple[int, int]],
    shape: tuple[int, int],
    octave: _Octave,
    threshold: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The points mahotas finds in ``octave`` at the samples of a block's ``owned`` pixels
    (first, last + 1 on each axis): rows (y, x, scale, score, laplacian), and where mahotas
    finds each (octave, block of scales, first row and column of its block)."""
    axes = [_samples(octave, n, own) for n, own in zip(shape, owned)]
    if axes[0] is None or axes[1] is None:
        return np.empty((0, 5)), np.empty((0, 4))
    rows, cols = axes
    responses = [
        _hessian(integral, origin, rows.needed, cols.needed, octave.step, octave.lobe(i))
        for i in range(octave.nr_scales)
    ]
    value = np.stack([v for v, _ in responses])
    negative = np.stack([n for _, n in responses])

    # mahotas' blocks of 3 x 3 x 3 samples (fewer at the ends), padded with -inf, and in each
    # the first largest value, scanning scales, then rows, then columns
    n_s, n_r, n_c = len(range(1, octave.nr_scales - 1, 3)), len(rows.blocks), len(cols.blocks)
    height = min(rows.blocks[-1] + 3, rows.end) - rows.blocks.start
    width = min(cols.blocks[-1] + 3, cols.end) - cols.blocks.start
    r0, c0 = rows.blocks.start - rows.needed.start, cols.blocks.start - cols.needed.start
    padded = np.full((3 * n_s, 3 * n_r, 3 * n_c), -np.inf)
    padded[: octave.nr_scales - 2, :height, :width] = value[1:-1, r0 : r0 + height, c0 : c0 + width]
    blocks = padded.reshape(n_s, 3, n_r, 3, n_c, 3).transpose(0, 2, 4, 1, 3, 5)
    blocks = blocks.reshape(n_s, n_r, n_c, 27)
    first = blocks.argmax(axis=3)
    best = np.take_along_axis(blocks, first[..., None], axis=3)[..., 0]
    b_s, b_r, b_c = np.nonzero(best > threshold)
    k = first[b_s, b_r, b_c]
    s = 1 + 3 * b_s + k // 9
    r = r0 + 3 * b_r + k // 3 % 3  # in the needed samples
    c = c0 + 3 * b_c + k % 3
    mine = (
        (r >= rows.own.start - rows.needed.start)
        & (r < rows.own.stop - rows.needed.start)
        & (c >= cols.own.start - cols.needed.start)
        & (c < cols.own.stop - cols.needed.start)
    )
    s, r, c, b_s, b_r, b_c = (v[mine] for v in (s, r, c, b_s, b_r, b_c))
    centre = value[s, r, c]
    larger = [
        value[s + ds, r + dr, c + dc] > centre
        for ds, dr, dc in itertools.product((-1, 0, 1), repeat=3)
    ]
    peak = ~np.any(larger, axis=0)
    s, r, c, b_s, b_r, b_c = (v[peak] for v in (s, r, c, b_s, b_r, b_c))

    along_rows, along_cols, along_scales, kept = _refined(value, s, r, c)
    lobe = 2.0 ** (octave.index + 1) * ((s + along_scales) + 1) + 1
    points = np.stack(
        [
            (r + rows.needed.start + along_rows) * octave.step,
            (c + cols.needed.start + along_cols) * octave.step,
            1.2 / 9.0 * (3 * lobe),
            value[s, r, c],
            np.where(negative[s, r, c], -1.0, 1.0),
        ],
        axis=1,
    )
    found = np.stack(
        [
            np.full(len(s), octave.index),
            b_s,
            rows.blocks.start + 3 * b_r,
            cols.blocks.start + 3 * b_c,
        ],
        axis=1,
    )
    return points[kept], found[kept].astype(np.float64)


def _strongest(*records: np.ndarray, max_points: int) -> np.ndarray:
    """The ``max_points`` strongest of the ``records``: by score, then where mahotas finds
    them (a total order, so a point among the strongest of all is among the strongest of any
    part holding it)."""
    records = np.concatenate(records)
    order = np.lexsort((*records[:, _FOUND].T[::-1], -records[:, 3]))
    return records[order[:max_points]]


def _described_by_mahotas(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Whether mahotas describes each point of ``points`` (rows starting y, x, scale) rather
    than dropping it: at least ``int(31 * scale) // 2`` from the top and left edges and more
    than that from the bottom and right ones."""
    y, x = points[:, 0], points[:, 1]
    border = ((31 * points[:, 2]).astype(np.int64) // 2).astype(np.float64)
    return (border <= y) & (y + border < shape[0]) & (border <= x) & (x + border < shape[1])


def _chunk_points(
    block: np.ndarray,
    edges: np.ndarray,
    origin: tuple[int, int],
    owned: tuple[tuple[int, int], tuple[int, int]],
    shape: tuple[int, int],
    octaves: tuple[_Octave, ...],
    threshold: float,
    max_points: int,
) -> np.ndarray:
    """Records (see ``_N_RECORD``) of the ``max_points`` strongest points mahotas finds at the
    samples of ``block``'s ``owned`` pixels, described where mahotas describes them."""
    from mahotas.features import surf

    integral = surf.integral(block)
    found = [_octave_points(integral, origin, owned, shape, o, threshold) for o in octaves]
    records = np.full((sum(len(p) for p, _ in found), _N_RECORD), np.nan)
    records[:, :5] = np.concatenate([p for p, _ in found])
    records[:, _FOUND] = np.concatenate([f for _, f in found])
    records = _strongest(records, max_points=max_points)
    described = _described_by_mahotas(records, shape)
    records[:, _DESCRIBED] = described
    if described.any():
        records[described, :_N_ROW] = _described(
            integral, edges, records[described, :5], origin, shape[1]
        )
    return records


def _selected(*records: np.ndarray, max_points: int, descriptor_only: bool) -> np.ndarray:
    """mahotas' result from the records of all chunks: the ``max_points`` strongest points,
    strongest first, less those it does not describe."""
    records = _strongest(*records, max_points=max_points)
    rows = records[records[:, _DESCRIBED] == 1, :_N_ROW]
    return np.ascontiguousarray(rows[:, _N_POINT:] if descriptor_only else rows)


def _positive_integer(value: Any, name: str) -> int:
    value = check_integer(value, name)
    if value < 1:
        raise ValueError(f"{name} must be positive, got {value}")
    return value


def _check_threshold(threshold: Any) -> float:
    """``threshold`` as mahotas compares with it: a 32-bit float."""
    if isinstance(threshold, (bool, np.bool_)) or not isinstance(
        threshold, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"threshold must be a number, got {type(threshold).__name__}")
    if not threshold >= 0:
        raise ValueError(f"threshold must be non-negative, got {threshold}")
    with np.errstate(over="ignore"):
        return float(np.float32(threshold))


def surf_points(
    image: Any,
    nr_octaves: int = 4,
    nr_scales: int = 6,
    initial_step_size: int = 1,
    threshold: float = 0.1,
    max_points: int = 1024,
    descriptor_only: bool = False,
) -> da.Array:
    """SURF interest points and their descriptors, as ``mahotas.features.surf.surf``.

    Parameters
    ----------
    image : numpy or dask array, 2D, bool, integer or float
        The image (mahotas converts it to float64).
    nr_octaves : int, optional
        Octaves of the Hessian pyramid (positive, default 4); octave ``o`` samples every
        ``initial_step_size * 2**o`` pixels. Octaves too large for the image find nothing.
    nr_scales : int, optional
        Scales per octave (positive, default 6); points are found at scales 1 to
        ``nr_scales - 2``, so none with fewer than 3.
    initial_step_size : int, optional
        Sampling step of the first octave, in pixels (positive, default 1).
    threshold : float, optional
        Smallest Hessian response kept (non-negative, default 0.1), read as a 32-bit float
        as mahotas does.
    max_points : int, optional
        How many of the strongest points found are kept (positive, default 1024); those
        then too near the border are dropped, so fewer may come back.
    descriptor_only : bool, optional
        Return the 64 descriptor values only (default False: each row starts with
        ``(y, x, scale, score, laplacian, angle)``).

    Returns
    -------
    points : dask array of float64, shape ``(n_points, 70)`` (or ``(n_points, 64)``)
        mahotas' rows on the whole image, strongest first. The number of rows is unknown
        until computed (one chunk, computed by a task that merges each chunk's strongest
        points). For bool and integer images, the same rows as mahotas bit for bit, in
        mahotas' order except among equal scores (daskbio keeps the order mahotas finds them
        in; mahotas' unstable sort may permute them); when the ``max_points``-th and next
        strongest points have equal scores, which one is kept may differ. For float images
        positions, scales and scores agree within 1e-8 and descriptors within
        ``atol=1e-6``, except a few orientations on images with flat patches and values
        that are not dyadic, such as uint8 / 255 (see the module's notes).

    Examples
    --------
    >>> import dask.array as da, numpy as np, mahotas as mh, mahotas.features.surf
    >>> rng = np.random.default_rng(1)
    >>> x = mh.gaussian_filter(rng.random((330, 300)), 4)
    >>> x = (255 * (x - x.min()) / np.ptp(x)).astype(np.uint8)
    >>> p = surf_points(da.from_array(x, chunks=165))
    >>> p.shape
    (nan, 70)
    >>> rows, expected = p.compute(), mh.features.surf.surf(x)
    >>> rows.shape == expected.shape, bool((rows[:, 3] == expected[:, 3]).all())  # scores
    (True, True)
    >>> def by_value(a):  # rows of equal score may come in another order
    ...     return a[np.lexsort(a.T)]
    >>> bool((by_value(rows) == by_value(expected)).all())
    True
    """
    import dask.array as da
    from dask import delayed

    image = as_dask(image, ndims=(2,))
    check_dtype(image, "biuf")
    nr_octaves = _positive_integer(nr_octaves, "nr_octaves")
    nr_scales = _positive_integer(nr_scales, "nr_scales")
    initial_step_size = _positive_integer(initial_step_size, "initial_step_size")
    threshold = _check_threshold(threshold)
    max_points = _positive_integer(max_points, "max_points")
    if not isinstance(descriptor_only, (bool, np.bool_)):
        raise TypeError(f"descriptor_only must be a bool, got {type(descriptor_only).__name__}")
    descriptor_only = bool(descriptor_only)

    width = _N_DESCRIPTOR if descriptor_only else _N_ROW
    octaves = tuple(_octaves(image.shape, nr_octaves, nr_scales, initial_step_size))
    if not octaves:
        return da.from_array(np.empty((0, width)))

    blocks, edges, starts, depths = _overlapped(image, max(o.halo for o in octaves))
    edges = edges.to_delayed(optimize_graph=False)
    chunk_points = delayed(_chunk_points, pure=True)
    parts = [
        chunk_points(
            block,
            edges[i, 0],
            origin=_origin(starts, depths, (i, j)),
            owned=(
                (int(starts[0][i]), int(starts[0][i + 1])),
                (int(starts[1][j]), int(starts[1][j + 1])),
            ),
            shape=image.shape,
            octaves=octaves,
            threshold=threshold,
            max_points=max_points,
        )
        for (i, j), block in np.ndenumerate(blocks.to_delayed(optimize_graph=False))
    ]
    while len(parts) > _MERGED:
        parts = [
            delayed(_strongest, pure=True)(*parts[k : k + _MERGED], max_points=max_points)
            for k in range(0, len(parts), _MERGED)
        ]
    selected = delayed(_selected, pure=True)(
        *parts, max_points=max_points, descriptor_only=descriptor_only
    )
    return da.from_delayed(
        selected, shape=(np.nan, width), dtype=np.float64, meta=np.empty((0, width))
    )
