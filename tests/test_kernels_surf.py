"""daskbio.kernels.surf_dense and surf_points equal mahotas' dense and surf on the whole image.

References are mahotas on the whole numpy array, given its integral image with one row of
zeros above and below: mahotas reads one row past the top and bottom for points whose window
touches those edges (memory outside the array, so its own result there is undefined; see
``test_mahotas_reads_past_the_top_edge``). Points (their number, order and coordinates) must
be equal exactly; descriptors bit for bit for integer images, within ``atol=1e-6`` for float
ones (the integral image starts at each chunk's origin). ``surf_points`` gives mahotas' rows
bit for bit for integer images in mahotas' order of scores; rows of equal score may come in
another order (mahotas sorts them with an unstable sort).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import dask.array as da
import mahotas as mh
import numpy as np
import pytest
from mahotas.features import surf as mahotas_surf

from daskbio.kernels import surf_dense, surf_halo, surf_points

NETS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nets"
FLOAT_ATOL = 1e-6


def uint8_field(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """Smooth blobs plus noise, like a fluorescence field."""
    rng = np.random.default_rng(seed)
    blobs = mh.gaussian_filter(rng.random(shape), 6)
    blobs = (blobs - blobs.min()) / np.ptp(blobs)
    return np.clip(200 * blobs + rng.normal(0, 8, shape), 0, 255).astype(np.uint8)


def reference(image: np.ndarray, spacing: int, scale: float | None, **kwargs: bool) -> np.ndarray:
    """mahotas' dense on the whole image, with rows of ``guard`` above and below."""
    return guarded(image, spacing, scale, 0.0, **kwargs)


def guarded(
    image: np.ndarray, spacing: int, scale: float | None, guard: float, **kwargs: bool
) -> np.ndarray:
    integral = np.full((image.shape[0] + 2, image.shape[1]), guard)
    integral[1:-1] = mahotas_surf.integral(image)
    return mahotas_surf.dense(integral[1:-1], spacing, scale, is_integral=True, **kwargs)


def dense(image: np.ndarray, chunks: object, *args: object, **kwargs: object) -> np.ndarray:
    got = surf_dense(da.from_array(image, chunks=chunks), *args, **kwargs)
    values = got.compute(scheduler="sync")
    assert values.shape == got.shape and values.dtype == got.dtype == np.float64
    return values


@pytest.mark.parametrize("scale", [1, 2, 4, 8])
@pytest.mark.parametrize(
    "chunks",
    [
        (512, 512),  # one chunk
        (128, 128),  # chunks not multiples of the spacing 12
        (100, 170),  # ragged
        (10, 7),  # thinner than any halo: merged for the computation
    ],
)
def test_dense_on_a_512_field_equals_mahotas_bit_for_bit(scale: int, chunks: tuple) -> None:
    image = uint8_field((512, 512))
    expected = reference(image, 12, scale, include_interest_point=True)
    got = dense(image, chunks, 12, scale, include_interest_point=True)
    np.testing.assert_array_equal(got, expected, strict=True)


@pytest.mark.parametrize(
    ("shape", "spacing", "scale", "chunks"),
    [
        ((203, 157), 10, 1, (41, 60)),  # sides not multiples of the spacing
        ((203, 157), 7, 2.5, (64, 23)),
        ((150, 300), 16, None, (33, 300)),  # default scale sqrt(16)
        ((99, 301), 5, 1.7, (99, 45)),
        ((260, 260), 9, 8, (130, 40)),  # scale 8: few points survive the border
    ],
)
def test_dense_on_odd_sizes_equals_mahotas(
    shape: tuple[int, int], spacing: int, scale: float | None, chunks: tuple
) -> None:
    image = np.random.default_rng(3).integers(0, 256, shape).astype(np.uint8)
    expected = reference(image, spacing, scale)
    np.testing.assert_array_equal(dense(image, chunks, spacing, scale), expected, strict=True)


