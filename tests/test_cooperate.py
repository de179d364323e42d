"""Many ``daskbio run`` processes on one cache: each Task computed once, held Tasks waited
for, a dead holder's Tasks taken over after its lease, and ``--keep-going``.

Every Task appends a line to a log (O_APPEND: one write per line, whole), so a test
counts executions exactly, across processes.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest
import xxhash

import daskbio.graph.job
from daskbio import compute
from daskbio.cache import FileSystemStore, Kind, leases, open_store
from daskbio.graph.job import TasksFailed
from daskbio.invalidation import cleanup
from daskbio.pipeline import load

# What the test pipelines' Tasks call to log an execution: one write(2) with O_APPEND, so
# that the lines of concurrent processes never mix.
NOTE = """
import os

LOG = os.environ["COOP_LOG"]


def note(what):
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(fd, f"{what} {os.getpid()}\\n".encode())
    os.close(fd)
"""

PIPELINE = (
    NOTE
    + """
import os
import time

from daskbio import TaskGenerator

FAIL = {int(x) for x in os.environ.get("COOP_FAIL", "").split(",") if x}


@TaskGenerator
def work(i):
    note(f"work-{i}")
    time.sleep(float(os.environ.get("COOP_SLEEP", "0.5")))
    if i in FAIL:
        raise ValueError(f"broken {i}")
    return i * i


@TaskGenerator
def total(parts):
    note("total")
    return sum(parts)


parts = [work(i) for i in range(int(os.environ.get("COOP_N", "40")))]
if os.environ.get("COOP_TOTAL", "1") == "1":
    result = total(parts)
