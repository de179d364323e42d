"""Input files: File hashes content and remembers digests on disk; input_files and
changed_inputs notice changes to files named by plain path strings."""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import stat
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import xxhash
from conftest import daskbio, write_pipeline

import daskbio as db
from daskbio.graph import files, hashing
from daskbio.graph.files import File, changed_inputs, input_files


def count(f):
    with open(f, "rb") as fh:
        return len(fh.read())


@pytest.fixture(autouse=True)
def memo(tmp_path, monkeypatch) -> Path:
    """A memo folder of this test's own (subprocesses inherit it)."""
    folder = tmp_path / "memo"
    monkeypatch.setenv("DASKBIO_FILE_MEMO", str(folder))
    return folder


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def record_of(memo: Path, path: Path) -> Path:
    return memo / xxhash.xxh3_128_hexdigest(os.fsencode(str(path)))


def digest_in_new_process(path: Path) -> str:
    """What a later ``daskbio run`` (a new process, no in-process memo) takes as digest."""
    code = f"from daskbio import File; print(File({str(path)!r}).digest.hex())"
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def rewrite_with_new_ctime(path: Path, data: bytes) -> None:
    """Write ``data`` once the filesystem's clock has moved past the last write's time."""
    before = path.stat().st_ctime_ns
    for _ in range(300):
        time.sleep(0.01)
        path.write_bytes(data)
        if path.stat().st_ctime_ns != before:
            return
    pytest.skip("the filesystem's timestamps did not advance in 3 s")


def test_same_content_under_two_names_makes_one_task(tmp_path):
    a = write(tmp_path / "a.bin", b"same bytes")
    copied = tmp_path / "copy.bin"
    shutil.copy(a, copied)
    renamed = tmp_path / "sub" / "renamed.bin"
    renamed.parent.mkdir()
    other = write(tmp_path / "other.bin", b"Same bytes")
    t = db.Task(count, File(a))
    t_copy = db.Task(count, File(copied))
    a.rename(renamed)
    t_renamed = db.Task(count, File(renamed))
    assert t.hash() == t_copy.hash() == t_renamed.hash()
    assert db.Task(count, File(other)).hash() != t.hash()
    # Content, not the path string: a plain string of the same path is another Task.
    assert db.Task(count, str(renamed)).hash() != t_renamed.hash()


def test_hash_of_a_file_is_pinned(tmp_path):
    # Changing this changes every File Task's hash, which invalidates users' caches.
    f = File(write(tmp_path / "hello.txt", b"hello"))
    assert f.digest == xxhash.xxh3_128_digest(b"hello")
    assert hashing.digest(f).hex() == "6ad9249f7cc4964387471d8d10c04fe3"


def test_new_bytes_give_a_new_hash(tmp_path):
    a = write(tmp_path / "a.bin", b"first")
    first = db.Task(count, File(a)).hash()
    rewrite_with_new_ctime(a, b"second, longer")
    second = db.Task(count, File(a)).hash()
    fresh = db.Task(count, File(write(tmp_path / "b.bin", b"second, longer"))).hash()
    assert second != first
    assert second == fresh


