"""A cached result is always the result of its Task on its inputs, or it is computed again.

Each test here is one way a value could leave the cache wrong or foreign, seen from the
user's side: the real ``daskbio`` command on real pipeline files and a real cache folder.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import dask
import numpy as np
import pytest

from daskbio import TaskGenerator, compute
from daskbio.cache import CorruptEntry, FileSystemStore, Kind
from daskbio.cache.signing import Signer, digest
from tests.conftest import DASKBIO, daskbio, write_pipeline

ARRAYS = """
    import numpy as np
    from daskbio import TaskGenerator

    @TaskGenerator
    def image(seed):
        return np.random.default_rng(seed).integers(0, 100, (3000, 3000), dtype=np.uint16)

    @TaskGenerator
    def total(x):
        return int(np.asarray(x).sum())

    images = [image(s) for s in range(2)]
    totals = [total(x) for x in images]
"""


def expected_totals() -> list[int]:
    return [
        int(np.random.default_rng(s).integers(0, 100, (3000, 3000), dtype=np.uint16).sum())
        for s in range(2)
    ]


def keys_of(store: FileSystemStore, name: str) -> list[str]:
    keys = store.keys()
    return sorted(k for k, m in zip(keys, store.metadata_many(keys)) if m and m["name"] == name)


def array_files(store: FileSystemStore, key: str) -> list[Path]:
    return sorted(p for p in store.root.glob(f"{key[:2]}/{key}.zarr/numpy-*/c/**/*") if p.is_file())


def totals_of(store: FileSystemStore) -> list[int]:
    return sorted(store.load(k) for k in keys_of(store, "total"))


# Arrays ------------------------------------------------------------------------------


def test_a_deleted_chunk_is_found_by_verify_and_its_task_computed_again_not_read_as_zeros(
    tmp_path,
):
    pipeline = write_pipeline(tmp_path, ARRAYS)
    daskbio("run", pipeline, check=True)
    store = FileSystemStore(tmp_path / "pipeline.daskbio")
    first = keys_of(store, "image")[0]
    array_files(store, first)[0].unlink()

    checked = daskbio("verify", pipeline)
    assert checked.returncode == 1
    assert f"image ({first}) is damaged" in checked.stdout and "is missing" in checked.stdout
    assert "Checked 4 entries: 3 sound, 1 damaged" in checked.stdout
    report = json.loads(daskbio("status", pipeline, "--json", check=True).stdout)
    assert report["image"] == {
        "total": 2,
        "done": 1,
        "failed": 0,
        "running": 0,
        "waiting": 1,
        "stale": 0,
    }

    daskbio("invalidate", "total", "-f", pipeline, check=True)
    daskbio("run", pipeline, check=True)
    assert totals_of(store) == sorted(expected_totals())


def test_a_dependent_task_meeting_a_damaged_input_recomputes_it_in_the_same_run(tmp_path):
    pipeline = write_pipeline(tmp_path, ARRAYS)
    daskbio("run", pipeline, check=True)
    store = FileSystemStore(tmp_path / "pipeline.daskbio")
    for key in keys_of(store, "image"):
        chunk = array_files(store, key)[3]
        data = bytearray(chunk.read_bytes())
        data[len(data) // 2] ^= 0xFF
        chunk.write_bytes(bytes(data))
    daskbio("invalidate", "total", "-f", pipeline, check=True)
    out = daskbio("run", pipeline, check=True)
    assert out.stderr.count("does not match its checksum") == 2, out.stderr
    assert out.stderr.count("removed, so that it is computed again") == 2
    assert totals_of(store) == sorted(expected_totals())


@TaskGenerator
def ramp(n):
    return np.arange(n)


@TaskGenerator
def ones(n):
    return np.ones(n, dtype=np.int64)


@TaskGenerator
def noise(seed):
    return np.random.default_rng(seed).random((400, 700))


@TaskGenerator
def mean(x):
    return float(x.mean())


def test_an_edited_shape_in_zarr_json_is_refused_and_recomputed(tmp_path):
    cache = FileSystemStore(tmp_path / "cache")
    task = ramp(5000)
    compute(task, cache=cache)
    (meta,) = cache.root.glob("*/*.zarr/numpy-*/zarr.json")
    meta.write_text(meta.read_text().replace("5000", "5001", 1))
    with pytest.warns(UserWarning, match=r"ramp \(.*zarr.json does not match its checksum"):
        again = compute(task, cache=cache)
    np.testing.assert_array_equal(again, np.arange(5000))


def test_a_flipped_chunk_of_a_lazy_result_names_the_task_and_the_next_compute_recomputes(
    tmp_path,
):
    cache = FileSystemStore(tmp_path / "cache")
    task = ones(400_000)
    compute(task, cache=cache)
    with dask.config.set({"daskbio.lazy-above": "1 kB"}):
        lazy = compute(task, cache=cache)  # from the cache, lazily
        (chunk, *_) = sorted(p for p in cache.root.glob("*/*.zarr/numpy-*/c/*") if p.is_file())
        data = bytearray(chunk.read_bytes())
        data[-8] ^= 0xFF
        chunk.write_bytes(bytes(data))
        with pytest.raises(CorruptEntry) as error:
            lazy.sum().compute()
        message = str(error.value)
        assert f"ones ({task.hash()})" in message and str(chunk) in message
        assert not cache.has(task.hash())
        assert int(compute(task, cache=cache).sum()) == 400_000


def test_many_damaged_entries_are_all_removed_and_computed_again_in_one_compute(tmp_path):
    cache = FileSystemStore(tmp_path / "cache")
    means = [mean(noise(s)) for s in range(20)]
    expected = compute(means, cache=cache)
    files = sorted(p for p in cache.root.rglob("*") if p.is_file() and p.stat().st_size)
    assert len(files) >= 100
    for p in np.random.default_rng(0).choice(files, 48, replace=False):
        data = bytearray(p.read_bytes())
        data[len(data) // 2] ^= 0xFF
        p.write_bytes(bytes(data))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert compute(means, cache=cache) == expected
    assert any("is damaged" in str(w.message) for w in seen)
    assert compute([noise(s) for s in range(20)], cache=cache)[7].shape == (400, 700)


# Authentication ----------------------------------------------------------------------

PLANTED = """
    from daskbio import TaskGenerator

    @TaskGenerator
    def source(x):
        return x * 10

    @TaskGenerator
    def use(a):
        return a + 1

    @TaskGenerator
    def other(x):
        return x

    a = source(1)
    b = use(a)
    c = other(2)
