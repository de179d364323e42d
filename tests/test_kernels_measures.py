"""Per-object measures and label edits equal ``mahotas.labeled`` on the whole array.

Integer results bit for bit; float sums and centres of mass within the tolerance their
docstrings state (their terms are added in a different order than mahotas' raster scan).
"""

from __future__ import annotations

import dask
import dask.array as da
import mahotas as mh
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import chunkings, shapes
from test_kernels_labeling import binary_image, spiral

from daskbio.kernels import measures as M

FLOAT_RTOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}


def labels_and_image(shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A labelled image (sometimes with gaps in its labels, sometimes uint16) and an image
    of a random dtype, sometimes all negative."""
    rng = np.random.default_rng(seed)
    labeled, _ = mh.label(binary_image(shape, [0.3, 0.5, 0.6][seed % 3], seed))
    if seed % 4 == 1:
        labeled = labeled * 3
    if seed % 5 == 2:
        labeled = labeled.astype(np.uint16)
    dtype = np.dtype([np.float64, np.float32, np.uint8, np.int16, np.int64, bool][seed % 6])
    if dtype.kind == "f":
        image = (rng.random(shape) * (-1 if seed % 7 == 3 else 1)).astype(dtype)
    else:
        info = np.iinfo(np.uint8 if dtype.kind == "b" else dtype)
        image = rng.integers(max(info.min, -200), min(info.max, 200), shape, endpoint=True)
        image = image.astype(dtype)
    return labeled, image


def assert_same(got, expected, tolerance: bool = False):
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.dtype == expected.dtype
    assert got.shape == expected.shape
    if tolerance and expected.dtype.kind == "f":
        np.testing.assert_allclose(got, expected, rtol=FLOAT_RTOL[expected.dtype], atol=0)
    else:
        np.testing.assert_array_equal(got, expected)  # NaN == NaN here


def rsize_of(seed: int) -> int:
    return seed % 4


def regions_of(seed: int) -> list[int]:
    return [seed % 5, seed % 11, seed % 3 + 7]


# one line per measure: (name, chunked, mahotas, float results within a tolerance)
MEASURES = [
    ("labeled_size", lambda L, img, s: M.labeled_size(L), lambda L, img, s: mh.labeled.labeled_size(L), False),  # noqa: E501
    ("sizes", lambda L, img, s: M.sizes(L), lambda L, img, s: mh.labeled.labeled_size(L), False),
    ("bbox", lambda L, img, s: M.bbox(L), lambda L, img, s: mh.labeled.bbox(L), False),
    ("center_of_mass", lambda L, img, s: M.center_of_mass(img, L), lambda L, img, s: mh.center_of_mass(img, L), True),  # noqa: E501
    ("labeled_sum", lambda L, img, s: M.labeled_sum(img, L), lambda L, img, s: mh.labeled.labeled_sum(img, L), True),  # noqa: E501
    ("labeled_max", lambda L, img, s: M.labeled_max(img, L), lambda L, img, s: mh.labeled.labeled_max(img, L), False),  # noqa: E501
    ("labeled_min", lambda L, img, s: M.labeled_min(img, L), lambda L, img, s: mh.labeled.labeled_min(img, L), False),  # noqa: E501
    ("remove_bordering", lambda L, img, s: M.remove_bordering(L, rsize_of(s)), lambda L, img, s: mh.labeled.remove_bordering(L, rsize_of(s)), False),  # noqa: E501
    ("remove_regions", lambda L, img, s: M.remove_regions(L, regions_of(s)), lambda L, img, s: mh.labeled.remove_regions(L, regions_of(s)), False),  # noqa: E501
    ("relabel", lambda L, img, s: M.relabel(L), lambda L, img, s: mh.labeled.relabel(L), False),
]  # fmt: skip
NAMES = [m[0] for m in MEASURES]


def evaluate(result):
    """Lazy results computed (a dask array, or a (dask array, count) pair)."""
    if isinstance(result, tuple):
        array, count = dask.compute(*result, scheduler="sync")
        return array, int(count)
    return result.compute(scheduler="sync") if isinstance(result, da.Array) else result


@pytest.mark.parametrize(("name", "chunked", "reference", "tolerance"), MEASURES, ids=NAMES)
@settings(max_examples=15, deadline=None)
@given(data=st.data(), shape=shapes(max2d=35, max3d=10))
def test_equals_mahotas(name, chunked, reference, tolerance, data, shape):
    seed = data.draw(st.integers(0, 2**16))
    chunks = data.draw(chunkings(shape))
    labeled, image = labels_and_image(shape, seed)
    with dask.config.set(scheduler="sync"):
        got = evaluate(
            chunked(da.from_array(labeled, chunks=chunks), da.from_array(image, chunks=3), seed)
        )
    expected = reference(labeled, image, seed)
    if isinstance(expected, tuple):
        assert_same(got[0], expected[0])
        assert got[1] == expected[1]
    else:
        assert_same(got, expected, tolerance)


@pytest.mark.parametrize(("name", "chunked", "reference", "tolerance"), MEASURES, ids=NAMES)
@pytest.mark.parametrize("chunk", [1, 4, 9])
def test_one_object_spread_over_many_chunks(name, chunked, reference, tolerance, chunk):
    labeled = spiral(29).astype(np.int32) * 4
    labeled[-3:, -3:] = 9
    image = np.arange(labeled.size, dtype=np.float64).reshape(labeled.shape) / 7
    with dask.config.set(scheduler="sync"):
        got = evaluate(chunked(da.from_array(labeled, chunks=chunk), image, 5))
    expected = reference(labeled, image, 5)
    if isinstance(expected, tuple):
        assert_same(got[0], expected[0])
        assert got[1] == expected[1]
    else:
        assert_same(got, expected, tolerance)


def test_float_sums_are_close_but_in_a_different_order():
    # the stated tolerance is needed: a float sum over chunks is not mahotas' raster sum
    rng = np.random.default_rng(0)
    labeled = np.ones((64, 64), np.int32)
    image = (rng.random((64, 64)) * 10 ** rng.uniform(-8, 8, (64, 64))).astype(np.float32)
    with dask.config.set(scheduler="sync"):
        got = M.labeled_sum(image, da.from_array(labeled, chunks=5))
    expected = mh.labeled.labeled_sum(image, labeled)
    np.testing.assert_allclose(got, expected, rtol=FLOAT_RTOL[np.dtype(np.float32)])


def test_absent_labels_get_mahotas_values():
    labeled = np.zeros((6, 6), np.int32)
    labeled[4:, 4:] = 3
    image = -np.ones((6, 6))
    with dask.config.set(scheduler="sync"):
        x = da.from_array(labeled, chunks=2)
        np.testing.assert_array_equal(M.bbox(x)[1:3], 0)
        # mahotas' float max starts at the smallest positive double, even for negative data
        assert M.labeled_max(image, x)[3] == np.finfo(np.float64).tiny
        assert M.labeled_min(image, x)[1] == np.finfo(np.float64).max
        assert np.isnan(M.center_of_mass(image, x)[2]).all()


def test_edits_are_lazy_and_keep_chunks():
    x = da.from_array(mh.label(binary_image((20, 20), 0.5, 1))[0], chunks=6)
    for result in (M.remove_bordering(x), M.remove_regions(x, [1, 2]), M.relabel(x)[0]):
        assert isinstance(result, da.Array)
        assert result.chunks == x.chunks
    assert isinstance(M.relabel(x)[1], da.Array)


def test_relabel_numbers_by_first_pixel_and_keeps_negative_values():
    labeled = np.array([[9, 0, -4], [-4, 2, 9], [0, 0, 2]])
    relabeled, n = M.relabel(da.from_array(labeled, chunks=1))
    expected, m = mh.labeled.relabel(labeled)
    np.testing.assert_array_equal(relabeled.compute(scheduler="sync"), expected)
    assert int(n) == m


def test_a_reduction_is_one_task_per_chunk_and_one_more():
    import daskbio.kernels.measures as measures

    x = da.from_array(np.zeros((64, 64), np.int32), chunks=8)
    reduction = measures._reduce(measures._size_part, measures._size_total, x)
    tasks = len(reduction.__dask_graph__())
    assert tasks == 2 * x.npartitions + 1  # the input's chunks, the parts, the combine


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: M.labeled_size(np.zeros((4, 4))), TypeError, "labeled must be integer"),
        (lambda: M.bbox(np.zeros(4, int)), ValueError, "labeled must be 2D or 3D"),
        (lambda: M.labeled_sum(np.zeros((4, 5)), np.zeros((4, 4), int)), ValueError, "shape"),
        (lambda: M.labeled_max(np.zeros((4, 4), complex), np.zeros((4, 4), int)), TypeError, "image"),  # noqa: E501
        (lambda: M.center_of_mass([[1]], np.zeros((4, 4), int)), TypeError, "image must be"),
        (lambda: M.remove_bordering(np.zeros((4, 4), int), -1), ValueError, "rsize"),
        (lambda: M.remove_bordering(np.zeros((4, 4), int), (1, 1, 1)), ValueError, "rsize"),
        (lambda: M.remove_regions(np.zeros((4, 4), int), [1.5]), TypeError, "regions"),
        (lambda: M.relabel(np.zeros((4, 4), bool)), TypeError, "labeled must be integer"),
    ],
)  # fmt: skip
def test_input_checks(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_negative_labels_are_refused_when_computed():
    with pytest.raises(ValueError, match="negative labels"):
        M.labeled_size(da.from_array(np.array([[0, -1], [2, 3]]), chunks=1))
