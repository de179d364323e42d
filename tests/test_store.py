"""One conformance suite that every Store backend must pass (as zarr-python does)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from daskbio.cache import CorruptEntry, FileSystemStore, MemoryStore, Store, ZarrStore

KEY = "0123456789abcdef" * 2
OTHER = "fedcba9876543210" * 2


class StoreTests:
    """Subclass with a ``store`` fixture to prove a backend behaves like the others."""

    def test_a_missing_key_is_absent_and_loading_it_raises_keyerror(self, store: Store):
        assert not store.has(KEY)
        assert store.has_many([KEY, OTHER]) == set()
        with pytest.raises(KeyError):
            store.load(KEY)

    def test_saved_values_load_back_equal(self, store: Store):
        value = {"a": [1, 2.5, "x"], "b": (None, b"bytes")}
        size = store.save(KEY, value, {"name": "f"})
        assert size > 0
        assert store.has(KEY)
        assert store.load(KEY) == value

    @pytest.mark.parametrize(
        "arr",
        [
            np.arange(12, dtype=">u2").reshape(3, 4)[:, ::2],
            np.array([[True, False], [False, True]]),
            np.linspace(0, 1, 1000, dtype=np.float32).reshape(10, 10, 10),
            np.arange(6, dtype=np.complex128) * 1j,
            np.asfortranarray(np.arange(20, dtype=np.int64).reshape(4, 5)),
        ],
        ids=["big-endian-strided", "bool", "float32-3d", "complex", "fortran"],
    )
    def test_numeric_arrays_are_stored_as_zarr_and_load_back_equal(self, store: Store, arr):
        size = store.save(KEY, arr)
        meta = store.metadata(KEY)
        assert meta["format"] == "zarr"
        assert meta["array"]["shape"] == list(arr.shape)
        assert 0 < size == meta["size"] <= store._array_bytes(KEY)
        back = store.load(KEY)
        assert type(back) is np.ndarray
        np.testing.assert_array_equal(back, arr)
        # Zarr reads in the machine's byte order; the values are the same.
        assert back.dtype == arr.dtype.newbyteorder("=")

    @pytest.mark.parametrize(
        "arr", [np.array(["a", "bc"]), np.float64(2.5) * np.ones(()), np.array([{}], dtype=object)]
    )
    def test_other_arrays_are_kept_in_the_entry_itself(self, store: Store, arr):
        store.save(KEY, arr)
        assert store.metadata(KEY)["format"] in ("npy", "pickle")
        assert store._array_bytes(KEY) == 0
        np.testing.assert_array_equal(store.load(KEY), arr)

    def test_a_dask_array_is_written_chunk_by_chunk_on_a_regular_grid(self, store: Store):
        da = pytest.importorskip("dask.array")
        x = da.arange(100, chunks=((30, 20, 50),)).reshape(10, 10)
        store.save(KEY, x)
        meta = store.metadata(KEY)["array"]
        assert meta["chunks"] == list(x.chunksize)
        np.testing.assert_array_equal(store.load(KEY), np.arange(100).reshape(10, 10))

    def test_arrays_above_the_lazy_threshold_load_as_dask_arrays_chunked_as_stored(
        self, store: Store
    ):
        da = pytest.importorskip("dask.array")
        dask = pytest.importorskip("dask")
        x = da.ones((40, 30), chunks=(16, 10), dtype=np.uint16)
        store.save(KEY, x)
        with dask.config.set({"daskbio.lazy-above": "2 kB"}):
            lazy = store.load(KEY)
        assert isinstance(lazy, da.Array)
        assert lazy.chunks == ((16, 16, 8), (10, 10, 10))
        assert int(lazy.sum()) == 1200
        with dask.config.set({"daskbio.lazy-above": "1 MiB"}):
            assert type(store.load(KEY)) is np.ndarray

    def test_an_interrupted_dask_write_resumes_with_only_the_missing_chunks(self, store: Store):
        da = pytest.importorskip("dask.array")
        dask = pytest.importorskip("dask")
        zarr = pytest.importorskip("zarr")
        computed: list[tuple[int, int]] = []
        fail = [True]

        def block(x, block_info=None):
            index = block_info[0]["chunk-location"]
            computed.append(index)
            if fail[0] and len(computed) == 6:
                raise RuntimeError("worker lost")
            # Odd blocks are zero, the fill value: Zarr stores nothing for them.
            return x + (sum(index) % 2 == 0)

        x = da.zeros((16, 16), chunks=4, dtype=np.uint8).map_blocks(block, dtype=np.uint8)
        # One thread, so that no other chunk is still being written when the error comes.
        with dask.config.set(num_workers=1), pytest.raises(RuntimeError, match="worker lost"):
            store.save(KEY, x)
        assert not store.has(KEY)
        assert store.partial() == {KEY}
        done = zarr.open_array(store._array_store(KEY), path="done", mode="r")[...]
        finished = {tuple(map(int, i)) for i in np.argwhere(done)}
        assert finished == set(computed[:5])

        computed.clear()
        fail[0] = False
        store.save(KEY, x)
        assert sorted(computed) == sorted(set(np.ndindex(4, 4)) - finished)
        expected = np.kron((np.indices((4, 4)).sum(axis=0) % 2 == 0), np.ones((4, 4)))
        np.testing.assert_array_equal(store.load(KEY), expected.astype(np.uint8))
        assert store.partial() == set()

    @pytest.mark.parametrize(("code", "expected"), [("v1", [1] * 8 + [7] * 8), ("v2", [7] * 16)])
    def test_a_partial_write_is_resumed_only_for_the_same_code(self, store: Store, code, expected):
        da = pytest.importorskip("dask.array")
        dask = pytest.importorskip("dask")
        state = {"add": 1, "calls": 0}

        def chunk(block):
            state["calls"] += block.size == 4  # not Dask's calls on empty arrays for meta
            if state["calls"] == 3:
                raise RuntimeError("crash")
            return block + state["add"]

        # The same function object both times, so the same dask name: only the Task's code
        # fingerprint (as run_job stores it) tells the two writes apart.
        x = da.zeros(16, chunks=4, dtype=np.int64).map_blocks(chunk)
        with dask.config.set(num_workers=1), pytest.raises(RuntimeError, match="crash"):
            store.save(KEY, x, {"fingerprint": "v1"})
        state["add"] = 7
        with dask.config.set(num_workers=1):
            store.save(KEY, x, {"fingerprint": code})
        # Two chunks were written before the crash: kept for the same code only.
        np.testing.assert_array_equal(np.sort(store.load(KEY)), expected)

    def test_a_committed_dask_array_is_never_rewritten_in_place(self, store: Store):
        da = pytest.importorskip("dask.array")
        store.save(KEY, da.ones(8, chunks=4))
        written = store.metadata(KEY)["written"]
        store.save(KEY, da.zeros(8, chunks=2) + 5)
        assert store.metadata(KEY)["written"] == written
        np.testing.assert_array_equal(store.load(KEY), np.ones(8))

    def test_a_corrupted_array_chunk_is_detected_on_load(self, store: Store):
        zarr = pytest.importorskip("zarr")
        from zarr.core.buffer import default_buffer_prototype
        from zarr.core.sync import sync

        store.save(KEY, np.arange(1000))
        where = store._array_store(KEY)
        root = where if isinstance(where, zarr.storage.StorePath) else zarr.storage.StorePath(where)
        chunk = root / f"{store.metadata(KEY)['array']['path']}/c/0"
        data = bytearray(sync(chunk.get()).to_bytes())
        data[len(data) // 2] ^= 0xFF
        sync(chunk.set(default_buffer_prototype().buffer.from_bytes(bytes(data))))
        with pytest.raises(CorruptEntry, match="checksum"):
            store.load(KEY)

    def test_delete_and_size_cover_the_array_data(self, store: Store):
        store.save(KEY, np.arange(10_000))
        size = store.size(KEY)
        assert size > store._array_bytes(KEY) > 0
        assert store.delete(KEY) == size
        assert store._array_bytes(KEY) == 0
        assert store.partial() == set() and store.keys() == []

    def test_metadata_holds_what_was_given_plus_size_checksum_format(self, store: Store):
        store.save(KEY, "value", {"name": "f", "deps": ["x"]})
        meta = store.metadata(KEY)
        assert meta["name"] == "f"
        assert meta["deps"] == ["x"]
        assert meta["key"] == KEY
        assert meta["format"] == "pickle"
        assert meta["size"] > 0
        assert len(meta["checksum"]) == 16

    def test_has_many_finds_exactly_the_saved_keys_among_many(self, store: Store):
        keys = [f"{i:032x}" for i in range(100)]
        for k in keys[::3]:
            store.save(k, k)
        assert store.has_many(keys) == set(keys[::3])
        assert sorted(store.keys()) == sorted(keys[::3])

    def test_delete_removes_entry_and_reports_bytes(self, store: Store):
        store.save(KEY, list(range(100)))
        freed = store.delete(KEY)
        assert freed > 0
        assert not store.has(KEY)
        assert store.delete(KEY) == 0

    def test_failure_records_are_kept_apart_and_cleared_by_a_later_save(self, store: Store):
        store.record_failure(KEY, {"name": "f", "error": "ValueError()"})
        assert store.failures() == {KEY}
        assert store.failure(KEY)["name"] == "f"
        assert store.keys() == []
        store.save(KEY, 1)
        assert store.failures() == set()

    def test_marks_are_listed_by_prefix_and_are_not_keys(self, store: Store):
        store.mark("code-aa-1")
        store.mark("code-aa-2")
        store.mark("code-bb-1")
        assert store.marks("code-aa-") == {"code-aa-1", "code-aa-2"}
        assert store.keys() == []

    def test_a_corrupted_payload_is_detected_on_load(self, store: Store):
        store.save(KEY, "x" * 100)
        blob = bytearray(store._read(KEY))
        blob[-10] ^= 0xFF
        store._write(KEY, bytes(blob))
        with pytest.raises(CorruptEntry, match="checksum"):
            store.load(KEY)

    def test_concurrent_writers_of_one_key_leave_one_whole_entry(self, store: Store):
        values = [np.full(50_000, i, dtype=np.int64) for i in range(8)]

        def write(v):
            for _ in range(5):
                store.save(KEY, v)

        threads = [threading.Thread(target=write, args=(v,)) for v in values]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        back = store.load(KEY)
        assert any(np.array_equal(back, v) for v in values)


class TestMemoryStore(StoreTests):
    @pytest.fixture
    def store(self) -> Store:
        return MemoryStore()


class TestZarrStoreOnLocalStore(StoreTests):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Store:
        zarr = pytest.importorskip("zarr")
        return ZarrStore(zarr.storage.LocalStore(tmp_path / "cache"))

    def test_the_layout_is_the_filesystem_stores(self, tmp_path):
        ZarrStore(tmp_path).save(KEY, 42)
        ZarrStore(tmp_path).save(OTHER, np.ones(3))
        assert FileSystemStore(tmp_path).load(KEY) == 42
        np.testing.assert_array_equal(FileSystemStore(tmp_path).load(OTHER), np.ones(3))


class TestZarrStoreOnAnFsspecUrl(StoreTests):
    @pytest.fixture
    def store(self) -> Store:
        fsspec = pytest.importorskip("fsspec")
        url = f"memory://daskbio-test-{uuid.uuid4().hex}"
        yield ZarrStore(url)
        memory = fsspec.filesystem("memory")
        if memory.exists(url):
            memory.rm(url, recursive=True)


class TestFileSystemStore(StoreTests):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Store:
        return FileSystemStore(tmp_path / "cache")

    def test_entries_live_in_two_digit_shards_and_survive_a_new_store_object(self, tmp_path):
        FileSystemStore(tmp_path).save(KEY, 42)
        assert (tmp_path / KEY[:2] / KEY).is_file()
        assert FileSystemStore(tmp_path).load(KEY) == 42

    def test_sweep_removes_old_leftovers_of_interrupted_writes_only(self, tmp_path):
        store = FileSystemStore(tmp_path)
        store.save(KEY, 1)
        old = tmp_path / KEY[:2] / ".tmp-old"
        new = tmp_path / KEY[:2] / ".tmp-new"
        old.write_bytes(b"x" * 10)
        new.write_bytes(b"y" * 5)
        os.utime(old, (time.time() - 7200, time.time() - 7200))
        assert store.sweep(older_than=3600) == 10
        assert not old.exists() and new.exists() and store.load(KEY) == 1

    def test_a_process_killed_mid_write_leaves_no_entry(self, tmp_path):
        # The child writes a large entry over and over; SIGKILL lands at a random point.
        script = (
            "import numpy as np, sys\n"
            "from daskbio.cache import FileSystemStore\n"
            "s = FileSystemStore(sys.argv[1])\n"
            "a = np.random.default_rng(0).random(20_000_000)\n"
            "print('ready', flush=True)\n"
            "i = 0\n"
            "while True:\n"
            "    s.save(f'{i:032x}', a); i += 1\n"
        )
        child = subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True
        )
        assert child.stdout.readline().strip() == "ready"
        time.sleep(0.5)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        store = FileSystemStore(tmp_path)
        keys = store.keys()
        # Every entry a reader can see is whole; the one being written is not visible.
        for key in keys:
            assert store.load(key).shape == (20_000_000,)
        leftovers = [p for p in tmp_path.rglob(".tmp-*")]
        assert len(leftovers) <= 1
        assert not store.has(f"{len(keys):032x}")
