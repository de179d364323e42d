"""``daskbio.datasets.nets``: the NETs study's images found on disk, or downloaded (from a
server on 127.0.0.1 here) and checked against their SHA-256 (issue 12, item 1)."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from pathlib import Path

import dask
import pytest

from daskbio.datasets import nets
from daskbio.datasets.nets import DatasetNotFound, registry


def test_the_fields_of_a_folder_are_listed_by_sample_and_field(nets_folder):
    fields = nets(nets_folder)
    assert len(fields) == 88
    assert fields["sample"].nunique() == 30 and fields["rois2"].notna().sum() == 37
    first = fields.iloc[0]
    assert (first["sample"], first["field"]) == (0, 0)
    assert first["protein"] == str(nets_folder / "image_00_00_protein.png")
    assert list(fields.columns) == ["sample", "field", "dna", "protein", "rois", "rois2"]
    assert fields[["sample", "field"]].apply(tuple, axis=1).is_monotonic_increasing


def test_the_folder_comes_from_the_config_key_or_the_environment(nets_folder, monkeypatch):
    monkeypatch.delenv("DASKBIO_DATA", raising=False)
    with dask.config.set({"daskbio.data": str(nets_folder.parent)}):
        assert nets()["dna"].iloc[0] == str(nets_folder / "image_00_00_dna.png")
    monkeypatch.setenv("DASKBIO_DATA", str(nets_folder.parent))
    assert nets()["dna"].iloc[-1].startswith(str(nets_folder))


def test_a_folder_lacking_images_is_refused_naming_them(nets_folder, tmp_path):
    for name in list(registry())[:-2]:
        (tmp_path / name).symlink_to(nets_folder / name)
    with pytest.raises(DatasetNotFound, match=r"lacks 2 of the 301 NETs images \(image_29_"):
        nets(tmp_path)
    with pytest.raises(DatasetNotFound, match="path must be a folder"):
        nets(tmp_path / "nowhere")


class _Server:
    """A copy of the images served over HTTP on 127.0.0.1, counting requests."""

    def __init__(self, folder: Path) -> None:
        self.requests: list[str] = []
        served = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                served.requests.append(self.path)

        handler = functools.partial(Handler, directory=str(folder))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served(nets_folder, tmp_path, monkeypatch):
    copy = tmp_path / "served"
    shutil.copytree(nets_folder, copy)
    server = _Server(copy)
    monkeypatch.delenv("DASKBIO_DATA", raising=False)
    monkeypatch.setenv("DASKBIO_DOWNLOADS", str(tmp_path / "downloads"))
    with dask.config.set({"daskbio.data-url": server.url, "daskbio.data": None}):
        yield copy, server
    server.close()


def test_without_a_folder_the_images_are_downloaded_once_and_checked(served, tmp_path):
    copy, server = served
    fields = nets()
    assert len(fields) == 88 and len(server.requests) == 301
    downloaded = Path(fields["rois2"].dropna().iloc[0])
    assert downloaded.parent == tmp_path / "downloads"
    assert downloaded.read_bytes() == (copy / downloaded.name).read_bytes()
    assert len(nets()) == 88 and len(server.requests) == 301  # nothing fetched again


def test_a_downloaded_file_that_is_not_the_published_one_is_refused(served, tmp_path):
    copy, _ = served
    (copy / "image_05_01_dna.png").write_bytes(b"not the image")
    with pytest.raises(ValueError, match=r"image_05_01_dna\.png downloaded from .* is not the pub"):
        nets()
