"""Local filters: mahotas' neighbourhood filters mapped over chunks with a halo.

Exactness (ARCHITECTURE.md decision 8): each output pixel of these filters depends only on
the input pixels within a fixed reach of it (a footprint's half-size, a Gaussian's
truncation radius ``int(4 * sigma + 0.5)``), and mahotas computes it with the same arithmetic
in the same order wherever the pixel sits. So every chunk is filtered together with a halo of
that reach, mahotas' own edge ``mode`` applies at the array's true edges only, and the result
equals mahotas on the whole array bit for bit. Two mahotas details shape the halos:

* ``gaussian_filter`` convolves an axis with a 1-D loop when the axis is longer than the
  kernel, and with the n-D convolution otherwise (which rounds float32 differently), so
  chunks are merged until every block takes the same branch as the whole array does.
* ``majority_filter`` never sets its last ``N // 2 + 1`` rows and columns (its window loop
  stops one short), so its halo is one pixel deeper than its window.

An axis too short to hold two chunks of the needed size becomes one chunk (no halo needed);
results always come back with the input's chunks.

``sobel`` and ``dog`` threshold with whole-image statistics: minimum, range and mean are dask
reductions, applied elementwise to the mapped chunks. Minimum and range are exact; a mean is
summed in a different order from numpy's (see those two functions for the consequence).

``mode="wrap"`` is refused: it reads the opposite edge of the array, which no halo reaches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from daskbio.kernels._chunked import (
    check_dtype,
    check_integer,
    check_reach,
    check_structuring_element,
    filter_image,
    halo_of,
    map_local,
    structuring_element,
)

if TYPE_CHECKING:
    import dask.array as da

__all__ = [
    "bwperim",
    "convolve",
    "dog",
    "gaussian_filter",
    "laplacian_2D",
    "locmax",
    "locmin",
    "majority_filter",
    "mean_filter",
    "median_filter",
    "rank_filter",
    "sobel",
]

_MODES = ("reflect", "nearest", "mirror", "constant", "ignore")

# mahotas.edge's Sobel filters (private there), value for value.
_HSOBEL = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]) / 8.0
_VSOBEL = np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]]) / 8.0


# ---------------------------------------------------------------- shared checks and mapping


def _check_mode(mode: str, cval: float = 0.0) -> None:
    if mode == "wrap":
        raise ValueError(
            "mode='wrap' is not supported on chunked images (it reads the opposite edge of "
            f"the array), use one of {', '.join(map(repr, _MODES))}"
        )
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, _MODES))}, got {mode!r}")
    if mode == "constant" and cval != 0:
        raise ValueError(f"cval must be 0 with mode='constant' (as in mahotas), got {cval!r}")


def _number(value: Any, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None


def _per_axis(value: Any, ndim: int, name: str) -> tuple:
    """A scalar repeated once per axis, or a sequence of one value per axis (as mahotas)."""
    if np.ndim(value) == 0:
        return (value,) * ndim
    values = tuple(value)
    if len(values) != ndim:
        raise ValueError(f"{name} must be one value or {ndim} (one per axis), got {value!r}")
    return values


def _gaussian_reach(sigma: Any, name: str = "sigma") -> int:
    """mahotas' truncation radius ``int(4 * sigma + 0.5)``, refusing what mahotas refuses."""
    s = _number(sigma, name)
    if not np.isfinite(s) or s < 0.125:
        raise ValueError(f"{name} must be finite and at least 0.125 (as in mahotas), got {sigma!r}")
    return int(4.0 * s + 0.5)


# ------------------------------------------------------------------------------ kernels


