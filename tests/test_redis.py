"""The Redis store, against a real redis-server on 127.0.0.1 with a password.

The server is the one .ci/run starts (``DASKBIO_TEST_REDIS_URL``), else one started here
for the session; the tests that restart a server start their own. Each test uses records
of its own prefix, so tests sharing the server never see each other's.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import shutil
import subprocess
import time
import urllib.parse
import uuid
from collections import Counter
from pathlib import Path

import dask
import numpy as np
import pytest
import redis
import redis.connection

from daskbio.cache import CacheUnavailable, CorruptEntry, Kind, RedisStore, open_store
from daskbio.cache.redisstore import LOCK_GRACE, RETRY_SECONDS
from daskbio.graph.task import Task
from daskbio.invalidation import cleanup, downstream, matching, remove
from daskbio.status import status
from tests.conftest import DASKBIO, daskbio, write_pipeline
from tests.redis_server import RedisServer, free_port, require_loopback, require_redis_server
from tests.test_store import KEY, OTHER, StoreTests, payload_files


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory):
    """The URL of the session's server (without daskbio's query parameters)."""
    if url := os.environ.get("DASKBIO_TEST_REDIS_URL"):
        yield require_loopback(url)
        return
    require_redis_server()
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


def cache_url(server: str, payloads: Path, prefix: str | None = None) -> str:
    url = f"{server}?payloads={payloads}"
    return f"{url}&prefix={prefix}" if prefix else url


def forget(server: str, prefix: str) -> None:
    """Remove every record under ``prefix``."""
    client = redis.Redis.from_url(server)
    names = list(client.scan_iter(match=f"{prefix}:*", count=10_000))
    if names:
        client.delete(*names)


@pytest.fixture
def prefix(redis_url: str):
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    forget(redis_url, name)


@pytest.fixture
def url(redis_url: str, tmp_path: Path, prefix: str) -> str:
    """A cache of this test's own: its prefix in the server, its payload folder."""
    return cache_url(redis_url, tmp_path / "payloads", prefix)


class TestRedisStore(StoreTests):
    @pytest.fixture
    def store(self, url: str) -> RedisStore:
        return RedisStore(url)

    def test_records_are_redis_strings_named_by_prefix_kind_and_key(self, store, redis_url, prefix):
        store.save(KEY, 1)
        store.record_failure(OTHER, {"error": "x"})
        store.add_code_version("pipeline.f", "aaaa")
        names = {n.decode() for n in redis.Redis.from_url(redis_url).scan_iter(f"{prefix}:*")}
        assert names == {
            f"{prefix}:entry:{KEY}",
            f"{prefix}:failure:{OTHER}",
            f"{prefix}:code:{store._function_key('pipeline.f')}-aaaa",
        }

    def test_small_pickles_live_in_redis_large_ones_and_arrays_with_the_payloads(self, store):
        store.save(KEY, list(range(10)))
        store.save(OTHER, list(range(100_000)))
        store.save("ab" * 16, np.arange(1000))
        assert payload_files(store, KEY) == []
        assert "blob" in store.metadata(OTHER)["payload"]
        assert len(store.index.get(Kind.ENTRY, OTHER)) < 1024
        assert any("/c/" in n for n in payload_files(store, "ab" * 16))
        assert store.load(OTHER) == list(range(100_000))

    @pytest.mark.parametrize(
        "value", [list(range(100_000)), np.arange(1000)], ids=["blob", "array"]
    )
    def test_an_entry_whose_payload_is_gone_is_refused_and_removed(self, store, value):
        store.save(KEY, value, {"name": "f"})
        shutil.rmtree(store.folder / KEY[:2] / f"{KEY}.zarr")
        with pytest.raises(CorruptEntry, match=r"f \(0123"), pytest.warns(UserWarning):
            store.load(KEY)
        assert not store.has(KEY)

    def test_a_lock_record_expires_in_redis_after_its_lease_and_a_grace(self, store, redis_url):
        lease = store.lock(KEY, "run", length=5.0)
        name = store.index._name(Kind.LOCK, KEY)
        left = redis.Redis.from_url(redis_url).pttl(name) / 1000
        assert 5.0 < left <= 5.0 + LOCK_GRACE
        store.unlock(lease)
        assert redis.Redis.from_url(redis_url).exists(name) == 0

    def test_a_forked_child_makes_its_own_connection(self, store):
        store.save(KEY, "parent")
        child = multiprocessing.get_context("fork").Process(target=_save_in_child, args=(store,))
        child.start()
        # Meanwhile the parent keeps using its connection: shared, replies would mix.
        for _ in range(200):
            assert store.load(KEY) == "parent"
        child.join(30)
        assert child.exitcode == 0
        assert store.load(OTHER) == "child"


