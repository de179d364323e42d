"""Global thresholds and contrast stretching: reductions over all chunks, then (for stretch) a map.

Exactness (ARCHITECTURE.md decision 8): ``otsu`` and ``rc`` depend on the image only through
its grey-level histogram, which is a sum, so each chunk's histogram is computed and the
histograms are summed (a tree reduction); the threshold is then computed once from the total
histogram with mahotas' own arithmetic. ``stretch`` needs the global minimum and range, reduced
first, after which every chunk is mapped independently with mahotas' formula. All three equal
mahotas on the whole array bit for bit.

The histogram has ``image.max() + 1`` bins, as mahotas': fine for 8- and 16-bit images, large
for 32/64-bit images with large values (each chunk holds one while reducing).

The thresholds are returned as lazy 0-d dask arrays, so ``image > otsu(image)`` stays lazy;
``int(t)``, ``float(t)`` or ``t.compute()`` gives the number.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from daskbio.kernels._chunked import as_dask, check_dtype

__all__ = ["otsu", "rc", "stretch"]

_ANY_RANK = (1, 2, 3, 4)


def _chunk_histogram(block: np.ndarray, axis: Any = None, keepdims: bool = False) -> np.ndarray:
    """``hist[i] == (block == i).sum()``, as int64 (mahotas' ``fullhistogram`` counts in
    uint32, which wraps beyond 2**32 pixels; the values are otherwise identical)."""
    return np.bincount(block.ravel().astype(np.intp, copy=False))


def _flatten(parts: Any) -> Iterator[np.ndarray]:
    if isinstance(parts, list):
        for part in parts:
            yield from _flatten(part)
    else:
        yield parts


def _sum_histograms(parts: Any, axis: Any = None, keepdims: bool = False) -> np.ndarray:
    hists = list(_flatten(parts))
    total = np.zeros(max(len(h) for h in hists), np.int64)
    for h in hists:
        total[: len(h)] += h
    return total


def _otsu_of_histogram(hist: np.ndarray, ignore_zeros: bool) -> np.int64:
    from mahotas import _histogram

    hist = np.asanyarray(hist, dtype=np.double)
    if ignore_zeros:
        hist[0] = 0
    return np.int64(_histogram.otsu(hist))


def _rc_of_histogram(hist: np.ndarray, ignore_zeros: bool) -> np.float64:
    # mahotas.thresholding.rc after its fullhistogram call, line for line.
    if ignore_zeros:
        if hist[0] == hist.sum():
            return np.float64(0)
        hist[0] = 0
    N = hist.size
    first_moment = np.cumsum(np.arange(N) * hist)
    cumsum = np.cumsum(hist)
    r_first_moment = np.flipud(np.cumsum(np.flipud(np.arange(N) * hist)))
    r_cumsum = np.flipud(np.cumsum(np.flipud(hist)))
    maxt = N - 1
    while hist[maxt] == 0:
        maxt -= 1
    res = maxt
    t = 0
    while t < min(maxt, res):
        if cumsum[t] and r_cumsum[t + 1]:
            res = (first_moment[t] / cumsum[t] + r_first_moment[t + 1] / r_cumsum[t + 1]) / 2
        t += 1
    return np.float64(res)


def _threshold(image: Any, ignore_zeros: bool, method: Any, dtype: Any, name: str) -> Any:
    import dask.array as da

    image = as_dask(image, ndims=_ANY_RANK)
    check_dtype(image, "u", what="unsigned integer (mahotas thresholds use its histogram)")

    def aggregate(parts: Any, axis: Any = None, keepdims: bool = False) -> Any:
        return method(_sum_histograms(parts), ignore_zeros=bool(ignore_zeros))

    return da.reduction(
        image,
        _chunk_histogram,
        aggregate,
        combine=_sum_histograms,
        axis=None,
        keepdims=False,
        dtype=dtype,
        concatenate=False,
        meta=np.empty((), dtype),
        name=name,
    )


def otsu(image: Any, ignore_zeros: bool = False) -> Any:
    """Otsu's threshold of the whole image, reduced over its chunks.

    Parameters
    ----------
    image : numpy or dask array, unsigned integer, 1D to 4D
        The image. Bool and signed or float images are refused (mahotas computes the
        threshold from a histogram of unsigned grey levels).
    ignore_zeros : bool, optional
        Whether to leave zero-valued pixels out (default False).

    Returns
    -------
    threshold : 0-d dask array of int64
        Lazy; equal to ``mahotas.otsu`` on the whole array (which returns a Python int).
        Use it in expressions (``image > t``) or get the number with ``int(t)``.

    Examples
    --------
    >>> import dask.array as da, numpy as np, mahotas as mh
    >>> x = np.random.default_rng(0).integers(0, 200, (40, 30)).astype(np.uint8)
    >>> t = otsu(da.from_array(x, chunks=10))
    >>> int(t) == mh.otsu(x)
    True
    >>> (da.from_array(x, chunks=10) > t).sum().compute() == (x > mh.otsu(x)).sum()
    np.True_
    """
    return _threshold(image, ignore_zeros, _otsu_of_histogram, np.int64, "otsu")


def rc(image: Any, ignore_zeros: bool = False) -> Any:
    """Riddler-Calvard threshold of the whole image, reduced over its chunks.

    Parameters
    ----------
    image : numpy or dask array, unsigned integer, 1D to 4D
        The image. Bool, signed and float images are refused.
    ignore_zeros : bool, optional
        Whether to leave zero-valued pixels out (default False).

    Returns
    -------
    threshold : 0-d dask array of float64
        Lazy; equal in value to ``mahotas.rc`` on the whole array. (mahotas returns a
        numpy float64, or a Python int when the image has a single grey level; here it is
        always float64.)

    Examples
    --------
    >>> import dask.array as da, numpy as np, mahotas as mh
    >>> x = np.random.default_rng(0).integers(0, 200, (40, 30)).astype(np.uint8)
    >>> bool(float(rc(da.from_array(x, chunks=10))) == mh.rc(x))
    True
    """
    return _threshold(image, ignore_zeros, _rc_of_histogram, np.float64, "rc")


def _stretch_block(
    block: np.ndarray, low: Any, ptp: Any, min_: Any, max_: Any, out_dtype: np.dtype
) -> np.ndarray:
    # mahotas.stretch with the whole image's minimum and range, line for line.
    img = block.astype(np.double, copy=True)
    img -= low
    if not ptp:
        img = np.zeros(img.shape, out_dtype)
        if min_:
            img += min_
        return img
    img *= float(max_ - min_) / ptp
    if min_:
        img += min_
    return img.astype(out_dtype, copy=False)


def stretch(image: Any, arg0: Any = None, arg1: Any = None, dtype: Any = np.uint8) -> Any:
    """Contrast-stretch the image linearly to ``[0, max]`` or ``[min, max]``.

    As ``mahotas.stretch``: ``stretch(image)`` maps to [0, 255], ``stretch(image, max)``
    to [0, max], ``stretch(image, min, max)`` to [min, max]. The image's global minimum and
    range are reduced over all chunks first; then each chunk is mapped on its own.

    Parameters
    ----------
    image : numpy or dask array, bool, integer or float, 1D to 4D
        The image.
    arg0, arg1 : number, optional
        ``max`` (``arg0`` alone) or ``min`` and ``max`` (both) of the output range.
    dtype : dtype, optional
        Output dtype (default uint8); values beyond its range wrap or saturate per numpy.

    Returns
    -------
    stretched : dask array of ``dtype``
        Lazy, with ``image``'s chunks; equal bit for bit to ``mahotas.stretch`` on the
        whole array.

    Examples
    --------
    >>> import dask.array as da, numpy as np, mahotas as mh
    >>> x = np.random.default_rng(0).random((40, 30))
    >>> y = stretch(da.from_array(x, chunks=10), 10, 100)
    >>> bool((y.compute() == mh.stretch(x, 10, 100)).all())
    True
    """
    import dask.array as da

    image = as_dask(image, ndims=_ANY_RANK)
    check_dtype(image, "biuf")
    if arg0 is None:
        min_, max_ = 0, 255
    elif arg1 is None:
        min_, max_ = 0, arg0
    else:
        min_, max_ = arg0, arg1
    for name, value in (("arg0", arg0), ("arg1", arg1)):
        if value is not None and not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    dtype = np.dtype(dtype)
    as_double = image.astype(np.double)
    low, high = as_double.min(), as_double.max()
    ptp = (high - low) - (low - low)  # == np.ptp(image - low): rounding is monotonic
    return da.map_blocks(
        _stretch_block,
        image,
        low,
        ptp,
        dtype=dtype,
        meta=np.empty((0,) * image.ndim, dtype),
        token="stretch",
        min_=min_,
        max_=max_,
        out_dtype=dtype,
    )