def gaussian_filter(
    image: Any,
    sigma: float | Sequence[float],
    order: int | Sequence[int] = 0,
    mode: str = "reflect",
    cval: float = 0.0,
) -> da.Array:
    """Gaussian filter, chunk by chunk, equal to ``mahotas.gaussian_filter`` exactly.

    The halo on each axis is mahotas' truncation radius ``int(4 * sigma + 0.5)``, and chunks
    are merged so that each block takes mahotas' 1-D or n-D convolution branch exactly as
    the whole array does, so the result is bit for bit mahotas' (float32 stays float32).

    Parameters
    ----------
    image : numpy or dask array, 2D or 3D
        Integer and bool images are filtered as float64, as mahotas does.
    sigma : float or sequence of floats
        Standard deviation, one for all axes or one per axis; at least 0.125.
    order : {0, 1, 2, 3} or sequence of them
        Derivative order per axis.
    mode : {'reflect', 'nearest', 'mirror', 'constant', 'ignore'}
        Edge handling at the array's true edges.
    cval : float
        Must be 0 (mahotas supports no other constant).

    Returns
    -------
    filtered : dask array
        float32 for float32 input, otherwise float64 (longdouble stays longdouble).

    Examples
    --------
    >>> import dask.array as da, mahotas as mh
    >>> x = da.random.default_rng(0).random((40, 30), chunks=7)
    >>> y = gaussian_filter(x, 2)
    >>> bool((y.compute() == mh.gaussian_filter(x.compute(), 2)).all())
    True
    """
    import mahotas as mh

    image = filter_image(image)
    sigmas = _per_axis(sigma, image.ndim, "sigma")
    halo = tuple(_gaussian_reach(s) for s in sigmas)
    orders = _per_axis(order, image.ndim, "order")
    if any(isinstance(o, (bool, np.bool_)) or o not in (0, 1, 2, 3) for o in orders):
        raise ValueError(f"order must be 0, 1, 2 or 3 (or one of these per axis), got {order!r}")
    _check_mode(mode, cval)
    check_reach(image, halo, mode)
    dtype = image.dtype if image.dtype.kind == "f" else np.dtype(np.float64)
    return map_local(
        mh.gaussian_filter,
        image,
        depth=halo,
        dtype=dtype,
        token="gaussian_filter",
        min_chunk=tuple(h + 2 for h in halo),
        sigma=tuple(float(s) for s in sigmas),
        order=tuple(int(o) for o in orders),
        mode=mode,
        cval=cval,
    )


def median_filter(image: Any, Bc: Any = None, mode: str = "reflect", cval: float = 0.0) -> da.Array:
    """Median filter over the footprint ``Bc``, equal to ``mahotas.median_filter`` exactly.

    The halo is half the footprint's side on each axis.

    Parameters
    ----------
    image : numpy or dask array, 2D or 3D
    Bc : array-like, optional
        Footprint with odd sides, of the image's rank; default a cube of side 3 (as mahotas).
    mode : {'reflect', 'nearest', 'mirror', 'constant', 'ignore'}
    cval : float
        Must be 0.

    Returns
    -------
    median : dask array of the image's dtype

    Examples
    --------
    >>> import dask.array as da, mahotas as mh
    >>> x = da.random.default_rng(0).integers(0, 9, (30, 30), chunks=8).astype("uint8")
    >>> bool((median_filter(x).compute() == mh.median_filter(x.compute())).all())
    True
    """
    import mahotas as mh

    image = filter_image(image)
    Bc = check_structuring_element(Bc, image.ndim)
    if Bc is not None and not np.count_nonzero(Bc.astype(image.dtype)):
        raise ValueError("Bc must have at least one non-zero element (in the image's dtype)")
    _check_mode(mode, cval)
    halo = (1,) * image.ndim if Bc is None else halo_of(Bc.shape)
    check_reach(image, halo, mode)
    return map_local(
        mh.median_filter,
        image,
        depth=halo,
        dtype=image.dtype,
        token="median_filter",
        Bc=Bc,
        mode=mode,
        cval=cval,
    )


def mean_filter(image: Any, Bc: Any, mode: str = "ignore", cval: float = 0.0) -> da.Array:
    """Mean over the footprint ``Bc``, equal to ``mahotas.mean_filter`` exactly.

    mahotas sums each neighbourhood directly (no running sum), so with a halo of half the
    footprint's side each pixel's float64 mean is bit for bit the whole-array one.

    Parameters
    ----------
    image : numpy or dask array, 2D or 3D
    Bc : array-like or int
        Footprint with odd sides (or a connectivity, as mahotas accepts).
    mode : {'ignore', 'reflect', 'nearest', 'mirror', 'constant'}
        With 'ignore' (the default) pixels beyond the edge are left out of the mean.
    cval : float
        Must be 0.

    Returns
    -------
    mean : dask array of float64

    Examples
    --------
    >>> import dask.array as da, mahotas as mh, numpy as np
    >>> x = da.random.default_rng(0).random((30, 30), chunks=8)
    >>> y = mean_filter(x, np.ones((5, 5)))
    >>> bool((y.compute() == mh.mean_filter(x.compute(), np.ones((5, 5)))).all())
    True
    """
    import mahotas as mh

    image = filter_image(image)
    Bc = structuring_element(Bc, image.ndim, image.dtype)
    _check_mode(mode, cval)
    check_reach(image, halo_of(Bc.shape), mode)
    return map_local(
        mh.mean_filter,
        image,
        depth=halo_of(Bc.shape),
        dtype=np.float64,
        token="mean_filter",
        Bc=Bc,
        mode=mode,
        cval=cval,
    )


