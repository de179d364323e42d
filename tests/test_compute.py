"""compute(), value() and friends on real Dask schedulers and a real cache on disk."""

from __future__ import annotations

import os
import threading

import dask
import pytest
from dask.callbacks import Callback
from dask.utils import key_split

from daskbio import (
    CachedFunction,
    Task,
    TaskFailed,
    TaskGenerator,
    compute,
    iteratetask,
    value,
)
from daskbio.cache import FileSystemStore, Kind, MemoryStore
from daskbio.graph.compute import session
from daskbio.graph.job import Run
from daskbio.graph.plan import plan
from daskbio.graph.to_dask import dask_key, to_dask

calls: list[tuple] = []
_lock = threading.Lock()


@TaskGenerator
def add(a, b):
    with _lock:
        calls.append(("add", a, b))
    return a + b


@TaskGenerator
def plus(a, b):
    return a + b


@TaskGenerator
def pair(x):
    return x, {"double": 2 * x}


@TaskGenerator
def total(values):
    return sum(values)


@TaskGenerator
def divide(a, b):
    return a / b


@pytest.fixture(autouse=True)
def _clear_calls():
    calls.clear()


class CountSchedulerStarts(Callback):
    def __init__(self):
        super().__init__()
        self.starts = 0

    def _start(self, dsk):
        self.starts += 1


def test_compute_returns_values_in_the_structure_given(cache):
    a = add(1, 2)
    out = compute({"a": a, "list": [a, add(a, 10)], "tuple": (add(0, 0),), "plain": 7}, cache=cache)
    assert out == {"a": 3, "list": [3, 13], "tuple": (0,), "plain": 7}
    assert compute(a, cache=cache) == 3


def test_a_second_compute_runs_nothing_and_does_not_touch_the_scheduler(cache):
    tasks = [add(i, 1) for i in range(20)]
    final = total(tasks)
    assert compute(final, cache=cache) == sum(range(1, 21))
    assert len(calls) == 20
    calls.clear()
    with CountSchedulerStarts() as counter:
        assert compute([final, *tasks], cache=cache)[0] == sum(range(1, 21))
    assert calls == []
    assert counter.starts == 0


def test_tasks_survive_across_processes_via_the_cache(cache):
    compute(add(2, 3), cache=cache)
    # A new store object over the same folder (as a new session would make) finds it.
    assert FileSystemStore(cache).load(add(2, 3).hash()) == 5


def test_cached_tasks_not_needed_are_pruned_and_needed_ones_loaded(cache):
    store = FileSystemStore(cache)
    a = add(1, 1)
    b = add(a, 1)
    compute(b, cache=store)
    c = add(b, 1)
    p = plan([a, b, c], store)
    assert set(p.run) == {c.hash()}
    assert set(p.load) == {b.hash()}
    graph, keys = to_dask(p, store, Run())
    assert set(graph) == {keys[b.hash()], keys[c.hash()]}
    assert key_split(keys[b.hash()]) == "load-add"


def test_tasklets_and_iteratetask_give_items_of_a_result(cache):
    t = pair(5)
    first, second = iteratetask(t, 2)
    assert compute([first, second["double"], t[1]["double"]], cache=cache) == [5, 10, 10]
    assert compute(add(t[0], second["double"]), cache=cache) == 15


def test_tasks_inside_containers_are_dependencies(cache):
    parts = [add(i, 0) for i in range(3)]
    t = total(parts)
    assert set(t.dependencies()) == set(parts)
    assert compute(t, cache=cache) == 3


@pytest.mark.parametrize("scheduler", ["sync", "threads", "processes"])
def test_every_local_scheduler_gives_the_same_values(cache, scheduler):
    final = total([plus(i, i) for i in range(6)])
    assert compute(final, scheduler=scheduler, cache=cache) == 30


def test_an_unknown_scheduler_is_refused_by_name(cache):
    with pytest.raises(ValueError, match="scheduler must be one of"):
        compute(add(1, 1), scheduler="gpu", cache=cache)


def test_dask_keys_carry_the_function_name():
    assert dask_key("method1", "0" * 32) == "method1-" + "0" * 32
    letters_only = "abcdef" * 5 + "ab"
    assert key_split(f"method1-{letters_only}") != "method1"  # what dask would do
    assert key_split(dask_key("method1", letters_only)) == "method1"


def test_distributed_client_runs_tasks_on_workers_grouped_by_function(cache):
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=2, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        final = total([plus(i, 100) for i in range(4)])
        # The active Client is used without being named.
        assert compute(final, cache=cache) == 406
        prefixes = client.run_on_scheduler(
            lambda dask_scheduler: sorted(dask_scheduler.task_prefixes)
        )
        assert "plus" in prefixes and "total" in prefixes
        # Results were written by the worker process, not by this client.
        meta = FileSystemStore(cache).metadata(final.hash())
        assert meta["pid"] != os.getpid()
        assert compute(plus(1, 1), scheduler=client, cache=cache) == 2


def test_a_failing_task_names_itself_and_keeps_finished_results(cache):
    store = FileSystemStore(cache)
    good = add(1, 1)
    bad = divide(good, 0)
    with pytest.raises(TaskFailed) as info:
        compute([good, bad], scheduler="sync", cache=store)
    message = str(info.value)
    assert "divide" in message and bad.hash() in message
    assert "ZeroDivisionError" in message and "return a / b" in message
    assert store.has(good.hash())
    assert store.failures() == {bad.hash()}


def test_a_corrupt_entry_is_reported_and_recomputed(cache):
    store = FileSystemStore(cache)
    a = add(20, 1)
    compute(a, cache=store)
    blob = bytearray(store.index.get(Kind.ENTRY, a.hash()))
    blob[-3] ^= 0xFF
    store.index.put(Kind.ENTRY, a.hash(), bytes(blob))
    calls.clear()
    with pytest.warns(UserWarning, match=rf"add \({a.hash()}\) is damaged.*removed, so that"):
        assert compute(add(a, 1), cache=store) == 22
    assert ("add", 20, 1) in calls
    assert store.load(a.hash()) == 21


def test_value_and_cachedfunction_compute_through_the_session_store():
    store = MemoryStore()
    with session(store=store):
        assert value([add(3, 4), "x"]) == [7, "x"]
        assert CachedFunction(divmod, 9, 4) == (2, 1)
    assert store.has(Task(divmod, 9, 4).hash())


def test_default_cache_is_the_dask_config_key(tmp_path):
    with dask.config.set({"daskbio.cache": str(tmp_path / "configured")}):
        compute(add(5, 5))
    assert FileSystemStore(tmp_path / "configured").has(add(5, 5).hash())
