"""daskbio's page on the Dask dashboard (``/daskbio``, ``/daskbio/json``), fetched over
HTTP on loopback from real LocalClusters while a run goes on and after it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
from distributed import Client, LocalCluster

from daskbio import TaskGenerator, compute
from daskbio.cache import FileSystemStore
from daskbio.graph.job import TasksFailed
from daskbio.monitor.tally import COLUMNS, TOTAL
from tests.conftest import DASKBIO, write_pipeline


@TaskGenerator
def square(x):
    return x * x


@TaskGenerator
def total(values):
    return sum(values)


@TaskGenerator
def fail(x):
    raise ValueError(f"no {x}")


@TaskGenerator
def wait_for(path):
    """Runs until ``path`` exists: the test looks at the page meanwhile."""
    while not os.path.exists(path):
        time.sleep(0.02)
    return path


@TaskGenerator
def after(path):
    return len(path)


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        return response.read().decode()


def counts(data: dict) -> dict[str, dict[str, int]]:
    return {row["function"]: {c: row[c] for c in COLUMNS} for row in data["rows"]}


def row(total=0, cached=0, loaded=0, running=0, computed=0, failed=0) -> dict[str, int]:
    done = cached + loaded + computed
    remaining = total - done - running - failed
    values = (total, done, cached, loaded, running, computed, failed, remaining)
    return dict(zip(COLUMNS, values))


def poll(url: str, until, timeout: float = 60) -> dict:
    """The page's JSON once ``until`` holds for it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            data = json.loads(fetch(url))
        except urllib.error.HTTPError as e:  # 404 until the run has registered the page
            assert e.code == 404, e
            data = None
        if data is not None and until(data):
            return data
        assert time.monotonic() < deadline, f"the page never showed the state awaited: {data}"
        time.sleep(0.05)


def started(data: dict) -> bool:
    """The run is where the test looks: all but the waiting Task and its dependent done."""
    found = counts(data)
    return (
        found.get("wait_for", {}).get("running") == 1
        and found["fail"]["failed"] == 2
        and found["total"]["computed"] == 1
    )


DURING = {
    "square": row(total=4, cached=2, computed=2),
    "total": row(total=1, computed=1),
    "fail": row(total=2, failed=2),
    "wait_for": row(total=1, running=1),
    "after": row(total=1),
    TOTAL: row(total=9, cached=2, computed=3, failed=2, running=1),
}
AFTER = {
    **DURING,
    "wait_for": row(total=1, computed=1),
    "after": row(total=1, computed=1),
    TOTAL: row(total=9, cached=2, computed=5, failed=2),
}


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "worker-processes"])
def test_the_page_counts_cached_computed_running_failed_and_remaining_tasks_live(
    tmp_path, processes
):
    store = FileSystemStore(tmp_path / "cache")
    compute([square(0), square(1)], scheduler="sync", cache=store)
    release = tmp_path / "release"
    tasks = [total([square(i) for i in range(4)]), fail(1), fail(2), after(wait_for(str(release)))]
    with (
        LocalCluster(
            n_workers=2 if processes else 1,
            threads_per_worker=3,
            processes=processes,
            dashboard_address="127.0.0.1:0",
        ) as cluster,
        Client(cluster) as client,
    ):
        page = f"http://127.0.0.1:{cluster.scheduler.http_server.port}/daskbio"
        raised = []

        def run() -> None:
            try:
                compute(tasks, scheduler=client, cache=store, keep_going=True)
            except TasksFailed as e:
                raised.append(e)

        runner = threading.Thread(target=run)
        runner.start()
        try:
            during = poll(f"{page}/json", started)
            html = fetch(page)
        finally:
            release.touch()
            runner.join()
        after_run = json.loads(fetch(f"{page}/json"))
    assert counts(during) == DURING
    # The page shows the table, and refreshes it from its JSON.
    assert "<table" in html and "<td" in html and "wait_for" in html and "fetch(json" in html
    assert counts(after_run) == AFTER
    assert "<table" in after_run["html"]
    assert sorted(raised[0].failures) == sorted(t.hash() for t in tasks[1:3])


PIPELINE = """
    import os
    import time

    from daskbio import TaskGenerator

    RELEASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "release")


    @TaskGenerator
    def step(x):
        return x + 1


    @TaskGenerator
    def wait_for(x):
        while not os.path.exists(RELEASE):
            time.sleep(0.02)
        return x


    results = [wait_for(step(i)) for i in range(2)]
"""


def test_daskbio_run_on_a_local_cluster_prints_the_page_link_and_serves_the_page(tmp_path):
    file = write_pipeline(tmp_path, PIPELINE)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [*DASKBIO, "run", str(file), "--scheduler", "local", "--workers", "1", "--quiet"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as process:
        try:
            lines = [process.stdout.readline() for _ in range(2)]
            assert lines[0].startswith("Dask dashboard: http://127.0.0.1:"), lines
            dashboard = lines[0].split(": ", 1)[1].strip()
            assert lines[1] == f"daskbio page: {dashboard.removesuffix('/status')}/daskbio\n"
            page = lines[1].split(": ", 1)[1].strip()
            during = poll(
                f"{page}/json", lambda d: counts(d).get("wait_for", {}).get("running", 0) >= 1
            )
            assert "step" in fetch(page)
        finally:
            (tmp_path / "release").touch()
        rest = process.stdout.read()
    assert process.returncode == 0, rest
    assert counts(during)["step"] == row(total=2, computed=2)
    assert "This run computed 4 Tasks." in rest


def test_a_run_without_dask_distributed_registers_no_page(tmp_path):
    # The plugin belongs to distributed runs: a threaded one leaves distributed unimported.
    script = (
        "import sys\nfrom daskbio import Task, compute\n"
        f"print(compute(Task(abs, -3), cache={str(tmp_path / 'c')!r}), "
        "'distributed' in sys.modules, 'daskbio.monitor.plugin' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stdout.split() == ["3", "False", "False"], done.stderr
