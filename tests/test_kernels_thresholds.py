"""daskbio.kernels.thresholds equals mahotas on the whole array, for every chunking.

One table row per kernel and notable parameter set: adding a kernel is one line. Hypothesis
draws the rank (1D to 3D), the shape, ragged chunkings down to one pixel, the dtype, the
grey-level range and how much of the image is zero (for ``ignore_zeros``).
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
from strategies import chunkings

from daskbio.kernels import thresholds as th


class Kernel(NamedTuple):
    ours: Any  # daskbio kernel: dask array -> lazy dask result
    theirs: Any  # mahotas function: numpy array -> its result
    args: tuple = ()  # further arguments, given to both
    kwargs: dict = {}  # noqa: RUF012  (never mutated)
    values: str = "levels"  # "levels" (unsigned integers) or "any" (also bool, signed, float)


K = Kernel
ZEROS = {"ignore_zeros": True}
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
}  # fmt: skip

LEVEL_DTYPES = (np.uint8, np.uint16, np.uint32, np.uint64)
ANY_DTYPES = (*LEVEL_DTYPES, bool, np.int8, np.int32, np.float32, np.float64)


@st.composite
def images(draw: st.DrawFn, values: str) -> np.ndarray:
    ndim = draw(st.integers(1, 3))
    side = {1: 70, 2: 40, 3: 12}[ndim]
    shape = tuple(draw(st.lists(st.integers(1, side), min_size=ndim, max_size=ndim)))
    dtype = np.dtype(draw(st.sampled_from(LEVEL_DTYPES if values == "levels" else ANY_DTYPES)))
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
    image = data.draw(images(kernel.values))
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


def test_input_checks_happen_before_any_computation() -> None:
    calls = []

    def source(block: np.ndarray) -> np.ndarray:
        calls.append(1)
        return block

    meta = np.empty((0, 0), np.uint8)
    x = da.zeros((20, 20), dtype=np.uint8, chunks=5).map_blocks(source, meta=meta)
    for kernel in (th.otsu, th.rc, th.stretch):
        kernel(x)
    with pytest.raises(TypeError):
        th.otsu(x.astype(bool))
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
