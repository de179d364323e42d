"""daskbio.io on real files: lazy reading (TIFF, PNG/JPEG, Zarr/OME-Zarr) and OME-Zarr writing."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

from daskbio.io import imread, read_ome_zarr_metadata, to_ome_zarr
from daskbio.io.pyramid import level_chunks, mean_pyramid, stride_pyramid

REPO = Path(__file__).parents[1]


def block_mean(image: np.ndarray, factors: tuple[int, ...]) -> np.ndarray:
    """numpy reference: the mean of each block of ``factors`` pixels, a last partial block
    averaging the pixels it has, rounded to the nearest integer for integer images."""
    padded_shape = [-(-n // f) * f for n, f in zip(image.shape, factors)]
    padded = np.full(padded_shape, np.nan)
    padded[tuple(slice(0, n) for n in image.shape)] = image
    split = []
    for n, f in zip(padded_shape, factors):
        split += [n // f, f]
    means = np.nanmean(padded.reshape(split), axis=tuple(range(1, 2 * image.ndim, 2)))
    return (np.rint(means) if image.dtype.kind in "biu" else means).astype(image.dtype)


def zarr_json(path: Path) -> dict:
    return json.loads((path / "zarr.json").read_text())


# --- OME-Zarr writing and reading back ---------------------------------------------------


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A czyx uint16 image with a zyx label image, written from a dask array whose chunks
    do not line up with the Zarr chunks, and with sizes that do not halve evenly."""
    rng = np.random.default_rng(4)
    image = rng.integers(0, 65535, (2, 3, 203, 157), dtype=np.uint16)
    cells = rng.integers(0, 1000, (3, 203, 157), dtype=np.uint32)
    path = tmp_path_factory.mktemp("written") / "image.ome.zarr"
    to_ome_zarr(
        da.from_array(image, chunks=(1, 2, 70, 50)),
        path,
        axes="czyx",
        scales=(1, 2.0, 0.325, 0.325),
        units={"z": "micrometer", "y": "micrometer", "x": "micrometer"},
        levels=4,
        chunks=(1, 2, 32, 48),
        labels={"cells": cells},
    )
    return {"path": path, "image": image, "cells": cells}


def test_ome_zarr_group_metadata_is_ngff_0_5_in_the_zarr_v3_ome_attribute(written):
    root = zarr_json(written["path"])
    assert root["zarr_format"] == 3 and root["node_type"] == "group"
    ome = root["attributes"]["ome"]
    assert ome["version"] == "0.5"
    (multiscale,) = ome["multiscales"]
    assert multiscale["axes"] == [
        {"name": "c", "type": "channel"},
        {"name": "z", "type": "space", "unit": "micrometer"},
        {"name": "y", "type": "space", "unit": "micrometer"},
        {"name": "x", "type": "space", "unit": "micrometer"},
    ]
    assert [d["path"] for d in multiscale["datasets"]] == ["0", "1", "2", "3"]
    assert [d["coordinateTransformations"] for d in multiscale["datasets"]] == [
        [{"type": "scale", "scale": [1.0, 2.0, 0.325 * 2**k, 0.325 * 2**k]}] for k in range(4)
    ]
    level = zarr_json(written["path"] / "2")
    assert level["zarr_format"] == 3 and level["node_type"] == "array"
    assert level["shape"] == [2, 3, 51, 40]
    assert level["dimension_names"] == ["c", "z", "y", "x"]
    assert level["chunk_grid"]["configuration"]["chunk_shape"] == [1, 2, 32, 40]


def test_ome_zarr_labels_metadata_lists_labels_and_their_source_image(written):
    labels = zarr_json(written["path"] / "labels")["attributes"]["ome"]
    assert labels == {"version": "0.5", "labels": ["cells"]}
    cells = zarr_json(written["path"] / "labels" / "cells")["attributes"]["ome"]
    assert cells["version"] == "0.5"
    assert cells["image-label"] == {"source": {"image": "../../"}}
    (multiscale,) = cells["multiscales"]
    assert [a["name"] for a in multiscale["axes"]] == ["z", "y", "x"]
    assert multiscale["datasets"][3]["coordinateTransformations"][0]["scale"] == [
        2.0,
        0.325 * 8,
        0.325 * 8,
    ]


