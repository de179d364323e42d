"""Shared fixtures: a fresh cache folder per test, and a real pipeline file on disk."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

DASKBIO = [sys.executable, "-m", "daskbio"]


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
