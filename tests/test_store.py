"""One conformance suite that every Store backend must pass (as zarr-python does).

Everything goes through the Store's public methods; damage is done through the public
``index`` and ``payloads`` a Store is made of, as a person or a program sharing the cache
folder could do it.
"""

from __future__ import annotations

import os
import pickle
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from daskbio.cache import (
    CorruptEntry,
    FileIndex,
    FileSystemStore,
    ForeignEntry,
    Kind,
    MemoryIndex,
    MemoryStore,
    Payloads,
    Store,
    ZarrStore,
    leases,
)
from daskbio.cache.signing import Signer
from daskbio.graph import chunked

KEY = "0123456789abcdef" * 2
OTHER = "fedcba9876543210" * 2


def _sync(coroutine):
    from zarr.core.sync import sync

    return sync(coroutine)


def payload_files(store: Store, key: str) -> list[str]:
    """The names of the files in ``key``'s payload folder, relative to the Zarr store."""

    async def listing():
        return sorted(
            [k async for k in store.payloads.store.list_prefix(store.payloads.prefix(key))]
        )

    return _sync(listing())


def read_payload(store: Store, name: str) -> bytes:
    from zarr.core.buffer import default_buffer_prototype

    return _sync(store.payloads.store.get(name, default_buffer_prototype())).to_bytes()


def write_payload(store: Store, name: str, data: bytes) -> None:
    from zarr.core.buffer import default_buffer_prototype

    _sync(store.payloads.store.set(name, default_buffer_prototype().buffer.from_bytes(data)))


def chunk_files(store: Store, key: str) -> list[str]:
    return [n for n in payload_files(store, key) if "/c/" in n and "/done/" not in n]