def test_read_ome_zarr_metadata_gives_back_what_was_written(written):
    meta = read_ome_zarr_metadata(written["path"])
    assert meta.version == "0.5"
    assert meta.name == "image"
    assert meta.axes == ("c", "z", "y", "x")
    assert meta.axis_types == ("channel", "space", "space", "space")
    assert meta.units == {"z": "micrometer", "y": "micrometer", "x": "micrometer"}
    assert meta.paths == ("0", "1", "2", "3")
    assert meta.shapes == ((2, 3, 203, 157), (2, 3, 102, 79), (2, 3, 51, 40), (2, 3, 26, 20))
    assert meta.scales == tuple((1.0, 2.0, 0.325 * 2**k, 0.325 * 2**k) for k in range(4))
    assert meta.downscaling == "mean"
    assert meta.labels == ("cells",)
    label_meta = read_ome_zarr_metadata(written["path"] / "labels" / "cells")
    assert label_meta.axes == ("z", "y", "x") and label_meta.downscaling == "nearest"
    assert label_meta.shapes == tuple(s[1:] for s in meta.shapes)


def test_every_level_reads_back_as_the_block_mean_of_the_image(written):
    image = written["image"]
    for k in range(4):
        level = imread(written["path"], level=k)
        assert level.dtype == np.uint16
        np.testing.assert_array_equal(level.compute(), block_mean(image, (1, 1, 2**k, 2**k)))
    # negative levels count from the smallest
    np.testing.assert_array_equal(
        imread(written["path"], level=-1).compute(), block_mean(image, (1, 1, 8, 8))
    )


def test_label_levels_read_back_exactly_as_strided_labels(written):
    cells = written["cells"]
    for k in range(4):
        level = imread(written["path"] / "labels" / "cells", level=k).compute()
        assert level.dtype == np.uint32
        np.testing.assert_array_equal(level, cells[:, :: 2**k, :: 2**k])


def test_level_chunks_are_the_zarr_chunks(written):
    assert imread(written["path"], level=1).chunks == (
        (1, 1),
        (2, 1),
        (32, 32, 32, 6),
        (48, 31),
    )


def test_float_volume_downscaled_along_z_y_x_is_the_block_mean(tmp_path):
    volume = np.random.default_rng(5).random((21, 34, 29)).astype(np.float32)
    path = tmp_path / "volume.ome.zarr"
    to_ome_zarr(volume, path, downscale={"z": 2, "y": 2, "x": 2}, levels=3, chunks=(4, 8, 8))
    meta = read_ome_zarr_metadata(path)
    assert meta.shapes == ((21, 34, 29), (11, 17, 15), (6, 9, 8))
    assert meta.scales == ((1.0, 1.0, 1.0), (2.0, 2.0, 2.0), (4.0, 4.0, 4.0))
    for k in range(3):
        level = imread(path, level=k).compute()
        assert level.dtype == np.float32
        np.testing.assert_allclose(level, block_mean(volume, (2**k,) * 3), rtol=1e-6)


def test_default_levels_stop_when_the_smallest_fits_one_chunk(tmp_path):
    to_ome_zarr(np.ones((1100, 700), np.uint8), tmp_path / "a.ome.zarr")
    assert read_ome_zarr_metadata(tmp_path / "a.ome.zarr").shapes == (
        (1100, 700),
        (550, 350),
        (275, 175),
    )
    to_ome_zarr(np.ones((100, 70), np.uint8), tmp_path / "b.ome.zarr")
    assert read_ome_zarr_metadata(tmp_path / "b.ome.zarr").shapes == ((100, 70),)


