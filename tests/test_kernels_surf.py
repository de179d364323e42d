"""daskbio.kernels.surf_dense equals mahotas.features.surf.dense on the whole image.

References are mahotas on the whole numpy array, given its integral image with one row of
zeros above and below: mahotas reads one row past the top and bottom for points whose window
touches those edges (memory outside the array, so its own result there is undefined; see
``test_mahotas_reads_past_the_top_edge``). Points (their number, order and coordinates) must
be equal exactly; descriptors bit for bit for integer images, within ``atol=1e-6`` for float
ones (the integral image starts at each chunk's origin).
"""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import mahotas as mh
import numpy as np
import pytest
from mahotas.features import surf as mahotas_surf

from daskbio.kernels import surf_dense, surf_halo

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
