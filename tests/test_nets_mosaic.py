"""The NETs pipeline at scale (``NETS_MOSAIC``): the fields tiled into one OME-Zarr mosaic,
each field's features computed from its copies in the mosaic with the chunked kernels, equal
to mahotas on the whole mosaic; and a small mosaic run through ``daskbio submit`` on SLURM."""

from __future__ import annotations

import csv
import json
import os
import runpy
import shutil
from pathlib import Path

import mahotas as mh
import numpy as np
import pytest

from daskbio.cache import FileSystemStore
from daskbio.io import imread, read_ome_zarr_metadata
from tests.conftest import daskbio
from tests.test_nets_pipeline import PIPELINE, _env
from tests.test_submit import (
    SMALL_JOBS,
    no_job_left,  # noqa: F401 (the fixture slurm_test asks for)
    slurm_test,
    submit,
)

SAMPLES = "10,11,12"  # one field each, all labelled twice; 4 tiles hold them, the first twice


@pytest.fixture
def study(monkeypatch: pytest.MonkeyPatch, nets_folder: Path, tmp_path: Path) -> dict:
    """The pipeline's namespace at NETS_MOSAIC=1024 with its mosaic written to tmp_path."""
    for name, value in _env(nets_folder, NETS_SAMPLES=SAMPLES, NETS_MOSAIC="1024").items():
        monkeypatch.setenv(name, value)
    ns = runpy.run_path(str(PIPELINE), run_name="nets_pipeline")
    task = ns["sources"][0]["mosaic"]
    path = ns["mosaic"].f(task.args[0], task.args[1], str(tmp_path / "mosaic.ome.zarr"))
    whole = imread(path).compute()
    rois = imread(path + "/labels/rois").compute()
    return {"ns": ns, "path": path, "dna": whole[0], "protein": whole[1], "rois": rois}


def test_the_mosaic_holds_each_field_turned_and_is_an_ome_zarr(study: dict) -> None:
    ns = study["ns"]
    meta = read_ome_zarr_metadata(study["path"])
    assert meta.shapes[0] == (2, 1024, 1024)
    fields = ns["channels"]
    layout = ns["_layout"](len(fields), 1024)
    assert [i for row in layout for i, _ in row] == [0, 1, 2, 0]
    assert [k for row in layout for _, k in row] == [0, 0, 0, 1]  # the 4th is a turned copy
    for r, row in enumerate(layout):
        for c, (i, k) in enumerate(row):
            tile = (slice(512 * r, 512 * (r + 1)), slice(512 * c, 512 * (c + 1)))
            for channel in ("dna", "protein"):
                field = mh.imread(fields[i][channel])
                assert np.array_equal(study[channel][tile], np.rot90(field, k)), (r, c)
            mask = mh.imread(fields[i]["rois"]) > 0
            assert np.array_equal(study["rois"][tile], np.rot90(mask, k)), (r, c)
    # Each field's Tasks read its copies: the first field has two.
    assert [s["tiles"] for s in ns["sources"]] == [[(0, 0), (512, 512)], [(0, 512)], [(512, 0)]]


def _source(study: dict, y: int, x: int) -> dict:
    return {"mosaic": study["path"], "tiles": [(y, x)]}


@pytest.mark.parametrize("tile", [(0, 0), (512, 512), (0, 512)])
def test_pixel_features_of_a_tile_are_the_filters_of_the_whole_mosaic(study, tile) -> None:
    y, x = tile
    pieces = study["ns"]["pixel_features"].f(_source(study, y, x), 8)
    box = (slice(y, y + 512), slice(x, x + 512))
    columns = []
    for channel in ("dna", "protein"):
        image = study[channel].astype(float)
        mean, sd = image[box].mean(), image[box].std()
        z = (image - mean) / sd
        gaussians = [mh.gaussian_filter(z, s) for s in (1, 2, 4, 8)]
        bank = [image > mean, image > mean + 2 * sd, z, *gaussians, gaussians[1] - gaussians[2]]
        # mahotas.sobel of the mosaic, with the tile's range in place of the mosaic's
        low, high = image[box].min(), image[box].max()
        edges = mh.sobel(image, just_filter=True) * (np.ptp(image) / (high - low)) ** 2
        bank.append(edges)
        columns += [f[box][4::8, 4::8].ravel() for f in bank]
    expected = np.stack(columns, axis=1).astype(np.float32)
    sobels = [8, 17]
    others = [i for i in range(expected.shape[1]) if i not in sobels]
    np.testing.assert_array_equal(pieces["X"][:, others], expected[:, others])
    np.testing.assert_allclose(pieces["X"][:, sobels], expected[:, sobels], rtol=1e-5, atol=1e-30)
    cells = study["rois"][box].reshape(64, 8, 64, 8).mean(axis=(1, 3))
    np.testing.assert_array_equal(pieces["y"], cells.ravel().astype(np.float32))


