"""daskbio.kernels.morphology equals mahotas on the whole array, for every chunking.

One exactness test runs over the table ``CASES``: adding a kernel is one line there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dask.array as da
import mahotas as mh
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daskbio.kernels import morphology as morph

Arrays = tuple[np.ndarray, ...]


def binary(rng: np.random.Generator, shape: tuple[int, ...]) -> Arrays:
    return (rng.random(shape) < rng.choice([0.3, 0.7, 0.95]),)


def grey(dtype: Any) -> Callable[[np.random.Generator, tuple[int, ...]], Arrays]:
    def make(rng: np.random.Generator, shape: tuple[int, ...]) -> Arrays:
        info = np.iinfo(dtype)
        # values next to the dtype's limits too: mahotas saturates there
        return (rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True),)

    return make


def pair(dtype: Any) -> Callable[[np.random.Generator, tuple[int, ...]], Arrays]:
    def make(rng: np.random.Generator, shape: tuple[int, ...]) -> Arrays:
        if dtype is bool:
            return binary(rng, shape)[0], binary(rng, shape)[0]
        return rng.integers(0, 9, shape, dtype=dtype), rng.integers(0, 9, shape, dtype=dtype)

    return make


def sparse_background(rng: np.random.Generator, shape: tuple[int, ...]) -> Arrays:
    """Mostly foreground, so that many distances exceed the bound (and some chunks have no
    background at all)."""
    return (rng.random(shape) > rng.choice([0.002, 0.02, 0.1]),)


def seeded_surface(rng: np.random.Generator, shape: tuple[int, ...]) -> Arrays:
    """A noisy surface (plateaus included) with seeds on a grid of spacing 3 to 5."""
    spacing = int(rng.integers(3, 6))
    surface = rng.integers(0, rng.choice([3, 255]), shape).astype(np.uint8)
    markers = np.zeros(shape, np.int32)
    grid = tuple(slice(int(rng.integers(0, min(spacing, s))), None, spacing) for s in shape)
    markers[grid] = np.arange(1, markers[grid].size + 1).reshape(markers[grid].shape)
    return surface, markers


def basin_reach(labels: np.ndarray, markers: np.ndarray) -> int:
    """How far (in pixels, along any axis) the farthest pixel of a basin is from its seed."""
    seeds = {int(markers[tuple(p)]): p for p in np.argwhere(markers)}
    reach = 0
    for label in np.unique(labels[labels > 0]):
        reach = max(reach, int(np.abs(np.argwhere(labels == label) - seeds[label]).max()))
    return reach


def structuring_element(rng: np.random.Generator, ndim: int, dtype: Any) -> Any:
    """None, a connectivity, or a random box of odd sides up to 5 (values 0..2 for grey)."""
    kind = rng.integers(3)
    if kind == 0:
        return None
    if kind == 1:
        return int(rng.integers(1, 3))
    shape = tuple(int(s) for s in rng.choice([1, 3, 5], ndim))
    centre = tuple(n // 2 for n in shape)
    box = rng.random(shape) < 0.6 if np.dtype(dtype) == bool else rng.integers(0, 3, shape)
    box[centre] = 1  # an all-zero element is refused (mahotas reads uninitialised memory)
    return box.astype(dtype)


@dataclass
class Case:
    """A chunked kernel, its whole-array mahotas reference, and how to make its inputs.

    ``extra(rng, ndim, dtype, arrays)`` draws keyword arguments given to both calls
    (``ours_only`` those given only to the chunked kernel).
    """

    ours: Callable[..., da.Array]
    reference: Callable[..., np.ndarray]
    make: Callable[[np.random.Generator, tuple[int, ...]], Arrays]
    extra: Callable[..., dict] = field(default=lambda rng, ndim, dtype, arrays: {})
    ours_only: Callable[..., dict] = field(default=lambda rng, arrays: {})


def with_Bc(rng, ndim, dtype, arrays):
    return {"Bc": structuring_element(rng, ndim, dtype)}


def bounded(metric: str) -> Callable[..., np.ndarray]:
    def reference(bw: np.ndarray, max_distance: float) -> np.ndarray:
        d2 = np.minimum(mh.distance(bw), float(max_distance) ** 2)
        return np.sqrt(d2) if metric == "euclidean" else d2

    return reference


def watershed_depth(rng, arrays):
    surface, markers = arrays
    return {"depth": 2 * basin_reach(mh.cwatershed(surface, markers), markers) + 1}


CASES = {
    "erode-bool": Case(morph.erode, mh.erode, binary, with_Bc),
    "erode-uint8": Case(morph.erode, mh.erode, grey(np.uint8), with_Bc),
    "erode-int16": Case(morph.erode, mh.erode, grey(np.int16), with_Bc),
    "dilate-bool": Case(morph.dilate, mh.dilate, binary, with_Bc),
    "dilate-uint8": Case(morph.dilate, mh.dilate, grey(np.uint8), with_Bc),
    "dilate-int32": Case(morph.dilate, mh.dilate, grey(np.int32), with_Bc),
    "open-bool": Case(morph.open, mh.open, binary, with_Bc),
    "open-uint16": Case(morph.open, mh.open, grey(np.uint16), with_Bc),
    "close-bool": Case(morph.close, mh.close, binary, with_Bc),
    "close-int8": Case(morph.close, mh.close, grey(np.int8), with_Bc),
    "cerode-bool": Case(morph.cerode, mh.cerode, pair(bool), with_Bc),
    "cerode-uint8": Case(morph.cerode, mh.cerode, pair(np.uint8), with_Bc),
    "cdilate-bool": Case(
        morph.cdilate,
        mh.cdilate,
        pair(bool),
        lambda rng, ndim, dtype, a: {**with_Bc(rng, ndim, dtype, a), "n": int(rng.integers(0, 6))},
    ),
    "cdilate-uint8": Case(
        morph.cdilate,
        mh.cdilate,
        pair(np.uint8),
        lambda rng, ndim, dtype, a: {"n": int(rng.integers(1, 4))},
    ),
    "distance-euclidean2": Case(
        lambda bw, max_distance: morph.distance(bw, max_distance=max_distance),
        bounded("euclidean2"),
        sparse_background,
        lambda rng, ndim, dtype, a: {"max_distance": float(rng.choice([0, 1, 2.5, 4, 7.2, 90]))},
    ),
    "distance-euclidean": Case(
        lambda bw, max_distance: morph.distance(bw, "euclidean", max_distance),
        bounded("euclidean"),
        sparse_background,
        lambda rng, ndim, dtype, a: {"max_distance": int(rng.integers(1, 6))},
    ),
    "cwatershed": Case(
        morph.cwatershed,
        mh.cwatershed,
        seeded_surface,
        lambda rng, ndim, dtype, a: {"Bc": rng.choice([None, 2])},
        watershed_depth,
    ),
}


@st.composite
def layouts(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    """A 2D or 3D shape, chunks from 1 pixel (thinner than any halo) to the whole axis
    (ragged last chunks included), and a seed."""
    ndim = draw(st.sampled_from([2, 3]))
    top = 48 if ndim == 2 else 14
    shape = tuple(draw(st.lists(st.integers(1, top), min_size=ndim, max_size=ndim)))
    chunks = tuple(draw(st.integers(1, s)) for s in shape)
    return shape, chunks, draw(st.integers(0, 2**32 - 1))


@pytest.mark.parametrize("name", CASES)
@settings(max_examples=10, deadline=None)
@given(layout=layouts())
def test_chunked_result_equals_mahotas_on_whole_array(name: str, layout) -> None:
    case = CASES[name]
    shape, chunks, seed = layout
    rng = np.random.default_rng(seed)
    arrays = case.make(rng, shape)
    kwargs = case.extra(rng, len(shape), arrays[0].dtype, arrays)
    expected = case.reference(*arrays, **kwargs)
    result = case.ours(
        *(da.from_array(a, chunks=chunks) for a in arrays), **kwargs, **case.ours_only(rng, arrays)
    )
    assert isinstance(result, da.Array)
    assert result.chunks == da.from_array(arrays[0], chunks=chunks).chunks
    assert result.dtype == expected.dtype
    computed = result.compute(scheduler="sync")
    assert computed.dtype == expected.dtype
    np.testing.assert_array_equal(computed, expected)


@pytest.mark.parametrize("kernel", [morph.erode, morph.dilate, morph.open, morph.close])
def test_chunks_of_one_pixel_with_wide_element_are_exact(kernel) -> None:
    image = np.random.default_rng(1).integers(0, 200, (9, 11), dtype=np.uint8)
    Bc = np.ones((5, 7), np.uint8)
    result = kernel(da.from_array(image, chunks=1), Bc).compute(scheduler="sync")
    np.testing.assert_array_equal(result, getattr(mh, kernel.__name__)(image, Bc))


def test_element_larger_than_the_array_sees_the_whole_axis() -> None:
    image = np.random.default_rng(2).random((6, 40)) > 0.2
    Bc = np.ones((15, 3), bool)
    result = morph.dilate(da.from_array(image, chunks=(2, 7)), Bc).compute(scheduler="sync")
    np.testing.assert_array_equal(result, mh.dilate(image, Bc))


def test_numpy_input_gives_lazy_dask_result() -> None:
    image = np.random.default_rng(3).random((20, 20)) > 0.5
    result = morph.erode(image)
    assert isinstance(result, da.Array)
    np.testing.assert_array_equal(result.compute(scheduler="sync"), mh.erode(image))


def test_erosion_ignores_pixels_outside_the_array_as_mahotas_does() -> None:
    image = np.ones((10, 12), bool)
    result = morph.erode(da.from_array(image, chunks=4)).compute(scheduler="sync")
    assert result.all()
    assert (mh.erode(image) == result).all()


# ---- distance: the bound --------------------------------------------------------------


def test_distance_is_exact_below_the_bound_and_the_bound_above() -> None:
    bw = np.ones((50, 45), bool)
    bw[3, 4] = bw[40, 30] = False
    full = mh.distance(bw)
    result = morph.distance(da.from_array(bw, chunks=(8, 11)), max_distance=6.5).compute()
    near = full <= 6.5**2
    assert near.any() and (~near).any()
    np.testing.assert_array_equal(result[near], full[near])
    assert (result[~near] == 6.5**2).all()


@pytest.mark.parametrize("shape", [(12, 17), (4, 5, 6), (1, 2, 40)])
def test_distance_of_all_foreground_is_mahotas_no_background_value(shape) -> None:
    bw = np.ones(shape, bool)
    for max_distance in (3, 1000):
        result = morph.distance(da.from_array(bw, chunks=3), max_distance=max_distance)
        expected = np.minimum(mh.distance(bw), max_distance**2)
        np.testing.assert_array_equal(result.compute(scheduler="sync"), expected)


def test_distance_of_thin_3d_array_keeps_mahotas_cap() -> None:
    # mahotas caps 3D distances at 2 * size (80 here): a chunk must not cap at its own size
    bw = np.ones((1, 2, 40), bool)
    bw[0, 0, 0] = False
    expected = np.minimum(mh.distance(bw), 30.0**2)
    assert expected.max() == 2 * bw.size
    result = morph.distance(da.from_array(bw, chunks=(1, 1, 5)), max_distance=30)
    np.testing.assert_array_equal(result.compute(scheduler="sync"), expected)


def test_mahotas_3d_distance_is_squared_distance_capped_at_twice_the_size() -> None:
    """The mahotas behaviour the 3D bound relies on (checked by brute force)."""
    rng = np.random.default_rng(4)
    for shape in [(1, 1, 30), (2, 3, 12), (5, 4, 3)]:
        bw = rng.random(shape) > 0.1
        bw.flat[0] = False
        grid = np.indices(shape).reshape(3, -1).T
        background = np.argwhere(~bw)
        d2 = ((grid[:, None] - background[None]) ** 2).sum(-1).min(1).reshape(shape)
        np.testing.assert_array_equal(mh.distance(bw), np.minimum(d2, 2 * bw.size))


def test_distance_unbounded_on_a_single_chunk_is_mahotas() -> None:
    bw = np.random.default_rng(5).random((30, 20)) > 0.1
    result = morph.distance(da.from_array(bw, chunks=-1), "euclidean")
    np.testing.assert_array_equal(result.compute(), mh.distance(bw, "euclidean"))


# ---- cwatershed: the halo must hold the basins -----------------------------------------


def test_cwatershed_exact_when_basins_smaller_than_depth() -> None:
    rng = np.random.default_rng(6)
    surface = rng.random((60, 50))
    markers = np.zeros(surface.shape, np.int64)
    markers[1::4, 2::4] = np.arange(1, 15 * 12 + 1).reshape(15, 12)
    expected = mh.cwatershed(surface, markers)
    depth = 2 * basin_reach(expected, markers) + 1
    assert depth < 40
    result = morph.cwatershed(da.from_array(surface, chunks=13), markers, depth=depth)
    np.testing.assert_array_equal(result.compute(scheduler="sync"), expected)


def test_cwatershed_with_too_small_depth_differs_from_mahotas() -> None:
    surface = np.zeros((5, 40), np.uint8)
    markers = np.zeros(surface.shape, np.int32)
    markers[2, 0], markers[2, 39] = 1, 2
    expected = mh.cwatershed(surface, markers)
    result = morph.cwatershed(da.from_array(surface, chunks=10), markers, depth=2).compute()
    assert (expected[:, 10:30] > 0).all()
    assert (result[:, 10:30] == 0).all()  # no seed within reach: unflooded


def test_cwatershed_halo_of_one_basin_reach_is_not_enough() -> None:
    surface, markers = seeded_surface(np.random.default_rng(1), (13, 3))
    expected = mh.cwatershed(surface, markers)
    reach = basin_reach(expected, markers)
    short = morph.cwatershed(da.from_array(surface, chunks=1), markers, depth=reach)
    assert (short.compute(scheduler="sync") != expected).sum() == 2
    enough = morph.cwatershed(da.from_array(surface, chunks=1), markers, depth=2 * reach + 1)
    np.testing.assert_array_equal(enough.compute(scheduler="sync"), expected)


def test_cwatershed_single_chunk_needs_no_depth() -> None:
    surface, markers = seeded_surface(np.random.default_rng(7), (20, 25))
    result = morph.cwatershed(surface, markers)
    np.testing.assert_array_equal(result.compute(), mh.cwatershed(surface, markers))


# ---- input checks, all raised before any computation -----------------------------------

IMG = da.zeros((10, 10), dtype=bool, chunks=5)
GREY = da.zeros((10, 10), dtype=np.uint8, chunks=5)
FLOAT = da.zeros((10, 10), dtype=float, chunks=5)

BAD_INPUTS = [
    (lambda: morph.erode([[1, 0]]), TypeError, "image must be a numpy or dask array"),
    (lambda: morph.dilate(np.zeros(5, bool)), ValueError, "image must be 2D or 3D"),
    (lambda: morph.open(FLOAT), TypeError, "image must be bool or integer"),
    (lambda: morph.close(IMG, np.ones((3, 3, 3))), ValueError, "Bc must have the image's rank"),
    (lambda: morph.erode(IMG, np.ones((3, 4))), ValueError, "Bc must have odd sides"),
    (lambda: morph.erode(IMG, -1), ValueError, "Bc must be a non-negative"),
    (lambda: morph.cerode(GREY, FLOAT), TypeError, "g must be bool or integer"),
    (lambda: morph.cerode(FLOAT, GREY), TypeError, "f must be bool or integer"),
    (lambda: morph.cerode(GREY, GREY[:5]), ValueError, "g must have f's shape"),
    (lambda: morph.erode(GREY, np.zeros((3, 3))), ValueError, "Bc must have at least one"),
    (
        lambda: morph.cdilate(GREY.astype(np.uint64), GREY.astype(np.int64)),
        TypeError,
        "f and g must have a common integer dtype",
    ),
    (lambda: morph.cdilate(GREY, GREY, n=-1), ValueError, "n must be a non-negative int"),
    (lambda: morph.cdilate(GREY, GREY, n=1.5), ValueError, "n must be a non-negative int"),
    (lambda: morph.distance(IMG), ValueError, "max_distance is required"),
    (lambda: morph.distance(IMG, max_distance=-1), ValueError, "max_distance must be finite"),
    (lambda: morph.distance(IMG, max_distance=np.inf), ValueError, "max_distance must be"),
    (lambda: morph.distance(IMG, max_distance="3"), ValueError, "max_distance must be"),
    (lambda: morph.distance(IMG, "city", 3), ValueError, "metric must be"),
    (lambda: morph.distance(IMG.astype(complex), max_distance=3), TypeError, "bw must be"),
    (lambda: morph.cwatershed(GREY, GREY), ValueError, "depth is required"),
    (lambda: morph.cwatershed(GREY, GREY, depth=-2), ValueError, "depth must be"),
    (lambda: morph.cwatershed(GREY, FLOAT, depth=2), TypeError, "markers must be"),
    (lambda: morph.cwatershed(GREY, GREY[:, :4], depth=2), ValueError, "markers must have"),
    (
        lambda: morph.cwatershed(GREY, GREY, depth=2, return_lines=True),
        NotImplementedError,
        "return_lines",
    ),
]


@pytest.mark.parametrize(("call", "error", "message"), BAD_INPUTS)
def test_bad_input_is_refused_with_a_message_naming_the_argument(call, error, message) -> None:
    with pytest.raises(error, match=message):
        call()
