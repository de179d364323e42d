"""Array results end to end: written chunk by chunk by the workers, resumed after a kill,
read back lazily, and cleaned up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
import zarr
from dask.utils import key_split

from daskbio import TaskFailed, TaskGenerator, compute, kernels, value
from daskbio.cache import FileSystemStore, Kind, open_store
from daskbio.graph.compute import session
from tests.conftest import DASKBIO, daskbio, write_pipeline

# A 64 x 64 array in 8 x 8 chunks whose chunk function logs its index and takes a while,
# so a run can be killed part way through writing it. Even chunks are 1 + row, odd ones
# zero (Zarr's fill value: written all the same).
SLOW_ARRAY = """
    import os
    import time

    import dask.array as da
    import numpy as np

    from daskbio import TaskGenerator

    def chunk(block, block_info=None):
        i, j = block_info[0]["chunk-location"]
        with open(os.environ["CHUNK_LOG"], "a") as log:
            log.write(f"{i} {j}\\n")
        time.sleep(float(os.environ.get("CHUNK_SECONDS", "0")))
        return block + (i + 1) * ((i + j) % 2 == 0)

    @TaskGenerator
    def big(n):
        return da.zeros((n, n), chunks=8, dtype=np.uint16).map_blocks(chunk, dtype=np.uint16)

    @TaskGenerator
    def total(x):
        return int(x.sum())

    result = total(big(64))
