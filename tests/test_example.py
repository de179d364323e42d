"""The example of the README: the segmentation demo runs, and a second run is all cached."""

from __future__ import annotations

from conftest import daskbio

from daskbio import compute
from daskbio.cache import FileSystemStore
from daskbio.pipeline import load


def test_example_pipeline_runs_then_reports_everything_cached(example):
    first = daskbio("run", example, check=True)
    assert "summarize" in first.stdout
    second = daskbio("run", example, check=True)
    assert "All 41 Tasks were cached" in second.stdout
    store = FileSystemStore(example.with_name("pipeline.daskbio"))
    with load(example, store, may_compute=False) as pipeline:
        summary = compute(pipeline.namespace["summary"], cache=store)
    for method in ("method1", "method2"):
        assert 0.7 < summary[method]["mean_dice"] <= 1.0
    assert summary["method2"]["mean_dice"] > summary["method1"]["mean_dice"]