def flip(data: bytes, at: int | None = None) -> bytes:
    data = bytearray(data)
    data[len(data) // 2 if at is None else at] ^= 0xFF
    return bytes(data)


def resign(store: Store, key: str, signer: Signer, edit=lambda line: line, payload=None) -> None:
    """Rewrite ``key``'s entry with its metadata edited and signed by ``signer``."""
    import json

    record = store.index.get(Kind.ENTRY, key)
    magic, _tag, line, old = record.split(b"\n", 3)
    header = json.loads(line)
    header["key_id"] = signer.key_id
    if payload is not None:
        from daskbio.cache.signing import digest

        header["payload"] = {"sha": digest(payload), "bytes": len(payload)}
        old = payload
    line = edit(json.dumps(header).encode())
    tag = signer.sign(b"entry", key.encode(), line).encode()
    store.index.put(Kind.ENTRY, key, b"\n".join((magic, tag, line, old)))


class Planted:
    """Unpickling this runs code: it creates the file it names."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def race_for_the_lock(store: Store, key: str, threads: int = 8) -> list:
    """Have ``threads`` threads try to lock ``key`` at the same instant; the leases won."""
    winners = []
    start = threading.Barrier(threads)

    def take(i):
        start.wait()
        if lease := store.lock(key, f"run{i}"):
            winners.append(lease)

    racing = [threading.Thread(target=take, args=(i,)) for i in range(threads)]
    for t in racing:
        t.start()
    for t in racing:
        t.join()
    return winners


class StoreTests:
    """Subclass with a ``store`` fixture to prove a backend behaves like the others."""

    picklable = True

    # Entries ---------------------------------------------------------------------

    def test_a_missing_key_is_absent_and_loading_it_raises_keyerror(self, store: Store):
        assert not store.has(KEY)
        assert store.has_many([KEY, OTHER]) == set()
        with pytest.raises(KeyError):
            store.load(KEY)

    def test_saved_values_load_back_equal(self, store: Store):
        value = {"a": [1, 2.5, "x"], "b": (None, b"bytes"), "big": list(range(1000))}
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
        assert 0 < size == meta["size"] <= store.payloads.size(KEY)
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
        np.testing.assert_array_equal(store.load(KEY), arr)

    def test_saving_a_dask_array_is_left_to_the_graph_layer(self, store: Store):
        da = pytest.importorskip("dask.array")
        with pytest.raises(TypeError, match="chunk by chunk"):
            store.save(KEY, da.ones(4, chunks=2))
        assert not store.has(KEY)

    def test_metadata_holds_what_was_given_plus_size_digest_format_and_key(self, store: Store):
        store.save(KEY, "value", {"name": "f", "deps": ["x"]})
        meta = store.metadata(KEY)
        assert meta["name"] == "f"
        assert meta["deps"] == ["x"]
        assert meta["key"] == KEY
        assert meta["format"] == "pickle"
        assert meta["size"] > 0
        assert len(meta["payload"]["sha"]) == 32
        assert meta["key_id"] == store.signer.key_id

    def test_has_many_finds_exactly_the_saved_keys_among_many(self, store: Store):
        keys = [f"{i:032x}" for i in range(100)]
        for k in keys[::3]:
            store.save(k, k)
        assert store.has_many(keys) == set(keys[::3])
        assert sorted(store.keys()) == sorted(keys[::3])
        assert store.lookup(keys) == (set(keys[::3]), set())

    def test_delete_and_size_cover_entry_payload_and_failure(self, store: Store):
        store.save(KEY, np.arange(10_000))
        store.record_failure(OTHER, {"name": "g"})
        size = store.size(KEY)
        assert size > store.payloads.size(KEY) > 0
        assert store.delete(KEY) == size
        assert store.payloads.size(KEY) == 0
        assert store.partial() == set() and store.keys() == []
        assert store.delete(KEY) == 0

    # Arrays written chunk by chunk -------------------------------------------------

    def test_a_dask_array_is_written_chunk_by_chunk_on_a_regular_grid(self, store: Store):
        da = pytest.importorskip("dask.array")
        x = da.arange(100, chunks=((30, 20, 50),)).reshape(10, 10)
        chunked.write(store, KEY, x, "v1", {"name": "f"}, True)
        meta = store.metadata(KEY)["array"]
        assert meta["chunks"] == list(x.chunksize)
        np.testing.assert_array_equal(store.load(KEY), np.arange(100).reshape(10, 10))

    def test_arrays_above_the_lazy_threshold_load_as_dask_arrays_chunked_as_stored(
        self, store: Store
    ):
        da = pytest.importorskip("dask.array")
        dask = pytest.importorskip("dask")
        x = da.ones((40, 30), chunks=(16, 10), dtype=np.uint16)
        chunked.write(store, KEY, x, "v1", {}, True)
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
        computed: list[tuple[int, int]] = []
        fail = [True]

        def block(x, block_info=None):
            index = block_info[0]["chunk-location"]
            computed.append(index)
            if fail[0] and len(computed) == 6:
                raise RuntimeError("worker lost")
            # Odd blocks are zero, the fill value: they are written all the same.
            return x + (sum(index) % 2 == 0)

        x = da.zeros((16, 16), chunks=4, dtype=np.uint8).map_blocks(block, dtype=np.uint8)
        # One thread, so that no other chunk is still being written when the error comes.
        with dask.config.set(num_workers=1), pytest.raises(RuntimeError, match="worker lost"):
            chunked.write(store, KEY, x, "v1", {}, True)
        assert not store.has(KEY)
        assert store.partial() == {KEY}
        finished = set(computed[:5])

        computed.clear()
        fail[0] = False
        chunked.write(store, KEY, x, "v1", {}, True)
        assert sorted(computed) == sorted(set(np.ndindex(4, 4)) - finished)
        expected = np.kron((np.indices((4, 4)).sum(axis=0) % 2 == 0), np.ones((4, 4)))
        np.testing.assert_array_equal(store.load(KEY), expected.astype(np.uint8))
        assert store.partial() == set()
        assert len(chunk_files(store, KEY)) == 16

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
        # fingerprint tells the two writes apart.
        x = da.zeros(16, chunks=4, dtype=np.int64).map_blocks(chunk)
        with dask.config.set(num_workers=1), pytest.raises(RuntimeError, match="crash"):
            chunked.write(store, KEY, x, "v1", {}, True)
        state["add"] = 7
        with dask.config.set(num_workers=1):
            chunked.write(store, KEY, x, code, {}, True)
        # Two chunks were written before the crash: kept for the same code only.
        np.testing.assert_array_equal(np.sort(store.load(KEY)), expected)

    def test_a_resumed_write_rewrites_chunks_altered_since_they_were_written(self, store: Store):
        da = pytest.importorskip("dask.array")
        dask = pytest.importorskip("dask")
        calls = [0]

        def chunk(block):
            calls[0] += block.size == 4
            if calls[0] == 3:
                raise RuntimeError("crash")
            return block + 1

        x = da.zeros(16, chunks=4, dtype=np.int64).map_blocks(chunk)
        with dask.config.set(num_workers=1), pytest.raises(RuntimeError, match="crash"):
            chunked.write(store, KEY, x, "v1", {}, True)
        # Someone plants other bytes in a chunk that is marked done.
        planted = chunk_files(store, KEY)[0]
        other = np.full(4, 99, dtype=np.int64)
        store.save(OTHER, other)
        write_payload(store, planted, read_payload(store, chunk_files(store, OTHER)[0]))
        with dask.config.set(num_workers=1):
            chunked.write(store, KEY, x, "v1", {}, True)
        np.testing.assert_array_equal(store.load(KEY), np.ones(16))

    def test_a_committed_dask_array_is_never_rewritten_in_place(self, store: Store):
        da = pytest.importorskip("dask.array")
        chunked.write(store, KEY, da.ones(8, chunks=4), "v1", {}, True)
        written = store.metadata(KEY)["written"]
        chunked.write(store, KEY, da.zeros(8, chunks=2) + 5, "v1", {}, True)
        assert store.metadata(KEY)["written"] == written
        np.testing.assert_array_equal(store.load(KEY), np.ones(8))

    # Arrays are whole or refused ---------------------------------------------------

    def test_every_chunk_is_written_even_those_equal_to_the_fill_value(self, store: Store):
        store.save(KEY, np.zeros((3000, 3000), dtype=np.uint8))
        grid = [-(-n // c) for n, c in zip((3000, 3000), store.metadata(KEY)["array"]["chunks"])]
        assert len(chunk_files(store, KEY)) == grid[0] * grid[1] > 1

    @pytest.mark.parametrize("lazy", [False, True], ids=["numpy", "lazy"])
    def test_a_deleted_chunk_is_refused_naming_the_task_and_file_and_removed(
        self, store: Store, lazy
    ):
        dask = pytest.importorskip("dask")
        value = np.zeros((3000, 3000), dtype=np.uint8)
        store.save(KEY, value, {"name": "segment"})
        gone = chunk_files(store, KEY)[-1]
        _sync(store.payloads.store.delete(gone))
        with (
            dask.config.set({"daskbio.lazy-above": "1 kB" if lazy else "1 GiB"}),
            pytest.raises(CorruptEntry, match="missing") as error,
        ):
            np.asarray(store.load(KEY))
        assert f"segment ({KEY})" in str(error.value)
        # That chunk, or (lazily, on threads) one read while the damaged entry was removed.
        array = gone.split("/")[2]
        assert re.search(rf"{array}/c/\d+/\d+ is missing \[.*{array}/c/\d+/\d+\]", str(error.value))
        assert not store.has(KEY)

    def test_an_edited_shape_in_the_array_metadata_is_refused(self, store: Store):
        store.save(KEY, np.arange(1000), {"name": "f"})
        meta = next(
            n for n in payload_files(store, KEY) if n.endswith("/zarr.json") and "numpy" in n
        )
        write_payload(store, meta, read_payload(store, meta).replace(b"1000", b"1001", 1))
        with pytest.raises(CorruptEntry, match=r"zarr.json does not match"):
            store.load(KEY)
        assert not store.has(KEY)

    def test_a_flipped_chunk_of_a_lazy_array_raises_naming_the_task_when_read(self, store: Store):
        dask = pytest.importorskip("dask")
        store.save(KEY, np.arange(100_000), {"name": "smooth"})
        with dask.config.set({"daskbio.lazy-above": "1 kB"}):
            lazy = store.load(KEY)
        chunk = chunk_files(store, KEY)[0]
        write_payload(store, chunk, flip(read_payload(store, chunk)))
        # Only the flipped block: reads of other blocks racing the removal that the refusal
        # makes would find their chunks missing, a true but different refusal.
        block = lazy.blocks[int(chunk.rsplit("/", 1)[1])]
        with pytest.raises(CorruptEntry, match=rf"smooth \({KEY}\).*does not match its checksum"):
            block.sum().compute(scheduler="threads")
        assert not store.has(KEY)

    @pytest.mark.parametrize("read", ["verify", "load"])
    def test_an_extra_file_in_an_array_is_refused_by_verify_and_a_numpy_load(self, store, read):
        store.save(KEY, np.arange(1000), {"name": "f"})
        array = store.metadata(KEY)["array"]["path"]
        write_payload(store, f"{store.payloads.prefix(KEY)}/{array}/c/9", b"extra")
        with pytest.raises(CorruptEntry, match="not part of the array"):
            getattr(store, read)(KEY)
        assert not store.has(KEY)

    def test_verify_passes_a_sound_entry_of_each_kind(self, store: Store):
        da = pytest.importorskip("dask.array")
        store.save(KEY, {"x": 1})
        chunked.write(store, OTHER, da.arange(10, chunks=3), "v1", {}, True)
        store.verify(KEY)
        store.verify(OTHER)
        assert store.has_many([KEY, OTHER]) == {KEY, OTHER}

    # Authentication ------------------------------------------------------------------

    def test_a_payload_signed_with_another_key_is_never_unpickled(self, store: Store, tmp_path):
        marker = tmp_path / "planted-code-ran"
        store.save(KEY, "honest", {"name": "f"})
        resign(store, KEY, Signer(b"x" * 32), payload=pickle.dumps(Planted(str(marker))))
        with pytest.raises(CorruptEntry, match="signed with another key"):
            store.load(KEY)
        assert not marker.exists()
        assert not store.has(KEY)

    def test_metadata_edited_without_the_key_is_refused(self, store: Store):
        store.save(KEY, "value", {"name": "f"})
        edited = store.index.get(Kind.ENTRY, KEY).replace(b'"name":"f"', b'"name":"g"', 1)
        store.index.put(Kind.ENTRY, KEY, edited)
        assert store.metadata_many([KEY]) == [None]
        with pytest.raises(CorruptEntry, match="signature does not match"):
            store.load(KEY)

    def test_a_flipped_payload_is_refused(self, store: Store):
        store.save(KEY, "x" * 100)
        record = store.index.get(Kind.ENTRY, KEY)
        store.index.put(Kind.ENTRY, KEY, flip(record, len(record) - 10))
        # The end of the record is the payload, or the metadata when the payload is a blob.
        with pytest.raises(CorruptEntry, match=r"checksum|unreadable metadata"):
            store.load(KEY)
        assert not store.has(KEY)

    def test_an_entry_of_the_unsigned_format_is_refused(self, store: Store):
        store.index.put(
            Kind.ENTRY, KEY, b'DASKBIO-ENTRY-1\n{"format":"pickle"}\n' + pickle.dumps(1)
        )
        with pytest.raises(CorruptEntry, match="older daskbio, without a signature"):
            store.load(KEY)

    def test_a_signature_line_of_any_bytes_is_refused_not_a_crash(self, store: Store):
        store.save(KEY, "value", {"name": "f"})
        record = bytearray(store.index.get(Kind.ENTRY, KEY))
        record[len(b"DASKBIO-ENTRY-2\n") + 3] = 0xE9  # not even ASCII
        store.index.put(Kind.ENTRY, KEY, bytes(record))
        with pytest.raises(CorruptEntry, match="signature does not match"):
            store.load(KEY)
        assert not store.has(KEY)

    def test_reading_metadata_never_removes_an_entry(self, store: Store):
        store.save(KEY, "value", {"name": "f"})
        resign(store, KEY, Signer(b"x" * 32))
        assert store.metadata_many([KEY]) == [None]
        with pytest.raises(ForeignEntry):
            store.metadata(KEY)
        assert store.has(KEY)

    def test_an_entry_signed_with_another_key_is_reported_by_verify_and_kept(self, store: Store):
        store.save(KEY, "theirs", {"name": "f"})
        resign(store, KEY, Signer(b"x" * 32))
        with pytest.raises(ForeignEntry, match="signed with another key"):
            store.verify(KEY)
        assert store.has(KEY)
        # A run about to compute it again replaces it.
        with pytest.raises(ForeignEntry):
            store.load(KEY)
        assert not store.has(KEY)

    def test_a_commit_refuses_an_array_whose_metadata_changed_during_the_write(self, store):
        da = pytest.importorskip("dask.array")
        x = da.arange(16, chunks=4)
        digests = store.begin_array(KEY, x.shape, x.dtype, x.chunksize, "id")
        for i in range(4):
            digests[(i,)] = store.write_chunk(KEY, (i,), np.arange(4 * i, 4 * i + 4), "id")
        meta = f"{store.payloads.prefix(KEY)}/data/zarr.json"
        write_payload(store, meta, read_payload(store, meta).replace(b"16", b"12", 1))
        with pytest.raises(RuntimeError, match="not those this write wrote"):
            store.commit_array(KEY, digests, "id")
        assert not store.has(KEY)

    # Other records -------------------------------------------------------------------

    def test_failure_records_are_kept_apart_and_cleared_by_a_later_save(self, store: Store):
        store.record_failure(KEY, {"name": "f", "error": "ValueError()"})
        assert store.failures() == {KEY}
        assert store.failure(KEY)["name"] == "f"
        assert store.keys() == []
        assert store.lookup([KEY, OTHER]) == (set(), {KEY})
        store.save(KEY, 1)
        assert store.failures() == set()

    def test_code_versions_are_listed_per_function_and_are_not_keys(self, store: Store):
        store.add_code_version("pipeline.f", "aaaa")
        store.add_code_version("pipeline.f", "bbbb")
        store.add_code_version("pipeline.g", "aaaa")
        assert store.code_versions("pipeline.f") == {"aaaa", "bbbb"}
        assert store.code_versions("pipeline.h") == set()
        assert store.keys() == []

    def test_a_lock_is_taken_by_exactly_one_of_many_threads(self, store: Store):
        winners = race_for_the_lock(store, KEY)
        assert len(winners) == 1
        holder = store.holders()[KEY]
        assert holder == winners[0].holder
        assert (holder.host, holder.pid) == (socket.gethostname(), os.getpid())
        assert holder.expires - holder.start == pytest.approx(leases.DEFAULT_LENGTH)
        assert store.lock(KEY, "late") is None
        store.unlock(winners[0])
        assert store.holders() == {}
        assert store.lock(KEY, "next") is not None
        assert store.keys() == []

    def test_an_expired_lease_is_taken_over_by_exactly_one_of_many_threads(self, store: Store):
        dead = store.lock(KEY, "dead", length=0.2)
        leases.renewer().discard(dead)  # its holder dies: nobody renews it
        assert store.lock(KEY, "early") is None
        time.sleep(0.3)
        assert store.holders()[KEY].expired
        winners = race_for_the_lock(store, KEY)
        assert len(winners) == 1
        assert store.holders()[KEY].run == winners[0].holder.run
        store.unlock(dead)  # the old holder wakes up: it must not free the new lease
        assert store.holders()[KEY].run == winners[0].holder.run

    def test_a_lease_is_renewed_while_held_and_expired_ones_are_removed(self, store: Store):
        lease = store.lock(KEY, "long", length=0.6)
        first = store.holders()[KEY].expires
        time.sleep(1.0)  # longer than the lease: only renewal keeps it
        held = store.holders()[KEY]
        assert not held.expired and held.expires > first
        assert store.lock(KEY, "other") is None
        assert store.remove_dead_locks() == {}
        store.unlock(lease)
        dead = store.lock("cd" * 16, "dead", length=0.1)
        leases.renewer().discard(dead)
        time.sleep(0.2)
        assert list(store.remove_dead_locks()) == ["cd" * 16]
        assert store.holders() == {}

    # Many users of one store -----------------------------------------------------------

    def test_a_pickled_store_sees_the_same_entries(self, store: Store):
        store.save(KEY, {"a": 1})
        if not self.picklable:
            with pytest.raises(TypeError, match="one process"):
                pickle.dumps(store)
            return
        copy = pickle.loads(pickle.dumps(store))
        assert copy.load(KEY) == {"a": 1}
        copy.save(OTHER, 2)
        assert store.load(OTHER) == 2

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

    def test_a_process_killed_mid_commit_leaves_no_entry_that_is_served(
        self, store: Store, tmp_path
    ):
        if not self.picklable:
            pytest.skip("a memory store cannot be shared with another process")
        if str(store.location).startswith("<FsspecStore(AsyncFileSystemWrapper, /daskbio-test"):
            pytest.skip("fsspec's memory:// filesystem is private to its process")
        (tmp_path / "store.pickle").write_bytes(pickle.dumps(store))
        # The child writes large entries over and over; SIGKILL lands at a random point.
        script = (
            "import numpy as np, pickle, sys\n"
            "s = pickle.load(open(sys.argv[1], 'rb'))\n"
            "a = np.random.default_rng(0).random(4_000_000)\n"
            "b = list(range(300_000))\n"
            "print('ready', flush=True)\n"
            "i = 0\n"
            "while True:\n"
            "    s.save(f'{i:032x}', a if i % 2 else b); i += 1\n"
        )
        child = subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path / "store.pickle")],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout.readline().strip() == "ready"
        time.sleep(1.5)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        keys = store.keys()
        assert keys, "the child committed nothing before it was killed"
        # Every entry a reader can see is whole; the one being written is not visible.
        for key in keys:
            value = store.load(key)
            assert len(value) == (4_000_000 if int(key, 16) % 2 else 300_000)
        assert not store.has(f"{len(keys):032x}")


class TestMemoryStore(StoreTests):
    picklable = False

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


class TestAnIndexAndPayloadsInTwoPlaces(StoreTests):
    """The composition the Redis index of the next issue uses: records in one place,
    payloads in another, small pickles inside their entries and large ones beside."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> Store:
        zarr = pytest.importorskip("zarr")
        payloads = Payloads(zarr.storage.LocalStore(tmp_path / "payloads"))
        return Store(FileIndex(tmp_path / "index"), payloads, inline_limit=256)

    def test_large_pickles_live_with_the_payloads_and_small_ones_in_the_entry(self, store):
        store.save(KEY, list(range(1000)))
        store.save(OTHER, [1, 2])
        assert "blob" in store.metadata(KEY)["payload"]
        assert "blob" not in store.metadata(OTHER)["payload"]
        assert len(store.index.get(Kind.ENTRY, KEY)) < 1024
        assert store.load(KEY) == list(range(1000))

    def test_a_missing_blob_is_refused(self, store):
        store.save(KEY, list(range(1000)), {"name": "f"})
        blob = next(n for n in payload_files(store, KEY) if "blob-" in n)
        _sync(store.payloads.store.delete(blob))
        with pytest.raises(CorruptEntry, match="is missing"):
            store.load(KEY)


class TestMemoryIndexWithPayloadsOnDisk(StoreTests):
    picklable = False

    @pytest.fixture
    def store(self, tmp_path: Path) -> Store:
        zarr = pytest.importorskip("zarr")
        payloads = Payloads(zarr.storage.LocalStore(tmp_path / "payloads"))
        return Store(MemoryIndex(), payloads, inline_limit=64)


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

    @pytest.mark.parametrize(
        ("access", "folder_mode", "file_mode"), [("owner", 0o700, 0o600), ("group", 0o2770, 0o660)]
    )
    def test_new_folders_and_files_get_the_access_modes_whatever_the_umask(
        self, tmp_path, access, folder_mode, file_mode
    ):
        # In a child: the umask is the whole process's.
        script = (
            "import os, sys, numpy as np\n"
            "os.umask(0o002)\n"
            "from daskbio.cache import FileSystemStore\n"
            "s = FileSystemStore(sys.argv[1])\n"
            f"s.save('{KEY}', np.arange(100_000)); s.save('{OTHER}', 'x')\n"
            f"s.record_failure('{'ab' * 16}', {{}}); s.add_code_version('m.f', 'c')\n"
        )
        env = {**os.environ, "DASK_DASKBIO__CACHE_ACCESS": access}
        subprocess.run([sys.executable, "-c", script, str(tmp_path / "c")], check=True, env=env)
        folders = [tmp_path / "c", *(p for p in (tmp_path / "c").rglob("*") if p.is_dir())]
        files = [p for p in (tmp_path / "c").rglob("*") if p.is_file()]
        assert len(files) >= 8
        assert {oct(p.stat().st_mode & 0o7777) for p in folders} == {oct(folder_mode)}
        assert {oct(p.stat().st_mode & 0o7777) for p in files} == {oct(file_mode)}