def test_same_size_rewrite_with_mtime_set_back_is_noticed(tmp_path):
    a = write(tmp_path / "a.bin", b"aaaa")
    old = File(a).digest
    st = a.stat()
    rewrite_with_new_ctime(a, b"bbbb")
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (a.stat().st_size, a.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    # The change time cannot be set back, and it is part of the memo's key.
    assert File(a).digest == xxhash.xxh3_128_digest(b"bbbb") != old
    assert digest_in_new_process(a) == xxhash.xxh3_128_hexdigest(b"bbbb")


def test_large_file_is_streamed(tmp_path):
    data = np.random.default_rng(0).bytes(16 * 2**20 + 7)
    a = write(tmp_path / "big.bin", data)
    tracemalloc.start()
    try:
        f = File(a)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert f.digest == xxhash.xxh3_128_digest(data)
    assert peak < 4 * 2**20


def test_first_hash_writes_a_private_record(tmp_path, monkeypatch, memo):
    deep = memo / "a" / "b"
    monkeypatch.setenv("DASKBIO_FILE_MEMO", str(deep))
    a = write(tmp_path / "a.bin", b"content")
    previous = os.umask(0o277)
    try:
        f = File(a)
    finally:
        os.umask(previous)
    record = record_of(deep, a)
    st = a.stat()
    assert json.loads(record.read_text()) == {
        "path": str(a),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "ctime_ns": st.st_ctime_ns,
        "ino": st.st_ino,
        "dev": st.st_dev,
        "digest": f.digest.hex(),
    }
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    for folder in (memo, memo / "a", deep):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert os.listdir(deep) == [record.name]


def test_unchanged_file_is_not_read_again(tmp_path, memo):
    a = write(tmp_path / "a.bin", b"content")
    File(a)
    record = record_of(memo, a)
    data = json.loads(record.read_text())
    data["digest"] = "ab" * 16
    record.write_text(json.dumps(data))
    # A new process trusts the record while the file's stat is the same.
    assert digest_in_new_process(a) == "ab" * 16


@pytest.mark.parametrize("field", ["size", "mtime_ns", "ctime_ns", "ino", "dev", "path"])
def test_stale_record_is_ignored_and_rewritten(tmp_path, memo, field):
    a = write(tmp_path / "a.bin", b"content")
    File(a)
    record = record_of(memo, a)
    data = json.loads(record.read_text())
    true = data.copy()
    data["digest"] = "ab" * 16
    data[field] = data[field] + 1 if field != "path" else "/elsewhere"
    record.write_text(json.dumps(data))
    assert digest_in_new_process(a) == xxhash.xxh3_128_hexdigest(b"content")
    assert json.loads(record.read_text()) == true


def test_changed_file_rewrites_its_record(tmp_path, memo):
    a = write(tmp_path / "a.bin", b"old")
    File(a)
    rewrite_with_new_ctime(a, b"new bytes")
    assert File(a).digest == xxhash.xxh3_128_digest(b"new bytes")
    data = json.loads(record_of(memo, a).read_text())
    assert (data["digest"], data["size"]) == (xxhash.xxh3_128_hexdigest(b"new bytes"), 9)


def test_unwritable_memo_folder_still_works(tmp_path, monkeypatch):
    # Under a regular file, so that not even root can make the folder.
    blocker = write(tmp_path / "blocker", b"")
    monkeypatch.setenv("DASKBIO_FILE_MEMO", str(blocker / "memo"))
    a = write(tmp_path / "a.bin", b"content")
    assert File(a).digest == xxhash.xxh3_128_digest(b"content")
    assert digest_in_new_process(a) == xxhash.xxh3_128_hexdigest(b"content")
    assert blocker.read_bytes() == b""


def test_recent_digests_are_bounded():
    recent = files._RecentDigests(2)
    for i in range(3):
        recent.put(f"/f{i}", (i, 0, 0, 0, 0), bytes([i]) * 16)
    assert recent.get("/f0", (0, 0, 0, 0, 0)) is None
    assert recent.get("/f2", (2, 0, 0, 0, 0)) == bytes([2]) * 16
    # A digest is only valid for the stat key it was found with.
    assert recent.get("/f2", (2, 1, 0, 0, 0)) is None


def test_file_pickles_as_path_and_digest(tmp_path):
    a = write(tmp_path / "a.bin", bytes(2**20))
    f = File(a)
    shipped = pickle.dumps(f)
    a.unlink()
    back = pickle.loads(shipped)
    assert (back.path, back.digest) == (f.path, f.digest)
    assert hashing.digest(back) == hashing.digest(f)
    assert len(shipped) < 200 + len(f.path)


def test_file_is_a_path_the_function_can_open(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "a.bin", b"12345")
    f = File("a.bin")
    assert isinstance(f, os.PathLike)
    assert os.fspath(f) == str(f) == f.path == str(tmp_path / "a.bin")
    assert (f.name, repr(f)) == ("a.bin", f"File({str(tmp_path / 'a.bin')!r})")
    assert db.compute(db.Task(count, f), cache=tmp_path / "cache") == 5


def test_file_is_accepted_by_readers(tmp_path):
    import tifffile

    from daskbio import io

    image = np.arange(12, dtype=np.uint16).reshape(3, 4)
    tifffile.imwrite(tmp_path / "a.tif", image)
    np.save(tmp_path / "a.npy", image)
    assert np.array_equal(io.imread(File(tmp_path / "a.tif")).compute(), image)
    assert np.array_equal(np.load(File(tmp_path / "a.npy")), image)


def test_missing_file_or_folder_raises_naming_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"File\('no-such.bin'\): no such file") as e:
        File("no-such.bin")
    assert e.value.filename == str(tmp_path / "no-such.bin")
    with pytest.raises(IsADirectoryError, match="is a folder") as e:
        db.Task(count, File(tmp_path))
    assert e.value.filename == str(tmp_path)