def test_payloads_may_be_in_a_zarr_url(redis_url, prefix):
    store = RedisStore(f"{redis_url}?payloads=memory://daskbio-{prefix}&prefix={prefix}")
    assert store.folder is None
    store.save(KEY, list(range(100_000)))
    store.save(OTHER, np.arange(1000))
    assert "blob" in store.metadata(KEY)["payload"]
    assert store.load(KEY) == list(range(100_000))
    np.testing.assert_array_equal(store.load(OTHER), np.arange(1000))


def test_a_unix_socket_url_reaches_the_server(tmp_path):
    require_redis_server()
    with RedisServer(tmp_path / "redis") as server:
        store = RedisStore(
            f"unix://:{server.password}@{server.socket}?db=0&payloads={tmp_path / 'p'}"
        )
        store.save(KEY, 42)
        assert RedisStore(f"{server.url}?payloads={tmp_path / 'p'}").load(KEY) == 42
        assert server.password not in store.location


def _save_in_child(store: RedisStore) -> None:
    for _ in range(200):
        assert store.load(KEY) == "parent"
    store.save(OTHER, "child")


# Opening and naming --------------------------------------------------------------------


def test_a_redis_url_and_the_dask_config_key_open_a_redis_store(tmp_path):
    url = "redis://:s3cret@127.0.0.1:6379/2?payloads=p&prefix=lab"
    with dask.config.set({"daskbio.cache": url}):
        store = open_store(pipeline_file=tmp_path / "pipeline.py")
    assert isinstance(store, RedisStore)
    assert store.folder == Path("p").absolute()
    assert (
        store.location
        == f"redis://:***@127.0.0.1:6379/2?payloads={Path('p').absolute()}&prefix=lab"
    )
    assert "s3cret" not in repr(store) + repr(store.index) + store.location
    # Workers get the URL, with the payloads where this process found them.
    copy = pickle.loads(pickle.dumps(store))
    assert (copy.url, copy.index.prefix, copy.folder) == (store.url, "lab", store.folder)
    assert isinstance(open_store("rediss://h:1/0?payloads=/p"), RedisStore)
    assert isinstance(open_store("unix:///run/redis.sock?db=1&payloads=/p"), RedisStore)


def test_a_url_that_does_not_say_where_payloads_go_is_one_clear_error():
    with pytest.raises(CacheUnavailable, match=r"redis://:\*\*\*@h:1/0: .*\?payloads=FOLDER"):
        open_store("redis://:secret@h:1/0")


# Status in a few round trips --------------------------------------------------------------


def inc(x):
    return x + 1


def calls_by_command(client: redis.Redis) -> Counter:
    """The server's count of commands run, by command (INFO commandstats)."""
    stats = client.info("commandstats")
    return Counter({name[len("cmdstat_") :]: v["calls"] for name, v in stats.items()})


def count_round_trips(monkeypatch) -> list:
    """A list that grows by one per request redis-py sends (and whose replies it awaits),
    a whole pipeline or script call being one, until ``monkeypatch.undo()``."""
    sent: list = []
    send = redis.connection.AbstractConnection.send_packed_command
    monkeypatch.setattr(
        redis.connection.AbstractConnection,
        "send_packed_command",
        lambda self, *args, **kw: sent.append(1) or send(self, *args, **kw),
    )
    return sent


def test_status_of_a_thousand_tasks_costs_a_few_round_trips(url, redis_url, monkeypatch):
    store = RedisStore(url)
    tasks = [Task(inc, i) for i in range(1000)]
    for t in tasks[:500]:
        store.save(t.hash(), t.args[0] + 1, {"name": "inc"})
    for t in tasks[500:600]:
        store.record_failure(t.hash(), {"error": "boom"})
    # Results of another version of the code: status reads the 500 entries' metadata too.
    store.add_code_version(tasks[0].identity, "other")
    admin = redis.Redis.from_url(redis_url)
    before = calls_by_command(admin)
    sent = count_round_trips(monkeypatch)

    found = status(tasks, store)

    monkeypatch.undo()
    after = calls_by_command(admin)
    counts = found.counts["inc"]
    assert (counts.done, counts.failed, counts.waiting, counts.stale) == (500, 100, 400, 500)
    # Every Task's entry was looked for, the failure record of each without one, and
    # every entry read...
    assert after["exists"] - before["exists"] >= 1000 + 500
    assert after["getrange"] - before["getrange"] == 500
    # ... in a handful of round trips (entries, failure records of the Tasks without one,
    # the runs on the cache, code versions, input records, the 500 entries' metadata),
    # not thousands.
    assert len(sent) <= 7


