"""daskbio.kernels.thresholds equals mahotas on the whole array, for every chunking.

One table row per kernel and notable parameter set: adding a kernel is one line. Hypothesis
draws the rank (1D to 3D, as the kernel accepts), the shape, ragged chunkings down to one
pixel (thinner than any halo of the local thresholds), the dtype, the grey-level range and
how much of the image is zero (for ``ignore_zeros``).
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import dask.array as da
import mahotas as mh
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mahotas.thresholding import bernsen as mh_bernsen
from mahotas.thresholding import gbernsen as mh_gbernsen
from strategies import chunkings

from daskbio.kernels import thresholds as th
from daskbio.kernels._chunked import map_local


class Kernel(NamedTuple):
    ours: Any  # daskbio kernel: dask array -> lazy dask result
    theirs: Any  # mahotas function: numpy array -> its result
    args: tuple = ()  # further arguments, given to both
    kwargs: dict = {}  # noqa: RUF012  (never mutated)
    values: str = "levels"  # "levels" (unsigned), "numbers" (also signed, float), "any" (and bool)
    ndims: tuple[int, ...] = (1, 2, 3)  # the image ranks drawn


K = Kernel
ZEROS = {"ignore_zeros": True}
PLANE, VOLUME = (2,), (3,)
SQUARE, CUBE, BAR = np.ones((5, 5), bool), np.ones((3, 3, 3), bool), np.ones((1, 7), np.uint8)
TABLE: dict[str, Kernel] = {
    "otsu": K(th.otsu, mh.otsu),
    "otsu-ignore-zeros": K(th.otsu, mh.otsu, kwargs=ZEROS),
    "rc": K(th.rc, mh.rc),
    "rc-ignore-zeros": K(th.rc, mh.rc, kwargs=ZEROS),
    "stretch": K(th.stretch, mh.stretch, values="any"),
    "stretch-max": K(th.stretch, mh.stretch, (100,), values="any"),
    "stretch-min-max": K(th.stretch, mh.stretch, (20, 200), values="any"),
    "stretch-float-out": K(th.stretch, mh.stretch, (-1.5, 2.25, np.float64), values="any"),
    "stretch-uint16-out": K(th.stretch, mh.stretch, (3, 60000), {"dtype": np.uint16}, "any"),
    "bernsen": K(th.bernsen, mh_bernsen, (3, 20), ndims=PLANE),
    "bernsen-radius-1": K(th.bernsen, mh_bernsen, (1, 5), ndims=PLANE),
    "bernsen-gthresh": K(th.bernsen, mh_bernsen, (5, 40, 100), ndims=PLANE),
    "bernsen-signed-float": K(th.bernsen, mh_bernsen, (4, 0.5, 0.1), {}, "numbers", PLANE),
    "gbernsen-square": K(th.gbernsen, mh_gbernsen, (SQUARE, 15, 60), ndims=PLANE),
    "gbernsen-bar-signed-float": K(th.gbernsen, mh_gbernsen, (BAR, 3, 2), {}, "numbers", PLANE),
    "gbernsen-cube": K(th.gbernsen, mh_gbernsen, (CUBE, 10, 60), ndims=VOLUME),
}  # fmt: skip

LEVEL_DTYPES = (np.uint8, np.uint16, np.uint32, np.uint64)
NUMBER_DTYPES = (*LEVEL_DTYPES, np.int8, np.int32, np.float32, np.float64)
ANY_DTYPES = (*NUMBER_DTYPES, bool)
DTYPES = {"levels": LEVEL_DTYPES, "numbers": NUMBER_DTYPES, "any": ANY_DTYPES}


@st.composite
def images(draw: st.DrawFn, values: str, ndims: tuple[int, ...]) -> np.ndarray:
    ndim = draw(st.sampled_from(ndims))
    side = {1: 70, 2: 40, 3: 12}[ndim]
    shape = tuple(draw(st.lists(st.integers(1, side), min_size=ndim, max_size=ndim)))
    dtype = np.dtype(draw(st.sampled_from(DTYPES[values])))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if dtype.kind == "f":
        image = (rng.normal(size=shape) * draw(st.sampled_from([1e-3, 1.0, 1e6]))).astype(dtype)
    elif dtype.kind == "b":
        image = rng.random(shape) < 0.5
    else:
        top = min(draw(st.sampled_from([1, 2, 7, 255, 70_000])), np.iinfo(dtype).max)
        low = np.iinfo(dtype).min // 2
        image = rng.integers(max(low, -top), top, shape, endpoint=True).astype(dtype)
    image[rng.random(shape) < draw(st.sampled_from([0.0, 0.5, 1.0]))] = 0
    return image


@pytest.mark.parametrize("name", TABLE)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_chunked_result_equals_mahotas_on_whole_array(name: str, data: st.DataObject) -> None:
    kernel = TABLE[name]
    image = data.draw(images(kernel.values, kernel.ndims))
    chunks = data.draw(chunkings(image.shape))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # stretch's casts, as mahotas'
        expected = kernel.theirs(image, *kernel.args, **kernel.kwargs)
        ours = kernel.ours(da.from_array(image, chunks=chunks), *kernel.args, **kernel.kwargs)
        got = ours.compute(scheduler="sync")
    if np.ndim(expected) == 0:
        assert got == expected
    else:
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected, strict=True)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_stretch_equals_mahotas_with_non_finite_values(value: float) -> None:
    image = np.random.default_rng(3).normal(size=(23, 17))
    image[4, 5] = value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for dtype in (np.float64, np.uint8):
            got = th.stretch(da.from_array(image, chunks=6), 2, 9, dtype).compute()
            np.testing.assert_array_equal(got, mh.stretch(image, 2, 9, dtype), strict=True)


def test_stretch_of_constant_image_is_min_like_mahotas() -> None:
    image = np.full((9, 7), 5.5)
    got = th.stretch(da.from_array(image, chunks=4), 3, 8).compute()
    np.testing.assert_array_equal(got, mh.stretch(image, 3, 8), strict=True)
    assert (got == 3).all()


def test_thresholds_are_lazy_0d_dask_arrays_usable_in_expressions() -> None:
    image = np.random.default_rng(5).integers(0, 256, (31, 29)).astype(np.uint8)
    x = da.from_array(image, chunks=(8, 11))
    t = th.otsu(x)
    assert isinstance(t, da.Array) and t.shape == () and t.dtype == np.int64
    assert isinstance(th.rc(x), da.Array) and th.rc(x).dtype == np.float64
    assert int(t) == mh.otsu(image)
    binary = x > t
    assert isinstance(binary, da.Array)
    np.testing.assert_array_equal(binary.compute(), image > mh.otsu(image))


def test_threshold_of_wide_uint32_levels() -> None:
    image = np.random.default_rng(6).integers(0, 2**17, (30, 30)).astype(np.uint32)
    x = da.from_array(image, chunks=7)
    assert int(th.otsu(x)) == mh.otsu(image)
    assert float(th.rc(x)) == mh.rc(image)


def test_numpy_input_is_accepted() -> None:
    image = np.random.default_rng(7).integers(0, 9, (12, 10)).astype(np.uint16)
    assert int(th.otsu(image)) == mh.otsu(image)
    np.testing.assert_array_equal(th.stretch(image).compute(), mh.stretch(image))
    np.testing.assert_array_equal(th.bernsen(image, 2, 3).compute(), mh_bernsen(image, 2, 3))


def test_input_checks_happen_before_any_computation() -> None:
    calls = []

    def source(block: np.ndarray) -> np.ndarray:
        calls.append(1)
        return block

    meta = np.empty((0, 0), np.uint8)
    x = da.zeros((20, 20), dtype=np.uint8, chunks=5).map_blocks(source, meta=meta)
    for kernel in (th.otsu, th.rc, th.stretch):
        kernel(x)
    th.bernsen(x, 3, 10)
    th.gbernsen(x, SQUARE, 10, 5)
    with pytest.raises(TypeError):
        th.otsu(x.astype(bool))
    with pytest.raises(TypeError):
        th.bernsen(x.astype(bool), 3, 10)
    assert calls == []


THRESHOLDS = [th.otsu, th.rc]


@pytest.mark.parametrize("kernel", THRESHOLDS)
@pytest.mark.parametrize("dtype", [bool, np.int8, np.int64, np.float32, np.float64])
def test_thresholds_refuse_non_unsigned_images_naming_image(kernel: Any, dtype: Any) -> None:
    with pytest.raises(TypeError, match="image must be unsigned integer"):
        kernel(da.ones((4, 4), dtype=dtype))


@pytest.mark.parametrize("kernel", [*THRESHOLDS, th.stretch])
def test_kernels_refuse_wrong_rank_empty_and_non_arrays(kernel: Any) -> None:
    with pytest.raises(ValueError, match=r"image must be 1D or 2D or 3D or 4D, got 5D"):
        kernel(np.zeros((2,) * 5, np.uint8))
    with pytest.raises(ValueError, match="image must be 1D or 2D or 3D or 4D, got 0D"):
        kernel(np.zeros((), np.uint8))
    with pytest.raises(ValueError, match="image must not be empty"):
        kernel(np.zeros((0, 3), np.uint8))
    with pytest.raises(TypeError, match="image must be a numpy or dask array, got list"):
        kernel([[1, 2], [3, 4]])


def test_stretch_refuses_complex_and_non_number_range() -> None:
    with pytest.raises(TypeError, match="image must be"):
        th.stretch(np.ones((3, 3), np.complex128))
    with pytest.raises(TypeError, match="arg0 must be a number, got str"):
        th.stretch(np.ones((3, 3)), "255")
    with pytest.raises(TypeError, match="arg1 must be a number, got list"):
        th.stretch(np.ones((3, 3)), 0, [255])


# ------------------------------------------------------------------ local thresholds (Bernsen)

ODD_SHAPE = (37, 23)
LOCAL_CHUNKINGS = {
    "one-pixel": 1,  # thinner than every halo below
    "two-pixels": 2,
    "ragged": ((3, 10, 1, 23), (9, 14)),
    "square-with-ragged-end": 8,
    "whole": ODD_SHAPE,
}


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("chunks", LOCAL_CHUNKINGS.values(), ids=LOCAL_CHUNKINGS)
@pytest.mark.parametrize(
    "ours, theirs, args",
    [
        (th.bernsen, mh_bernsen, (4, 30)),
        (th.bernsen, mh_bernsen, (6, 30, 200)),
        (th.gbernsen, mh_gbernsen, (np.ones((7, 5), np.uint8), 30, 90)),
    ],
    ids=["bernsen-4", "bernsen-6-gthresh", "gbernsen-7x5"],
)
def test_bernsen_equals_mahotas_for_uint8_and_uint16_on_an_odd_shape(
    ours: Any, theirs: Any, args: tuple, chunks: Any, dtype: Any
) -> None:
    top = np.iinfo(dtype).max
    image = np.random.default_rng(11).integers(0, top, ODD_SHAPE, endpoint=True).astype(dtype)
    image[:10, :10] = top // 2  # a flat patch: low contrast, decided by gthresh
    x = da.from_array(image, chunks=chunks)
    result = ours(x, *args)
    assert result.chunks == x.chunks and result.dtype == bool
    np.testing.assert_array_equal(result.compute(), theirs(image, *args), strict=True)


def test_bernsen_halo_one_pixel_short_is_caught() -> None:
    # The exactness tests can fail: a 5x5 neighbourhood needs a halo of 2, and 1 differs.
    image = np.random.default_rng(12).integers(0, 256, (40, 40)).astype(np.uint8)
    args = {"se": SQUARE, "contrast_threshold": 20, "gthresh": 128}
    short = map_local(
        mh_gbernsen, da.from_array(image, chunks=10), depth=1, dtype=bool, **args
    ).compute()
    assert not np.array_equal(short, mh_gbernsen(image, **args))
    exact = th.gbernsen(da.from_array(image, chunks=10), **args).compute()
    np.testing.assert_array_equal(exact, mh_gbernsen(image, **args))


IMAGE = da.zeros((12, 12), np.uint8, chunks=4)
BAD_LOCAL_INPUT = [
    (lambda: th.bernsen(da.zeros(12, np.uint8), 3, 10), ValueError, "image must be 2D, got 1D"),
    (lambda: th.bernsen(da.zeros((4,) * 3, np.uint8), 3, 10), ValueError, "image must be 2D"),
    (lambda: th.bernsen([[1, 2]], 3, 10), TypeError, "image must be a numpy or dask array"),
    (lambda: th.bernsen(IMAGE.astype(bool), 3, 10), TypeError, "image must be integer or float"),
    (lambda: th.bernsen(IMAGE.astype(np.float16), 3, 10), TypeError, "image must not be float16"),
    (lambda: th.bernsen(IMAGE, 0, 10), ValueError, "radius must be a positive integer, got 0"),
    (lambda: th.bernsen(IMAGE, 2.5, 10), TypeError, "radius must be an integer, got 2.5"),
    (lambda: th.bernsen(IMAGE, 3, "10"), TypeError, "contrast_threshold must be a number"),
    (lambda: th.bernsen(IMAGE, 3, 10, [1]), TypeError, "gthresh must be a number, got \\[1\\]"),
    (lambda: th.bernsen(IMAGE, 3, True), TypeError, "contrast_threshold must be a number"),
    (lambda: th.bernsen(da.zeros((2, 40), np.uint8), 8, 10), ValueError, "reads outside"),
    (lambda: th.gbernsen(IMAGE, None, 10, 5), TypeError, "se must be an array"),
    (lambda: th.gbernsen(IMAGE, np.ones(3, bool), 10, 5), ValueError, "se must have the image"),
    (lambda: th.gbernsen(IMAGE, np.ones((4, 3), bool), 10, 5), ValueError, "se must have odd"),
    (lambda: th.gbernsen(IMAGE, np.ones((3, 3)), 10, 5), TypeError, "se must be bool or integer"),
    (lambda: th.gbernsen(IMAGE, np.full((3, 3), 2), 10, 5), ValueError, "se must hold only 0"),
    (lambda: th.gbernsen(IMAGE, np.zeros((3, 3), bool), 10, 5), ValueError, "at least one 1"),
    (lambda: th.gbernsen(IMAGE, SQUARE, 10, None), TypeError, "gthresh must be a number"),
    (lambda: th.gbernsen(da.zeros(5, np.uint8), [1], 1, 1), ValueError, "image must be 2D or 3D"),
]  # fmt: skip


@pytest.mark.parametrize("call, error, message", BAD_LOCAL_INPUT)
def test_bernsen_refuses_bad_input_naming_the_argument(call: Any, error: Any, message: str) -> None:
    with pytest.raises(error, match=message):
        call()
