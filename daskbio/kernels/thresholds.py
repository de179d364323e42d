"""Thresholds and contrast stretching: global reductions over all chunks, and local thresholds.

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

``bernsen`` and ``gbernsen`` are local: each pixel is compared with the mid-range of its
neighbourhood (the maximum and minimum over the structuring element, mahotas' rank filters
with their default ``mode='reflect'``), or with the global threshold where that range is low.
They are mapped with :func:`~daskbio.kernels._chunked.map_local`: every chunk is thresholded
by mahotas together with a halo of half the structuring element's side (``radius`` for
``bernsen``), and at the array's true edges mahotas reflects as on the whole array, so the
result equals mahotas bit for bit.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from daskbio.kernels._chunked import (
    as_dask,
    check_dtype,
    check_integer,
    check_reach,
    check_structuring_element,
    filter_image,
    halo_of,
    map_local,
)

if TYPE_CHECKING:
    import dask.array as da

__all__ = ["bernsen", "gbernsen", "otsu", "rc", "stretch"]

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


def _threshold_value(value: Any, name: str) -> Any:
    """``value`` unchanged if it is a real number (not a bool), for mahotas to compare with."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    return value


def _local_threshold_image(image: Any, ndims: tuple[int, ...]) -> da.Array:
    image = filter_image(image, ndims=ndims)
    check_dtype(image, "iuf", what="integer or float (mahotas subtracts the local extremes)")
    return image


def _map_gbernsen(
    image: da.Array, se: np.ndarray, contrast_threshold: Any, gthresh: Any, token: str
) -> da.Array:
    """mahotas' ``gbernsen`` on every chunk with a halo of half ``se``'s side."""
    from mahotas.thresholding import gbernsen

    contrast_threshold = _threshold_value(contrast_threshold, "contrast_threshold")
    gthresh = _threshold_value(gthresh, "gthresh")
    halo = halo_of(se.shape)
    check_reach(image, halo, "reflect")  # mahotas' rank filters reflect at the edges
    return map_local(
        gbernsen,
        image,
        depth=halo,
        dtype=bool,
        token=token,
        se=se,
        contrast_threshold=contrast_threshold,
        gthresh=gthresh,
    )


def bernsen(
    image: Any, radius: int, contrast_threshold: float, gthresh: float | None = None
) -> da.Array:
    """Bernsen local threshold over a disc, equal to ``mahotas.thresholding.bernsen`` exactly.

    A pixel is True when it exceeds the mid-range ``max/2 + min/2`` of the disc around it,
    or, where the disc's range ``max - min`` is below ``contrast_threshold``, when it exceeds
    ``gthresh``. The disc is mahotas' ``circle_se(radius)`` (offsets with
    ``dy**2 + dx**2 < radius**2``); the halo is ``radius`` on both axes, and mahotas' edge
    rule (``'reflect'``) applies at the array's true edges only.

    Parameters
    ----------
    image : numpy or dask array, 2D, integer or float
        Bool and float16 images are refused (mahotas fails on both). For signed images,
        ``max - min`` wraps as in mahotas.
    radius : int
        Radius of the disc, at least 1 (a radius of 1 is the pixel alone).
    contrast_threshold : number
        Local range below which ``gthresh`` is used instead of the mid-range.
    gthresh : number, optional
        Global threshold for low-contrast pixels (default 128, as mahotas).

    Returns
    -------
    thresholded : dask array of bool
        Lazy, with ``image``'s chunks.

    Examples
    --------
    >>> import dask.array as da, mahotas as mh, numpy as np
    >>> x = np.random.default_rng(0).integers(0, 256, (60, 50)).astype(np.uint8)
    >>> y = bernsen(da.from_array(x, chunks=16), 5, 30)
    >>> bool((y.compute() == mh.thresholding.bernsen(x, 5, 30)).all())
    True
    """
    from mahotas.morph import circle_se

    image = _local_threshold_image(image, ndims=(2,))
    radius = check_integer(radius, "radius")
    if radius < 1:
        raise ValueError(f"radius must be a positive integer, got {radius}")
    gthresh = 128 if gthresh is None else gthresh
    return _map_gbernsen(image, circle_se(radius), contrast_threshold, gthresh, "bernsen")


def gbernsen(image: Any, se: Any, contrast_threshold: float, gthresh: float) -> da.Array:
    """Generalised Bernsen local threshold over the neighbourhood ``se``, equal to
    ``mahotas.thresholding.gbernsen`` exactly.

    As :func:`bernsen`, with any binary structuring element in place of the disc; the halo
    is half ``se``'s side on each axis.

    Parameters
    ----------
    image : numpy or dask array, 2D or 3D, integer or float
        Bool and float16 images are refused (mahotas fails on both).
    se : array-like of bool or integer 0/1
        The neighbourhood, of the image's rank, with odd sides and at least one 1
        (mahotas ranks over ``se.sum()`` pixels, so other values or a float ``se`` fail
        there; they are refused here).
    contrast_threshold : number
        Local range below which ``gthresh`` is used instead of the mid-range.
    gthresh : number
        Global threshold for low-contrast pixels.

    Returns
    -------
    thresholded : dask array of bool
        Lazy, with ``image``'s chunks.

    Examples
    --------
    >>> import dask.array as da, mahotas as mh, numpy as np
    >>> x = np.random.default_rng(0).integers(0, 4000, (60, 50)).astype(np.uint16)
    >>> se = np.ones((5, 3), bool)
    >>> y = gbernsen(da.from_array(x, chunks=(16, 7)), se, 500, 2000)
    >>> bool((y.compute() == mh.thresholding.gbernsen(x, se, 500, 2000)).all())
    True
    """
    image = _local_threshold_image(image, ndims=(2, 3))
    if se is None:
        raise TypeError("se must be an array (the neighbourhood), got None")
    se = check_structuring_element(se, image.ndim, "se")
    check_dtype(se, "biu", "se", "bool or integer 0/1")
    if not np.isin(se, (0, 1)).all() or not se.any():
        values = np.unique(se).tolist()
        raise ValueError(f"se must hold only 0 and 1, with at least one 1, got values {values}")
    return _map_gbernsen(image, se, contrast_threshold, gthresh, "gbernsen")