"""
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pipeline.py").write_text(PIPELINE)
    return tmp_path


def _env(project: Path, **settings: str) -> dict[str, str]:
    env = {**os.environ, "COOP_LOG": str(project / "log")}
    env.update({f"COOP_{k.upper()}": v for k, v in settings.items()})
    return env


def _start(project: Path, *options: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "daskbio", "run", "pipeline.py", "--workers", "2", *options],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _executions(project: Path) -> collections.Counter:
    lines = (project / "log").read_text().split()
    return collections.Counter(lines[::2])


def _store(project: Path) -> FileSystemStore:
    return FileSystemStore(project / "pipeline.daskbio")


def test_four_runs_started_together_compute_each_task_once(project: Path):
    env = _env(project)
    runs = [_start(project, env=env) for _ in range(4)]
    outputs = [r.communicate(timeout=300) for r in runs]
    for r, (out, err) in zip(runs, outputs):
        assert r.returncode == 0, out + err
    executions = _executions(project)
    assert executions == collections.Counter({**{f"work-{i}": 1 for i in range(40)}, "total": 1})
    assert len(set((project / "log").read_text().split()[1::2])) > 1  # the work was shared
    store = _store(project)
    total = [k for k in list(store.keys()) if store.metadata(k)["name"] == "total"]
    assert [store.load(k) for k in total] == [sum(i * i for i in range(40))]
    # Each run says how many Tasks it ran, and how many came from the others.
    assert sum(_computed(out) for out, _ in outputs) == 41
    assert not list(_store(project).index.list(Kind.LOCK))


def _holding_two(project: Path, env: dict[str, str]) -> subprocess.Popen:
    """Start a run of slow Tasks; return once it is computing two."""
    first = _start(project, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (project / "log").exists() and len(_executions(project)) >= 2:
            return first
        time.sleep(0.05)
    first.kill()
    pytest.fail("the first run started no Task")


def _kill(run: subprocess.Popen) -> None:
    run.send_signal(signal.SIGKILL)
    run.communicate()


def _daskbio(project: Path, *args: str, env: dict[str, str]) -> str:
    r = subprocess.run(
        [sys.executable, "-m", "daskbio", *args, "pipeline.py"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout + r.stderr


def _locking(env: dict[str, str]) -> dict[str, str]:
    """``env`` for a run that takes locks even when it is alone on its cache."""
    return {**env, "DASK_DASKBIO__SOLO": "false"}


def test_status_shows_running_tasks_and_cleanup_removes_dead_ones_locks(project: Path):
    env = _locking(_env(project, sleep="120", n="6"))
    first = _holding_two(project, env)
    try:
        shown = _daskbio(project, "status", env=env)
        assert f"Running now: 2 Tasks, in {socket.gethostname()}:{first.pid} (2)" in shown
        assert _daskbio(project, "status", "--json", env=env).count('"running": 2') == 1
        assert "Removed 0 expired locks" in _daskbio(project, "cleanup", "--locks", env=env)
    finally:
        _kill(first)
    # Its process is gone: its locks no longer hold, lease or not.
    assert "Running now" not in _daskbio(project, "status", env=env)
    assert f"Would remove 2 expired locks (of {socket.gethostname()}:{first.pid})" in _daskbio(
        project, "cleanup", "--locks", "--dry-run", env=env
    )
    assert len(_store(project).holders()) == 2
    assert "Removed 2 expired locks" in _daskbio(project, "cleanup", "--locks", env=env)
    assert _store(project).holders() == {}


def test_a_run_killed_while_holding_tasks_on_this_machine_is_taken_over_at_once(project: Path):
    env = _locking(_env(project, sleep="120", n="6"))
    _kill(_holding_two(project, env))
    held = _store(project).holders()
    assert len(held) == 2 and all(not h.expired for h in held.values())
    killed = set(_executions(project))

    out = _daskbio(project, "run", env={**env, "COOP_SLEEP": "0.1"})
    assert "Waiting" not in out
    executions = _executions(project)
    # The killed run's two Tasks ran twice (it died before committing), the rest once.
    assert all(executions[k] == 2 for k in killed)
    assert sum(executions.values()) == 6 + 1 + len(killed)
    assert not _store(project).holders()


def test_tasks_held_by_a_lost_machine_are_taken_over_after_the_lease(project, monkeypatch):
    env = _env(project, sleep="0.1", n="6")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    store = _store(project)
    with load(project / "pipeline.py", store, may_compute=False) as pipeline:
        lost = [t.hash() for t in pipeline.tasks if t.name == "work"][:2]
    now = time.time()
    # What a run on a machine that went down leaves: its record and its locks, whose
    # leases nobody renews.
    holder = leases.Holder("node-that-died", 4242, "lost", now, now + 3, "t0")
    store.index.put(Kind.RUN, "lost", holder.to_bytes())
    for key in lost:
        assert store.index.create(Kind.LOCK, key, holder.to_bytes())

    out = _daskbio(project, "run", env=env)
    assert "Waiting for 2 Tasks running elsewhere (node-that-died:4242)" in out
    assert time.time() - now > 3  # not before the lease ran out
    assert _executions(project) == collections.Counter(
        {**{f"work-{i}": 1 for i in range(6)}, "total": 1}
    )
    assert not store.holders()


def test_keep_going_computes_everything_a_failure_does_not_stop(project: Path):
    env = _env(project, sleep="0", n="20", fail="3,7,11", total="0")
    r = _start(project, "--keep-going", env=env)
    out, err = r.communicate(timeout=120)
    assert r.returncode == 1, out + err
    assert len(_store(project).keys()) == 17
    assert "3 Tasks failed:" in err
    for i in (3, 7, 11):
        assert f"ValueError: broken {i}" in err
    assert "Traceback" not in err
    assert _executions(project) == collections.Counter({f"work-{i}": 1 for i in range(20)})


def test_keep_going_skips_what_depends_on_a_failure(project: Path):
    env = _env(project, sleep="0", n="5", fail="2")
    r = _start(project, "--keep-going", env=env)
    out, err = r.communicate(timeout=120)
    assert r.returncode == 1, out
    assert "1 Tasks failed:" in err and "ValueError: broken 2" in err
    assert "1 Tasks that depend on them were not run." in err
    assert "total" not in _executions(project)
    assert len(_store(project).keys()) == 4


def test_without_keep_going_a_failure_stops_new_tasks_and_running_ones_commit(project: Path):
    env = _env(project, sleep="0.3", n="20", fail="0", total="0")
    r = _start(project, env=env)
    out, err = r.communicate(timeout=120)
    assert r.returncode == 1, out + err
    started = set(_executions(project))
    assert 1 <= len(started) < 20
    committed = len(_store(project).keys())
    assert committed == len(started) - 1  # all but the failed one


def test_compute_keep_going_raises_every_failure_at_the_end(project: Path, monkeypatch):
    for name, value in _env(project, sleep="0", n="6", fail="1,4", total="0").items():
        monkeypatch.setenv(name, value)
    store = open_store(project / "cache")
    with load(project / "pipeline.py", store) as pipeline, pytest.raises(TasksFailed) as e:
        compute(pipeline.tasks, cache=store, keep_going=True)
    assert sorted(e.value.failures) == sorted(
        t.hash() for t in pipeline.tasks if t.name == "work" and t.args[0] in (1, 4)
    )
    assert "ValueError: broken 1" in str(e.value) and "ValueError: broken 4" in str(e.value)
    assert len(store.keys()) == 4


def _computed(out: str) -> int:
    """N in the summary line 'This run computed N Tasks[; M came from other runs ...]'."""
    line = next(x for x in out.splitlines() if x.startswith("This run computed"))
    return int(line.split()[3])


def test_a_run_on_a_local_cluster_and_one_on_threads_share_the_work(project: Path):
    env = _env(project, sleep="1", n="24")
    on_cluster = _start(project, "--scheduler", "local", env=env)
    on_threads = _start(project, env=env)
    outputs = []
    for r in (on_cluster, on_threads):
        out, err = r.communicate(timeout=300)
        assert r.returncode == 0, out + err
        outputs.append(out)
    assert _executions(project) == collections.Counter(
        {**{f"work-{i}": 1 for i in range(24)}, "total": 1}
    )
    # The cluster run's Tasks ran on its workers: it counts them by the run id in the
    # entries they committed.
    store = _store(project)
    runs = collections.Counter(store.metadata(k)["run"] for k in list(store.keys()))
    computed = [_computed(out) for out in outputs]
    assert sorted(computed) == sorted(runs.values()) and sum(computed) == 25
    assert min(computed) > 0


def test_cleanup_leaves_alone_what_a_live_run_is_writing(tmp_path: Path):
    store = FileSystemStore(tmp_path / "cache")
    busy, dead = "ab" * 16, "cd" * 16
    for key in (busy, dead):
        store.begin_array(key, (4, 4), np.dtype("f8"), (2, 2), "writing")
        store.write_chunk(key, (0, 0), np.ones((2, 2)), "writing")
    lease = store.lock(busy, "live run")
    removed, _ = cleanup(store, keep=set())
    assert removed == [dead]
    assert store.partial() == {busy}
    store.unlock(lease)
    assert cleanup(store, keep=set())[0] == [busy]
    assert store.partial() == set()


def test_a_lock_of_this_machine_is_judged_by_its_process_only_on_the_same_boot_and_namespace():
    now = time.time()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    here = leases.machine()
    assert here  # Linux: a boot id and a pid namespace
    same = leases.Holder(leases.host(), dead.pid, "r", now, now + 60, "t", here)
    assert not same.live  # its process is gone
    assert dataclasses.replace(same, pid=os.getpid()).live
    # Another container of the same name (another pid namespace), or an older record
    # that does not say: only the lease counts.
    assert dataclasses.replace(same, machine="other-boot:4026531836").live
    assert dataclasses.replace(same, machine="").live
    assert not dataclasses.replace(same, machine="", expires=now - 1).live
    # A newer daskbio's record, with a field this one does not know, is still a holder.
    newer = json.loads(same.to_bytes()) | {"priority": 3}
    assert leases.Holder.from_bytes(json.dumps(newer).encode()) == same


def test_a_swap_claim_left_by_a_killed_process_goes_stale(tmp_path: Path):
    store = FileSystemStore(tmp_path / "cache")
    key = "ab" * 16
    dead = leases.Holder("gone", 1, "dead", 0.0, 1.0, "t0")
    assert store.index.create(Kind.LOCK, key, dead.to_bytes())
    claim = f"{key}-{xxhash.xxh64_hexdigest(dead.to_bytes())}"
    fresh = json.dumps({"time": time.time(), "token": "x"}).encode()
    assert store.index.create(Kind.CLAIM, claim, fresh)
    assert store.lock(key, "mine") is None  # someone is taking it over right now
    old = json.dumps({"time": time.time() - 60, "token": "x"}).encode()
    store.index.put(Kind.CLAIM, claim, old)  # ... or was killed doing so, a minute ago
    lease = store.lock(key, "mine")
    assert lease is not None and store.holders()[key].run == "mine"
    assert not list(store.index.list(Kind.CLAIM))
    store.unlock(lease)


def test_a_lease_released_is_not_renewed_back(tmp_path: Path):
    store = FileSystemStore(tmp_path / "cache")
    lease = store.lock("ab" * 16, "mine", length=0.3)
    store.unlock(lease)
    lease._renew()  # a renewal that was about to start when the release came
    assert store.holders() == {}


def test_a_forked_child_renews_its_own_leases(tmp_path: Path):
    store = FileSystemStore(tmp_path / "cache")
    parent = store.lock("ab" * 16, "parent", length=60)  # the parent's renewer is running
    pid = os.fork()
    if pid == 0:
        lease = store.lock("cd" * 16, "child", length=0.6)
        time.sleep(1.2)  # twice the lease: only renewal keeps it
        os._exit(0 if not store.holders()["cd" * 16].expired and not lease.lost else 1)
    assert os.waitpid(pid, 0)[1] == 0
    store.unlock(parent)


def test_keep_going_tells_this_runs_failures_by_the_record_not_the_clock(project, monkeypatch):
    for name, value in _env(project, sleep="0", n="4", fail="1", total="0").items():
        monkeypatch.setenv(name, value)
    # Tasks run where the clock is an hour behind this one (a worker's, say).
    behind = types.SimpleNamespace(time=lambda: time.time() - 3600)
    monkeypatch.setattr(daskbio.graph.job, "time", behind)
    store = open_store(project / "cache")
    raised = []
    with load(project / "pipeline.py", store) as pipeline:

        def run() -> None:
            try:
                compute(pipeline.tasks, cache=store, keep_going=True)
            except TasksFailed as e:
                raised.append(e)

        # In a thread, so that a run that never ends fails the test instead of hanging it.
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join(60)
    assert not thread.is_alive(), "the run kept retrying its own failure"
    assert [list(e.failures) for e in raised] == [list(store.failures())]
    assert _executions(project)["work-1"] == 1


def test_a_lock_linked_on_nfs_whose_reply_was_lost_is_still_taken(tmp_path, monkeypatch):
    # NFS retransmits a symlink(2) whose reply was lost; the retry finds the name taken by
    # the first attempt and fails, though the lock is ours: the link's target tells.
    store = FileSystemStore(tmp_path / "cache")
    symlink = os.symlink

    def lost_reply(target, name):
        symlink(target, name)
        raise FileExistsError(17, "File exists", name)

    monkeypatch.setattr(os, "symlink", lost_reply)
    lease = store.lock("ab" * 16, "mine")
    assert store.lock("ab" * 16, "other") is None  # and a real refusal is still one
    monkeypatch.undo()
    assert lease is not None and store.holders()["ab" * 16].run == "mine"
    store.unlock(lease)
    assert store.holders() == {}


def test_a_run_alone_takes_no_locks_until_another_comes(project: Path):
    env = _env(project, sleep="0.2", n="30")
    alone = _start(project, env=env)
    deadline = time.monotonic() + 60
    while not (project / "log").exists() or sum(_executions(project).values()) < 4:
        assert time.monotonic() < deadline, "the first run started no Task"
        time.sleep(0.05)
    assert _store(project).holders() == {}  # alone: no locks
    shown = _daskbio(project, "status", env=env)
    assert f"a run alone on this cache, in {socket.gethostname()}:{alone.pid}" in shown
    second = _start(project, env=env)
    outputs = [r.communicate(timeout=120) for r in (alone, second)]
    for r, (out, err) in zip((alone, second), outputs):
        assert r.returncode == 0, out + err
    assert _executions(project) == collections.Counter(
        {**{f"work-{i}": 1 for i in range(30)}, "total": 1}
    )
    assert sum(_computed(out) for out, _ in outputs) == 31
    assert min(_computed(out) for out, _ in outputs) > 0
    assert not list(_store(project).index.list(Kind.RUN))


def test_cleanup_makes_a_run_alone_take_its_locks_and_spares_what_it_computes(project):
    env = _env(project, sleep="120", n="2", total="0")
    alone = _holding_two(project, env)
    try:
        store = _store(project)
        assert store.holders() == {}
        _daskbio(project, "cleanup", env=env)
        # The run took the locks of the Tasks it computes before cleanup looked.
        assert len(store.holders()) == 2
        assert {h.run for h in store.runs().values()} and not any(
            h.solo for h in store.runs().values()
        )
    finally:
        _kill(alone)


ARRAYS = (
    NOTE
    + """
