"""One conformance suite that every Store backend must pass (as zarr-python does)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from daskbio.cache import CorruptEntry, FileSystemStore, MemoryStore, Store

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

    def test_numpy_arrays_are_stored_as_npy_not_pickle(self, store: Store):
        arr = np.arange(12, dtype=">u2").reshape(3, 4)[:, ::2]
        store.save(KEY, arr)
        assert store.metadata(KEY)["format"] == "npy"
        back = store.load(KEY)
        np.testing.assert_array_equal(back, arr)
        assert back.dtype == arr.dtype

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
