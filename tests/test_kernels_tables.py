"""``daskbio.kernels.region_table``: per-region features over chunks equal mahotas and
numpy on the whole image (issue 12, item 3)."""

from __future__ import annotations

import dask.array as da
import mahotas as mh
import numpy as np
import pytest
from mahotas.features.texture import haralick_labels

from daskbio.kernels import region_table


@pytest.fixture(scope="module")
def field() -> tuple[np.ndarray, np.ndarray]:
    """A 96 x 80 uint8 image and a labelling with regions across chunk faces, a missing
    label (4) and a one-pixel region (Haralick of which mahotas refuses: NaN)."""
    rng = np.random.default_rng(7)
    image = rng.integers(0, 32, (96, 80)).astype(np.uint8)
    labeled = np.zeros((96, 80), np.int32)
    labeled[5:40, 10:50] = 1
    labeled[30:90, 45:78] = 2
    labeled[60:95, 2:30] = 3
    labeled[92, 79] = 5
    return image, labeled


@pytest.mark.parametrize("chunks", [(96, 80), (32, 32), (17, 23), (7, 80)])
def test_the_table_equals_mahotas_on_the_whole_image(field, chunks):
    image, labeled = field
    table = region_table(da.from_array(image, chunks), da.from_array(labeled, chunks))
    assert table.index.tolist() == [1, 2, 3, 5]
    sizes = mh.labeled.labeled_size(labeled)
    assert table["size"].tolist() == sizes[[1, 2, 3, 5]].tolist()
    magnitude = mh.sobel(image, just_filter=True).astype(np.float64)
    for label in table.index:
        pixels = image[labeled == label].astype(np.float64)
        row = table.loc[label]
        assert (row["min"], row["max"]) == (pixels.min(), pixels.max())
        np.testing.assert_allclose([row["mean"], row["std"]], [pixels.mean(), pixels.std()], 1e-12)
        edges = magnitude[labeled == label]
        np.testing.assert_allclose(
            [row["sobel_mean"], row["sobel_std"]], [edges.mean(), edges.std()], 1e-12, 1e-9
        )
        if label == 5:
            assert np.isnan(row[haralick_labels[0]])
            continue
        ys, xs = np.nonzero(labeled == label)
        crop = np.where(labeled == label, image, 0)[
            ys.min() : ys.max() + 1, xs.min() : xs.max() + 1
        ]
        expected = mh.features.haralick(crop, ignore_zeros=True, return_mean=True)
        assert row[list(haralick_labels[:13])].tolist() == expected.tolist()


def test_only_the_groups_asked_for_are_measured(field):
    image, labeled = field
    assert list(region_table(image, labeled, features=["sobel"]).columns) == [
        "sobel_mean",
        "sobel_std",
    ]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda i, lab: region_table(i, lab, features=["colour"]), "features must be among"),
        (lambda i, lab: region_table(i.astype(float), lab), "image must be unsigned integer"),
        (lambda i, lab: region_table(i, lab[:10]), "labeled must have image's shape"),
    ],
)
def test_bad_arguments_are_named(field, call, message):
    image, labeled = field
    with pytest.raises((TypeError, ValueError), match=message):
        call(image, labeled)
