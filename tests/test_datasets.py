import hashlib
import os

import mahotas as mh
import numpy as np
import pytest
import tifffile

from daskbio.datasets import nuclei, write_nuclei


def _digest(image, mask):
    return hashlib.sha256(image.tobytes() + mask.tobytes()).hexdigest()


def test_same_seed_same_bytes():
    image1, mask1 = nuclei(seed=3)
    image2, mask2 = nuclei(seed=3)
    assert image1.tobytes() == image2.tobytes()
    assert mask1.tobytes() == mask2.tobytes()


def test_different_seed_different_images():
    image1, mask1 = nuclei(seed=0)
    image2, mask2 = nuclei(seed=1)
    assert not np.array_equal(image1, image2)
    assert not np.array_equal(mask1, mask2)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            {"seed": 0},
            "576add92eddfb8e015839f23781f9e786e5ac50aa61d473c9e39e1fd3087291a",
        ),
        (
            {"seed": 7, "shape": (100, 300), "n_nuclei": 5},
            "9ff56b856848af98e28bbd2ddc49a8fc211cb4646b4601936ecddcb8b53d778b",
        ),
    ],
)
def test_bit_for_bit_reproducible_across_machines(args, expected):
    # The output must not depend on platform or numpy build.  If this fails
    # after an intentional change to the generator, update the digests and
    # bump daskbio.datasets.synthetic._GENERATOR_VERSION.
    assert _digest(*nuclei(**args)) == expected


@pytest.mark.parametrize("shape", [(256, 256), (100, 300), (17, 9)])
def test_dtype_and_shape(shape):
    image, mask = nuclei(seed=2, shape=shape)
    assert image.shape == shape
    assert mask.shape == shape
    assert image.dtype == np.uint8
    assert mask.dtype == bool


def test_shape_accepts_list_and_numpy_ints():
    image, _ = nuclei(shape=[np.int64(40), 50])
    assert image.shape == (40, 50)


@pytest.mark.parametrize("seed", range(5))
def test_mask_fraction_and_contrast(seed):
    image, mask = nuclei(seed=seed)
    assert 0.08 < mask.mean() < 0.3
    # Nuclei are clearly brighter than the background.
    assert image[mask].mean() > image[~mask].mean() + 50
    # The image uses a good part of the dynamic range without being flat.
    assert image.max() > 150
    assert image.std() > 10


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("n_nuclei", [5, 20, 40])
def test_number_of_nuclei(seed, n_nuclei):
    _, mask = nuclei(seed=seed, n_nuclei=n_nuclei)
    _, n_components = mh.label(mask)
    # A few neighbours may touch and merge; none may be missing otherwise.
    assert n_nuclei - max(2, n_nuclei // 8) <= n_components <= n_nuclei


def test_no_nuclei():
    image, mask = nuclei(n_nuclei=0, shape=(32, 32))
    assert not mask.any()
    assert image.shape == (32, 32)


def test_write_nuclei_roundtrip(tmp_path):
    folder = tmp_path / "nested" / "data"
    paths = write_nuclei(folder, n_images=3, shape=(64, 80), seed=5)
    assert paths == sorted(paths)
    assert [p.name for p in paths] == ["image-00.tif", "image-01.tif", "image-02.tif"]
    assert sorted(p.name for p in folder.iterdir()) == [
        "image-00.tif",
        "image-01.tif",
        "image-02.tif",
        "mask-00.tif",
        "mask-01.tif",
        "mask-02.tif",
    ]
    for i, path in enumerate(paths):
        expected_image, expected_mask = nuclei(seed=5 + i, shape=(64, 80))
        image = tifffile.imread(path)
        mask = tifffile.imread(folder / f"mask-{i:02d}.tif")
        assert image.dtype == expected_image.dtype
        assert mask.dtype == expected_mask.dtype
        np.testing.assert_array_equal(image, expected_image)
        np.testing.assert_array_equal(mask, expected_mask)


def test_write_nuclei_accepts_str(tmp_path):
    paths = write_nuclei(str(tmp_path), n_images=1, shape=(32, 32))
    assert paths == [tmp_path / "image-00.tif"]


def _set_old_mtimes(folder):
    old = 1_000_000_000_000_000_000  # 2001, in nanoseconds
    for path in folder.iterdir():
        os.utime(path, ns=(old, old))
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


def test_write_nuclei_is_idempotent(tmp_path):
    first = write_nuclei(tmp_path, n_images=2, shape=(48, 48))
    before = _set_old_mtimes(tmp_path)
    second = write_nuclei(tmp_path, n_images=2, shape=(48, 48))
    assert second == first
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before


def test_write_nuclei_only_adds_missing_files(tmp_path):
    write_nuclei(tmp_path, n_images=2, shape=(48, 48))
    before = _set_old_mtimes(tmp_path)
    paths = write_nuclei(tmp_path, n_images=3, shape=(48, 48))
    assert [p.name for p in paths] == ["image-00.tif", "image-01.tif", "image-02.tif"]
    after = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    for name, mtime in before.items():
        assert after[name] == mtime
    assert after["image-02.tif"] != before.get("image-02.tif")


def test_write_nuclei_regenerates_stale_or_broken_files(tmp_path):
    write_nuclei(tmp_path, n_images=2, shape=(48, 48))
    (tmp_path / "mask-01.tif").write_bytes(b"not a tiff")
    # Different parameters: files from the earlier call must not be reused.
    paths = write_nuclei(tmp_path, n_images=2, shape=(40, 30), seed=9)
    for i, path in enumerate(paths):
        image, mask = nuclei(seed=9 + i, shape=(40, 30))
        np.testing.assert_array_equal(tifffile.imread(path), image)
        np.testing.assert_array_equal(tifffile.imread(tmp_path / f"mask-{i:02d}.tif"), mask)
    # No temporary files are left behind.
    assert len(list(tmp_path.iterdir())) == 4


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"seed": -1}, ValueError, "seed"),
        ({"seed": 1.5}, TypeError, "seed"),
        ({"seed": True}, TypeError, "seed"),
        ({"n_nuclei": -3}, ValueError, "n_nuclei"),
        ({"n_nuclei": "20"}, TypeError, "n_nuclei"),
        ({"shape": (0, 10)}, ValueError, "shape"),
        ({"shape": (10, -1)}, ValueError, "shape"),
        ({"shape": (10, 10, 10)}, ValueError, "shape"),
        ({"shape": (10.0, 10)}, TypeError, "shape"),
        ({"shape": 10}, TypeError, "shape"),
    ],
)
def test_nuclei_input_errors(kwargs, error, name):
    with pytest.raises(error, match=name):
        nuclei(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"n_images": 0}, ValueError, "n_images must be positive, got 0"),
        ({"n_images": -2}, ValueError, "n_images"),
        ({"n_images": 2.0}, TypeError, "n_images"),
        ({"shape": (256,)}, ValueError, "shape"),
        ({"shape": (0, 256)}, ValueError, "shape"),
        ({"seed": -1}, ValueError, "seed"),
    ],
)
def test_write_nuclei_input_errors(tmp_path, kwargs, error, message):
    folder = tmp_path / "out"
    with pytest.raises(error, match=message):
        write_nuclei(folder, **kwargs)
    assert not folder.exists()  # validated before touching the disk


def test_write_nuclei_folder_type_error():
    with pytest.raises(TypeError, match="folder"):
        write_nuclei(None)