@pytest.mark.parametrize("axis", [0, 1])
def test_degenerate_orientation_is_still_bit_for_bit(axis: int) -> None:
    # A ramp along one axis: one gradient component is exactly zero, the orientation is
    # exactly pi or pi/2 and mahotas turns its samples by cos(pi/2) = 6e-17; with chunk
    # coordinates instead of the image's, samples would land one pixel over.
    ramp = np.arange(700) * 255 // 700
    image = np.repeat(np.expand_dims(ramp, 1 - axis), 700, axis=1 - axis).astype(np.uint8)
    expected = reference(image, 16, 2, include_interest_point=True)
    assert np.isin(np.abs(expected[:, 5]), [np.pi / 2, np.pi]).all()
    got = dense(image, (150, 150), 16, 2, include_interest_point=True)
    np.testing.assert_array_equal(got, expected, strict=True)


@pytest.mark.parametrize("scale", [1, 4])
def test_dense_of_float_image_has_exact_points_and_close_descriptors(scale: int) -> None:
    image = np.random.default_rng(4).normal(100, 30, (300, 260))
    expected = reference(image, 11, scale, include_interest_point=True)
    got = dense(image, (70, 90), 11, scale, include_interest_point=True)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got[:, :5], expected[:, :5])
    np.testing.assert_allclose(got[:, 5:], expected[:, 5:], rtol=0, atol=FLOAT_ATOL)


@pytest.mark.skipif(not NETS.is_dir(), reason="NETs data not at ../shared/data/nets")
def test_dense_on_a_nets_field_equals_mahotas_at_the_study_scales() -> None:
    image = mh.imread(NETS / "image_00_00_protein.png")
    assert image.shape == (512, 512) and image.dtype == np.uint8
    for scale in (1, 2, 4, 8):
        expected = mahotas_surf.dense(image, 16, scale)  # mahotas reads nothing outside here
        np.testing.assert_array_equal(reference(image, 16, scale), expected, strict=True)
        np.testing.assert_array_equal(dense(image, (200, 300), 16, scale), expected, strict=True)


def test_mahotas_reads_past_the_top_edge_and_ours_reads_zeros_there() -> None:
    image = np.random.default_rng(3).integers(0, 256, (203, 157)).astype(np.uint8)
    with_nan = guarded(image, 10, 1, np.nan)
    undefined = np.isnan(with_nan).any(axis=1)
    assert 0 < undefined.sum() < 5  # a point whose window reaches above row 0
    got = dense(image, (41, 60), 10, 1)
    np.testing.assert_array_equal(got[~undefined], with_nan[~undefined], strict=True)
    np.testing.assert_array_equal(got, reference(image, 10, 1), strict=True)


def test_512_field_where_mahotas_reads_nothing_outside_equals_mahotas_itself() -> None:
    image = uint8_field((512, 512), seed=5)
    assert not np.isnan(guarded(image, 12, 1, np.nan)).any()
    np.testing.assert_array_equal(
        dense(image, (100, 170), 12, 1), mahotas_surf.dense(image, 12, 1), strict=True
    )


def test_rows_have_known_chunks_in_mahotas_order() -> None:
    x = da.zeros((400, 300), dtype=np.uint8, chunks=(100, 150))
    got = surf_dense(x, 20, 2, include_interest_point=True)
    assert got.shape == (len(mahotas_surf.dense(np.zeros((400, 300)), 20, 2)), 70)
    assert not any(np.isnan(c) for c in got.chunks[0])
    coords = got[:, :2].compute()
    order = np.lexsort((coords[:, 0], coords[:, 1]))  # by column, then row
    np.testing.assert_array_equal(order, np.arange(len(coords)))


def test_no_point_far_enough_from_the_border_gives_no_rows() -> None:
    image = np.zeros((60, 60), np.uint8)
    assert mahotas_surf.dense(image, 10, 4).shape == (0, 64)
    got = surf_dense(image, 10, 4)
    assert got.shape == (0, 64)
    assert dense(image, 30, 10, 4, include_interest_point=True).shape == (0, 70)