def test_invalidate_and_cleanup_of_a_thousand_tasks_cost_a_few_round_trips(
    url, tmp_path, monkeypatch
):
    store = RedisStore(url)
    a, b = [Task(inc, i) for i in range(1000)], [Task(inc, Task(inc, i)) for i in range(1000)]
    for t, u in zip(a, b):
        store.save(t.hash(), 1, {"name": "inc"})
        store.save(u.hash(), 2, {"name": "twice", "deps": [t.hash()]})
        store.record_failure(u.hash(), {"name": "twice", "error": "boom"})
    sent = count_round_trips(monkeypatch)

    keys = matching(store, "twice")
    freed = remove(store, downstream(store, keys))
    invalidating, sent[:] = len(sent), []
    unreached, _ = cleanup(store, keep={t.hash() for t in a[:500]}, dry_run=True)
    dry, sent[:] = len(sent), []
    cleanup(store, keep={t.hash() for t in a[:500]})
    cleaning = len(sent)

    monkeypatch.undo()
    assert len(keys) == 1000 and freed > 0
    assert len(unreached) == 500
    assert sorted(store.keys()) == sorted(t.hash() for t in a[:500])
    assert store.failures() == set()
    # A round trip per batch of a thousand records (and per listing), never one per Task.
    assert max(invalidating, dry, cleaning) <= 12, (invalidating, dry, cleaning)


# Runs of the real command -----------------------------------------------------------------

LOGGED = """
    import os
    import time
    from pathlib import Path

    from daskbio import TaskGenerator

    LOG = Path(__file__).with_name("log.txt")


    def log(line):
        # One write(2) with O_APPEND: lines of concurrent runs never mix.
        fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{line}\\n".encode())
        finally:
            os.close(fd)


    @TaskGenerator
    def square(i):
        log(f"square {i}")
        time.sleep(SLEEP)
        return (i, list(range(SIZE + i)))


    @TaskGenerator
    def total(squares):
        log("total")
        return sum(i * i for i, _ in squares)


    squares = [square(i) for i in range(N)]
    result = total(squares)
"""


def logged_pipeline(folder: Path, n: int, sleep: float, size: int) -> Path:
    source = LOGGED.replace("SLEEP", repr(sleep)).replace("SIZE", str(size))
    return write_pipeline(folder, source.replace("(N)", f"({n})"))


def logged(file: Path) -> Counter:
    log = file.with_name("log.txt")
    return Counter(log.read_text().splitlines() if log.exists() else [])


def assert_right_values(url: str, n: int, size: int) -> None:
    """Every result in the cache is the one its Task computes, and all are there."""
    store = RedisStore(url)
    keys = store.keys()
    by_name: dict[str, list] = {}
    for key, meta in zip(keys, store.metadata_many(keys)):
        by_name.setdefault(meta["name"], []).append(store.load(key))
    assert sorted(by_name["square"]) == [(i, list(range(size + i))) for i in range(n)]
    assert by_name["total"] == [sum(i * i for i in range(n))]


def test_four_concurrent_runs_compute_each_task_once(tmp_path, url):
    file = logged_pipeline(tmp_path, n=39, sleep=0.2, size=10)
    command = [*DASKBIO, "run", str(file), "--workers", "4", "--cache", url]
    runs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0] * 4, outputs
    expected = Counter([f"square {i}" for i in range(39)] + ["total"])
    assert logged(file) == expected
    assert_right_values(url, 39, 10)