"""


class Planted:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def plant(store: FileSystemStore, key: str, value: object, signer: Signer | None) -> None:
    """Replace ``key``'s entry by one whose pickle is ``value``: signed with ``signer``'s
    key, or in daskbio's earlier unsigned format (a valid checksum) when None."""
    import xxhash

    payload = pickle.dumps(value)
    record = store.index.get(Kind.ENTRY, key)
    # The metadata line of either format (planted already, or as daskbio wrote it).
    header = json.loads(record.split(b"\n")[1 if record.startswith(b"DASKBIO-ENTRY-1") else 2])
    if signer is None:
        header.update(checksum=xxhash.xxh3_64_hexdigest(payload))
        line = json.dumps(header).encode()
        store.index.put(Kind.ENTRY, key, b"DASKBIO-ENTRY-1\n" + line + b"\n" + payload)
        return
    header.update(key_id=signer.key_id, payload={"sha": digest(payload), "bytes": len(payload)})
    line = json.dumps(header).encode()
    tag = signer.sign(b"entry", key.encode(), line).encode()
    store.index.put(Kind.ENTRY, key, b"DASKBIO-ENTRY-2\n" + tag + b"\n" + line + b"\n" + payload)


@pytest.mark.parametrize("scheduler", ["threads", "processes"])
@pytest.mark.parametrize("signer", [Signer(b"k" * 32), None], ids=["other-key", "unsigned"])
def test_a_planted_pickle_is_never_run_by_run_or_shell(tmp_path, signer, scheduler):
    pipeline = write_pipeline(tmp_path, PLANTED)
    daskbio("run", pipeline, check=True)
    store = FileSystemStore(tmp_path / "pipeline.daskbio")
    (a,) = keys_of(store, "source")
    (b,) = keys_of(store, "use")
    (c,) = keys_of(store, "other")
    marker = tmp_path / "planted-code-ran"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}

    # As an input of a Task that runs, and as a final result the run prints.
    plant(store, a, Planted(str(marker)), signer)
    plant(store, b, Planted(str(marker)), signer)
    store.delete(c)
    out = daskbio("run", pipeline, "--scheduler", scheduler, env=env)
    assert out.returncode == 0, out.stderr
    assert not marker.exists()
    assert "not shown" in out.stdout and f"use ({b}) is damaged" in out.stdout

    # As an input loaded by the scheduler's workers (threads, or a pool's processes).
    plant(store, a, Planted(str(marker)), signer)
    store.delete(b)
    out = daskbio("run", pipeline, "--scheduler", scheduler, env=env)
    assert out.returncode == 0, out.stderr
    assert not marker.exists()
    assert f"source ({a}) is damaged" in out.stderr
    assert store.load(b) == 11
    plant(store, a, Planted(str(marker)), signer)

    # Still planted (the run did not need it): the shell refuses it too.
    shell = daskbio("shell", pipeline, input="print(value(a))\n", env=env)
    assert not marker.exists()
    assert f"source ({a}) is damaged" in shell.stderr + shell.stdout
    out = daskbio("run", pipeline, env=env, check=True)
    assert store.load(a) == 10 and store.load(b) == 11 and not marker.exists()


