"""``daskbio.kernels.labeling.label`` equals ``mahotas.label`` on the whole array, bit for bit.

Also home of the image and chunking generators the measures and extrema tests share.
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

from daskbio.kernels.labeling import label

# --- shared generators ------------------------------------------------------------------------


def spiral(side: int) -> np.ndarray:
    """A square spiral path, one pixel wide with one-pixel gaps between its turns: one
    component crossing every chunk face many times."""
    out = np.zeros((side, side), bool)
    steps = [(0, 1), (1, 0), (0, -1), (-1, 0)]
    y, x, heading = 0, 0, 0
    out[y, x] = True

    def free(y: int, x: int) -> bool:
        return 0 <= y < side and 0 <= x < side and not out[y, x]

    for _ in range(side * side):
        for turn in range(2):
            dy, dx = steps[(heading + turn) % 4]
            ahead = (y + 2 * dy, x + 2 * dx)
            if free(y + dy, x + dx) and (free(*ahead) or not _inside(ahead, side)):
                heading = (heading + turn) % 4
                y, x = y + dy, x + dx
                out[y, x] = True
                break
        else:
            return out
    return out


def _inside(point: tuple[int, int], side: int) -> bool:
    return all(0 <= c < side for c in point)


def snake(shape: tuple[int, ...]) -> np.ndarray:
    """A boustrophedon path through the rows; in 3D on every other plane, the planes joined
    by a single pixel between them."""
    plane = np.zeros(shape[-2:], bool)
    plane[::2] = True
    plane[1::4, -1] = True
    plane[3::4, 0] = True
    if len(shape) == 2:
        return plane
    out = np.zeros(shape, bool)
    out[::2] = plane
    out[1::2, 0, 0] = True
    return out


def binary_image(shape: tuple[int, ...], density: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random(shape) < density


def elements(ndim: int, seed: int) -> list[np.ndarray | None]:
    """Structuring elements: the default cross, full connectivity, a random asymmetric
    3-wide one and a random 5-wide one (reaching two pixels across a chunk face)."""
    rng = np.random.default_rng(seed)
    return [None, np.ones((3,) * ndim, bool), rng.random((3,) * ndim) < 0.5,
            rng.random((5,) * ndim) < 0.3]  # fmt: skip


def computed(*arrays):
    return dask.compute(*arrays, scheduler="sync")


# --- exactness ------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(data=st.data(), shape=shapes(), density=st.sampled_from([0.3, 0.5, 0.6]))
def test_label_equals_mahotas_bit_for_bit(data, shape, density):
    seed = data.draw(st.integers(0, 2**16))
    chunks = data.draw(chunkings(shape))
    Bc = data.draw(st.sampled_from(elements(len(shape), seed)))
    binary = binary_image(shape, density, seed)
    labeled, n = label(da.from_array(binary, chunks=chunks), Bc)
    got, count = computed(labeled, n)
    expected, m = mh.label(binary, Bc)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, expected)
    assert int(count) == m


PATTERNS = {
    "spiral": lambda: spiral(37),
    "snake2d": lambda: snake((23, 30)),
    "snake3d": lambda: snake((6, 9, 8)),
    "diagonal": lambda: np.eye(31, dtype=bool) | np.eye(31, k=3, dtype=bool)[::-1],
}


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("chunk", [1, 2, 5, 8])
@pytest.mark.parametrize("full", [False, True])
def test_label_of_paths_crossing_chunk_faces_many_times(pattern, chunk, full):
    binary = PATTERNS[pattern]()
    Bc = np.ones((3,) * binary.ndim) if full else None
    labeled, n = label(da.from_array(binary, chunks=chunk), Bc)
    got, count = computed(labeled, n)
    expected, m = mh.label(binary, Bc)
    np.testing.assert_array_equal(got, expected)
    assert int(count) == m


def test_paths_are_few_components_spread_over_many_chunks():
    # the patterns above are worth testing: each has a component in most chunks
    labeled, n = mh.label(spiral(37))
    assert n == 1
    assert mh.label(snake((6, 9, 8)))[1] == 1
    blocks = da.from_array(labeled, chunks=5).to_delayed().ravel()
    assert sum(int(b.compute().any()) for b in blocks) > 40


def test_chunkwise_labeling_without_the_merge_would_fail():
    binary = spiral(37)
    naive = da.from_array(binary, chunks=5).map_blocks(lambda b: mh.label(b)[0], dtype=np.int32)
    assert not (naive.compute(scheduler="sync") == mh.label(binary)[0]).all()


def test_label_of_empty_and_full_images():
    for binary in (np.zeros((9, 7), bool), np.ones((9, 7), bool), np.ones((4, 5, 3), np.uint8)):
        labeled, n = label(da.from_array(binary, chunks=2))
        got, count = computed(labeled, n)
        expected, m = mh.label(binary)
        np.testing.assert_array_equal(got, expected)
        assert int(count) == m


def test_label_accepts_numpy_and_integer_input():
    binary = binary_image((20, 25), 0.5, 3).astype(np.uint16) * 7
    labeled, _n = label(binary)
    np.testing.assert_array_equal(labeled.compute(scheduler="sync"), mh.label(binary)[0])
    assert isinstance(labeled, da.Array)


def test_label_accepts_mahotas_connectivity_codes():
    binary = binary_image((20, 25), 0.5, 4)
    for Bc in (4, 8):
        labeled, _ = label(da.from_array(binary, chunks=6), Bc)
        np.testing.assert_array_equal(labeled.compute(scheduler="sync"), mh.label(binary, Bc)[0])


def test_count_is_a_lazy_zero_d_dask_array():
    binary = binary_image((20, 25), 0.5, 5)
    _, n = label(da.from_array(binary, chunks=6))
    assert isinstance(n, da.Array)
    assert n.shape == ()
    assert n.compute(scheduler="sync") == mh.label(binary)[1]


def test_chunk_order_is_the_same_partition_numbered_differently():
    binary = binary_image((30, 30), 0.5, 6)
    x = da.from_array(binary, chunks=7)
    by_chunk = label(x, order="chunk")[0].compute(scheduler="sync")
    expected, m = mh.label(binary)
    assert mh.labeled.is_same_labeling(by_chunk, expected)
    assert sorted(np.unique(by_chunk)) == list(range(m + 1))
    assert not (by_chunk == expected).all()


def test_label_keeps_the_input_chunks_when_a_wide_element_needs_thicker_ones():
    binary = binary_image((20, 20), 0.4, 7)
    Bc = np.ones((5, 5), bool)
    labeled, _ = label(da.from_array(binary, chunks=1), Bc)
    assert labeled.chunks == ((1,) * 20, (1,) * 20)
    np.testing.assert_array_equal(labeled.compute(scheduler="sync"), mh.label(binary, Bc)[0])


# --- graph size -------------------------------------------------------------------------------


def task_count(binary: da.Array, Bc=None) -> int:
    labeled, n = label(binary, Bc)
    keys = set(labeled.__dask_graph__()) | set(n.__dask_graph__())
    return len(keys)


@pytest.mark.parametrize(
    ("shape", "chunks"),
    [((64, 64), 16), ((128, 128), 16), ((256, 256), 16), ((32, 32, 32), 8), ((16, 64, 64), 8)],
)
def test_graph_has_at_most_twelve_tasks_per_chunk(shape, chunks):
    binary = da.from_array(np.zeros(shape, bool), chunks=chunks)
    for Bc in (None, np.ones((3,) * len(shape)), np.ones((5,) * len(shape))):
        tasks = task_count(binary, Bc)
        assert tasks <= 12 * binary.npartitions, (tasks, binary.npartitions)


def test_graph_grows_linearly_with_chunks():
    per_chunk = []
    for side in (64, 128, 256):
        binary = da.from_array(np.zeros((side, side), bool), chunks=16)
        per_chunk.append(task_count(binary, np.ones((3, 3))) / binary.npartitions)
    assert max(per_chunk) <= 5
    assert per_chunk[-1] <= per_chunk[0]


# --- input checks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"binary": np.zeros((4, 4), float)}, TypeError, "binary must be bool or integer"),
        ({"binary": np.zeros(4, bool)}, ValueError, "binary must be 2D or 3D"),
        ({"binary": [[0, 1], [1, 0]]}, TypeError, "binary must be a numpy or dask array"),
        ({"binary": np.zeros((4, 4), bool), "Bc": np.ones((3, 3, 3))}, ValueError, "Bc must"),
        ({"binary": np.zeros((4, 4), bool), "Bc": np.ones((2, 3))}, ValueError, "odd sides"),
        ({"binary": np.zeros((4, 4), bool), "order": "random"}, ValueError, "order must"),
    ],
)
def test_label_input_checks(kwargs, error, match):
    with pytest.raises(error, match=match):
        label(**kwargs)


def test_label_checks_before_any_computation():
    def explode(block):
        raise AssertionError("computed")

    lazy = da.zeros((8, 8), chunks=4, dtype=float).map_blocks(explode, dtype=float)
    with pytest.raises(TypeError, match="binary"):
        label(lazy)