def rank_filter(
    image: Any, Bc: Any, rank: int, mode: str = "reflect", cval: float = 0.0
) -> da.Array:
    """The ``rank``-th smallest value over the footprint ``Bc``, equal to
    ``mahotas.rank_filter`` exactly.

    The halo is half the footprint's side on each axis.

    Parameters
    ----------
    image : numpy or dask array, 2D or 3D
    Bc : array-like or int
        Footprint with odd sides (or a connectivity, as mahotas accepts).
    rank : int
        From 0 (the minimum) to the footprint's number of non-zero elements minus 1
        (mahotas leaves the output uninitialised outside that range; it is refused here).
    mode : {'reflect', 'nearest', 'mirror', 'constant', 'ignore'}
    cval : float
        Must be 0.

    Returns
    -------
    ranked : dask array of the image's dtype

    Examples
    --------
    >>> import dask.array as da, mahotas as mh, numpy as np
    >>> x = da.random.default_rng(0).random((30, 30), chunks=8)
    >>> y = rank_filter(x, np.ones((3, 3)), 7)
    >>> bool((y.compute() == mh.rank_filter(x.compute(), np.ones((3, 3)), 7)).all())
    True
    """
    import mahotas as mh

    image = filter_image(image)
    Bc = structuring_element(Bc, image.ndim, image.dtype)
    rank = check_integer(rank, "rank")
    # mahotas counts the footprint after casting it to the image's dtype.
    size = int(np.count_nonzero(np.asarray(Bc).astype(image.dtype)))
    if not 0 <= rank < size:
        raise ValueError(f"rank must be in 0..{size - 1} for a footprint of {size}, got {rank}")
    _check_mode(mode, cval)
    check_reach(image, halo_of(Bc.shape), mode)
    return map_local(
        mh.rank_filter,
        image,
        depth=halo_of(Bc.shape),
        dtype=image.dtype,
        token="rank_filter",
        Bc=Bc,
        rank=rank,
        mode=mode,
        cval=cval,
    )


