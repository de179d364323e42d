"""The documentation site builds without a warning, and every code block in it runs.

1. ``mkdocs build --strict`` (mkdocs.yml at the repository's root) builds the site into a
   temporary folder, and the API reference holds the functions users call.
2. Every fenced ``python`` and ``bash`` block of ``docs/*.md`` runs, page by page, in a
   fresh Python process and a fresh temporary folder: the blocks of one page in order, the
   Python ones in one namespace, like the cells of a notebook, the bash ones with ``bash -e``
   (``daskbio`` there is this repository's), with the cache and the file-digest memo inside
   that folder. Blocks of other languages (output, diffs) are not code to run. The line
   before a block may hold one marker:

   - ``<!-- not run: REASON -->``: the block is skipped, and REASON says why (a SLURM
     cluster, a run in progress...). Every skipped block is listed with its reason: printed
     (``pytest -s``) and in a warning.
   - ``<!-- file: PATH -->``: the block is a file a later block uses (a pipeline file): it
     is written to PATH, relative to the page's working folder, instead of being run there.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
MARKER = re.compile(r"^\s*<!--\s*(?P<kind>not run|file)\s*:\s*(?P<value>.*?)\s*-->\s*$")


@dataclass
class Block:
    page: str
    line: int  # of the opening fence, 1-based
    language: str
    source: str
    skip: str | None = None  # the reason given by a "not run" marker
    file: str | None = None  # the path given by a "file" marker


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a Markdown page, with the marker on the line before each."""
    lines = page.read_text().splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        language = opening["info"].strip().split(" ")[0].lower()
        body = []
        j = i + 1
        while j < len(lines) and not (
            lines[j].strip().startswith(fence) and set(lines[j].strip()) == {fence[0]}
        ):
            line = lines[j]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            j += 1
        previous = next((line for line in reversed(lines[:i]) if line.strip()), "")
        marker = MARKER.match(previous)
        block = Block(page.name, i + 1, language, "\n".join(body) + "\n")
        if marker and marker["kind"] == "not run":
            block.skip = marker["value"]
        elif marker:
            block.file = marker["value"]
        found.append(block)
        i = j + 1
    return found


PYTHON, SHELL = ("python", "py"), ("bash", "sh")


def code_blocks(page: Path) -> list[Block]:
    """The blocks of a page that are code to run: Python and bash."""
    return [b for b in blocks(page) if b.language in PYTHON + SHELL]


PAGES = sorted(p for p in DOCS.glob("*.md") if code_blocks(p))

# Runs in a fresh process in the page's working folder: each block in turn in one module's
# namespace (named after the page, so that Task functions get a module name of their own),
# compiled under a name that tracebacks show as the page and line.
RUNNER = r"""
import json, subprocess, sys, types

page, blocks = json.load(open(sys.argv[1]))
module = types.ModuleType("docs_" + page.removesuffix(".md").replace("-", "_"))
module.__file__ = sys.argv[1]
sys.modules[module.__name__] = module
for block in blocks:
    if block["file"]:
        import pathlib
        path = pathlib.Path(block["file"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(block["source"])
        continue
    print(f"--- {page}, the block at line {block['line']}", flush=True)
    if block["shell"]:
        own = f'daskbio() {{ "{sys.executable}" -m daskbio "$@"; }}\n'
        subprocess.run(["bash", "-euo", "pipefail", "-c", own + block["source"]], check=True)
        continue
    code = compile(block["source"], f"{page} (the block at line {block['line']})", "exec")
    exec(code, module.__dict__)
"""


def test_every_skipped_block_says_why():
    skipped = [
        b for page in sorted(DOCS.glob("*.md")) for b in code_blocks(page) if b.skip is not None
    ]
    for block in skipped:
        assert block.skip, f"{block.page}:{block.line}: a 'not run' marker needs a reason"
    listing = "\n".join(f"  {b.page}:{b.line}: {b.skip}" for b in skipped)
    print(f"\n{len(skipped)} code blocks of docs/*.md are not run:\n{listing}")
    if skipped:
        warnings.warn(f"code blocks of docs/*.md not run:\n{listing}", stacklevel=1)


def test_markers_stand_before_code_blocks_only():
    # A marker before an output block, or one with a typo, would silently do nothing.
    for page in DOCS.glob("*.md"):
        lines = page.read_text().splitlines()
        starts = {b.line for b in code_blocks(page)}
        for number, line in enumerate(lines, 1):
            if MARKER.match(line) or re.match(r"^\s*<!--\s*(not.run|file)\b", line, re.I):
                assert MARKER.match(line), f"{page.name}:{number}: malformed marker {line!r}"
                following = next(
                    (n for n in range(number + 1, len(lines) + 1) if lines[n - 1].strip()), None
                )
                assert following in starts, f"{page.name}:{number}: no code block follows"


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_the_code_blocks_of_a_page_run(page: Path, tmp_path: Path):
    all_blocks = code_blocks(page)
    skipped = [b for b in all_blocks if b.skip is not None]
    for block in skipped:
        print(f"\nnot run: {block.page}:{block.line}: {block.skip}")
    to_run = [b for b in all_blocks if b.skip is None]
    if not to_run:
        pytest.skip(f"every code block of {page.name} is marked 'not run'")
    work = tmp_path / "work"
    work.mkdir()
    script = tmp_path / "run_blocks.py"
    script.write_text(RUNNER)
    data = tmp_path / "blocks.json"
    runs = [
        {"line": b.line, "source": b.source, "file": b.file, "shell": b.language in SHELL}
        for b in to_run
    ]
    data.write_text(json.dumps([page.name, runs]))
    env = {
        **os.environ,
        "DASK_DASKBIO__CACHE": str(tmp_path / "cache"),
        "DASKBIO_FILE_MEMO": str(tmp_path / "file-memo"),
        "MPLBACKEND": "Agg",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    result = subprocess.run(
        [sys.executable, str(script), str(data)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    print(result.stdout)
    assert result.returncode == 0, f"{page.name}:\n{result.stdout}\n{result.stderr}"


def test_the_site_builds_without_a_warning(tmp_path: Path):
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install '.[docs]')")
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    api = "".join(path.read_text() for path in site.glob("api*/index.html"))
    for name in (
        "daskbio.TaskGenerator",
        "daskbio.graph.compute.compute",
        "daskbio.value",
        "daskbio.init",
        "daskbio.kernels.filters.gaussian_filter",
        "daskbio.kernels.labeling.label",
        "daskbio.io.imread",
        "daskbio.io.to_ome_zarr",
        "daskbio.datasets.nets.nets",
        "daskbio.cache.FileSystemStore",
    ):
        assert f'id="{name}"' in api, f"{name} is missing from the API reference"
    for page in ("index", "tutorial", "porting", "architecture", "cache", "kernels"):
        assert (site / page / "index.html").is_file() or page == "index"
    assert (site / "index.html").is_file()
