"""Shared fixtures: a fresh cache folder per test, and a real pipeline file on disk."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

DASKBIO = [sys.executable, "-m", "daskbio"]


def pytest_configure(config: pytest.Config) -> None:
    # One signing key for the whole run, its subprocesses and SLURM jobs included, kept
    # out of the user's own config folder.
    if "DASKBIO_KEY_FILE" not in os.environ:
        folder = tempfile.mkdtemp(prefix="daskbio-test-key-")
        os.environ["DASKBIO_KEY_FILE"] = os.path.join(folder, "key")


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def write_pipeline(folder: Path, source: str, name: str = "pipeline.py") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return path


def daskbio(
    *args: str, cwd: Path | None = None, check: bool = False, **kw
) -> subprocess.CompletedProcess:
    """Run the real ``daskbio`` command in a subprocess."""
    result = subprocess.run(
        [*DASKBIO, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300, **kw
    )
    if check and result.returncode != 0:
        raise AssertionError(f"daskbio {args} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """A copy of examples/segmentation in a temporary folder."""
    src = Path(__file__).parents[1] / "examples" / "segmentation"
    dst = tmp_path / "segmentation"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("data", "*.daskbio"))
    return dst / "pipeline.py"


@pytest.fixture(scope="session")
def nets_folder() -> Path:
    """The NETs study's published images (``../shared/data/nets`` beside the repository,
    or ``nets/`` in the folder ``DASKBIO_DATA`` names). Without them the tests that need
    them skip, or fail when ``DASKBIO_REQUIRE_DATA`` is set (as .ci/run sets it)."""
    candidates = [Path(__file__).resolve().parents[2] / "shared" / "data" / "nets"]
    if os.environ.get("DASKBIO_DATA"):
        candidates.insert(0, Path(os.environ["DASKBIO_DATA"]) / "nets")
    for folder in candidates:
        if (folder / "image_00_00_dna.png").is_file():
            return folder
    message = f"the NETs images are not in {' or '.join(map(str, candidates))}"
    if os.environ.get("DASKBIO_REQUIRE_DATA"):
        pytest.fail(message)
    pytest.skip(message)