@pytest.mark.parametrize("scale", [1, 8])
def test_surf_features_of_a_tile_are_the_points_of_the_whole_mosaic(study, scale) -> None:
    y, x = 512, 0  # a tile with neighbours above and to the right, and a mosaic edge
    pieces = study["ns"]["surf_features"].f(_source(study, y, x), scale, 16, True)
    points = mh.features.surf.dense(study["protein"], 16, scale, include_interest_point=True)
    inside = (points[:, 0] >= y) & (points[:, 0] < y + 512)
    inside &= (points[:, 1] >= x) & (points[:, 1] < x + 512)
    dna = mh.features.surf.dense(study["dna"], 16, scale)[inside]
    expected = np.hstack([points[inside, 6:], dna]).astype(np.float32)
    assert expected.shape[0] > 200
    np.testing.assert_array_equal(pieces["X"], expected)
    # Each point's label: the NET fraction of the mosaic around it, neighbours included.
    ys, xs = points[inside, 0].astype(int), points[inside, 1].astype(int)
    half = 10 * scale
    window = study["rois"][ys[0] - half : ys[0] + half + 1, max(xs[0] - half, 0) : xs[0] + half + 1]
    assert pieces["y"][0] == np.float32(window.mean())


def test_the_bernsen_baseline_of_a_tile_is_that_of_the_whole_mosaic(study) -> None:
    fraction = study["ns"]["bernsen_fraction"].f(_source(study, 512, 512), 15, 16)
    whole = mh.thresholding.bernsen(study["protein"], 15, 16)
    assert fraction == whole[512:, 512:].mean()


def test_region_features_of_a_tile_are_mahotas_on_its_regions(study) -> None:
    ns = study["ns"]
    pieces = ns["region_features"].f(_source(study, 0, 512), 24, 2.0, 16)
    box = (slice(0, 512), slice(512, 1024))
    dna, protein = study["dna"][box], study["protein"][box]
    labeled = ns["_oversegment"](protein, 24, 2.0, 16)
    present = [r for r in np.unique(labeled) if r]
    assert len(pieces["y"]) == len(present) > 100
    region = present[len(present) // 2]
    row = pieces["X"][len(present) // 2]
    inside = labeled == region
    assert row[0] == np.float32(np.log(inside.sum()))
    quantised = np.where(inside, dna // 8 + 1, 0).astype(np.uint8)
    ys, xs = np.nonzero(inside)
    crop = quantised[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    texture = mh.features.haralick(crop, ignore_zeros=True, return_mean=True)
    np.testing.assert_allclose(row[1:14], texture.astype(np.float32), rtol=1e-6)
    np.testing.assert_allclose(row[14], dna[inside].mean(), rtol=1e-6)
    np.testing.assert_allclose(row[15], dna[inside].std(), rtol=1e-5)
    rho = np.corrcoef(dna[inside].astype(float), protein[inside].astype(float))[0, 1]
    np.testing.assert_allclose(row[-2], rho, rtol=1e-5)
    assert pieces["y"][len(present) // 2] == np.float32(study["rois"][box][inside].mean())
    assert pieces["w"][len(present) // 2] == inside.sum()


def test_a_mosaic_too_small_for_the_fields_is_a_one_line_error(nets_folder: Path) -> None:
    env = _env(nets_folder, NETS_MOSAIC="1024")  # 4 tiles, 9 fields
    out = daskbio("status", PIPELINE, env=env)
    assert out.returncode == 1
    assert "NETS_MOSAIC=1024: give a multiple of 512 with a tile for each of the 9 fields, " \
        "at least 1536" in out.stderr  # fmt: skip


@slurm_test
def test_a_small_mosaic_runs_through_submit_on_slurm(tmp_path: Path, nets_folder: Path) -> None:
    pipeline = tmp_path / "nets" / "pipeline.py"
    pipeline.parent.mkdir()
    shutil.copy(PIPELINE, pipeline)
    env = _env(nets_folder, NETS_SAMPLES=SAMPLES, NETS_MOSAIC="1024")
    args = ["--cluster", "slurm", "--jobs", "2", *SMALL_JOBS, "--allow-local-cache"]
    out = submit(pipeline, *args, env=env)
    assert out.returncode == 0, out.stderr

    results = pipeline.parent / "results-mosaic-1024"
    assert read_ome_zarr_metadata(results / "mosaic.ome.zarr").shapes[0] == (2, 1024, 1024)
    with open(results / "results.csv", newline="") as f:
        rows = {(r["method"], r["validation"], r["correction"]): r for r in csv.DictReader(f)}
    assert len(rows) == 8 * 2 * 2 + 1
    assert all(np.isfinite(float(r["q2"])) for r in rows.values())
    assert not (pipeline.parent / "results").exists()  # the default run's folder

    report = json.loads(daskbio("status", pipeline, "--json", env=env, check=True).stdout)
    assert report["mosaic"]["done"] == report["mosaic"]["total"] == 1
    assert all(r["done"] == r["total"] and r["failed"] == 0 for r in report.values())
    store = FileSystemStore(pipeline.with_suffix(".daskbio"))
    assert os.getpid() not in {m["pid"] for m in store.metadata_many(store.keys())}


def test_a_feature_task_whose_mosaic_is_gone_says_how_to_write_it_again(study, tmp_path) -> None:
    source = {"mosaic": str(tmp_path / "gone.ome.zarr"), "tiles": [(0, 0)]}
    with pytest.raises(
        FileNotFoundError, match=r"gone.ome.zarr is gone: .*daskbio invalidate mosaic"
    ):
        study["ns"]["pixel_features"].f(source, 8)