def test_input_files_finds_paths_in_nested_arguments(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    names = ["rel.txt", "b.txt", "c.txt", "d.txt", "e.txt", "kw.txt", "hashed.txt"]
    p = {n: write(tmp_path / n, n.encode()) for n in names}
    args = (
        "rel.txt",
        [p["b.txt"], {"k": (str(p["c.txt"]), 3)}],
        {str(p["d.txt"])},
        frozenset({str(p["e.txt"])}),
        File(p["hashed.txt"]),
        "no-such.txt",
        str(tmp_path),
        "x" * 5000,
        "rel.txt\nsecond line",
        np.arange(3),
    )
    kwargs = {"path": str(p["kw.txt"]), "again": "./rel.txt"}
    recorded = input_files(args, kwargs)
    expected = {str(p[n]): [p[n].stat().st_size, p[n].stat().st_mtime_ns] for n in names[:-1]}
    assert recorded == expected
    assert changed_inputs(recorded) == []

    st = p["b.txt"].stat()
    rewrite_with_new_ctime(p["b.txt"], b"other")  # same size, new mtime
    assert p["b.txt"].stat().st_mtime_ns != st.st_mtime_ns
    p["c.txt"].unlink()
    p["d.txt"].write_bytes(b"longer content")
    os.utime(p["d.txt"], ns=(st.st_atime_ns, recorded[str(p["d.txt"])][1]))  # size only
    p["e.txt"].unlink()
    p["e.txt"].mkdir()
    assert sorted(changed_inputs(recorded)) == sorted(
        str(p[n]) for n in ["b.txt", "c.txt", "d.txt", "e.txt"]
    )


PIPELINE = """
from pathlib import Path

from daskbio import File, TaskGenerator


@TaskGenerator
def count(f):
    with open(f, "rb") as fh:
        return len(fh.read())


here = Path(__file__).parent
a = count(File(here / "a.bin"))
b = count(File(here / "b.bin"))
"""

READ = """
import sys

import daskbio

sys.path.insert(0, sys.argv[1])
import pipeline

print(*daskbio.compute([pipeline.a, pipeline.b], cache=sys.argv[2]))
"""


def status(file: Path) -> dict:
    return json.loads(daskbio("status", file, "--json", check=True).stdout)["count"]


def test_run_recomputes_the_task_of_an_overwritten_file(tmp_path):
    file = write_pipeline(tmp_path, PIPELINE)
    script = write_pipeline(tmp_path, READ, name="read.py")
    a = write(tmp_path / "a.bin", b"12345")
    write(tmp_path / "b.bin", b"123")
    daskbio("run", file, check=True)
    assert "All 2 Tasks were cached" in daskbio("run", file, check=True).stdout

    rewrite_with_new_ctime(a, b"1234567890")
    assert status(file)["waiting"] == 1
    second = daskbio("run", file, check=True).stdout
    assert re.search(r"^count\s+2\s+1\s+2\s+0\s+0\s+0$", second, re.MULTILINE), second
    assert status(file)["done"] == 2
    values = subprocess.run(
        [sys.executable, script, tmp_path, tmp_path / "pipeline.daskbio"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert values.split() == ["10", "3"]
    assert "All 2 Tasks were cached" in daskbio("run", file, check=True).stdout