def test_halo_covers_mahotas_border_and_window() -> None:
    for scale in (0.5, 1, 1.7, 2, 4, 8):
        assert surf_halo(scale) >= int(31 * scale) // 2
        assert surf_halo(scale) > 10 * np.sqrt(2) * scale + scale
    assert surf_halo(1) == 19


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"image": np.zeros((4, 4, 4))}, ValueError, "image must be 2D"),
        ({"image": np.zeros((40, 40), complex)}, TypeError, "image must be"),
        ({"image": [[1, 2]]}, TypeError, "image must be a numpy or dask array"),
        ({"spacing": 0}, ValueError, "spacing must be positive, got 0"),
        ({"spacing": 2.5}, TypeError, "spacing must be an integer, got float"),
        ({"spacing": True}, TypeError, "spacing must be an integer"),
        ({"scale": -1}, ValueError, "scale must be positive and finite, got -1"),
        ({"scale": float("nan")}, ValueError, "scale must be positive"),
        ({"scale": "2"}, TypeError, "scale must be a number, got str"),
        ({"include_interest_point": 1}, TypeError, "include_interest_point must be a bool"),
    ],
)
def test_bad_arguments_are_refused_by_name(kwargs: dict, error: type, match: str) -> None:
    arguments = {"image": np.zeros((40, 40), np.uint8), "spacing": 8, **kwargs}
    with pytest.raises(error, match=match):
        surf_dense(**arguments)


# surf_points


def surf_reference(image: np.ndarray, guard: float = 0.0, **kwargs: float) -> np.ndarray:
    """mahotas' surf on the whole image, its integral image with rows of ``guard`` above and
    below: surf's own steps (interest points, strongest first, cut at max_points, then the
    descriptors of those not too near the border)."""
    max_points = kwargs.pop("max_points", 1024)
    integral = np.full((image.shape[0] + 2, image.shape[1]), guard)
    integral[1:-1] = mahotas_surf.integral(image)
    found = mahotas_surf.interest_points(integral[1:-1], **kwargs, is_integral=True)
    return mahotas_surf.descriptors(integral[1:-1], found[:max_points], is_integral=True)


def found_scores(image: np.ndarray, **kwargs: float) -> np.ndarray:
    """The scores of all the points mahotas finds, strongest first (before the cut)."""
    kwargs.pop("max_points", None)
    return mahotas_surf.interest_points(image, **kwargs)[:, 3]


def surf_points_of(image: np.ndarray, chunks: object, **kwargs: object) -> np.ndarray:
    got = surf_points(da.from_array(image, chunks=chunks), **kwargs)
    assert np.isnan(got.shape[0]) and got.dtype == np.float64
    values = got.compute(scheduler="sync")
    assert values.ndim == 2 and values.shape[1] == got.shape[1] and values.dtype == np.float64
    return values


def by_value(rows: np.ndarray) -> np.ndarray:
    """The rows in one order fixed by their values."""
    return rows[np.lexsort(rows.T)]


def assert_mahotas_rows(got: np.ndarray, expected: np.ndarray) -> None:
    """The same rows bit for bit, in the same order of scores (rows of equal score in any)."""
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got[:, 3], expected[:, 3], strict=True)
    np.testing.assert_array_equal(by_value(got), by_value(expected), strict=True)


@cache
def field_600() -> tuple[np.ndarray, np.ndarray]:
    """A 600 x 600 field and mahotas' surf of it (1,298 points found, 1,024 kept)."""
    image = uint8_field((600, 600))
    return image, surf_reference(image)


@pytest.mark.parametrize(
    "chunks",
    [
        (600, 600),  # one chunk
        (200, 200),
        (155, 213),  # not multiples of any octave's step
        (97, 61),  # thinner than the halo (144 here): merged for the computation
        (600, 37),  # thin columns
    ],
    ids=["one-chunk", "200x200", "155x213", "97x61-merged", "600x37-thin"],
)
def test_points_on_a_600_field_equal_mahotas_bit_for_bit(chunks: tuple) -> None:
    image, expected = field_600()
    scores = found_scores(image)
    assert len(scores) > 1024 and scores[1023] != scores[1024]  # a cut, and no tie at it
    assert 0 < len(expected) < 1024  # some of the strongest are too near the border
    assert_mahotas_rows(surf_points_of(image, chunks), expected)


def test_points_come_in_the_same_order_whatever_the_chunks() -> None:
    image, expected = field_600()
    one = surf_points_of(image, 600)
    assert not np.array_equal(one, expected)  # mahotas' unstable sort permutes equal scores
    np.testing.assert_array_equal(surf_points_of(image, (155, 213)), one, strict=True)