def test_bool_mask_labels_are_written_as_uint8(tmp_path):
    image = np.arange(40 * 30, dtype=np.uint16).reshape(40, 30)
    to_ome_zarr(image, tmp_path / "m.ome.zarr", levels=2, labels={"mask": image > 600})
    mask = imread(tmp_path / "m.ome.zarr" / "labels" / "mask", level=1).compute()
    np.testing.assert_array_equal(mask, (image > 600)[::2, ::2].astype(np.uint8))


@pytest.mark.parametrize(
    ("shape", "chunks", "zarr_chunk"),
    [((203, 157), (70, 50), (32, 48)), ((64, 9), (7, 9), (16, 4)), ((5, 300), (5, 17), (5, 64))],
)
def test_pyramid_write_blocks_are_whole_zarr_chunks_at_every_level(shape, chunks, zarr_chunk):
    image = np.random.default_rng(6).integers(0, 255, shape, dtype=np.uint8)
    grids = level_chunks(shape, (2, 2), 4, zarr_chunk)
    for pyramid in (
        mean_pyramid(da.from_array(image, chunks=chunks), (2, 2), grids),
        stride_pyramid(da.from_array(image, chunks=chunks), (2, 2), grids),
    ):
        for level, grid in zip(pyramid, grids):
            for sizes, z in zip(level.chunks, grid):
                # every block but the last along an axis covers whole Zarr chunks
                assert all(c % z == 0 for c in sizes[:-1]), (level.chunks, grid)
    np.testing.assert_array_equal(pyramid[3].compute(), image[::8, ::8])


def test_compute_false_writes_the_metadata_only_when_computed(tmp_path):
    path = tmp_path / "later.ome.zarr"
    image = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    delayed = to_ome_zarr(image, path, levels=2, compute=False)
    assert "ome" not in zarr_json(path).get("attributes", {})
    delayed.compute()
    assert zarr_json(path)["attributes"]["ome"]["version"] == "0.5"
    np.testing.assert_array_equal(imread(path, level=1).compute(), block_mean(image, (2, 2)))