import os
import time

import dask.array as da
import numpy as np

from daskbio import TaskGenerator



@TaskGenerator
def image(i):
    note(f"image-{i}")
    time.sleep(0.2)
    return np.full((64, 64), i, dtype=np.uint16)


@TaskGenerator
def smooth(i):
    note(f"smooth-{i}")
    time.sleep(0.2)
    return da.full((64, 64), i, dtype=np.float32, chunks=16) + 0.5


images = [image(i) for i in range(8)]
smoothed = [smooth(i) for i in range(4)]
"""
)


def test_four_runs_of_array_results_write_each_array_once(tmp_path: Path):
    # Before locks, concurrent writers of one array crashed (ContainsArrayError, a
    # .partial folder gone) and left copies beside the committed one.
    (tmp_path / "pipeline.py").write_text(ARRAYS)
    env = _env(tmp_path)
    runs = [_start(tmp_path, env=env) for _ in range(4)]
    for r in runs:
        out, err = r.communicate(timeout=300)
        assert r.returncode == 0, out + err
    executions = _executions(tmp_path)
    expected = [f"image-{i}" for i in range(8)] + [f"smooth-{i}" for i in range(4)]
    assert executions == collections.Counter(expected)
    store = _store(tmp_path)
    found: dict[str, list[float]] = {"image": [], "smooth": []}
    for key in list(store.keys()):
        value = np.asarray(store.load(key))
        assert value.shape == (64, 64) and np.unique(value).size == 1
        found[store.metadata(key)["name"]].append(float(value[0, 0]))
    assert sorted(found["image"]) == [float(i) for i in range(8)]
    assert sorted(found["smooth"]) == [i + 0.5 for i in range(4)]
    # One array per entry: no copy of a concurrent writer beside the committed one (the
    # "done" tags of a chunked write are what a single run leaves too).
    folders = sorted((tmp_path / "pipeline.daskbio").glob("*/*.zarr"))
    assert len(folders) == 12
    for folder in folders:
        arrays = {p.name for p in folder.iterdir()} - {"zarr.json", "done"}
        assert len(arrays) == 1, (folder, arrays)
