"""Resolution pyramids of dask arrays whose chunks line up with a Zarr chunk grid at every level.

Level ``k`` divides each axis by ``factor**k``, rounding up: a last, partial block keeps the
pixels it has. Images are reduced by the mean of each block and labels by taking each
block's first pixel (a stride), so label values stay exact.

The mean is exact at every level, not a mean of rounded means: the pyramid carries block
*sums* (int64/uint64 for integer images, float64 for floats) from level to level, and each
level is its sums divided by its blocks' pixel counts, rounded to the nearest integer for
integer images (halves to even, as ``numpy.rint``). Level ``k`` therefore equals the
numpy reference ``rint(mean of each factor**k block)`` of the full-resolution image
(integer sums are exact below 2**63, and their rounding below 2**53: e.g. 16-bit images up
to blocks of 2**37 pixels).

Alignment: the array reduced into level ``k`` is chunked in blocks of ``factor`` Zarr
chunks of level ``k``, so each output chunk is exactly one Zarr chunk of that level, and
the level-0 array written is chunked in whole Zarr chunks. No two tasks ever write one
Zarr chunk, and no lock is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import dask.array as da

__all__ = ["level_shapes", "mean_pyramid", "n_levels_to_fit", "stride_pyramid"]


def level_shapes(shape: Sequence[int], factors: Sequence[int], levels: int) -> list[tuple]:
    """The shape of each of ``levels`` levels: each axis divided by its factor, rounding up."""
    shapes = [tuple(shape)]
    for _ in range(levels - 1):
        shapes.append(tuple(-(-n // f) for n, f in zip(shapes[-1], factors)))
    return shapes


def n_levels_to_fit(shape: Sequence[int], factors: Sequence[int], chunks: Sequence[int]) -> int:
    """The fewest levels whose last fits in one chunk along every downscaled axis."""
    levels = 1
    while any(
        f > 1 and n > c
        for n, f, c in zip(level_shapes(shape, factors, levels)[-1], factors, chunks)
    ):
        levels += 1
    return levels


def level_chunks(
    shape: Sequence[int], factors: Sequence[int], levels: int, chunks: Sequence[int]
) -> list[tuple[int, ...]]:
    """The Zarr chunk shape of each level: ``chunks`` clipped to the level's shape."""
    return [
        tuple(min(c, n) for c, n in zip(chunks, s)) for s in level_shapes(shape, factors, levels)
    ]


def _sum_dtype(dtype: np.dtype) -> np.dtype:
    if dtype.kind == "f":
        return np.dtype(np.float64)
    return np.dtype(np.uint64 if dtype.kind == "u" else np.int64)


def _block_sums(block: np.ndarray, factors: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    out = block.astype(dtype, copy=False)
    for axis, f in enumerate(factors):
        if f > 1:
            out = np.add.reduceat(out, np.arange(0, out.shape[axis], f), axis=axis)
    return out


def _block_means(
    sums: np.ndarray,
    block_info: dict,
    spans: tuple[int, ...],
    full_shape: tuple[int, ...],
    out_dtype: np.dtype,
) -> np.ndarray:
    """Each sum divided by the number of full-resolution pixels its block has (``span`` per
    axis, fewer in a last, partial block)."""
    counts = np.ones((1,) * sums.ndim, np.int64)
    for axis, ((start, stop), span, n) in enumerate(
        zip(block_info[0]["array-location"], spans, full_shape)
    ):
        if span > 1:
            along = np.minimum(span, n - np.arange(start, stop) * span)
            counts = counts * along.reshape((-1,) + (1,) * (sums.ndim - axis - 1))
    means = sums / counts
    if out_dtype.kind in "biu":
        means = np.rint(means)
    return means.astype(out_dtype)


def _block_strides(block: np.ndarray, factors: tuple[int, ...]) -> np.ndarray:
    return block[tuple(slice(None, None, f) for f in factors)]


def _reduced_chunks(chunks: tuple[tuple[int, ...], ...], factors: Sequence[int]) -> tuple:
    return tuple(tuple(-(-c // f) for c in cs) for cs, f in zip(chunks, factors))


def _pyramid(
    image: da.Array,
    factors: tuple[int, ...],
    zarr_chunks: list[tuple[int, ...]],
    reduce: Any,
    finish: Any,
    carry_dtype: np.dtype,
    token: str,
) -> list[da.Array]:
    """The arrays to write at each level (one per entry of ``zarr_chunks``)."""
    import dask.array as da

    def grouped(k: int) -> tuple[int, ...]:
        # ``factor`` Zarr chunks of level k per block, so a block reduces to one chunk.
        return tuple(c * f for c, f in zip(zarr_chunks[k], factors))

    base = image.rechunk(grouped(1) if len(zarr_chunks) > 1 else zarr_chunks[0])
    levels, carry = [base], base
    for k in range(1, len(zarr_chunks)):
        if k > 1:
            carry = carry.rechunk(grouped(k))
        carry = da.map_blocks(
            reduce,
            carry,
            factors,
            dtype=carry_dtype,
            chunks=_reduced_chunks(carry.chunks, factors),
            meta=np.empty((0,) * image.ndim, carry_dtype),
            token=token,
        )
        levels.append(finish(carry, k))
    return levels


def mean_pyramid(
    image: da.Array, factors: Sequence[int], zarr_chunks: list[tuple[int, ...]]
) -> list[da.Array]:
    """``image`` and its block means at each further level, chunked as ``zarr_chunks``.

    Examples
    --------
    >>> import dask.array as da, numpy as np
    >>> x = np.arange(25, dtype=np.uint8).reshape(5, 5)
    >>> levels = mean_pyramid(da.from_array(x), (2, 2), [(4, 4), (2, 2)])
    >>> levels[1].compute()
    array([[ 3,  5,  6],
           [13, 15, 16],
           [20, 22, 24]], dtype=uint8)
    """
    import dask.array as da

    factors, dtype = tuple(factors), image.dtype
    full_shape = image.shape

    def finish(sums: da.Array, k: int) -> da.Array:
        return da.map_blocks(
            _block_means,
            sums,
            spans=tuple(f**k for f in factors),
            full_shape=full_shape,
            out_dtype=dtype,
            dtype=dtype,
            meta=np.empty((0,) * image.ndim, dtype),
            token="pyramid-mean",
        )

    sum_dtype = _sum_dtype(dtype)
    return _pyramid(
        image,
        factors,
        zarr_chunks,
        partial(_block_sums, dtype=sum_dtype),
        finish,
        sum_dtype,
        token="pyramid-sum",
    )


def stride_pyramid(
    labels: da.Array, factors: Sequence[int], zarr_chunks: list[tuple[int, ...]]
) -> list[da.Array]:
    """``labels`` and every ``factor**k``-th pixel of it at each further level.

    Examples
    --------
    >>> import dask.array as da, numpy as np
    >>> x = np.arange(25, dtype=np.uint8).reshape(5, 5)
    >>> levels = stride_pyramid(da.from_array(x), (2, 2), [(4, 4), (2, 2), (1, 1)])
    >>> levels[2].compute()
    array([[ 0,  4],
           [20, 24]], dtype=uint8)
    """
    return _pyramid(
        labels,
        tuple(factors),
        zarr_chunks,
        _block_strides,
        lambda strided, k: strided,
        labels.dtype,
        token="pyramid-stride",
    )