"""


def expected_big() -> np.ndarray:
    i, j = np.indices((8, 8))
    return np.kron((i + 1) * ((i + j) % 2 == 0), np.ones((8, 8))).astype(np.uint16)


def logged(log: Path) -> list[tuple[int, int]]:
    if not log.exists():
        return []
    return [tuple(map(int, line.split())) for line in log.read_text().splitlines()]


def key_named(store: FileSystemStore, name: str) -> str:
    keys = store.keys()
    (key,) = [k for k, m in zip(keys, store.metadata_many(keys)) if m["name"] == name]
    return key


def array_group(cache: Path) -> Path:
    (group,) = cache.glob("*/*.zarr")
    return group


def test_a_run_killed_mid_write_resumes_with_only_the_missing_chunks(tmp_path):
    pipeline = write_pipeline(tmp_path, SLOW_ARRAY)
    cache = tmp_path / "pipeline.daskbio"
    log = tmp_path / "chunks.log"
    # Two threads however many cores: the kill must land part way through the chunks.
    env = {**os.environ, "CHUNK_LOG": str(log), "CHUNK_SECONDS": "0.1", "DASK_NUM_WORKERS": "2"}
    child = subprocess.Popen(
        [*DASKBIO, "run", str(pipeline), "--scheduler", "threads"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while len(logged(log)) < 24 and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert 0 < len(logged(log)) < 64, "the run must be killed part way through the array"

    group = array_group(cache)
    done = zarr.open_array(group, path="done", mode="r")[...]
    finished = {(int(i), int(j)) for i, j in np.argwhere(done.any(axis=-1))}
    assert 0 < len(finished) < 64
    report = json.loads(daskbio("status", pipeline, "--json", check=True).stdout)
    assert report["big"]["waiting"] == 1

    log.unlink()
    env["CHUNK_SECONDS"] = "0"
    out = subprocess.run(
        [*DASKBIO, "run", str(pipeline)], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    rerun = logged(log)
    assert sorted(rerun) == sorted(set(np.ndindex(8, 8)) - finished)
    assert f": {int(expected_big().sum())}" in out.stdout

    store = FileSystemStore(cache)
    key = key_named(store, "big")
    np.testing.assert_array_equal(store.load(key), expected_big())


def test_a_dask_array_result_is_written_by_every_worker_not_gathered(tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    pipeline = write_pipeline(tmp_path, SLOW_ARRAY)
    log = tmp_path / "chunks.log"
    # The workers' chunk function reads these.
    monkeypatch.setenv("CHUNK_LOG", str(log))
    monkeypatch.setenv("CHUNK_SECONDS", "0.02")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        with distributed.get_task_stream(client) as stream:
            out = subprocess.run(
                [*DASKBIO, "run", str(pipeline), "--scheduler", cluster.scheduler_address],
                capture_output=True,
                text=True,
                timeout=300,
            )
        assert out.returncode == 0, out.stderr
    # One "store_chunk" task per chunk, each run by the worker that computed the chunk.
    stored = {t["key"]: t["worker"] for t in stream.data if key_split(t["key"]) == "store_chunk"}
    assert len(stored) == 64
    assert len(set(stored.values())) == 2, "both workers wrote chunks"
    store = FileSystemStore(tmp_path / "pipeline.daskbio")
    big = store.metadata(key_named(store, "big"))
    assert big["format"] == "zarr" and big["array"]["chunks"] == [8, 8]
    # Every chunk was computed once, although "total" read the array after it was written.
    assert sorted(logged(log)) == sorted(np.ndindex(8, 8))


@TaskGenerator
def ramp(n: int):
    return da.arange(n * n, chunks=n * n // 4, dtype=np.int32).reshape(n, n)


@TaskGenerator
def plus_one(x):
    return x + 1


def test_value_of_a_large_cached_array_is_lazy_and_chunked_as_stored(tmp_path):
    cache = tmp_path / "cache"
    task = plus_one(ramp(64))
    with dask.config.set({"daskbio.lazy-above": "4 KiB"}):
        result = compute(task, cache=cache, scheduler="threads")
        with session(store=open_store(cache)):
            again = value(task)
    for x in (result, again):
        assert isinstance(x, da.Array)
        assert x.chunks == ((16, 16, 16, 16), (64,))
        np.testing.assert_array_equal(x.compute(), np.arange(64 * 64).reshape(64, 64) + 1)
    with dask.config.set({"daskbio.lazy-above": "1 GiB"}):
        assert type(compute(task, cache=cache)) is np.ndarray


def test_cleanup_removes_partial_arrays_of_tasks_the_pipeline_no_longer_makes(tmp_path):
    pipeline = write_pipeline(tmp_path, SLOW_ARRAY)
    cache = tmp_path / "pipeline.daskbio"
    store = FileSystemStore(cache)
    env = {**os.environ, "CHUNK_LOG": str(tmp_path / "log")}
    daskbio("run", pipeline, env=env, check=True)
    own = key_named(store, "big")
    other = "cd" * 16
    store.begin_array(other, (4, 4), np.dtype("f8"), (2, 2), "killed")
    store.write_chunk(other, (0, 0), np.ones((2, 2)), "killed")
    # As if killed before the commit.
    store.index.remove(Kind.ENTRY, own)
    assert store.partial() == {own, other}
    out = daskbio("cleanup", pipeline, env=env, check=True)
    assert "1 entries" in out.stdout
    assert store.partial() == {own}


def test_a_cache_url_is_opened_as_a_zarr_store(tmp_path):
    pipeline = write_pipeline(tmp_path, SLOW_ARRAY)
    url = (tmp_path / "remote").as_uri()
    env = {**os.environ, "CHUNK_LOG": str(tmp_path / "log")}
    out = daskbio("run", pipeline, "--cache", url, env=env, check=True)
    assert f"Cache: {url}" in out.stdout
    report = json.loads(daskbio("status", pipeline, "--json", "--cache", url, env=env).stdout)
    assert report["big"]["done"] == 1 and report["total"]["done"] == 1
    # Same layout as the filesystem store: readable without Zarr's URL machinery too.
    store = FileSystemStore(tmp_path / "remote")
    key = key_named(store, "big")
    np.testing.assert_array_equal(store.load(key), expected_big())


@TaskGenerator
def chunks_fail():
    return da.ones(12, chunks=4).map_blocks(_broken_chunk, dtype=float)


def _broken_chunk(block):
    raise ValueError("chunk broke")


@TaskGenerator
def unknown_chunks():
    x = da.arange(12, chunks=4)
    return x[x > 5]


@TaskGenerator
def labels_and_count():
    return kernels.label(da.from_array(np.eye(12, dtype=bool), chunks=4))


@pytest.mark.parametrize(
    ("task", "message"),
    [
        (chunks_fail, "chunk broke"),
        (unknown_chunks, "unknown chunk sizes (from boolean indexing?)"),
    ],
)
def test_errors_while_writing_a_dask_result_are_task_failures(tmp_path, task, message):
    t = task()
    with pytest.raises(TaskFailed) as info:
        compute(t, cache=tmp_path, scheduler="threads")
    assert task.__name__ in str(info.value) and message in str(info.value)
    store = FileSystemStore(tmp_path)
    assert store.failures() == {t.hash()} and not store.has(t.hash())


def test_dask_collections_inside_a_result_are_stored_computed(tmp_path):
    t = labels_and_count()
    labeled, n = compute(t, cache=tmp_path, scheduler="threads")
    assert type(labeled) is np.ndarray and int(n) == 12
    stored_labels, stored_n = FileSystemStore(tmp_path).load(t.hash())
    assert type(stored_labels) is np.ndarray and int(stored_n) == 12
    np.testing.assert_array_equal(stored_labels, np.eye(12, dtype=np.int32) * np.arange(1, 13))


_threads_seen: set[int] = set()


def _note_thread(block):
    _threads_seen.add(threading.get_ident())
    return block + 1


@TaskGenerator
def noted(n):
    return da.zeros(n, chunks=1).map_blocks(_note_thread)


def test_a_sync_run_writes_array_chunks_in_its_own_thread(tmp_path):
    _threads_seen.clear()
    result = compute(noted(8), cache=tmp_path, scheduler="sync")
    np.testing.assert_array_equal(result, np.ones(8))
    assert _threads_seen == {threading.get_ident()}


def test_two_runs_into_two_caches_on_one_scheduler_each_write_their_own_chunks(
    tmp_path, monkeypatch
):
    # The same Task (same hash, same chunk graph) computed at once by two runs into two
    # caches: the scheduler must not hand one run the other's chunk writes.
    distributed = pytest.importorskip("distributed")
    pipeline = write_pipeline(tmp_path, SLOW_ARRAY)
    monkeypatch.setenv("CHUNK_LOG", str(tmp_path / "chunks.log"))
    monkeypatch.setenv("CHUNK_SECONDS", "0.2")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=2, processes=True, dashboard_address=":0"
        ) as cluster,
    ):
        run = [*DASKBIO, "run", str(pipeline), "--quiet", "--scheduler", cluster.scheduler_address]
        runs = [
            subprocess.Popen(
                [*run, "--cache", str(tmp_path / f"c{i}")],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in (0, 1)
        ]
        outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert not any("damaged" in err for _, err in outputs), outputs
    for i in (0, 1):
        store = FileSystemStore(tmp_path / f"c{i}")
        assert np.array_equal(np.asarray(store.load(key_named(store, "big"))), expected_big())
        assert store.load(key_named(store, "total")) == int(expected_big().sum())