def signed_field(shape: tuple[int, int], seed: int) -> np.ndarray:
    return (uint8_field(shape, seed).astype(np.int16) - 128) * 8


@pytest.mark.parametrize(
    ("make", "kwargs", "chunks"),
    [
        (lambda: np.random.default_rng(1).integers(0, 256, (333, 517)), {}, (100, 90)),
        (
            lambda: uint8_field((333, 517), 2),
            {"nr_octaves": 2, "nr_scales": 4, "initial_step_size": 2, "threshold": 5.0},
            (100, 90),
        ),
        (lambda: signed_field((400, 401), 3), {"nr_scales": 8, "max_points": 300}, (120, 130)),
        (lambda: uint8_field((400, 401), 4), {"nr_scales": 3, "max_points": 50}, (57, 300)),
        (lambda: uint8_field((300, 320), 5), {"nr_octaves": 1, "initial_step_size": 3}, 80),
        (lambda: uint8_field((560, 560), 6), {"nr_scales": 4}, (200, 170)),  # 3 octaves
        (lambda: uint8_field((400, 420), 7) > 100, {"threshold": 1e-4}, (150, 133)),  # bool
    ],
    ids=[
        "uint8-noise",
        "two-octaves-step-2",
        "int16-8-scales",
        "3-scales",
        "step-3",
        "3-octaves",
        "bool",
    ],
)
def test_points_with_other_parameters_and_dtypes_equal_mahotas(
    make: object, kwargs: dict, chunks: object
) -> None:
    image = make()
    expected = surf_reference(image, **kwargs)
    assert len(expected) > 40
    assert_mahotas_rows(surf_points_of(image, chunks, **kwargs), expected)


def test_the_strongest_points_are_kept_when_more_are_found() -> None:
    image = np.random.default_rng(8).integers(0, 256, (300, 300)).astype(np.uint8)
    scores = found_scores(image)
    assert len(scores) > 1000 and scores[99] != scores[100]
    expected = surf_reference(image, max_points=100)
    assert 90 < len(expected) < 100  # the cut first, then mahotas drops points near the border
    assert_mahotas_rows(surf_points_of(image, (100, 150), max_points=100), expected)


def blobs() -> np.ndarray:
    """Three Gaussian spots: 6 points, of two scores."""
    rng = np.random.default_rng(4)
    image = np.zeros((200, 200))
    image[tuple(rng.integers(60, 140, (2, 3)))] = 1
    image = mh.gaussian_filter(image, rng.uniform(1.5, 3))
    return (255 * image / image.max()).astype(np.uint8)


def test_equal_scores_come_in_mahotas_order_when_it_finds_at_most_16_points() -> None:
    # mahotas' std::sort is an insertion sort up to 16 points: stable, in finding order
    image = blobs()
    expected = surf_reference(image)
    assert len(found_scores(image)) <= 16 and len(np.unique(expected[:, 3])) < len(expected)
    np.testing.assert_array_equal(surf_points_of(image, 100), expected, strict=True)


def test_threshold_is_read_as_a_32_bit_float_as_mahotas_does() -> None:
    image = blobs()
    score = float(surf_reference(image)[-1, 3])  # the weakest
    assert float(np.float32(score)) < score  # so points of this score pass threshold=score
    expected = surf_reference(image, threshold=score)
    assert (expected[:, 3] == score).sum() == 4
    np.testing.assert_array_equal(surf_points_of(image, 100, threshold=score), expected)


def test_points_where_mahotas_reads_nothing_outside_equal_mahotas_itself() -> None:
    image = uint8_field((330, 300), seed=9)
    assert not np.isnan(surf_reference(image, guard=np.nan)).any()
    assert_mahotas_rows(surf_points_of(image, 165), mahotas_surf.surf(image))


def test_descriptor_only_gives_the_64_values_of_mahotas_rows() -> None:
    image = uint8_field((330, 300), seed=9)
    full = surf_points_of(image, 165)
    only = surf_points_of(image, 165, descriptor_only=True)
    np.testing.assert_array_equal(only, full[:, 6:], strict=True)
    expected = mahotas_surf.surf(image, descriptor_only=True)
    np.testing.assert_array_equal(by_value(only), by_value(expected), strict=True)


