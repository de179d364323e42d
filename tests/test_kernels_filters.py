"""daskbio.kernels.filters equals mahotas on the whole array, for every chunking.

One table row per kernel (and per notable parameter set): adding a kernel is one line, naming
the function (the same name in daskbio and mahotas) and its arguments.
Hypothesis draws the shape, 2D or 3D, and ragged chunkings with chunks as thin as one pixel
(thinner than any halo here), and the image's values.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import dask.array as da
import mahotas as mh
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from strategies import chunkings

from daskbio.kernels import filters as fk
from daskbio.kernels._chunked import map_local

RING = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]])
LINE = np.ones((1, 5))
EVEN = np.arange(12.0).reshape(3, 4) - 5


class Case(NamedTuple):
    kernel: str  # its name in both daskbio.kernels.filters and mahotas
    args: Any  # image rank -> the arguments after the image
    ndims: tuple[int, ...]
    values: str  # "float", "float32", "levels" (uint8 with many ties) or "binary"
    kwargs: dict | None = None


def given_args(*args: Any) -> Any:
    return lambda ndim: args


def footprint(Bc: np.ndarray, *rest: Any) -> Any:
    """A 2D footprint, or a 3D cube of the same reach, then ``rest``."""
    return lambda ndim: (Bc if ndim == 2 else np.ones((3,) * ndim), *rest)


C, NEAREST, MIRROR = Case, {"mode": "nearest"}, {"mode": "mirror"}
TABLE: dict[str, Case] = {
    "gaussian": C("gaussian_filter", given_args(1.5), (2, 3), "float"),
    "gaussian-f32-sigma2": C("gaussian_filter", given_args(2), (2, 3), "float32"),
    "gaussian-per-axis-order1": C(
        "gaussian_filter", lambda nd: ([0.7, 2.2, 1.0][:nd], 1), (2, 3), "float32", NEAREST
    ),
    "gaussian-mirror-order2": C("gaussian_filter", given_args(1, 2), (2,), "float", MIRROR),
    "gaussian-constant": C("gaussian_filter", given_args(0.9, 0, "constant"), (2,), "levels"),
    "gaussian-ignore": C("gaussian_filter", given_args(1.2, 0, "ignore"), (2,), "float32"),
    "median": C("median_filter", given_args(), (2, 3), "levels"),
    "median-5x5-mirror": C("median_filter", footprint(np.ones((5, 5))), (2, 3), "float", MIRROR),
    "mean": C("mean_filter", footprint(RING), (2, 3), "float"),
    "mean-reflect": C("mean_filter", given_args(LINE, "reflect"), (2,), "levels"),
    "rank": C("rank_filter", footprint(RING, 2), (2, 3), "levels"),
    "rank-ignore": C("rank_filter", given_args(None, 3, "ignore"), (2, 3), "float32"),
    "convolve": C("convolve", footprint(RING * 0.25), (2, 3), "float"),
    "convolve-even-nearest": C("convolve", given_args(EVEN), (2,), "float32", NEAREST),
    "convolve-uint8-constant": C(
        "convolve", given_args(np.ones((3, 5)), "constant"), (2,), "levels"
    ),
    "laplacian": C("laplacian_2D", given_args(), (2,), "float"),
    "laplacian-alpha": C("laplacian_2D", given_args(0.7), (2,), "levels"),
    "majority": C("majority_filter", given_args(), (2,), "binary"),
    "majority-5": C("majority_filter", given_args(5), (2,), "binary"),
    "locmax": C("locmax", given_args(), (2, 3), "levels"),
    "locmax-ring": C("locmax", footprint(RING), (2, 3), "float"),
    "locmin": C("locmin", given_args(), (2, 3), "levels"),
    "locmin-int": C("locmin", given_args(2), (2,), "levels"),
    "bwperim": C("bwperim", given_args(), (2, 3), "binary"),
    "bwperim-8-reflect": C("bwperim", given_args(8, "reflect"), (2,), "binary"),
    "sobel-filter": C("sobel", given_args(True), (2,), "float"),
    "sobel-filter-levels": C("sobel", given_args(True), (2,), "levels"),
    "dog-filter": C("dog", given_args(1.0, 1.001, True), (2,), "float"),
    "dog": C("dog", given_args(1.0, 1.6), (2,), "float"),
    "dog-levels": C("dog", given_args(0.6, 2.0), (2,), "levels"),
}


def make_image(values: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if values == "float":
        return rng.normal(size=shape)
    if values == "float32":
        return rng.random(shape, dtype=np.float32)
    if values == "levels":
        return rng.integers(0, 4, shape).astype(np.uint8)
    return rng.random(shape) > rng.uniform(0.3, 0.7)


@st.composite
def images(draw: st.DrawFn, ndims: tuple[int, ...]) -> tuple[tuple[int, ...], tuple]:
    ndim = draw(st.sampled_from(ndims))
    low, high = (2, 45) if ndim == 2 else (2, 14)
    shape = tuple(draw(st.integers(low, high)) for _ in range(ndim))
    return shape, draw(chunkings(shape))


def assert_same(ours: np.ndarray, theirs: np.ndarray) -> None:
    assert ours.dtype == theirs.dtype
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs, strict=True)


@pytest.mark.parametrize("name", list(TABLE))
@settings(max_examples=12, deadline=None)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_chunked_kernel_equals_mahotas_on_the_whole_array(name, data, seed):
    case = TABLE[name]
    shape, chunks = data.draw(images(case.ndims), label="shape, chunks")
    image = make_image(case.values, shape, seed)
    args = case.args(len(shape))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # dog's 0/0 on tiny images
        expected = getattr(mh, case.kernel)(image.copy(), *args, **(case.kwargs or {}))
    try:
        result = getattr(fk, case.kernel)(
            da.from_array(image, chunks=chunks), *args, **(case.kwargs or {})
        )
    except ValueError as error:  # mahotas' reflect bug on tiny axes: refused, tested below
        assume("reads outside the array" not in str(error))
        raise
    assert isinstance(result, da.Array)
    assert result.chunks == chunks
    assert_same(result.compute(scheduler="sync"), np.asarray(expected))


@pytest.mark.parametrize("n", [17, 18, 19, 20, 21, 22, 30])
@pytest.mark.parametrize("chunk", [1, 3, 9, 10])
def test_gaussian_float32_takes_mahotas_branch_near_the_kernel_length(n, chunk):
    # sigma 2 gives a 17-tap kernel: axes of length <= 17 use mahotas' n-D convolution,
    # longer ones its 1-D loop, and the two round float32 differently.
    image = np.random.default_rng(n).random((n, 2 * n), dtype=np.float32)
    result = fk.gaussian_filter(da.from_array(image, chunks=chunk), 2)
    assert_same(result.compute(scheduler="sync"), mh.gaussian_filter(image, 2))


def test_a_halo_one_pixel_short_is_caught():
    # The exactness assertions above can fail: one pixel less halo changes the values.
    image = np.random.default_rng(0).random((40, 40))
    short = map_local(
        mh.gaussian_filter, da.from_array(image, chunks=10), depth=7, dtype=float, sigma=2
    )
    assert not np.array_equal(short.compute(scheduler="sync"), mh.gaussian_filter(image, 2))


def test_majority_filter_leaves_mahotas_edge_rows_false_across_chunks():
    image = np.ones((12, 12), bool)
    result = fk.majority_filter(da.from_array(image, chunks=4)).compute(scheduler="sync")
    expected = np.zeros((12, 12), bool)
    expected[1:10, 1:10] = True  # first row/column and last two rows/columns stay False
    assert_same(result, expected)
    assert_same(result, mh.majority_filter(image))


def test_numpy_input_is_wrapped_and_result_is_lazy():
    image = np.random.default_rng(1).random((20, 20))
    result = fk.median_filter(image)
    assert isinstance(result, da.Array)
    assert_same(result.compute(scheduler="sync"), mh.median_filter(image))


def test_constant_image_sobel_filter_is_zero_like_mahotas():
    image = np.full((16, 16), 3.0)
    result = fk.sobel(da.from_array(image, chunks=5), just_filter=True).compute(scheduler="sync")
    assert_same(result, mh.sobel(image, just_filter=True))


@settings(max_examples=10, deadline=None)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_sobel_edges_equal_mahotas(data, seed):
    pytest.importorskip("daskbio.kernels.extrema")
    shape, chunks = data.draw(images((2,)))
    image = make_image("float", shape, seed)
    result = fk.sobel(da.from_array(image, chunks=chunks)).compute(scheduler="sync")
    assert_same(result, mh.sobel(image))


IMAGE = da.zeros((20, 20), chunks=10)
BAD_INPUT = [
    (lambda: fk.gaussian_filter([[1.0]], 1), TypeError, "image must be a numpy or dask array"),
    (lambda: fk.gaussian_filter(da.zeros(5), 1), ValueError, "image must be 2D or 3D"),
    (lambda: fk.gaussian_filter(IMAGE.astype(np.float16), 1), TypeError, "must not be float16"),
    (lambda: fk.gaussian_filter(IMAGE.astype(complex), 1), TypeError, "image must be"),
    (lambda: fk.gaussian_filter(IMAGE, -1), ValueError, "sigma must be finite and at least 0.125"),
    (lambda: fk.gaussian_filter(IMAGE, 0.1), ValueError, "sigma must be"),
    (lambda: fk.gaussian_filter(IMAGE, float("nan")), ValueError, "sigma must be"),
    (lambda: fk.gaussian_filter(IMAGE, "big"), TypeError, "sigma must be a number"),
    (lambda: fk.gaussian_filter(IMAGE, [1, 2, 3]), ValueError, "sigma must be one value or 2"),
    (lambda: fk.gaussian_filter(IMAGE, 1, order=4), ValueError, "order must be 0, 1, 2 or 3"),
    (lambda: fk.gaussian_filter(IMAGE, 1, mode="wrap"), ValueError, "mode='wrap' is not supported"),
    (lambda: fk.gaussian_filter(IMAGE, 1, mode="edge"), ValueError, "mode must be one of"),
    (lambda: fk.gaussian_filter(IMAGE, 1, mode="constant", cval=2), ValueError, "cval must be 0"),
    (lambda: fk.gaussian_filter(da.zeros((2, 30)), 2), ValueError, "axis 0 has 2 pixels, too few"),
    (lambda: fk.median_filter(IMAGE, np.ones((3, 3, 3))), ValueError, "Bc must have the image"),
    (lambda: fk.median_filter(IMAGE, np.ones((2, 3))), ValueError, "Bc must have odd sides"),
    (lambda: fk.median_filter(IMAGE, np.zeros((3, 3))), ValueError, "Bc must have at least one"),
    (lambda: fk.mean_filter(IMAGE, np.ones(3)), ValueError, "Bc must have the image"),
    (lambda: fk.mean_filter(IMAGE, np.ones((3, 3)), mode="wrap"), ValueError, "mode='wrap'"),
    (lambda: fk.rank_filter(IMAGE, np.ones((3, 3)), 9), ValueError, "rank must be in 0..8"),
    (lambda: fk.rank_filter(IMAGE, None, -1), ValueError, "rank must be in 0..4"),
    (lambda: fk.rank_filter(IMAGE, None, 1.5), TypeError, "rank must be an integer"),
    (lambda: fk.convolve(IMAGE, np.ones(3)), ValueError, "weights must have the image's rank"),
    (lambda: fk.convolve(IMAGE, np.ones((0, 3))), ValueError, "weights must not be empty"),
    (lambda: fk.convolve(IMAGE, da.ones((3, 3))), TypeError, "weights must be a numpy array"),
    (lambda: fk.convolve(IMAGE, np.array([["a"]])), TypeError, "weights must be"),
    (lambda: fk.laplacian_2D(da.zeros((5, 5, 5))), ValueError, "image must be 2D"),
    (lambda: fk.laplacian_2D(IMAGE, "x"), TypeError, "alpha must be a number"),
    (lambda: fk.majority_filter(IMAGE, 4), ValueError, "N must be an odd integer"),
    (lambda: fk.majority_filter(IMAGE, 1), ValueError, "N must be an odd integer"),
    (lambda: fk.majority_filter(IMAGE, 3.0), TypeError, "N must be an integer"),
    (lambda: fk.majority_filter(da.zeros((4, 4, 4)), 3), ValueError, "image must be 2D"),
    (lambda: fk.locmax(IMAGE, np.ones((3, 3, 3))), ValueError, "Bc must have the image"),
    (lambda: fk.locmin(IMAGE, np.ones((4, 3))), ValueError, "Bc must have odd sides"),
    (lambda: fk.locmax(IMAGE.astype(np.float16)), TypeError, "image must not be float16"),
    (lambda: fk.bwperim(IMAGE, 0), ValueError, "n must be a positive connectivity"),
    (lambda: fk.bwperim(IMAGE, mode="wrap"), ValueError, "mode='wrap'"),
    (lambda: fk.bwperim(IMAGE.astype(object)), TypeError, "bw must be"),
    (lambda: fk.sobel(da.zeros((4, 4, 4))), ValueError, "image must be 2D"),
    (lambda: fk.dog(IMAGE, -2), ValueError, "sigma1 must be finite"),
    (lambda: fk.dog(IMAGE, 1, 0.01), ValueError, "sigma1 \\* multiplier must be"),
    (lambda: fk.dog(da.zeros(6)), ValueError, "image must be 2D"),
]  # fmt: skip


@pytest.mark.parametrize("call, error, message", BAD_INPUT)
def test_bad_input_is_refused_before_computing(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_a_transposed_square_element_is_not_taken_for_the_untransposed_one() -> None:
    # dask's tokenize ignores strides: weights.T shares weights' buffer, shape and dtype.
    weights = np.array([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])
    image = np.random.default_rng(1).random((24, 20))
    x = da.from_array(image, chunks=10)
    rows, cols = fk.convolve(x, weights), fk.convolve(x, weights.T)
    assert rows.name != cols.name
    both = da.stack([rows, cols]).compute()
    np.testing.assert_array_equal(both[0], mh.convolve(image, weights))
    np.testing.assert_array_equal(both[1], mh.convolve(image, weights.T))
    element = np.array([[1, 1, 0], [0, 1, 0], [0, 1, 1]], bool)
    grown = da.stack([fk.mean_filter(x, element), fk.mean_filter(x, element.T)]).compute()
    np.testing.assert_array_equal(grown[1], mh.mean_filter(image, element.T))
