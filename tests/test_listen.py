"""Schedulers and dashboards that daskbio starts listen on 127.0.0.1 unless told otherwise:
``daskbio run --scheduler local`` (checked on the running process with psutil),
``daskbio.cluster`` for dask-jobqueue clusters (their schedulers run here; no job is
submitted), and the worker command in ``daskbio submit --dry-run``'s job script."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

import dask
import psutil
import pytest

import daskbio
from daskbio.clusters import job_script, loopback_only
from tests.conftest import DASKBIO, write_pipeline
from tests.conftest import daskbio as run_daskbio

WAITS = """
    import time
    from pathlib import Path

    from daskbio import TaskGenerator

    @TaskGenerator
    def wait_for_go(folder):
        Path(folder, "started").touch()
        while not Path(folder, "go").exists():
            time.sleep(0.05)
        return 1

    result = wait_for_go(FOLDER)
"""

SQUARE = """
    from daskbio import TaskGenerator

    @TaskGenerator
    def square(i):
        return i * i

    result = [square(i) for i in range(3)]
"""


def listening(pid: int) -> set[tuple[str, int]]:
    """The (address, port) pairs that process ``pid`` and its children listen on."""
    root = psutil.Process(pid)
    found = set()
    for process in [root, *root.children(recursive=True)]:
        for c in process.net_connections(kind="inet"):
            if c.status == psutil.CONN_LISTEN:
                found.add((c.laddr.ip, c.laddr.port))
    return found


def env_without_dask() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}


def run_local_and_look(tmp_path: Path, *options: str) -> tuple[str, set[tuple[str, int]], str]:
    """Start ``daskbio run --scheduler local`` on a pipeline whose Task waits; while the Task
    runs, return the printed dashboard link and what the run's processes listen on."""
    file = write_pipeline(tmp_path, WAITS.replace("FOLDER", repr(str(tmp_path))))
    command = [*DASKBIO, "run", str(file), "--scheduler", "local", "--workers", "1", *options]
    child = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env_without_dask()
    )
    try:
        link = ""
        while not link.startswith("Dask dashboard: "):
            link = child.stdout.readline()
            assert link or child.poll() is None, child.stderr.read()
        deadline = time.monotonic() + 60
        while not (tmp_path / "started").exists():
            assert time.monotonic() < deadline and child.poll() is None, child.stderr.read()
            time.sleep(0.05)
        sockets = listening(child.pid)
        (tmp_path / "go").touch()
        out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, err
    return link.removeprefix("Dask dashboard: ").strip(), sockets, out


def test_run_on_a_local_cluster_listens_on_loopback_only_and_links_to_it(tmp_path):
    link, sockets, out = run_local_and_look(tmp_path)
    # The scheduler, the dashboard, the nanny and the worker at least.
    assert len(sockets) >= 4
    assert {address for address, _ in sockets} == {"127.0.0.1"}
    url = urlparse(link)
    assert url.hostname == "127.0.0.1"
    assert ("127.0.0.1", url.port) in sockets
    assert ": 1" in out  # the Task's result


def test_run_listen_option_moves_the_local_scheduler_and_dashboard(tmp_path):
    link, sockets, _ = run_local_and_look(tmp_path, "--listen", "0.0.0.0")
    port = urlparse(link).port
    assert ("0.0.0.0", port) in sockets
    # The scheduler, nanny and worker too, not just the dashboard.
    assert len({s for s in sockets if s[0] == "0.0.0.0"}) >= 4


def test_run_listen_is_refused_without_a_local_cluster(tmp_path):
    file = write_pipeline(tmp_path, SQUARE)
    done = run_daskbio("run", file, "--listen", "0.0.0.0")
    assert done.returncode == 2
    assert "--listen is for --scheduler local" in done.stderr
    assert not (tmp_path / "pipeline.daskbio").exists()


def new_listening(before: set[tuple[str, int]]) -> set[str]:
    return {address for address, _ in listening(os.getpid()) - before}


JOB = {"cores": 1, "memory": "1GiB"}


