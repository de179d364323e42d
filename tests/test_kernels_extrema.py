"""``regmax``, ``regmin`` and ``close_holes`` equal mahotas on the whole array, bit for bit."""

from __future__ import annotations

import dask.array as da
import mahotas as mh
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import chunkings, shapes
from test_kernels_labeling import binary_image, snake, spiral

from daskbio.kernels.extrema import close_holes, regmax, regmin


def plateaus(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Few grey levels in blocks of 1-4 pixels: plateaus that cross chunk faces."""
    rng = np.random.default_rng(seed)
    factor = int(rng.integers(1, 5))
    coarse = rng.integers(0, int(rng.integers(2, 6)), tuple(-(-s // factor) for s in shape))
    image = coarse
    for axis in range(len(shape)):
        image = np.repeat(image, factor, axis=axis)
    image = image[tuple(slice(0, s) for s in shape)]
    return image.astype(rng.choice([np.uint8, np.int32, np.float64]))


def holes_reference(binary: np.ndarray, Bc=None) -> np.ndarray:
    """mahotas.close_holes in 2D; in 3D (mahotas has none) the same definition built on
    mahotas.label: fill the background components that touch no face of the array."""
    if binary.ndim == 2:
        return mh.close_holes(binary, Bc)
    binary = binary != 0
    background, _ = mh.label(~binary, Bc)
    faces = np.concatenate(
        [np.take(background, i, axis=a).ravel() for a in range(3) for i in (0, -1)]
    )
    return binary | ((background > 0) & ~np.isin(background, faces))


def rings(side: int) -> np.ndarray:
    """Concentric square rings: every gap between two rings is a hole crossing many chunks."""
    out = np.zeros((side, side), bool)
    for k in range(0, side // 2, 2):
        out[k, k : side - k] = out[side - k - 1, k : side - k] = True
        out[k : side - k, k] = out[k : side - k, side - k - 1] = True
    return out


def symmetric_elements(ndim: int, seed: int) -> list[np.ndarray | None]:
    rng = np.random.default_rng(seed)
    odd = rng.random((3,) * ndim) < 0.5
    wide = rng.random((5,) * ndim) < 0.3
    flip = (slice(None, None, -1),) * ndim
    return [None, np.ones((3,) * ndim, bool), odd | odd[flip], wide | wide[flip]]


# one line per kernel: (chunked kernel, mahotas reference, input maker(shape, seed))
KERNELS = [
    pytest.param(regmax, mh.regmax, plateaus, id="regmax"),
    pytest.param(regmin, mh.regmin, plateaus, id="regmin"),
    pytest.param(
        close_holes,
        holes_reference,
        lambda shape, seed: binary_image(shape, [0.3, 0.5, 0.7][seed % 3], seed),
        id="close_holes",
    ),
]


@pytest.mark.parametrize(("kernel", "reference", "make"), KERNELS)
@settings(max_examples=25, deadline=None)
@given(data=st.data(), shape=shapes(max2d=30, max3d=9))
def test_equals_mahotas_bit_for_bit(kernel, reference, make, data, shape):
    seed = data.draw(st.integers(0, 2**16))
    chunks = data.draw(chunkings(shape))
    Bc = data.draw(st.sampled_from(symmetric_elements(len(shape), seed)))
    image = make(shape, seed)
    got = kernel(da.from_array(image, chunks=chunks), Bc).compute(scheduler="sync")
    assert got.dtype == bool
    np.testing.assert_array_equal(got, reference(image, Bc))


def raised_spiral() -> np.ndarray:
    """A spiral plateau at 1 with one pixel at 2 near its far end: the whole plateau stops
    being a regional maximum because of one pixel many chunks away."""
    image = spiral(29).astype(np.int32)
    on = np.argwhere(image)
    centre = on[np.argmin(np.abs(on - 14).sum(axis=1))]
    image[tuple(centre)] = 2
    return image


PATTERNS = {
    "spiral": lambda: spiral(29).astype(np.uint8),
    "raised_spiral": raised_spiral,
    "snake3d": lambda: snake((5, 9, 8)).astype(np.int16),
    "rings": lambda: rings(30),
}


@pytest.mark.parametrize(("kernel", "reference", "make"), KERNELS)
@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("chunk", [1, 3, 7])
def test_plateaus_and_holes_crossing_many_chunks(kernel, reference, make, pattern, chunk):
    image = PATTERNS[pattern]()
    got = kernel(da.from_array(image, chunks=chunk)).compute(scheduler="sync")
    np.testing.assert_array_equal(got, reference(image))


def test_patterns_are_worth_testing():
    assert mh.regmax(spiral(29)).sum() == spiral(29).sum()
    assert mh.regmax(raised_spiral()).sum() == 1
    closed = mh.close_holes(rings(30))
    assert closed.sum() > rings(30).sum() + 100


def test_regmax_keeps_chunks_and_accepts_numpy():
    image = plateaus((25, 31), 3)
    got = regmax(image)
    assert isinstance(got, da.Array)
    np.testing.assert_array_equal(got.compute(scheduler="sync"), mh.regmax(image))
    x = da.from_array(image, chunks=(4, 5))
    assert regmin(x).chunks == x.chunks
    assert close_holes(x > 1).chunks == x.chunks


@pytest.mark.parametrize("kernel", [regmax, regmin, close_holes])
@pytest.mark.parametrize(
    ("image", "Bc", "error", "match"),
    [
        (np.zeros(5, np.uint8), None, ValueError, "must be 2D or 3D"),
        (np.zeros((4, 4), np.uint8), np.ones((3, 3, 3)), ValueError, "Bc must"),
        (np.zeros((4, 4), np.uint8), np.eye(3)[::-1] + np.eye(3, k=1), ValueError, "symmetric"),
        (np.zeros((4, 4), np.complex64), None, TypeError, "must be"),
        ("image", None, TypeError, "numpy or dask array"),
    ],
)
def test_input_checks(kernel, image, Bc, error, match):
    with pytest.raises(error, match=match):
        kernel(image, Bc)


def test_close_holes_refuses_float():
    with pytest.raises(TypeError, match="binary must be bool or integer"):
        close_holes(np.zeros((4, 4)))