def test_to_ome_zarr_refuses_to_replace_without_overwrite_and_any_non_zarr_folder(tmp_path):
    image = np.zeros((8, 8), np.uint8)
    to_ome_zarr(image, tmp_path / "x.ome.zarr")
    with pytest.raises(FileExistsError, match=r"x\.ome\.zarr' exists; pass overwrite=True"):
        to_ome_zarr(image, tmp_path / "x.ome.zarr")
    to_ome_zarr(image + 7, tmp_path / "x.ome.zarr", overwrite=True)
    assert int(imread(tmp_path / "x.ome.zarr").max()) == 7
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="is not a Zarr store; refusing"):
        to_ome_zarr(image, tmp_path / "notes", overwrite=True)
    assert (tmp_path / "notes" / "keep.txt").read_text() == "precious"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"axes": "xy"}, ValueError, r"axes must name the image's 2 axes in the order of 'tczyx'"),
        ({"axes": "zyx"}, ValueError, r"axes must name the image's 2 axes"),
        ({"scales": (1.0,)}, ValueError, r"scales must be one positive pixel size per axis 'yx'"),
        ({"scales": (1.0, -2)}, ValueError, r"scales must be one positive"),
        ({"units": {"x": "um"}}, ValueError, r"units\['x'\] must be a unit NGFF names"),
        ({"units": {"z": "micrometer"}}, ValueError, r"units names axis 'z'"),
        ({"downscale": 0}, ValueError, r"downscale must be a positive integer"),
        ({"downscale": {"c": 2}}, ValueError, r"downscale names axis 'c'"),
        ({"levels": 0}, ValueError, r"levels must be at least 1"),
        ({"levels": 2, "downscale": 1}, ValueError, r"levels=2 needs a downscale factor"),
        ({"chunks": (8,)}, ValueError, r"chunks must be one positive chunk length per axis"),
        ({"labels": {"cells": np.zeros((4, 4), np.uint8)}}, ValueError, r"labels\['cells'\] must"),
        ({"labels": {"cells": np.zeros((16, 12))}}, TypeError, r"labels\['cells'\] must be an int"),
        ({"labels": {"a/b": np.zeros((16, 12), np.uint8)}}, ValueError, r"label names must"),
    ],
)
def test_to_ome_zarr_refuses_bad_arguments_naming_them(tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        to_ome_zarr(np.zeros((16, 12), np.uint8), tmp_path / "bad.ome.zarr", **kwargs)
    assert not (tmp_path / "bad.ome.zarr").exists()


def test_to_ome_zarr_refuses_images_it_cannot_write(tmp_path):
    with pytest.raises(TypeError, match="image must be a numpy or dask array, got list"):
        to_ome_zarr([[1, 2]], tmp_path / "a.ome.zarr")
    with pytest.raises(ValueError, match="image must have 2 to 5 dimensions"):
        to_ome_zarr(np.zeros(5), tmp_path / "a.ome.zarr")
    with pytest.raises(TypeError, match="image must be bool, integer or float"):
        to_ome_zarr(np.zeros((4, 4), complex), tmp_path / "a.ome.zarr")


def test_ome_zarr_py_reads_the_written_image_and_labels(written):
    pytest.importorskip("ome_zarr", reason="ome-zarr (ome-zarr-py) is not installed")
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    nodes = {n.zarr.basename(): n for n in Reader(parse_url(str(written["path"])))()}
    image, cells = nodes["image.ome.zarr"], nodes["cells"]
    assert [a["name"] for a in image.metadata["axes"]] == ["c", "z", "y", "x"]
    assert len(image.data) == 4 and len(cells.data) == 4
    for k in range(4):
        np.testing.assert_array_equal(
            np.asarray(image.data[k]), block_mean(written["image"], (1, 1, 2**k, 2**k))
        )
        np.testing.assert_array_equal(
            np.asarray(cells.data[k]), written["cells"][:, :: 2**k, :: 2**k]
        )


# ome_zarr.writer's own default argument is a deprecated Scaler, built at import.
@pytest.mark.filterwarnings("ignore:Call to deprecated class Scaler:DeprecationWarning")
def test_imread_reads_the_ome_zarr_that_ome_zarr_py_writes(tmp_path):
    pytest.importorskip("ome_zarr", reason="ome-zarr (ome-zarr-py) is not installed")
    from ome_zarr.writer import write_image

    image = np.random.default_rng(14).integers(0, 255, (64, 48), dtype=np.uint8)
    write_image(image, zarr.open_group(tmp_path / "theirs.zarr", mode="w"), axes="yx")
    meta = read_ome_zarr_metadata(tmp_path / "theirs.zarr")
    assert meta.axes == ("y", "x") and meta.shapes[:2] == ((64, 48), (32, 24))
    assert meta.scales[1] == (2.0, 2.0)
    np.testing.assert_array_equal(imread(tmp_path / "theirs.zarr").compute(), image)
    assert imread(tmp_path / "theirs.zarr", level=1).shape == (32, 24)


def test_ome_zarr_models_validates_the_written_metadata(written):
    models = pytest.importorskip("ome_zarr_models.v05", reason="ome-zarr-models is not installed")
    image = models.Image.from_zarr(zarr.open_group(written["path"], mode="r"))
    assert [d.path for d in image.attributes.ome.multiscales[0].datasets] == ["0", "1", "2", "3"]


def test_processes_scheduler_reads_tiff_and_writes_ome_zarr_without_locks(tmp_path):
    """The graphs pickle (a TIFF source reopens its file in each process) and the writes
    from separate processes, with no lock, give the same pyramid."""
    image = np.random.default_rng(7).integers(0, 4000, (300, 200), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "in.tif", image, tile=(64, 64))
    with dask.config.set(scheduler="processes", num_workers=2):
        to_ome_zarr(
            imread(tmp_path / "in.tif"), tmp_path / "out.ome.zarr", levels=3, chunks=(64, 64)
        )
        level2 = imread(tmp_path / "out.ome.zarr", level=2).compute()
    np.testing.assert_array_equal(level2, block_mean(image, (4, 4)))


# --- reading TIFF --------------------------------------------------------------------------


def test_tiff_chunks_follow_the_file_tiles(tmp_path):
    image = np.random.default_rng(8).integers(0, 60000, (200, 150), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "tiled.tif", image, tile=(64, 48), compression="zlib")
    x = imread(tmp_path / "tiled.tif")
    assert x.chunks == ((64, 64, 64, 8), (48, 48, 48, 6))
    np.testing.assert_array_equal(x.compute(), image)
    np.testing.assert_array_equal(x[70:130, 40:100].compute(), image[70:130, 40:100])


def test_tiff_strips_and_pages_become_chunks(tmp_path):
    stack = np.random.default_rng(9).integers(0, 255, (4, 50, 30), dtype=np.uint8)
    tifffile.imwrite(
        tmp_path / "strips.tif",
        stack,
        photometric="minisblack",
        rowsperstrip=16,
        compression="zlib",
    )
    x = imread(tmp_path / "strips.tif")
    assert x.chunks == ((1, 1, 1, 1), (16, 16, 16, 2), (30,))
    np.testing.assert_array_equal(x.compute(), stack)


def test_tiff_chunks_auto_are_made_of_whole_tiles(tmp_path):
    image = np.arange(512 * 384, dtype=np.uint32).reshape(512, 384)
    tifffile.imwrite(tmp_path / "t.tif", image, tile=(32, 64))
    with dask.config.set({"array.chunk-size": "128KiB"}):
        x = imread(tmp_path / "t.tif", chunks="auto")
    assert x.numblocks != (1, 1) and x.numblocks != (16, 6)
    assert all(c % 32 == 0 for c in x.chunks[0][:-1]) and all(c % 64 == 0 for c in x.chunks[1][:-1])
    np.testing.assert_array_equal(x.compute(), image)


def test_pyramidal_ome_tiff_level_chooses_the_resolution(tmp_path):
    full = np.random.default_rng(10).integers(0, 60000, (128, 96), dtype=np.uint16)
    half = full[::2, ::2] // 2
    with tifffile.TiffWriter(tmp_path / "pyr.ome.tif", ome=True) as tif:
        tif.write(full, subifds=1, tile=(32, 32))
        tif.write(half, subfiletype=1, tile=(32, 32))
    np.testing.assert_array_equal(imread(tmp_path / "pyr.ome.tif").compute(), full)
    np.testing.assert_array_equal(imread(tmp_path / "pyr.ome.tif", level=1).compute(), half)
    with pytest.raises(
        ValueError, match=r"level=2 is out of range for '.*pyr\.ome\.tif', which has 2"
    ):
        imread(tmp_path / "pyr.ome.tif", level=2)


def test_tiff_glob_stacks_files_in_natural_order(tmp_path):
    planes = [np.full((20, 10), i, np.uint16) for i in range(11)]
    for i, plane in enumerate(planes):
        tifffile.imwrite(tmp_path / f"t{i}.tif", plane, tile=(16, 16))
    x = imread(tmp_path / "t*.tif")
    assert x.shape == (11, 20, 10)
    np.testing.assert_array_equal(x.compute(), np.stack(planes))


def test_tiff_changed_after_imread_is_refused_when_read(tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((8, 8), np.uint8))
    x = imread(tmp_path / "a.tif")
    tifffile.imwrite(tmp_path / "a.tif", np.ones((8, 9), np.uint8))
    with pytest.raises(ValueError, match=r"a\.tif' changed after imread"):
        x.compute()


LAZY_READ = """
import resource, sys
import numpy as np
import dask, dask.array, tifffile, zarr
from daskbio.io import imread

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux

before = peak()
x = imread(sys.argv[1])
total = int(x.sum(dtype=np.uint64).compute(scheduler="threads", num_workers=2))
largest = int(x.max().compute())
lazy = peak()
whole = x.compute()  # the control: reading it all does show in the measure
print(total, largest, before, lazy, peak(), x.numblocks)
"""


def test_tiff_larger_than_the_memory_allowed_is_read_lazily(tmp_path):
    height, width, side = 8192, 16384, 512  # 256 MiB of uint16 in 512 tiles
    tile = (np.arange(side * side) % 4093).astype(np.uint16).reshape(side, side)
    n_tiles = (height // side) * (width // side)
    # Written tile by tile from a generator: the whole image is never in memory here either.
    tiles = (tile + np.uint16(k) for k in range(n_tiles))
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, tiles, shape=(height, width), dtype=np.uint16, tile=(side, side))
    file_size = path.stat().st_size
    assert file_size > 256 * 2**20

    result = subprocess.run(
        [sys.executable, "-c", LAZY_READ, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    total, largest, before, lazy, whole, *_ = result.stdout.split()
    assert int(total) == n_tiles * int(tile.sum(dtype=np.uint64)) + side * side * sum(
        range(n_tiles)
    )
    assert int(largest) == int(tile.max()) + n_tiles - 1
    growth = int(lazy) - int(before)
    assert growth < file_size / 8, f"peak RSS grew {growth / 2**20:.0f} MiB"
    assert int(whole) - int(before) > 0.9 * file_size  # the measure sees a whole read


# --- reading PNG / JPEG --------------------------------------------------------------------


def test_png_glob_stacks_one_lazily_read_plane_per_file(tmp_path):
    rng = np.random.default_rng(11)
    planes = [rng.integers(0, 65535, (30, 40), dtype=np.uint16) for _ in range(12)]
    for i, plane in enumerate(planes):
        Image.fromarray(plane).save(tmp_path / f"img_{i}.png")
    x = imread(str(tmp_path / "img_*.png"))
    assert x.shape == (12, 30, 40) and x.dtype == np.uint16
    assert x.numblocks == (12, 1, 1)  # one task per file
    direct = np.stack([np.asarray(Image.open(tmp_path / f"img_{i}.png")) for i in range(12)])
    np.testing.assert_array_equal(x.compute(), direct)
    np.testing.assert_array_equal(direct, np.stack(planes))  # natural order: img_2 < img_10
    np.testing.assert_array_equal(x[5, 3:7].compute(), planes[5][3:7])


def test_jpeg_glob_stacks_rgb_planes_equal_to_reading_each_file(tmp_path):
    rng = np.random.default_rng(12)
    for i in range(3):
        rgb = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
        Image.fromarray(rgb).save(tmp_path / f"f{i}.jpg", quality=90)
    x = imread([tmp_path / "f2.jpg", tmp_path / "f0.jpg"])  # a list, in its own order
    assert x.shape == (2, 24, 32, 3) and x.dtype == np.uint8
    direct = [np.asarray(Image.open(tmp_path / f"f{i}.jpg")) for i in (2, 0)]
    np.testing.assert_array_equal(x.compute(), np.stack(direct))


def test_palette_png_is_read_as_its_colours(tmp_path):
    indices = np.arange(6 * 5, dtype=np.uint8).reshape(6, 5) % 3
    image = Image.fromarray(indices, mode="L").convert("P")
    image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255])
    image.save(tmp_path / "pal.png")
    x = imread(tmp_path / "pal.png")
    assert x.shape == (6, 5, 3)
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    np.testing.assert_array_equal(x.compute(), colours[indices])


def test_glob_shapes_are_checked_from_headers_without_decoding(tmp_path):
    noise = np.random.default_rng(13).integers(0, 255, (60, 50), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "b.png").write_bytes(data[: len(data) // 2])  # header intact, pixels cut off
    x = imread(tmp_path / "*.png")  # no decoding yet, so no error
    assert x.shape == (2, 60, 50)
    np.testing.assert_array_equal(x[0].compute(), noise)
    with pytest.raises(ValueError, match=r"cannot decode '.*b\.png'"):
        x[1].compute()


# --- errors ------------------------------------------------------------------------------


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no such file: '.*nothere\.tif'"):
        imread(tmp_path / "nothere.tif")


def test_glob_matching_nothing_names_the_pattern(tmp_path):
    pattern = str(tmp_path / "x" / "*.png")
    with pytest.raises(FileNotFoundError, match=f"no file matches {re.escape(repr(pattern))}"):
        imread(pattern)


@pytest.mark.parametrize(("name", "kind"), [("fake.tif", "TIFF"), ("fake.png", "PNG")])
def test_text_file_named_as_an_image_is_unreadable(tmp_path, name, kind):
    (tmp_path / name).write_text("this is not an image")
    with pytest.raises(ValueError, match=rf"cannot read '.*{re.escape(name)}' as {kind}"):
        imread(tmp_path / name)


def test_mismatched_shapes_in_a_glob_name_both_files(tmp_path):
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(tmp_path / "b.png")
    a, b = str(tmp_path / "a.png"), str(tmp_path / "b.png")
    message = f"{b!r} has shape (10, 12), but {a!r} has (10, 10)"
    with pytest.raises(ValueError, match=re.escape(message)):
        imread(tmp_path / "*.png")


def test_mismatched_dtypes_in_a_glob_name_both_files(tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((10, 10), np.uint8))
    tifffile.imwrite(tmp_path / "b.tif", np.zeros((10, 10), np.uint16))
    a, b = str(tmp_path / "a.tif"), str(tmp_path / "b.tif")
    with pytest.raises(ValueError, match=re.escape(f"{b!r} has dtype uint16, but {a!r} has uint8")):
        imread(tmp_path / "*.tif")


def test_level_out_of_range_names_the_store_and_its_levels(written):
    with pytest.raises(
        ValueError,
        match=r"level=4 is out of range for '.*image\.ome\.zarr', "
        r"which has 4 levels \(0 to 3",
    ):
        imread(written["path"], level=4)
    with pytest.raises(ValueError, match=r"level=-5 is out of range"):
        imread(written["path"], level=-5)
    with pytest.raises(TypeError, match="level must be an integer, got '1'"):
        imread(written["path"], level="1")


def test_level_of_a_single_level_image_is_refused(tmp_path):
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(ValueError, match=r"level=1 is out of range for '.*a\.png', which has one"):
        imread(tmp_path / "a.png", level=1)


def test_unknown_formats_and_plain_folders_are_refused_with_what_is_read(tmp_path):
    (tmp_path / "a.bmp").write_bytes(b"BM")
    with pytest.raises(ValueError, match=r"unknown image format '\.bmp'; imread reads TIFF"):
        imread(tmp_path / "a.bmp")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ValueError, match=r"'.*folder' is a folder, not an image"):
        imread(tmp_path / "folder")


def test_labels_group_and_plain_zarr_group_say_what_to_read_instead(written, tmp_path):
    with pytest.raises(ValueError, match=r"is an OME-Zarr labels group, not an image; .*cells'"):
        imread(written["path"] / "labels")
    group = zarr.open_group(tmp_path / "plain.zarr", mode="w")
    group.create_array("raw", shape=(4, 4), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"without multiscale .* \(its members: raw\)"):
        imread(tmp_path / "plain.zarr")
    np.testing.assert_array_equal(imread(tmp_path / "plain.zarr" / "raw").compute(), 0)


def test_16_bit_colour_png_is_refused_rather_than_cut_to_8_bits(tmp_path):
    # A 16-bit RGB PNG, written by hand (Pillow cannot write one).
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"".join(b"\0" + np.full((4, 3), 1000, ">u2").tobytes() for _ in range(2))
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 2, 16, 2, 0, 0, 0))
    (tmp_path / "rgb16.png").write_bytes(
        png + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    )
    with pytest.raises(ValueError, match=r"rgb16\.png'.*16-bit RGB PNG, which Pillow decodes"):
        imread(tmp_path / "rgb16.png")


# --- imports and the user page ------------------------------------------------------------


def test_importing_daskbio_io_defers_dask_zarr_tifffile_and_pillow():
    code = (
        "import sys, daskbio.io; "
        "print([m for m in ('dask.array', 'zarr', 'tifffile', 'PIL') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_docs_example_runs(tmp_path):
    page = (REPO / "docs" / "io.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", page, re.S)
    subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path, check=True, timeout=120
    )