# Code changes ------------------------------------------------------------------------

CHAIN = """
    from helpers import scale
    from daskbio import TaskGenerator

    @TaskGenerator
    def step(x):
        return scale(x) + {offset}

    @TaskGenerator
    def after(y):
        return y * 2

    ys = [after(step(x)) for x in range(3)]
"""


def test_code_changes_are_reported_downstream_and_rerun_stale_recomputes_them(tmp_path):
    (tmp_path / "helpers.py").write_text("def scale(x):\n    return 10 * x\n")
    pipeline = write_pipeline(tmp_path, CHAIN.format(offset=0))
    daskbio("run", pipeline, check=True)

    # Edit a helper in the user's own module: its callers' results are stale, and so
    # are those computed from them.
    (tmp_path / "helpers.py").write_text("def scale(x):\n    return 100 * x\n")
    report = json.loads(daskbio("status", pipeline, "--json", check=True).stdout)
    assert report["step"]["stale"] == 3 and report["after"]["stale"] == 3
    shown = daskbio("status", pipeline, check=True).stdout
    assert "Stale: 3 computed by other code" in shown
    assert "Stale: 3 computed from a stale result" in shown

    out = daskbio("run", pipeline, check=True).stdout
    assert "All 6 Tasks were cached" in out
    assert "3 cached results of step were computed by other code" in out

    out = daskbio("run", pipeline, "--rerun-stale", check=True).stdout
    assert "Recomputing 6 stale results" in out
    store = FileSystemStore(tmp_path / "pipeline.daskbio")
    assert sorted(store.load(k) for k in keys_of(store, "after")) == [0, 200, 400]
    report = json.loads(daskbio("status", pipeline, "--json", check=True).stdout)
    assert report["step"]["stale"] == 0 and report["after"]["stale"] == 0


def test_compute_warns_once_per_function_when_a_cached_result_was_computed_by_other_code(
    tmp_path,
):
    cache = FileSystemStore(tmp_path / "cache")
    namespace: dict = {"__name__": "session"}
    source = "from daskbio import TaskGenerator\n@TaskGenerator\ndef f(x):\n    return x + {}\n"
    exec(compile(source.format(1), "session.py", "exec"), namespace)
    assert compute([namespace["f"](i) for i in range(3)], cache=cache) == [1, 2, 3]
    # Redefined in the session, as in a notebook: the old results are used, and said so.
    exec(compile(source.format(5), "session.py", "exec"), namespace)
    with pytest.warns(UserWarning, match="3 cached results of f were computed by other code"):
        assert compute([namespace["f"](i) for i in range(3)], cache=cache) == [1, 2, 3]


def test_two_pipelines_of_one_stem_sharing_a_cache_are_told_apart_by_their_code(tmp_path):
    cache = tmp_path / "shared"
    source = """
        from daskbio import TaskGenerator

        @TaskGenerator
        def measure(x):
            return x * {}

        result = measure(7)
    """
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write_pipeline(tmp_path / "a", source.format(2))
    second = write_pipeline(tmp_path / "b", source.format(3))
    daskbio("run", first, "--cache", cache, check=True)
    out = daskbio("run", second, "--cache", cache, check=True).stdout
    assert "1 cached result of measure was computed by other code" in out


# Input files ---------------------------------------------------------------------------