@pytest.mark.parametrize("kind", ["slurm", "pbs"])
def test_a_jobqueue_cluster_listens_on_loopback_by_default(kind):
    before = listening(os.getpid())
    with daskbio.cluster(kind, adapt=(0, 1), **JOB) as cluster:
        assert urlparse(cluster.scheduler_address).hostname == "127.0.0.1"
        assert urlparse(cluster.dashboard_link).hostname == "127.0.0.1"
        # dask-jobqueue alone would listen on every interface (0.0.0.0 and ::).
        assert new_listening(before) == {"127.0.0.1"}
        assert loopback_only(cluster.scheduler_address)


def test_a_jobqueue_cluster_listens_where_listen_says():
    before = listening(os.getpid())
    with daskbio.cluster("slurm", adapt=(0, 1), listen="0.0.0.0", **JOB) as cluster:
        assert new_listening(before) == {"0.0.0.0"}
        assert not loopback_only(cluster.scheduler_address)
        # Workers are told the machine's address, and so is the dashboard's link.
        assert (
            urlparse(cluster.dashboard_link).hostname
            == urlparse(cluster.scheduler_address).hostname
        )


def an_interface() -> tuple[str, str] | None:
    """A network interface other than loopback with an IPv4 address, and that address."""
    for name, addresses in psutil.net_if_addrs().items():
        for a in addresses:
            if a.family == socket.AF_INET and not a.address.startswith("127."):
                return name, a.address
    return None


INTERFACE = an_interface()
needs_interface = pytest.mark.skipif(INTERFACE is None, reason="no network interface but lo")


@needs_interface
def test_listen_takes_an_interface_name():
    name, address = INTERFACE
    before = listening(os.getpid())
    with daskbio.cluster("slurm", adapt=(0, 1), listen=name, **JOB) as cluster:
        assert urlparse(cluster.scheduler_address).hostname == address
        assert urlparse(cluster.dashboard_link).hostname == address
        assert new_listening(before) == {address}


@needs_interface
def test_a_jobqueue_interface_in_the_dask_config_still_places_the_scheduler():
    name, address = INTERFACE
    with (
        dask.config.set({"jobqueue.slurm.interface": name}),
        daskbio.cluster("slurm", adapt=(0, 1), **JOB) as cluster,
    ):
        assert urlparse(cluster.scheduler_address).hostname == address


def test_a_host_in_jobqueue_scheduler_options_is_kept_and_its_dashboard_port_too():
    options = {"host": "0.0.0.0", "dashboard_address": ":0"}
    before = listening(os.getpid())
    with (
        dask.config.set({"jobqueue.slurm.scheduler-options": options}),
        daskbio.cluster("slurm", adapt=(0, 1), **JOB) as cluster,
    ):
        assert new_listening(before) == {"0.0.0.0"}
        assert not loopback_only(cluster.scheduler_address)


def test_a_local_cluster_from_python_listens_on_loopback():
    before = listening(os.getpid())
    with daskbio.cluster("local", jobs=1, cores=1) as cluster:
        assert urlparse(cluster.dashboard_link).hostname == "127.0.0.1"
        assert new_listening(before) == {"127.0.0.1"}


def worker_connects_to(script: str) -> str:
    """The scheduler address in the job script's worker command."""
    (address,) = re.findall(r"\b(?:tcp|tls)://[\w.:\[\]-]+", script)
    return address


def test_job_scripts_point_workers_at_loopback_unless_listen_says_otherwise():
    assert urlparse(worker_connects_to(job_script("slurm", **JOB))).hostname == "127.0.0.1"
    elsewhere = worker_connects_to(job_script("slurm", listen="0.0.0.0", **JOB))
    assert not loopback_only(elsewhere)


@pytest.mark.parametrize(
    ("args", "env", "loopback"),
    [
        ([], {}, True),
        (["--listen", "0.0.0.0"], {}, False),
        ([], {"DASK_DASKBIO__SUBMIT__LISTEN": "0.0.0.0"}, False),
        (["--listen", "127.0.0.1"], {"DASK_DASKBIO__SUBMIT__LISTEN": "0.0.0.0"}, True),
    ],
)
def test_submit_dry_run_job_script_listens_where_option_or_config_says(
    tmp_path, args, env, loopback
):
    file = write_pipeline(tmp_path, SQUARE)
    done = run_daskbio(
        "submit", file, "--cluster", "slurm", "--dry-run", "--allow-local-cache",
        "--cores", "1", "--memory", "1GiB", *args, env={**env_without_dask(), **env},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert loopback_only(worker_connects_to(done.stdout)) is loopback