def convolve(image: Any, weights: Any, mode: str = "reflect", cval: float = 0.0) -> da.Array:
    """Correlation with ``weights``, as ``mahotas.convolve``, equal to it exactly.

    mahotas centres ``weights`` at index ``side // 2`` on each axis, so it reaches
    ``side // 2`` pixels back and ``(side - 1) // 2`` forward: a halo of ``side // 2`` covers
    even sides too. As in mahotas, the sum is taken in float64 and cast to the image's dtype
    (integer images may wrap or truncate; convert to float first to avoid it).

    Parameters
    ----------
    image : numpy or dask array, 2D or 3D
    weights : array-like
        Of the image's rank; cast to the image's dtype (as mahotas does).
    mode : {'reflect', 'nearest', 'mirror', 'constant', 'ignore'}
    cval : float
        Must be 0.

    Returns
    -------
    convolved : dask array of the image's dtype

    Examples
    --------
    >>> import dask.array as da, mahotas as mh, numpy as np
    >>> x = da.random.default_rng(0).random((30, 30), chunks=8)
    >>> w = np.arange(12.0).reshape(3, 4)
    >>> bool((convolve(x, w).compute() == mh.convolve(x.compute(), w)).all())
    True
    """
    import dask.array as da
    import mahotas as mh

    image = filter_image(image)
    if isinstance(weights, da.Array):
        raise TypeError("weights must be a numpy array (small, in memory), got a dask array")
    weights = np.asarray(weights)
    if weights.ndim != image.ndim:
        raise ValueError(
            f"weights must have the image's rank {image.ndim}, got {weights.ndim}D {weights.shape}"
        )
    if weights.size == 0:
        raise ValueError(f"weights must not be empty, got shape {weights.shape}")
    check_dtype(weights, "biuf", "weights")
    _check_mode(mode, cval)
    halo = tuple(s // 2 for s in weights.shape)
    check_reach(image, halo, mode)
    return map_local(
        mh.convolve,
        image,
        depth=halo,
        dtype=image.dtype,
        token="convolve",
        weights=weights,
        mode=mode,
        cval=cval,
    )


def laplacian_2D(image: Any, alpha: float = 0.2) -> da.Array:
    """2D Laplacian (3x3, 'nearest' edges), equal to ``mahotas.laplacian_2D`` exactly.

    Parameters
    ----------
    image : numpy or dask array, 2D
        Filtered as float64.
    alpha : float
        Shape of the operator, clipped to 0..1 by mahotas; larger favours the diagonals.

    Returns
    -------
    filtered : dask array of float64

    Examples
    --------
    >>> import dask.array as da, mahotas as mh
    >>> x = da.random.default_rng(0).random((30, 30), chunks=8)
    >>> bool((laplacian_2D(x).compute() == mh.laplacian_2D(x.compute())).all())
    True
    """
    import mahotas as mh

    image = filter_image(image, ndims=(2,), half=True)
    alpha = _number(alpha, "alpha")
    return map_local(
        mh.laplacian_2D, image, depth=(1, 1), dtype=np.float64, token="laplacian_2D", alpha=alpha
    )


def majority_filter(image: Any, N: int = 3) -> da.Array:
    """Binary majority filter over an ``N`` x ``N`` window, equal to
    ``mahotas.majority_filter`` bit for bit, edges included.

    As in mahotas, a pixel is True when at least ``N * N // 2`` pixels of the window centred
    on it are non-zero, and the first ``N // 2`` and last ``N // 2 + 1`` rows and columns
    are always False (mahotas' window loop stops one short), as is everything when the image
    is smaller than the window. The halo is ``N // 2 + 1`` so every chunk edge sees the full
    loop range.

    Parameters
    ----------
    image : numpy or dask array, 2D
        Non-zero pixels count as foreground.
    N : int
        Odd window side, at least 3 (mahotas silently uses ``N + 1`` for an even ``N``;
        here an even ``N`` is refused).

    Returns
    -------
    filtered : dask array of bool

    Examples
    --------
    >>> import dask.array as da, mahotas as mh
    >>> x = da.random.default_rng(0).random((30, 30), chunks=8) > 0.5
    >>> bool((majority_filter(x).compute() == mh.majority_filter(x.compute())).all())
    True
    """
    import mahotas as mh

    image = filter_image(image, ndims=(2,), half=True)
    N = check_integer(N, "N")
    if N < 3 or N % 2 == 0:
        raise ValueError(f"N must be an odd integer of at least 3, got {N}")
    halo = (N // 2 + 1,) * 2
    return map_local(
        mh.majority_filter, image, depth=halo, dtype=bool, token="majority_filter", N=N
    )


def locmax(image: Any, Bc: Any = None) -> da.Array:
    """Local maxima (no neighbour in ``Bc`` is larger), equal to ``mahotas.locmax`` exactly.

    mahotas compares with 'nearest' edges; the halo is half the footprint's side.

    Parameters
    ----------
    image : numpy or dask array, 2D or 3D
    Bc : array-like or int, optional
        Footprint with odd sides (default the cross of connectivity 1, as mahotas).

    Returns
    -------
    maxima : dask array of bool

    Examples
    --------
    >>> import dask.array as da, mahotas as mh
    >>> x = da.random.default_rng(0).integers(0, 5, (30, 30), chunks=8)
    >>> bool((locmax(x).compute() == mh.locmax(x.compute())).all())
    True
    """
    return _local_extrema(image, Bc, "locmax")


def locmin(image: Any, Bc: Any = None) -> da.Array:
    """Local minima (no neighbour in ``Bc`` is smaller), equal to ``mahotas.locmin`` exactly.

    mahotas compares with 'nearest' edges; the halo is half the footprint's side.

    Parameters
    ----------
    image : numpy or dask array, 2D or 3D
    Bc : array-like or int, optional
        Footprint with odd sides (default the cross of connectivity 1, as mahotas).

    Returns
    -------
    minima : dask array of bool

    Examples
    --------
    >>> import dask.array as da, mahotas as mh
    >>> x = da.random.default_rng(0).integers(0, 5, (30, 30), chunks=8)
    >>> bool((locmin(x).compute() == mh.locmin(x.compute())).all())
    True
    """
    return _local_extrema(image, Bc, "locmin")


def _local_extrema(image: Any, Bc: Any, which: str) -> da.Array:
    import mahotas as mh

    image = filter_image(image)
    Bc = structuring_element(Bc, image.ndim, image.dtype)
    return map_local(
        getattr(mh, which), image, depth=halo_of(Bc.shape), dtype=bool, token=which, Bc=Bc
    )


def bwperim(bw: Any, n: int = 4, mode: str = "constant") -> da.Array:
    """Perimeter pixels of a binary image, equal to ``mahotas.bwperim`` bit for bit.

    A non-zero pixel is on the perimeter when one of its neighbours (connectivity ``n``)
    is zero; the halo is 1.

    Parameters
    ----------
    bw : numpy or dask array, 2D or 3D
        Non-zero pixels are foreground.
    n : int
        Connectivity, passed to mahotas: 4 or 8 in 2D; in 3D, 6 is the face cross and other
        values follow mahotas' ``get_structuring_elem``.
    mode : {'constant', 'reflect', 'nearest', 'mirror', 'ignore'}
        What lies beyond the true edges ('constant': background).

    Returns
    -------
    perimeter : dask array of bool

    Examples
    --------
    >>> import dask.array as da, mahotas as mh
    >>> x = da.random.default_rng(0).random((30, 30), chunks=8) > 0.3
    >>> bool((bwperim(x).compute() == mh.bwperim(x.compute())).all())
    True
    """
    import mahotas as mh

    bw = filter_image(bw, "bw", half=True)
    n = check_integer(n, "n")
    if n < 1:
        raise ValueError(f"n must be a positive connectivity such as 4 or 8, got {n}")
    _check_mode(mode)
    return map_local(
        mh.bwperim, bw, depth=(1,) * bw.ndim, dtype=bool, token="bwperim", n=n, mode=mode
    )


def _sobel_block(block: np.ndarray) -> np.ndarray:
    """mahotas.sobel's filtering, line for line, on an already normalised block."""
    import mahotas as mh

    vfiltered = mh.convolve(block, _VSOBEL, mode="nearest")
    hfiltered = mh.convolve(block, _HSOBEL, mode="nearest")
    vfiltered **= 2
    hfiltered **= 2
    vfiltered += hfiltered
    return vfiltered


def sobel(image: Any, just_filter: bool = False) -> da.Array:
    """Sobel edges, as ``mahotas.sobel``.

    The image is shifted by its minimum and divided by its range (dask reductions, exact),
    then filtered per chunk with a halo of 1: ``just_filter=True`` equals mahotas exactly.
    The edge map is ``regmax(filtered) & (sqrt(filtered) > 2 * sqrt(mean(filtered)))`` with
    daskbio's exact ``regmax``; the mean is a dask tree sum, which can differ from numpy's
    pairwise sum in the last bits (relative ~1e-16), so a pixel whose ``sqrt(filtered)``
    lies within that of the threshold could differ from mahotas. For a constant image
    mahotas returns float zeros; here the edge map is all False (bool).

    Parameters
    ----------
    image : numpy or dask array, 2D
        Filtered as float64.
    just_filter : bool
        Return the squared gradient magnitude instead of the edge map.

    Returns
    -------
    edges : dask array of bool, or of float64 if ``just_filter``

    Examples
    --------
    >>> import dask.array as da, mahotas as mh
    >>> x = da.random.default_rng(0).random((30, 30), chunks=8)
    >>> y = sobel(x, just_filter=True)
    >>> bool((y.compute() == mh.sobel(x.compute(), just_filter=True)).all())
    True
    """
    import dask.array as da

    image = filter_image(image, ndims=(2,), half=True).astype(np.float64)
    shifted = image - image.min()
    ptp = shifted.max() - shifted.min()
    normalised = shifted / da.where(ptp == 0, 1.0, ptp)
    filtered = map_local(_sobel_block, normalised, depth=(1, 1), dtype=np.float64, token="sobel")
    if just_filter:
        return filtered
    from daskbio.kernels.extrema import regmax

    threshold = 2 * da.sqrt(filtered.mean())
    return regmax(filtered) & (da.sqrt(filtered) > threshold)


def _dog_block(block: np.ndarray, sigma1: float, sigma2: float) -> np.ndarray:
    """mahotas.dog's difference of Gaussians, line for line."""
    import mahotas as mh

    G1 = mh.gaussian_filter(block, sigma1, mode="nearest")
    G2 = mh.gaussian_filter(block, sigma2, mode="nearest")
    return G2 - G1


def _zero_crossing_strength(d: np.ndarray) -> np.ndarray:
    """For each pixel, the largest jump of mahotas.dog's zero-crossing tests that pass
    their sign conditions (-inf if none, and on the outer rows and columns, which mahotas
    never marks): ``edge == strength > threshold`` for any threshold."""
    strength = np.full(d.shape, -np.inf)
    if d.shape[0] < 3 or d.shape[1] < 3:
        return strength
    c, left, right = d[1:-1, 1:-1], d[1:-1, :-2], d[1:-1, 2:]
    up, down = d[:-2, 1:-1], d[2:, 1:-1]
    zero = c == 0
    tests = [
        ((c < 0) & (right > 0), np.abs(c - right)),
        ((left > 0) & (right < 0), np.abs(left - c)),
        ((c < 0) & (down > 0), np.abs(c - down)),
        ((up > 0) & (c < 0), np.abs(up - c)),
        (zero & (left < 0) & (right > 0), np.abs(right - left)),
        (zero & (left > 0) & (right < 0), np.abs(left - right)),
        (zero & (up < 0) & (down > 0), np.abs(down - up)),
        (zero & (up > 0) & (down < 0), np.abs(up - down)),
    ]
    inner = strength[1:-1, 1:-1]
    for passed, jump in tests:
        # fmax skips NaN jumps, which compare False against any threshold in mahotas.
        np.fmax(inner, np.where(passed, jump, -np.inf), out=inner)
    return strength


def dog(
    image: Any, sigma1: float = 2, multiplier: float = 1.001, just_filter: bool = False
) -> da.Array:
    """Difference-of-Gaussians edges, as ``mahotas.dog``.

    ``G(sigma1 * multiplier) - G(sigma1)`` ('nearest' edges) is computed per chunk with a
    halo of the larger Gaussian's reach: ``just_filter=True`` equals mahotas exactly. The
    edges are mahotas' zero crossings whose jump exceeds ``0.75 * mean(|DoG|)``; each
    pixel's largest qualifying jump is computed per chunk (halo 1) and compared with the
    threshold. The mean is a dask tree sum, which can differ from numpy's pairwise sum in
    the last bits (relative ~1e-16), so a pixel whose jump lies within that of the
    threshold could differ from mahotas.

    Parameters
    ----------
    image : numpy or dask array, 2D
        Filtered as float64.
    sigma1 : float
        The first Gaussian's sigma (at least 0.125, as the second).
    multiplier : float
        ``sigma2 = sigma1 * multiplier``.
    just_filter : bool
        Return the difference of Gaussians instead of the edge map.

    Returns
    -------
    edges : dask array of bool, or of float64 if ``just_filter``

    Examples
    --------
    >>> import dask.array as da, mahotas as mh
    >>> x = da.random.default_rng(0).random((40, 40), chunks=12)
    >>> bool((dog(x).compute() == mh.dog(x.compute())).all())
    True
    """
    import dask.array as da

    image = filter_image(image, ndims=(2,), half=True).astype(np.float64)
    sigma1 = _number(sigma1, "sigma1")
    sigma2 = sigma1 * _number(multiplier, "multiplier")
    reach = max(_gaussian_reach(sigma1, "sigma1"), _gaussian_reach(sigma2, "sigma1 * multiplier"))
    difference = map_local(
        _dog_block,
        image,
        depth=(reach, reach),
        dtype=np.float64,
        token="dog",
        min_chunk=(reach + 2, reach + 2),
        sigma1=sigma1,
        sigma2=sigma2,
    )
    if just_filter:
        return difference
    threshold = 0.75 * da.abs(difference).mean()
    strength = map_local(
        _zero_crossing_strength, difference, depth=(1, 1), dtype=np.float64, token="dog_crossings"
    )
    return strength > threshold
