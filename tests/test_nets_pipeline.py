"""The NETs study's pipeline (examples/nets/pipeline.py) on a few experiments, end to end."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
from pathlib import Path

from conftest import daskbio

PIPELINE = Path(__file__).parents[1] / "examples" / "nets" / "pipeline.py"
SAMPLES = "9,10,11,12,13,14"  # 9 fields, all labelled twice: every row of the table is there
METHODS = ["pixel", "regions", "surf(1)", "surf(2)", "surf(4)", "surf(8)", "combined", "bernsen"]
PLOTS = ["predicted-vs-human.png", "q2.png", "residuals.png"]


def _env(nets_folder: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    for name in list(env):
        if name.startswith("NETS_"):
            del env[name]
    env.update(
        DASKBIO_DATA=str(nets_folder.parent),
        NETS_SAMPLES=SAMPLES,
        NETS_TREES="5",
        NETS_PIECES="30",
        MPLBACKEND="Agg",
    )
    env.update(extra)
    return env


def _status(pipeline: Path, env: dict[str, str]) -> dict[str, dict[str, int]]:
    result = daskbio("status", pipeline, "--json", env=env, check=True)
    return json.loads(result.stdout)


def test_nets_pipeline_subset(tmp_path: Path, nets_folder: Path) -> None:
    pipeline = tmp_path / "nets" / "pipeline.py"
    pipeline.parent.mkdir()
    shutil.copy(PIPELINE, pipeline)
    env = _env(nets_folder)

    first = daskbio("run", pipeline, "--quiet", env=env, check=True)
    assert "This run computed" in first.stdout

    results = pipeline.parent / "results"
    with open(results / "results.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["method", "validation", "correction", "q2", "r2"]
        rows = list(reader)
    expected = {
        (method, validation, correction)
        for method in METHODS
        for validation in ("by-experiment", "by-image")
        for correction in ("raw", "corrected")
    } | {("human", "second-person", "raw")}
    assert {(r["method"], r["validation"], r["correction"]) for r in rows} == expected
    assert len(rows) == len(expected)
    for row in rows:
        q2, r2 = float(row["q2"]), float(row["r2"])
        assert math.isfinite(q2) and math.isfinite(r2), row
        assert q2 <= 1.0 + 1e-9 and 0.0 <= r2 <= 1.0 + 1e-9, row
    table = (results / "results.md").read_text().splitlines()
    assert table[0].startswith("| method | validation | correction | q2 | r2 |")
    assert len(table) == 2 + len(expected)
    for name in PLOTS:
        assert (results / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name

    second = daskbio("run", pipeline, "--quiet", env=env, check=True)
    assert re.search(r"All \d+ Tasks were cached", second.stdout), second.stdout

    # Another grid step for the pixel method: only its Tasks, and what is computed from
    # them, are to be computed again.
    changed = _env(nets_folder, NETS_PIXEL_STEP="16")
    before = _status(pipeline, changed)
    n_images, n_folds = 9, 6 + 9  # leave-one-experiment-out and leave-one-image-out
    waiting = {name: counts["waiting"] for name, counts in before.items() if counts["waiting"]}
    assert waiting == {
        "pixel_features": n_images,
        "fit_predict": n_folds,  # the pixel method's, one per fold; the other five's are done
        "correct_and_combine": n_folds,
        "evaluate": 1,
        "report": 1,
    }
    third = daskbio("run", pipeline, "--quiet", env=changed, check=True)
    assert f"This run computed {sum(waiting.values())} Tasks" in third.stdout, third.stdout
