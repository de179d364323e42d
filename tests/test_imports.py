"""The array stack is imported before Tasks run on threads (``daskbio._imports.preload``).

Threads that import different submodules of Zarr first, at the same moment, deadlock or
get a half-initialised module: ``_DeadlockError: deadlock detected by
_ModuleLock('zarr.abc.store')``, ``ImportError: cannot import name 'Store' from partially
initialized module 'zarr.abc.store'``. Each run below is a fresh process with a fresh cache,
as a first run is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tifffile
from distributed import Client, LocalCluster

from daskbio._imports import ARRAY_STACK, preload
from tests.conftest import daskbio, write_pipeline

# What daskbio's cache and readers import by submodule, lazily, on the first write or read.
LAZY = ["zarr.storage", "zarr.codecs", "zarr.abc.store", "zarr.core.sync", "zarr.core.buffer"]
# And what its kernels import so, on the threads that compute chunks.
KERNELS = ["mahotas", "mahotas.features", "mahotas.features.lbp", "mahotas._histogram"]

IMREAD_TASKS = f"""
    import importlib
    import json
    from pathlib import Path

    from daskbio import TaskGenerator
    from daskbio.io import imread

    FOLDER = Path(__file__).parent

    @TaskGenerator
    def read(i):
        importlib.import_module({LAZY!r}[i % {len(LAZY)}])
        return imread(str(FOLDER / f"img{{i}}.tif"))

    @TaskGenerator
    def sums(images):
        found = [int(x.sum()) for x in images]
        (FOLDER / "sums.json").write_text(json.dumps(found))
        return found

    result = sums([read(i) for i in range(12)])
"""
EXPECTED = [(i + 1) * 64 * 64 for i in range(12)]


@pytest.fixture
def imread_pipeline(tmp_path):
    for i in range(12):
        # No image equal to Zarr's fill value (0), whose chunks Zarr does not store.
        tifffile.imwrite(tmp_path / f"img{i}.tif", np.full((64, 64), i + 1, dtype=np.uint16))
    return write_pipeline(tmp_path, IMREAD_TASKS)


def test_ten_fresh_runs_of_twelve_imread_tasks_on_six_threads_all_succeed(imread_pipeline):
    started = time.monotonic()
    for run in range(10):
        cache = imread_pipeline.parent / f"cache{run}"
        done = daskbio(
            "run", imread_pipeline, "--scheduler", "threads", "--workers", "6", "--cache", cache
        )
        assert done.returncode == 0, f"run {run}:\n{done.stderr}"
        sums = imread_pipeline.with_name("sums.json")
        assert json.loads(sums.read_text()) == EXPECTED
        sums.unlink()
    assert time.monotonic() - started < 60


@pytest.mark.parametrize("modules", [LAZY, KERNELS], ids=["zarr", "mahotas"])
def test_threads_importing_submodules_at_once_succeed_after_preload(modules):
    script = textwrap.dedent(f"""
        import importlib, sys, threading
        import numpy  # as a pipeline that handles arrays has
        from daskbio._imports import preload

        preload()
        barrier = threading.Barrier({len(modules)})
        errors = []

        def first_import(name):
            barrier.wait()
            try:
                importlib.import_module(name)
            except BaseException as e:
                errors.append(repr(e))

        threads = [threading.Thread(target=first_import, args=(n,)) for n in {modules!r}]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(errors)
    """)
    for _ in range(3):
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
        )
        assert (done.returncode, done.stdout) == (0, "[]\n"), done.stderr


def imported(names: tuple[str, ...]) -> list[str]:
    return [name for name in names if name in sys.modules]


def test_preload_imports_the_array_stack_for_threads_only_in_a_process_with_arrays():
    script = textwrap.dedent("""
        import sys
        from daskbio._imports import ARRAY_STACK, preload

        preload("threads")
        print([m for m in ARRAY_STACK if m in sys.modules])  # plain Python values only
        import numpy
        preload("sync")
        preload("processes")
        print([m for m in ARRAY_STACK if m in sys.modules])
        preload("threads")
        print([m for m in ARRAY_STACK if m in sys.modules] == list(ARRAY_STACK))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.stdout.splitlines() == ["[]", "['numpy']", "True"], done.stderr


def test_preload_on_a_distributed_client_imports_on_every_worker_later_ones_too():
    with (
        LocalCluster(n_workers=1, threads_per_worker=6, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        preload(client)
        assert list(client.run(imported, ARRAY_STACK).values()) == [list(ARRAY_STACK)]
        cluster.scale(2)
        client.wait_for_workers(2)
        assert list(client.run(imported, ARRAY_STACK).values()) == [list(ARRAY_STACK)] * 2


def test_import_daskbio_gives_its_submodules_on_first_use_as_the_readme_writes_them():
    code = textwrap.dedent(
        """
        import sys

        import daskbio

        lazy = ("dask.array", "mahotas", "daskbio.kernels", "daskbio.io", "daskbio.datasets")
        assert not any(name in sys.modules for name in lazy), sorted(sys.modules)
        import numpy as np

        image = np.zeros((32, 32), np.uint8)
        image[4:10, 4:10] = image[20:28, 16:30] = 200
        labeled, n = daskbio.kernels.label(image > daskbio.kernels.otsu(image))
        assert int(n) == 2, n
        assert callable(daskbio.io.imread) and callable(daskbio.datasets.nuclei)
        assert {"kernels", "io", "datasets"} <= set(dir(daskbio))
        try:
            daskbio.kernel
        except AttributeError as e:
            assert "no attribute 'kernel'" in str(e)
        else:
            raise AssertionError("daskbio.kernel exists")
        print("ok")
        """
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.stdout.strip() == "ok", run.stderr


#: What a fully cached run must not import (as benchmarks/bench_pipeline.py checks).
HEAVY = ("dask.array", "distributed", "zarr", "rich", "daskbio.monitor")
RUN_THEN_IMPORTED = f"""
import sys
from daskbio.cli import main
try:
    main(["run", "pipeline.py"])
except SystemExit:
    pass
print(",".join(m for m in {HEAVY!r} if m in sys.modules) or "none")
"""


def test_a_fully_cached_run_imports_no_progress_display_nor_the_array_stack(tmp_path):
    write_pipeline(
        tmp_path,
        "from daskbio import TaskGenerator\n\n@TaskGenerator\ndef inc(x):\n    return x + 1\n\n"
        "results = [inc(i) for i in range(5)]\n",
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", RUN_THEN_IMPORTED],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        for _ in range(2)
    ]
    # The first run computes, with plain progress lines (not a terminal): no rich.
    assert runs[0].stdout.splitlines()[-1] == "daskbio.monitor", runs[0].stderr
    assert "progress " in runs[0].stderr
    assert runs[1].stdout.splitlines()[-1] == "none", runs[1].stderr
