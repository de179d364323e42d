"""daskbio.kernels.features equals mahotas on the same tile or object crop of the whole array.

One table row per kernel and notable parameter set: adding a kernel is one line. Hypothesis
draws the shape (2D, and 3D where mahotas supports it), ragged chunkings down to one pixel,
the tile (any size, not aligned with the chunks), whether a ragged last tile is kept, and the
labeled objects. The references are computed here from the whole numpy array: mahotas on
``image[tile]``, or on ``image[bbox]`` with other pixels set to 0 (bbox from
``mahotas.labeled.bbox``). Where mahotas raises for lack of pixels, the row must be NaN.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import dask.array as da
import mahotas as mh
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import chunkings

from daskbio.kernels import features as fk

# mahotas' own warning (np.corrcoef of a degenerate co-occurrence matrix), raised alike by both
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")


class Kernel(NamedTuple):
    ours: Any  # daskbio kernel: (image, tile or labeled, *args, **kwargs) -> dask array
    theirs: Any  # mahotas feature: (region, *args, **kwargs) -> feature vector
    args: tuple = ()  # further arguments, given to both
    kwargs: dict = {}  # noqa: RUF012  (never mutated)
    ndims: tuple[int, ...] = (2,)
    values: str = "levels"  # "levels" (uint8, few grey levels, some zeros) or "float"


K = Kernel
HAR, LBP, PFTAS, ZER = (
    mh.features.haralick,
    mh.features.lbp,
    mh.features.pftas,
    mh.features.zernike_moments,
)
MEAN, ZEROS = {"return_mean": True}, {"ignore_zeros": True}
PTP_14TH_DISTANCE2 = {"return_mean_ptp": True, "compute_14th_feature": True, "distance": 2}
MEAN_ZEROS = {**MEAN, **ZEROS}
TILES: dict[str, Kernel] = {
    "haralick": K(fk.haralick_tiles, HAR, ndims=(2, 3)),
    "haralick-mean-ignore-zeros": K(fk.haralick_tiles, HAR, kwargs=MEAN_ZEROS, ndims=(2, 3)),
    "haralick-ptp-14th-distance2": K(fk.haralick_tiles, HAR, kwargs=PTP_14TH_DISTANCE2),
    "lbp": K(fk.lbp_tiles, LBP, (1.5, 8)),
    "lbp-float-ignore-zeros": K(fk.lbp_tiles, LBP, (2, 6), ZEROS, values="float"),
    "pftas": K(fk.pftas_tiles, PFTAS, ndims=(2, 3)),
}  # fmt: skip
OBJECTS: dict[str, Kernel] = {
    "haralick": K(fk.haralick_objects, HAR, ndims=(2, 3)),
    "haralick-mean-ignore-zeros": K(fk.haralick_objects, HAR, kwargs=MEAN_ZEROS, ndims=(2, 3)),
    "lbp-ignore-zeros": K(fk.lbp_objects, LBP, (1, 8), ZEROS),
    "pftas": K(fk.pftas_objects, PFTAS, ndims=(2, 3)),
    "zernike": K(fk.zernike_objects, ZER, (6,)),
    "zernike-float-degree5": K(fk.zernike_objects, ZER, (4.5, 5), values="float"),
}  # fmt: skip
SIDES = {2: (4, 40), 3: (3, 11)}


def reference(kernel: Kernel, region: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """mahotas on ``region``, or NaNs where mahotas raises for lack of pixels."""
    try:
        return kernel.theirs(region, *kernel.args, **kernel.kwargs)
    except ValueError:
        return np.full(shape, np.nan)


@st.composite
def images(draw: st.DrawFn, kernel: Kernel) -> np.ndarray:
    ndim = draw(st.sampled_from(kernel.ndims))
    low, high = SIDES[ndim]
    shape = tuple(draw(st.lists(st.integers(low, high), min_size=ndim, max_size=ndim)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kernel.values == "float":
        image = rng.normal(size=shape)
    else:
        image = rng.integers(0, draw(st.sampled_from([1, 3, 12])), shape, endpoint=True)
        image = image.astype(np.uint8)
    image[rng.random(shape) < draw(st.sampled_from([0.0, 0.3]))] = 0
    if draw(st.booleans()):  # a zero slab: all-zero (and constant) tiles and objects
        image[: shape[0] // 2] = 0
    return image


@pytest.mark.parametrize("name", TILES)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_tile_features_equal_mahotas_on_each_tile(name: str, data: st.DataObject) -> None:
    kernel = TILES[name]
    image = data.draw(images(kernel))
    reach = kernel.kwargs.get("distance", 1) if kernel.ours is fk.haralick_tiles else 0
    tile = tuple(data.draw(st.integers(reach + 1, n + 2)) for n in image.shape)
    partial = data.draw(st.booleans()) or any(t > n for t, n in zip(tile, image.shape))
    chunks = data.draw(chunkings(image.shape))
    x = da.from_array(image, chunks=chunks)
    got = kernel.ours(x, tile, *kernel.args, partial=partial, **kernel.kwargs)
    values = got.compute(scheduler="sync")
    grid = tuple(-(-n // t) if partial else n // t for n, t in zip(image.shape, tile))
    assert values.shape == got.shape and got.shape[: image.ndim] == grid
    assert values.dtype == got.dtype == np.float64
    for index in np.ndindex(*grid):
        region = tuple(slice(i * t, (i + 1) * t) for i, t in zip(index, tile))
        expected = reference(kernel, image[region], got.shape[image.ndim :])
        np.testing.assert_array_equal(values[index], expected, strict=True)


def test_ragged_last_tile_is_dropped_unless_partial() -> None:
    image = np.random.default_rng(1).integers(0, 9, (25, 14)).astype(np.uint8)
    x = da.from_array(image, chunks=(7, 6))
    assert fk.pftas_tiles(x, (10, 5)).shape == (2, 2, 54)
    kept = fk.pftas_tiles(x, (10, 5), partial=True)
    assert kept.shape == (3, 3, 54)
    np.testing.assert_array_equal(kept[2, 2].compute(), mh.features.pftas(image[20:, 10:]))


def test_haralick_of_constant_tile_is_finite_and_equals_mahotas() -> None:
    image = np.full((12, 12), 7, np.uint8)
    got = fk.haralick_tiles(da.from_array(image, chunks=5), 6).compute()
    assert np.isfinite(got).all()
    for index in np.ndindex(2, 2):
        np.testing.assert_array_equal(got[index], mh.features.haralick(image[:6, :6]))


def test_tile_where_mahotas_raises_is_nan_and_others_are_not() -> None:
    image = np.random.default_rng(2).integers(1, 9, (12, 12)).astype(np.uint8)
    image[:6, :6] = 0
    with pytest.raises(ValueError, match="empty"):
        mh.features.haralick(image[:6, :6], ignore_zeros=True)
    got = fk.haralick_tiles(image, 6, ignore_zeros=True).compute()
    assert np.isnan(got[0, 0]).all()
    assert np.isfinite(got[1, 1]).all()
    np.testing.assert_array_equal(got[1, 1], mh.features.haralick(image[6:, 6:], ignore_zeros=True))
    lbp = fk.lbp_tiles(image, 6, 1, 8, ignore_zeros=True).compute()
    assert np.isnan(lbp[0, 0]).all() and np.isfinite(lbp[1, 1]).all()


def test_tile_features_are_lazy_and_chunked_by_whole_tiles() -> None:
    x = da.zeros((100, 90), dtype=np.uint8, chunks=(33, 50))
    got = fk.haralick_tiles(x, 10, return_mean=True)
    assert isinstance(got, da.Array) and got.shape == (10, 9, 13)
    assert got.chunks[:2] == ((3, 3, 3, 1), (5, 4))


@pytest.fixture(scope="module")
def measures() -> Any:
    return pytest.importorskip("daskbio.kernels.measures")


@st.composite
def labeled_images(draw: st.DrawFn, kernel: Kernel) -> tuple[np.ndarray, np.ndarray]:
    image = draw(images(kernel))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    labeled, n = mh.label(rng.random(image.shape) < draw(st.sampled_from([0.3, 0.6])))
    if n >= 2 and draw(st.booleans()):
        labeled[labeled == 2] = 0  # a label with no pixels
    if kernel.ours is fk.zernike_objects and kernel.values == "levels":
        image = (labeled > 0).astype(np.uint8)  # shape moments of a mask
    return image, labeled.astype(draw(st.sampled_from([np.int32, np.uint16, np.int64])))


@pytest.mark.parametrize("name", OBJECTS)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_object_features_equal_mahotas_on_each_crop(
    measures: Any, name: str, data: st.DataObject
) -> None:
    kernel = OBJECTS[name]
    image, labeled = data.draw(labeled_images(kernel))
    x = da.from_array(image, chunks=data.draw(chunkings(image.shape)))
    lab = da.from_array(labeled, chunks=data.draw(chunkings(image.shape)))
    got = kernel.ours(x, lab, *kernel.args, **kernel.kwargs)
    values = got.compute(scheduler="sync")
    assert values.shape == got.shape and got.shape[0] == labeled.max()
    boxes = mh.labeled.bbox(labeled)
    for label in range(1, int(labeled.max()) + 1):
        lows, highs = boxes[label, 0::2], boxes[label, 1::2]
        if (highs <= lows).any():
            assert np.isnan(values[label - 1]).all()
            continue
        box = tuple(slice(lo, hi) for lo, hi in zip(lows, highs))
        crop = np.where(labeled[box] == label, image[box], np.zeros((), image.dtype))
        expected = reference(kernel, crop, got.shape[1:])
        np.testing.assert_array_equal(values[label - 1], expected, strict=True)


def test_thin_object_with_ignore_zeros_is_nan(measures: Any) -> None:
    image = np.random.default_rng(4).integers(1, 9, (10, 10)).astype(np.uint8)
    labeled = np.zeros((10, 10), np.int32)
    labeled[2:8, 3] = 1  # one pixel wide: no horizontal pairs
    labeled[5:9, 5:9] = 2
    got = fk.haralick_objects(image, labeled, ignore_zeros=True).compute()
    assert np.isnan(got[0]).all()
    np.testing.assert_array_equal(got[1], mh.features.haralick(image[5:9, 5:9], ignore_zeros=True))


def test_image_without_objects_gives_no_rows(measures: Any) -> None:
    got = fk.pftas_objects(np.ones((8, 8), np.uint8), np.zeros((8, 8), np.int32))
    assert got.shape == (0, 54) and got.compute().shape == (0, 54)


# ---------------------------------------------------------------- input checks

U8 = np.ones((12, 12), np.uint8)
LAB = np.ones((12, 12), np.int32)
BAD_CALLS = {
    "haralick-float": (
        lambda: fk.haralick_tiles(U8 * 1.0, 4),
        TypeError,
        "image must be bool or unsigned",
    ),
    "haralick-signed": (
        lambda: fk.haralick_tiles(U8.astype(np.int16), 4),
        TypeError,
        "image must be bool or unsigned",
    ),
    "haralick-4d": (
        lambda: fk.haralick_tiles(np.ones((3,) * 4, np.uint8), 2),
        ValueError,
        "image must be 2D or 3D",
    ),
    "haralick-list": (
        lambda: fk.haralick_tiles([[1, 2]], 1),
        TypeError,
        "image must be a numpy or dask array",
    ),
    "haralick-both-means": (
        lambda: fk.haralick_tiles(U8, 4, return_mean=True, return_mean_ptp=True),
        ValueError,
        "return_mean and return_mean_ptp",
    ),
    "haralick-unknown-kwarg": (
        lambda: fk.haralick_tiles(U8, 4, ignore_zero=True),
        TypeError,
        "unknown haralick argument.*ignore_zero",
    ),
    "haralick-distance-0": (
        lambda: fk.haralick_tiles(U8, 4, distance=0),
        ValueError,
        "distance must be a positive integer",
    ),
    "haralick-tile-not-beyond-distance": (
        lambda: fk.haralick_tiles(U8, (4, 2), distance=2),
        ValueError,
        "tile sides must be larger than distance=2",
    ),
    "tile-too-big": (
        lambda: fk.pftas_tiles(U8, 13),
        ValueError,
        "tile .* is larger than the image",
    ),
    "tile-wrong-length": (
        lambda: fk.pftas_tiles(U8, (4, 4, 4)),
        ValueError,
        "tile must be an int or 2 ints",
    ),
    "tile-zero": (lambda: fk.pftas_tiles(U8, 0), ValueError, "tile sides must be positive"),
    "tile-float": (lambda: fk.pftas_tiles(U8, 2.5), ValueError, "tile must be an int"),
    "pftas-bool": (lambda: fk.pftas_tiles(U8 > 0, 4), TypeError, "image must be unsigned integer"),
    "lbp-3d": (
        lambda: fk.lbp_tiles(np.ones((4, 4, 4)), 2, 1, 8),
        ValueError,
        "image must be 2D, got 3D",
    ),
    "lbp-complex": (lambda: fk.lbp_tiles(U8 * 1j, 4, 1, 8), TypeError, "image must be"),
    "lbp-radius": (lambda: fk.lbp_tiles(U8, 4, -1, 8), ValueError, "radius must be positive"),
    "lbp-points": (
        lambda: fk.lbp_tiles(U8, 4, 1, 0),
        ValueError,
        "points must be between 1 and 30",
    ),
    "lbp-points-float": (
        lambda: fk.lbp_tiles(U8, 4, 1, 8.0),
        TypeError,
        "points must be an integer",
    ),
    "objects-float-labels": (
        lambda: fk.pftas_objects(U8, LAB * 1.0),
        TypeError,
        "labeled must be integer",
    ),
    "objects-shape": (
        lambda: fk.haralick_objects(U8, LAB[:5]),
        ValueError,
        "labeled must have the image's shape",
    ),
    "objects-rank": (lambda: fk.haralick_objects(U8, LAB[None]), ValueError, "labeled must be 2D"),
    "zernike-3d": (
        lambda: fk.zernike_objects(np.ones((3,) * 3), LAB, 3),
        ValueError,
        "image_or_mask must be 2D",
    ),
    "zernike-radius": (
        lambda: fk.zernike_objects(U8, LAB, 0),
        ValueError,
        "radius must be positive",
    ),
    "zernike-degree": (
        lambda: fk.zernike_objects(U8, LAB, 3, -1),
        ValueError,
        "degree must be a non-negative",
    ),
}


@pytest.mark.parametrize("name", BAD_CALLS)
def test_bad_input_is_refused_naming_the_argument(name: str) -> None:
    call, error, message = BAD_CALLS[name]
    with pytest.raises(error, match=message):
        call()
