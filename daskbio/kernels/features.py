"""mahotas texture and shape features, per tile of a regular grid or per labeled object.

Tiles (``*_tiles``): the image is cut into tiles of a size the user gives, starting at the
origin. The array is rechunked so that every chunk holds whole tiles (chunk sides become
multiples of the tile's, close to the original chunk size); each chunk then computes the
features of its tiles with mahotas. A tile never straddles two chunks, so every feature vector
is mahotas applied to exactly that tile of the whole array: bit for bit equal. The result is a
dask array of shape ``grid + feature_shape``: entry ``[i, j]`` describes the tile whose
top-left pixel is ``(i * tile[0], j * tile[1])``. For scikit-learn, flatten the grid:
``X = feats.compute().reshape(-1, n_features)`` (``n_features`` the product of
``feature_shape``), with row ``r`` the tile at ``np.unravel_index(r, grid)``.

A ragged last tile (image side not a multiple of the tile side) is dropped by default, so
every row describes the same number of pixels; with ``partial=True`` it is kept and its
features are mahotas' on that partial tile.

Objects (``*_objects``): each labeled object's bounding box (``daskbio.kernels.measures.bbox``,
mahotas' layout) is sliced out of the dask arrays, pixels not in the object are set to 0, and
mahotas computes the features of that crop. Row ``k`` of the result is label ``k + 1``. Crops
are gathered in batches of objects, one task per batch.

Where mahotas raises because there is nothing to measure (haralick on a tile or object with no
co-occurring pixel pair in some direction, e.g. an object one pixel wide or an all-zero tile
with ``ignore_zeros=True``; lbp with ``ignore_zeros=True`` on an all-zero tile; haralick's
14th feature when numpy's eigenvalue solver does not converge on a degenerate tile), the row is NaN
instead, so one empty tile does not abort a whole image; labels with no pixels are NaN rows
too. Drop them with ``X[~np.isnan(X).any(axis=1)]``. A constant tile does not raise:
mahotas returns finite features for it (correlation 1, entropies 0).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial as bind
from typing import Any

import numpy as np

from daskbio.kernels._chunked import as_dask, check_dtype

__all__ = [
    "haralick_objects",
    "haralick_tiles",
    "lbp_objects",
    "lbp_tiles",
    "pftas_objects",
    "pftas_tiles",
    "zernike_objects",
]

Feature = Callable[[np.ndarray], np.ndarray]

_HARALICK_OPTIONS = {
    "ignore_zeros",
    "preserve_haralick_bug",
    "compute_14th_feature",
    "return_mean",
    "return_mean_ptp",
    "use_x_minus_y_variance",
    "distance",
}
_OBJECT_BATCH = 64


def _or_nan(feature: Feature, shape: tuple[int, ...], region: np.ndarray) -> np.ndarray:
    """``feature(region)``, or NaNs where mahotas finds nothing to measure in it."""
    try:
        return feature(region)
    except np.linalg.LinAlgError:  # haralick's 14th feature on a degenerate matrix
        return np.full(shape, np.nan)
    except ValueError as err:
        message = str(err)
        if "empty" not in message and "zero-size" not in message:
            raise
        return np.full(shape, np.nan)


# ---------------------------------------------------------------- the mahotas features


def _haralick(image: Any, kwargs: dict[str, Any]) -> tuple[Feature, tuple[int, ...], int]:
    """mahotas haralick with checked ``kwargs``: the feature, its shape, the reach it needs."""
    import mahotas.features

    unknown = sorted(set(kwargs) - _HARALICK_OPTIONS)
    if unknown:
        raise TypeError(
            f"unknown haralick argument(s) {unknown}; known: {sorted(_HARALICK_OPTIONS)}"
        )
    check_dtype(image, "bu", what="bool or unsigned integer (grey levels)")
    if kwargs.get("return_mean") and kwargs.get("return_mean_ptp"):
        raise ValueError("return_mean and return_mean_ptp cannot both be set")
    distance = kwargs.get("distance", 1)
    if not isinstance(distance, (int, np.integer)) or isinstance(distance, bool) or distance < 1:
        raise ValueError(f"distance must be a positive integer, got {distance!r}")
    n_features = 13 + bool(kwargs.get("compute_14th_feature"))
    if kwargs.get("return_mean"):
        shape: tuple[int, ...] = (n_features,)
    elif kwargs.get("return_mean_ptp"):
        shape = (2 * n_features,)
    else:
        shape = (4 if image.ndim == 2 else 13, n_features)
    return bind(mahotas.features.haralick, **kwargs), shape, int(distance)


def _lbp(image: Any, radius: Any, points: Any, ignore_zeros: bool) -> tuple[Feature, tuple[int]]:
    import mahotas.features
    from mahotas.features.lbp import lbp_names

    check_dtype(image, "biuf")
    if isinstance(radius, bool) or not isinstance(radius, (int, float, np.integer, np.floating)):
        raise TypeError(f"radius must be a number, got {type(radius).__name__}")
    if not radius > 0:
        raise ValueError(f"radius must be positive, got {radius}")
    if isinstance(points, bool) or not isinstance(points, (int, np.integer)):
        raise TypeError(f"points must be an integer, got {type(points).__name__}")
    if not 1 <= points <= 30:
        raise ValueError(f"points must be between 1 and 30, got {points}")
    shape = (len(lbp_names(radius, points)),)
    feature = bind(
        mahotas.features.lbp, radius=radius, points=int(points), ignore_zeros=ignore_zeros
    )
    return feature, shape


def _pftas(image: Any) -> tuple[Feature, tuple[int]]:
    import mahotas.features

    check_dtype(image, "u", what="unsigned integer (pftas thresholds with Otsu)")
    return mahotas.features.pftas, (54 if image.ndim == 2 else 162,)


# ---------------------------------------------------------------- tiles


def _tile_of(tile: Any, ndim: int, reach: int = 0) -> tuple[int, ...]:
    sides = tuple(tile) if isinstance(tile, Sequence) else (tile,) * ndim
    if len(sides) != ndim or not all(
        isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in sides
    ):
        raise ValueError(f"tile must be an int or {ndim} ints (one per axis), got {tile!r}")
    if any(s <= reach for s in sides):
        need = "positive" if not reach else f"larger than distance={reach} (else no pixel pairs)"
        raise ValueError(f"tile sides must be {need}, got {tile!r}")
    return tuple(int(s) for s in sides)


def _block_features(
    block: np.ndarray, feature: Feature, tile: tuple[int, ...], shape: tuple[int, ...]
) -> np.ndarray:
    grid = tuple(-(-n // t) for n, t in zip(block.shape, tile))
    out = np.empty(grid + shape, np.float64)
    for index in np.ndindex(*grid):
        region = tuple(slice(i * t, (i + 1) * t) for i, t in zip(index, tile))
        out[index] = _or_nan(feature, shape, block[region])
    return out


def _per_tile(
    image: Any,
    tile: tuple[int, ...],
    feature: Feature,
    shape: tuple[int, ...],
    partial: bool,
    token: str,
) -> Any:
    """``feature`` of every tile, as a dask array ``grid + shape`` (see the module's notes)."""
    import dask.array as da

    if not partial:
        whole = tuple(n // t for n, t in zip(image.shape, tile))
        if 0 in whole:
            raise ValueError(
                f"tile {tile} is larger than the image {image.shape}: no whole tile; "
                "use a smaller tile or partial=True"
            )
        image = image[tuple(slice(0, n * t) for n, t in zip(whole, tile))]
    image = image.rechunk(tuple(max(1, c[0] // t) * t for c, t in zip(image.chunks, tile)))
    grid_chunks = tuple(tuple(-(-b // t) for b in bc) for bc, t in zip(image.chunks, tile))
    ndim = image.ndim
    return da.map_blocks(
        _block_features,
        image,
        dtype=np.float64,
        chunks=grid_chunks + tuple((s,) for s in shape),
        new_axis=list(range(ndim, ndim + len(shape))),
        meta=np.empty((0,) * (ndim + len(shape)), np.float64),
        token=token,
        feature=feature,
        tile=tile,
        shape=shape,
    )


def haralick_tiles(
    image: Any, tile: int | Sequence[int], partial: bool = False, **kwargs: Any
) -> Any:
    """Haralick texture features of every tile of a regular grid.

    Parameters
    ----------
    image : numpy or dask array, 2D or 3D, bool or unsigned integer
        Grey levels. mahotas builds a ``(max + 1)**2`` co-occurrence matrix per tile, so
        reduce the grey levels first (e.g. ``stretch`` to uint8) for 16-bit images.
    tile : int or sequence of int
        Tile side (all axes) or one side per axis; each larger than ``distance``.
    partial : bool, optional
        Keep the ragged last tile of each axis (default False: drop it).
    **kwargs
        Passed to ``mahotas.features.haralick`` (``ignore_zeros``, ``distance``,
        ``return_mean``, ``return_mean_ptp``, ``compute_14th_feature``, ...).

    Returns
    -------
    features : dask array of float64, shape ``grid + feature_shape``
        ``feature_shape`` is mahotas': ``(4, 13)`` in 2D, ``(13, 13)`` in 3D, ``(13,)`` with
        ``return_mean``, ``(26,)`` with ``return_mean_ptp`` (14/28 with the 14th feature).
        Equal bit for bit to mahotas on each tile; NaN where mahotas raises for lack of
        pixel pairs (see the module's notes).

    Examples
    --------
    >>> import dask.array as da, numpy as np, mahotas as mh
    >>> x = np.random.default_rng(0).integers(0, 8, (40, 30)).astype(np.uint8)
    >>> f = haralick_tiles(da.from_array(x, chunks=15), 10, return_mean=True)
    >>> f.shape
    (4, 3, 13)
    >>> bool((f[1, 2].compute() == mh.features.haralick(x[10:20, 20:30], return_mean=True)).all())
    True
    """
    image = as_dask(image)
    feature, shape, reach = _haralick(image, kwargs)
    return _per_tile(image, _tile_of(tile, image.ndim, reach), feature, shape, partial, "haralick")


def lbp_tiles(
    image: Any,
    tile: int | Sequence[int],
    radius: float,
    points: int,
    ignore_zeros: bool = False,
    partial: bool = False,
) -> Any:
    """Local binary pattern histograms of every tile of a regular grid (2D).

    Parameters
    ----------
    image : numpy or dask array, 2D, bool, integer or float
        The image.
    tile : int or pair of int
        Tile side, or one side per axis.
    radius : number
        Radius of the pattern circle, in pixels (positive).
    points : int
        Number of points on the circle (1 to 30).
    ignore_zeros : bool, optional
        Leave zero pixels out of the histograms (default False).
    partial : bool, optional
        Keep the ragged last tile of each axis (default False: drop it).

    Returns
    -------
    features : dask array of float64, shape ``grid + (n_patterns,)``
        ``mahotas.features.lbp`` of each tile, bit for bit (NaN for an all-zero tile with
        ``ignore_zeros``, where mahotas raises). Within a tile, mahotas' own edge
        handling applies at the tile's border, as it would on the tile alone.

    Examples
    --------
    >>> import dask.array as da, numpy as np, mahotas as mh
    >>> x = np.random.default_rng(0).integers(0, 255, (40, 30)).astype(np.uint8)
    >>> f = lbp_tiles(da.from_array(x, chunks=15), (20, 10), radius=2, points=8)
    >>> f.shape
    (2, 3, 36)
    >>> bool((f[1, 0].compute() == mh.features.lbp(x[20:40, 0:10], 2, 8)).all())
    True
    """
    image = as_dask(image, ndims=(2,))
    feature, shape = _lbp(image, radius, points, ignore_zeros)
    return _per_tile(image, _tile_of(tile, 2), feature, shape, partial, "lbp")


def pftas_tiles(image: Any, tile: int | Sequence[int], partial: bool = False) -> Any:
    """Parameter-free threshold adjacency statistics of every tile of a regular grid.

    Parameters
    ----------
    image : numpy or dask array, 2D or 3D, unsigned integer
        The image. Each tile is thresholded with its own Otsu threshold, as
        ``mahotas.features.pftas`` does on the tile alone.
    tile : int or sequence of int
        Tile side, or one side per axis.
    partial : bool, optional
        Keep the ragged last tile of each axis (default False: drop it).

    Returns
    -------
    features : dask array of float64, shape ``grid + (54,)`` in 2D, ``grid + (162,)`` in 3D
        ``mahotas.features.pftas`` of each tile, bit for bit.

    Examples
    --------
    >>> import dask.array as da, numpy as np, mahotas as mh
    >>> x = np.random.default_rng(0).integers(0, 255, (40, 30)).astype(np.uint8)
    >>> f = pftas_tiles(da.from_array(x, chunks=15), 16, partial=True)
    >>> f.shape
    (3, 2, 54)
    >>> bool((f[2, 1].compute() == mh.features.pftas(x[32:, 16:])).all())
    True
    """
    image = as_dask(image)
    feature, shape = _pftas(image)
    return _per_tile(image, _tile_of(tile, image.ndim), feature, shape, partial, "pftas")


# ---------------------------------------------------------------- objects


def _batch_features(
    crops: list[tuple[np.ndarray, np.ndarray, int] | None],
    feature: Feature,
    shape: tuple[int, ...],
) -> np.ndarray:
    out = np.full((len(crops), *shape), np.nan)
    for row, crop in enumerate(crops):
        if crop is not None:
            image, labeled, label = crop
            region = np.where(labeled == label, image, np.zeros((), image.dtype))
            out[row] = _or_nan(feature, shape, region)
    return out


def _checked_labels(image: Any, labeled: Any) -> Any:
    labeled = as_dask(labeled, name="labeled", ndims=(image.ndim,))
    check_dtype(labeled, "iu", name="labeled", what="integer (labels)")
    if labeled.shape != image.shape:
        raise ValueError(f"labeled must have the image's shape {image.shape}, got {labeled.shape}")
    return labeled


def _per_object(
    image: Any, labeled: Any, feature: Feature, shape: tuple[int, ...], token: str
) -> Any:
    """``feature`` of every labeled object's masked bounding-box crop: ``(n_labels, *shape)``."""
    import dask.array as da
    from dask import delayed
    from dask.base import tokenize

    from daskbio.kernels.measures import bbox

    boxes = np.asarray(bbox(labeled))
    crops: list[tuple[Any, Any, int] | None] = []
    for label in range(1, len(boxes)):
        lows, highs = boxes[label, 0::2], boxes[label, 1::2]
        if np.any(highs <= lows):
            crops.append(None)  # a label with no pixels
            continue
        region = tuple(slice(int(lo), int(hi)) for lo, hi in zip(lows, highs))
        crops.append((image[region], labeled[region], label))
    meta = np.empty((0,) * (1 + len(shape)), np.float64)
    if not crops:
        return da.from_array(meta.reshape((0, *shape)))
    batches = []
    for start in range(0, len(crops), _OBJECT_BATCH):
        batch = crops[start : start + _OBJECT_BATCH]
        key = f"{token}-objects-{tokenize(batch, feature, shape)}"
        features = delayed(_batch_features)(batch, feature, shape, dask_key_name=key)
        batches.append(
            da.from_delayed(features, shape=(len(batch), *shape), dtype=np.float64, meta=meta)
        )
    return da.concatenate(batches)


def haralick_objects(image: Any, labeled: Any, **kwargs: Any) -> Any:
    """Haralick texture features of every labeled object.

    Each object is its bounding box of ``image`` with the pixels of other labels and of
    the background set to 0; pass ``ignore_zeros=True`` so that those zeros are not
    counted as texture.

    Parameters
    ----------
    image : numpy or dask array, 2D or 3D, bool or unsigned integer
        Grey levels.
    labeled : numpy or dask array of integer labels, same shape
        0 is background; objects are 1, 2, ... as from ``mahotas.label``.
    **kwargs
        Passed to ``mahotas.features.haralick``.

    Returns
    -------
    features : dask array of float64, shape ``(n_labels,) + feature_shape``
        Row ``k`` is label ``k + 1`` (``feature_shape`` as in ``haralick_tiles``), equal bit
        for bit to mahotas on the object's crop; NaN for absent labels and where mahotas
        raises (e.g. an object one pixel wide with ``ignore_zeros``).

    Examples
    --------
    >>> import numpy as np, mahotas as mh
    >>> x = np.random.default_rng(0).integers(1, 8, (30, 30)).astype(np.uint8)
    >>> labeled = np.zeros((30, 30), np.int32)
    >>> labeled[2:9, 3:12] = 1
    >>> labeled[15:28, 10:20] = 2
    >>> f = haralick_objects(x, labeled, ignore_zeros=True, return_mean=True)
    >>> f.shape
    (2, 13)
    >>> crop = x[15:28, 10:20]
    >>> expected = mh.features.haralick(crop, ignore_zeros=True, return_mean=True)
    >>> bool((f[1].compute() == expected).all())
    True
    """
    image = as_dask(image)
    feature, shape, _ = _haralick(image, kwargs)
    return _per_object(image, _checked_labels(image, labeled), feature, shape, "haralick")


def lbp_objects(
    image: Any, labeled: Any, radius: float, points: int, ignore_zeros: bool = False
) -> Any:
    """Local binary pattern histograms of every labeled object (2D).

    Each object is its bounding box of ``image`` with pixels outside the object set to 0;
    ``ignore_zeros=True`` leaves those out of the histogram.

    Parameters
    ----------
    image : numpy or dask array, 2D, bool, integer or float
        The image.
    labeled : numpy or dask array of integer labels, same shape
        0 is background.
    radius : number
        Radius of the pattern circle, in pixels (positive).
    points : int
        Number of points on the circle (1 to 30).
    ignore_zeros : bool, optional
        Leave zero pixels out of the histograms (default False).

    Returns
    -------
    features : dask array of float64, shape ``(n_labels, n_patterns)``
        Row ``k`` is label ``k + 1``, equal bit for bit to ``mahotas.features.lbp`` on the
        object's crop; NaN for absent labels.

    Examples
    --------
    >>> import numpy as np, mahotas as mh
    >>> x = np.random.default_rng(0).integers(1, 255, (30, 30)).astype(np.uint8)
    >>> labeled = np.zeros((30, 30), np.int32)
    >>> labeled[15:28, 10:20] = 1
    >>> f = lbp_objects(x, labeled, radius=1, points=8)
    >>> bool((f[0].compute() == mh.features.lbp(x[15:28, 10:20], 1, 8)).all())
    True
    """
    image = as_dask(image, ndims=(2,))
    feature, shape = _lbp(image, radius, points, ignore_zeros)
    return _per_object(image, _checked_labels(image, labeled), feature, shape, "lbp")


def pftas_objects(image: Any, labeled: Any) -> Any:
    """Parameter-free threshold adjacency statistics of every labeled object.

    Each object is its bounding box of ``image`` with pixels outside the object set to 0,
    thresholded with that crop's own Otsu threshold, as ``mahotas.features.pftas`` does.

    Parameters
    ----------
    image : numpy or dask array, 2D or 3D, unsigned integer
        The image.
    labeled : numpy or dask array of integer labels, same shape
        0 is background.

    Returns
    -------
    features : dask array of float64, shape ``(n_labels, 54)`` in 2D, ``(n_labels, 162)`` in 3D
        Row ``k`` is label ``k + 1``, equal bit for bit to mahotas on the object's crop;
        NaN for absent labels.

    Examples
    --------
    >>> import numpy as np, mahotas as mh
    >>> x = np.random.default_rng(0).integers(1, 255, (30, 30)).astype(np.uint8)
    >>> labeled = np.zeros((30, 30), np.int32)
    >>> labeled[15:28, 10:20] = 1
    >>> f = pftas_objects(x, labeled)
    >>> bool((f[0].compute() == mh.features.pftas(x[15:28, 10:20])).all())
    True
    """
    image = as_dask(image)
    feature, shape = _pftas(image)
    return _per_object(image, _checked_labels(image, labeled), feature, shape, "pftas")


def zernike_objects(image_or_mask: Any, labeled: Any, radius: float, degree: int = 8) -> Any:
    """Zernike moments of every labeled object (2D).

    Each object is its bounding box of ``image_or_mask`` with pixels outside the object set
    to 0; mahotas centres the moments on that crop's centre of mass. Pass a mask (e.g.
    ``labeled > 0``, or ``labeled`` itself) for shape moments, an intensity image for
    intensity-weighted ones.

    Parameters
    ----------
    image_or_mask : numpy or dask array, 2D, bool, integer or float
        The image or mask.
    labeled : numpy or dask array of integer labels, same shape
        0 is background.
    radius : number
        Radius of the disc the polynomials are computed on, in pixels (positive).
    degree : int, optional
        Highest degree (default 8), non-negative.

    Returns
    -------
    moments : dask array of float64, shape ``(n_labels, n_moments)``
        Row ``k`` is label ``k + 1``, equal bit for bit to
        ``mahotas.features.zernike_moments`` on the object's crop; NaN for absent labels.

    Examples
    --------
    >>> import numpy as np, mahotas as mh
    >>> labeled = np.zeros((30, 30), np.int32)
    >>> labeled[15:28, 10:20] = 1
    >>> z = zernike_objects(labeled > 0, labeled, radius=8)
    >>> z.shape
    (1, 25)
    >>> crop = labeled[15:28, 10:20] > 0
    >>> bool((z[0].compute() == mh.features.zernike_moments(crop, 8)).all())
    True
    """
    import mahotas.features

    image = as_dask(image_or_mask, name="image_or_mask", ndims=(2,))
    check_dtype(image, "biuf", name="image_or_mask")
    if isinstance(radius, bool) or not isinstance(radius, (int, float, np.integer, np.floating)):
        raise TypeError(f"radius must be a number, got {type(radius).__name__}")
    if not radius > 0:
        raise ValueError(f"radius must be positive, got {radius}")
    if isinstance(degree, bool) or not isinstance(degree, (int, np.integer)) or degree < 0:
        raise ValueError(f"degree must be a non-negative integer, got {degree!r}")
    shape = (sum(n // 2 + 1 for n in range(degree + 1)),)
    feature = bind(mahotas.features.zernike_moments, radius=radius, degree=int(degree))
    labeled = _checked_labels(image, labeled)
    return _per_object(image, labeled, feature, shape, "zernike")