def test_an_overwritten_input_file_named_by_a_string_is_reported_stale(tmp_path):
    data = tmp_path / "counts.txt"
    data.write_text("1 2 3\n")
    pipeline = write_pipeline(
        tmp_path,
        f"""
        from daskbio import TaskGenerator

        @TaskGenerator
        def total(path):
            return sum(map(int, open(path).read().split()))

        result = total({str(data)!r})
        """,
    )
    daskbio("run", pipeline, check=True)
    data.write_text("1 2 3 4\n")
    os.utime(data, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    shown = daskbio("status", pipeline, check=True).stdout
    assert "Stale: 1 an input file changed since" in shown
    out = daskbio("run", pipeline, check=True).stdout
    assert "computed from input files changed since (e.g. " + str(data) in out
    out = daskbio("run", pipeline, "--rerun-stale", check=True).stdout
    assert "Recomputing 1 stale results" in out
    assert "total" in out and ": 10" in out


# Honest failure records --------------------------------------------------------------

TWELVE = """
    import os
    import time

    from daskbio import TaskGenerator

    @TaskGenerator
    def work(i):
        time.sleep(float(os.environ.get("WORK_SECONDS", "0.3")))
        if i == int(os.environ.get("FAIL", "-1")):
            raise ValueError(f"task {i} fails")
        return i

    results = [work(i) for i in range(12)]
"""


def test_when_one_task_raises_only_it_gets_a_failure_record_and_the_others_in_flight_commit(
    tmp_path,
):
    pipeline = write_pipeline(tmp_path, TWELVE)
    env = {**os.environ, "FAIL": "3"}
    out = daskbio("run", pipeline, "--workers", "4", env=env)
    assert out.returncode == 1
    assert "task 3 fails" in out.stderr
    store = FileSystemStore(tmp_path / "pipeline.daskbio")
    assert len(store.failures()) == 1
    assert store.failure(next(iter(store.failures())))["error"] == "ValueError('task 3 fails')"
    # Those running beside it finished and committed (4 threads: at least the 3 others).
    assert len(store.keys()) >= 3
    for info in map(store.failure, store.failures()):
        assert "interpreter shutdown" not in info["traceback"]


def test_tasks_cut_short_by_ctrl_c_get_no_failure_record(tmp_path):
    pipeline = write_pipeline(tmp_path, TWELVE)
    env = {**os.environ, "WORK_SECONDS": "1"}
    child = subprocess.Popen(
        [*DASKBIO, "run", str(pipeline), "--workers", "4"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(2.5)  # imports, then the first Tasks are running
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130, err
    store = FileSystemStore(tmp_path / "pipeline.daskbio")
    assert store.failures() == set()
    report = json.loads(daskbio("status", pipeline, "--json", check=True).stdout)
    assert report["work"]["failed"] == 0
    assert report["work"]["done"] == len(store.keys())


# Full disk and read-only cache -------------------------------------------------------


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@pytest.fixture
def small_disk(tmp_path):
    """A real 2 MiB filesystem (tmpfs), as root can mount it; skipped elsewhere."""
    folder = tmp_path / "disk"
    folder.mkdir()
    try:
        _mount("-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder))
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"cannot mount a small filesystem here: {e}")
    yield folder
    subprocess.run(["umount", str(folder)], check=False)


FILLING = """
    import numpy as np
    from daskbio import TaskGenerator

    @TaskGenerator
    def small(i):
        return i

    @TaskGenerator
    def noise(seed):
        return np.random.default_rng(seed).random(150_000)  # 1.2 MB, incompressible

    smalls = [small(i) for i in range(5)]
    big = [noise(s) for s in range(4)]
"""


def test_a_full_disk_ends_the_run_with_one_error_line_and_damages_nothing(tmp_path, small_disk):
    pipeline = write_pipeline(tmp_path, FILLING)
    cache = small_disk / "cache"
    out = daskbio("run", pipeline, "--cache", cache, "--workers", "1")
    assert out.returncode == 1
    errors = [line for line in out.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, out.stderr
    assert str(cache) in errors[0] and "No space left on device" in errors[0]
    assert "Traceback" not in out.stderr
    assert "small" in out.stdout and "total" in out.stdout  # the summary table
    store = FileSystemStore(cache)
    assert store.failures() == set()
    committed = sorted(store.keys())
    assert committed
    for key in committed:
        store.verify(key)  # everything committed is whole
    # Nothing is left that cleanup does not remove (a numpy write cannot resume).
    daskbio("cleanup", pipeline, "--cache", cache, check=True)
    assert store.partial() == set()
    assert not list(cache.rglob(".tmp-*"))


@pytest.fixture
def read_only(tmp_path):
    """A read-only view (a real bind mount) of a folder; skipped where mount is refused."""

    def mount(folder: Path) -> Path:
        view = tmp_path / "read-only"
        view.mkdir()
        try:
            _mount("--bind", str(folder), str(view))
            _mount("-o", "remount,bind,ro", str(view))
        except (OSError, subprocess.CalledProcessError) as e:
            pytest.skip(f"cannot make a read-only mount here: {e}")
        mounted.append(view)
        return view

    mounted: list[Path] = []
    yield mount
    for view in mounted:
        subprocess.run(["umount", str(view)], check=False)


def test_a_read_only_cache_serves_status_verify_shell_and_a_cached_run(tmp_path, read_only):
    pipeline = write_pipeline(tmp_path, PLANTED)
    daskbio("run", pipeline, "--cache", tmp_path / "cache", check=True)
    cache = read_only(tmp_path / "cache")
    assert (
        "All 3 Tasks were cached" in daskbio("run", pipeline, "--cache", cache, check=True).stdout
    )
    assert "done" in daskbio("status", pipeline, "--cache", cache, check=True).stdout
    assert "3 sound" in daskbio("verify", pipeline, "--cache", cache, check=True).stdout
    shell = daskbio("shell", pipeline, "--cache", cache, input="print(value(b))\n", check=True)
    assert "11" in shell.stdout

    # With a Task to run: one line naming the cache and the cause.
    write_pipeline(tmp_path, PLANTED + "\n    d = other(3)\n")
    out = daskbio("run", pipeline, "--cache", cache)
    assert out.returncode == 1
    (error,) = [line for line in out.stderr.splitlines() if line.startswith("Error:")]
    assert str(cache) in error and "Read-only file system" in error
    assert "Traceback" not in out.stderr


def test_the_python_api_refuses_a_dask_array_in_save():
    da = pytest.importorskip("dask.array")
    with pytest.raises(TypeError, match="chunk by chunk"):
        FileSystemStore(Path(sys.prefix) / "never-written").save("ab" * 16, da.ones(2))


def test_cleanup_removes_an_array_a_failed_write_left_beside_a_result(tmp_path):
    import zarr

    pipeline = write_pipeline(tmp_path, ARRAYS)
    daskbio("run", pipeline, check=True)
    store = FileSystemStore(tmp_path / "pipeline.daskbio")
    key = keys_of(store, "image")[0]
    # What a write killed part way leaves in the Task's folder after it was computed again.
    group = zarr.open_group(store.payloads.where(key), mode="a")
    group.create_array("numpy-0123456789abcdef", shape=(100,), dtype="u1")[...] = 7
    before = store.payloads.size(key)
    out = daskbio("cleanup", pipeline, check=True)
    assert "Freed" in out.stdout
    assert store.payloads.size(key) < before
    assert not list(store.root.glob(f"*/{key}.zarr/numpy-0123456789abcdef"))
    store.verify(key)
    assert totals_of(store) == sorted(expected_totals())


def test_verify_all_checks_every_entry_of_the_cache_not_only_the_pipelines(tmp_path):
    pipeline = write_pipeline(tmp_path, PLANTED)
    daskbio("run", pipeline, check=True)
    store = FileSystemStore(tmp_path / "pipeline.daskbio")
    store.save("ab" * 16, "not made by the pipeline", {"name": "elsewhere"})
    record = store.index.get(Kind.ENTRY, "ab" * 16)
    store.index.put(Kind.ENTRY, "ab" * 16, record[:-3] + b"xyz")
    assert "Checked 3 entries: 3 sound" in daskbio("verify", pipeline, check=True).stdout
    out = daskbio("verify", pipeline, "--all")
    assert out.returncode == 1
    assert "Checked 4 entries: 3 sound, 1 damaged" in out.stdout
    assert f"elsewhere ({'ab' * 16}) is damaged" in out.stdout


@TaskGenerator
def double_sum(x):
    return 2 * int(x.sum())


def test_damage_found_on_a_distributed_worker_is_reported_on_the_client(tmp_path):
    from distributed import Client, LocalCluster

    from daskbio.cache import DamagedEntryWarning

    cache = FileSystemStore(tmp_path / "cache")
    source = ones(100_000)
    compute(source, cache=cache)
    (chunk, *_) = sorted(p for p in cache.root.glob("*/*.zarr/numpy-*/c/*") if p.is_file())
    data = bytearray(chunk.read_bytes())
    data[-8] ^= 0xFF
    chunk.write_bytes(bytes(data))
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
        pytest.warns(DamagedEntryWarning, match=rf"ones \({source.hash()}\) is damaged.*removed"),
    ):
        assert compute(double_sum(source), scheduler=client, cache=cache) == 200_000