def test_points_of_a_float_image_are_mahotas_within_rounding() -> None:
    image = np.random.default_rng(10).normal(100, 30, (300, 310))
    expected = surf_reference(image)
    got = surf_points_of(image, (100, 120))
    assert got.shape == expected.shape and len(got) > 500
    got, expected = (a[np.lexsort((a[:, 1], a[:, 0]))] for a in (got, expected))
    np.testing.assert_allclose(got[:, :3], expected[:, :3], rtol=0, atol=1e-7)
    np.testing.assert_allclose(got[:, 3], expected[:, 3], rtol=1e-7)
    np.testing.assert_array_equal(got[:, 4], expected[:, 4])
    np.testing.assert_allclose(got[:, 5:], expected[:, 5:], rtol=0, atol=FLOAT_ATOL)


def test_a_quantized_float_image_can_turn_a_few_points_otherwise() -> None:
    # uint8 / 255: flat patches give gradient samples exactly 0 in one integral image and a
    # rounding residue in the other; the residue's angle can move the dominant orientation
    image = uint8_field((300, 300)) / 255
    expected = surf_reference(image, threshold=1e-5)
    got = surf_points_of(image, 150, threshold=1e-5)
    assert got.shape == expected.shape
    got, expected = (a[np.lexsort((a[:, 1], a[:, 0]))] for a in (got, expected))
    np.testing.assert_allclose(got[:, :5], expected[:, :5], rtol=1e-7, atol=1e-7)
    turned = np.abs(got[:, 5] - expected[:, 5]) > FLOAT_ATOL
    assert 0 < turned.sum() < 0.05 * len(got)
    np.testing.assert_allclose(got[~turned, 5:], expected[~turned, 5:], rtol=0, atol=FLOAT_ATOL)


def test_no_points_in_a_flat_or_small_image() -> None:
    flat = np.zeros((300, 300), np.uint8)
    assert mahotas_surf.surf(flat).shape == (0, 70)
    assert surf_points_of(flat, 150).shape == (0, 70)
    assert surf_points_of(flat, 150, descriptor_only=True).shape == (0, 64)
    small = uint8_field((48, 300))  # octave 0 needs 49 rows
    assert mahotas_surf.surf(small).shape == (0, 70)
    assert surf_points(small).shape == (0, 70)  # known without computing
    assert surf_points(uint8_field((300, 300)), nr_scales=2).compute().shape == (0, 70)


def test_points_graph_grows_linearly_with_the_chunks() -> None:
    def tasks(side: int) -> int:
        image = da.zeros((side, side), np.uint8, chunks=100)
        return len(surf_points(image, nr_octaves=1).__dask_graph__())

    small, large = tasks(1000), tasks(2000)  # 100 and 400 chunks (halo 77)
    assert large < 4.2 * small
    assert large < 20 * 400


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"image": np.zeros((4, 4, 4))}, ValueError, "image must be 2D"),
        ({"image": np.zeros((40, 40), complex)}, TypeError, "image must be"),
        ({"image": [[1, 2]]}, TypeError, "image must be a numpy or dask array"),
        ({"nr_octaves": 0}, ValueError, "nr_octaves must be positive, got 0"),
        ({"nr_octaves": 2.0}, TypeError, "nr_octaves must be an integer"),
        ({"nr_scales": True}, TypeError, "nr_scales must be an integer"),
        ({"initial_step_size": -1}, ValueError, "initial_step_size must be positive, got -1"),
        ({"threshold": -0.1}, ValueError, "threshold must be non-negative, got -0.1"),
        ({"threshold": float("nan")}, ValueError, "threshold must be non-negative"),
        ({"threshold": "1"}, TypeError, "threshold must be a number, got str"),
        ({"max_points": 0}, ValueError, "max_points must be positive, got 0"),
        ({"max_points": None}, TypeError, "max_points must be an integer"),
        ({"descriptor_only": 1}, TypeError, "descriptor_only must be a bool"),
    ],
)
def test_bad_surf_points_arguments_are_refused_by_name(
    kwargs: dict, error: type, match: str
) -> None:
    arguments = {"image": np.zeros((40, 40), np.uint8), **kwargs}
    with pytest.raises(error, match=match):
        surf_points(**arguments)