@pytest.mark.parametrize(
    ("appendonly", "down"),
    [(False, 0.0), (True, 0.0), (False, RETRY_SECONDS + 3)],
    ids=["emptied", "kept", "down-too-long"],
)
def test_a_server_restarted_mid_run_fails_clearly_or_completes_and_never_serves_wrong_values(
    tmp_path, appendonly, down
):
    require_redis_server()
    # Large results: each has a payload file beside its entry.
    n, size = 16, 30_000
    file = logged_pipeline(tmp_path, n=n, sleep=0.3, size=size)
    with RedisServer(tmp_path / "redis", appendonly=appendonly) as server:
        url = cache_url(server.url, tmp_path / "payloads")
        command = [*DASKBIO, "run", str(file), "--workers", "2", "--cache", url]
        run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while sum(logged(file).values()) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        server.restart(down=down)
        out, err = run.communicate(timeout=300)
        assert "Traceback" not in err and server.password not in out + err
        if down > RETRY_SECONDS:
            assert run.returncode == 1
        if run.returncode != 0:
            assert "Error: cannot use the cache redis://:***@127.0.0.1" in err, err
        again = daskbio("run", file, "--cache", url)
        assert again.returncode == 0, again.stderr
        assert_right_values(url, n, size)
        if appendonly and not down:
            # What was committed before the restart survived it: nothing ran twice.
            assert set(logged(file).values()) == {1}


def test_a_result_whose_payload_is_gone_is_computed_again_not_served(tmp_path, url):
    file = logged_pipeline(tmp_path, n=3, sleep=0.0, size=30_000)
    daskbio("run", file, "--cache", url, check=True)
    store = RedisStore(url)
    lost = next(
        k for k, m in zip(store.keys(), store.metadata_many(store.keys())) if m["name"] == "square"
    )
    shutil.rmtree(store.folder / lost[:2] / f"{lost}.zarr")
    # total computed again loads every square: the one whose payload is gone is refused,
    # removed and computed again.
    daskbio("invalidate", "total", "-f", file, "--cache", url, check=True)
    again = daskbio("run", file, "--cache", url)
    assert again.returncode == 0, again.stderr
    assert logged(file)[f"square {store.load(lost)[0]}"] == 2
    assert sum(logged(file).values()) == 4 + 2
    assert_right_values(url, 3, 30_000)


# A server that cannot be used -------------------------------------------------------------


def with_password(server: str, password: str | None) -> str:
    parts = urllib.parse.urlsplit(server)
    auth = "" if password is None else f":{password}@"
    return f"redis://{auth}{parts.hostname}:{parts.port}{parts.path}"


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("wrong password", "the server refused the password in the URL"),
        ("no password", "the server asks for a password"),
        (
            "unreachable",
            "Connection refused. (tried for 5 s: is redis-server running at 127.0.0.1:",
        ),
        ("unknown option", "the URL has an option redis does not know"),
    ],
)
def test_a_server_that_cannot_be_used_is_one_error_line_and_exit_1(
    tmp_path, redis_url, case, message
):
    file = logged_pipeline(tmp_path, n=2, sleep=0.0, size=1)
    server = {
        "wrong password": with_password(redis_url, "not-the-password"),
        "no password": with_password(redis_url, None),
        # A port nothing listens on.
        "unreachable": f"redis://:x@127.0.0.1:{free_port()}/0",
        "unknown option": redis_url,
    }[case]
    url = cache_url(server, tmp_path / "p") + (
        "&sokcet_timeout=1" if case == "unknown option" else ""
    )
    for command in ("status", "run"):
        result = daskbio(command, file, "--cache", url)
        assert result.returncode == 1
        lines = result.stderr.splitlines()
        assert lines[0].startswith("Error: cannot use the cache redis://"), result.stderr
        assert message in lines[0]
        assert "not-the-password" not in result.stdout + result.stderr
        assert len(lines) == 1, result.stderr


IMPORTED_FIRST = """
import sys

from daskbio import TaskGenerator


@TaskGenerator
def imported(i):
    return [name in sys.modules for name in ("numpy", "zarr.storage")]


parts = [imported(i) for i in range(4)]
"""


def test_a_run_imports_the_payload_stack_before_tasks_write_large_pickles(tmp_path, url):
    # A pipeline of plain values never imports numpy; its first large pickle would then
    # import Zarr on a Task's thread while other threads look numpy up half initialised.
    file = write_pipeline(tmp_path, IMPORTED_FIRST)
    daskbio("run", file, "--workers", "4", "--cache", url, check=True)
    store = RedisStore(url)
    assert [store.load(k) for k in list(store.keys())] == [[True, True]] * 4
    # A folder cache keeps every pickle in its entry: nothing to import for it.
    daskbio("run", file, "--workers", "4", "--cache", str(tmp_path / "folder"), check=True)
    folder = open_store(tmp_path / "folder")
    assert [folder.load(k) for k in list(folder.keys())] == [[False, False]] * 4
