"""Take the screenshot of daskbio's dashboard page in docs/dashboard.md.

Starts a LocalCluster, runs a small pipeline with cached, computed, failing and still
running Tasks (one writing a dask array chunk by chunk), and while a Task waits, has
headless Chromium (Debian's ``chromium``) save the ``/daskbio`` page as
``docs/images/dashboard.png``. Not part of the test suite::

    python docs/dashboard_screenshot.py [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import dask.array as da
from distributed import Client, LocalCluster

from daskbio import TaskGenerator, compute
from daskbio.cache import FileSystemStore
from daskbio.graph.job import TasksFailed

IMAGE = Path(__file__).parent / "images" / "dashboard.png"


@TaskGenerator
def segment(i: int) -> int:
    time.sleep(0.2)
    return i


@TaskGenerator
def smooth(n: int) -> da.Array:
    return da.ones((400, 400), chunks=50) * n


@TaskGenerator
def measure(i: int) -> int:
    if i % 7 == 3:
        raise ValueError(f"no nuclei in image {i}")
    return i * 2


@TaskGenerator
def wait_for(path: str, *inputs: int) -> int:
    """Holds the run while the screenshot is taken."""
    while not Path(path).exists():
        time.sleep(0.05)
    return len(inputs)


@TaskGenerator
def report(n: int) -> str:
    return f"{n} images"


def pipeline(release: str) -> list:
    images = [segment(i) for i in range(24)]
    measured = [measure(i) for i in range(20)]
    return [*images, smooth(1), smooth(2), *measured, report(wait_for(release, *images[:8]))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    options = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="daskbio-screenshot-"))
    release = folder / "release"
    store = FileSystemStore(folder / "cache")
    compute([segment(i) for i in range(10)], scheduler="threads", cache=store)
    with (
        LocalCluster(n_workers=2, threads_per_worker=2, dashboard_address="127.0.0.1:0") as cluster,
        Client(cluster) as client,
    ):
        page = f"http://127.0.0.1:{cluster.scheduler.http_server.port}/daskbio"

        def run() -> None:
            with contextlib.suppress(TasksFailed):  # the failures are part of the picture
                compute(pipeline(str(release)), scheduler=client, cache=store, keep_going=True)

        runner = threading.Thread(target=run)
        runner.start()
        try:
            _wait_until_only_the_wait_runs(f"{page}/json")
            IMAGE.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [
                    options.chromium,
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--hide-scrollbars",
                    "--window-size=1000,240",
                    f"--screenshot={IMAGE}",
                    page,
                ],
                check=True,
                capture_output=True,
                timeout=120,
            )
        finally:
            release.touch()
            runner.join()
    print(f"Wrote {IMAGE}", file=sys.stderr)


def _wait_until_only_the_wait_runs(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                rows = {r["function"]: r for r in json.load(response)["rows"]}
        except OSError:  # 404 until the run has registered the page
            rows = {}
        busy = [
            n
            for n, r in rows.items()
            if n not in ("wait_for", "report", "(all)") and (r["running"] or r["remaining"])
        ]
        if rows and rows["wait_for"]["running"] and not busy:
            return
        time.sleep(0.1)
    raise TimeoutError("the pipeline did not get to its waiting Task")


if __name__ == "__main__":
    main()
