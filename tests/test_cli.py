"""The ``daskbio`` command, run for real in subprocesses on pipelines written to disk."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import DASKBIO, daskbio, write_pipeline

from daskbio.cache import FileSystemStore
from daskbio.cli import main

CHAIN = """
from daskbio import TaskGenerator

@TaskGenerator
def source(i):
    return i

@TaskGenerator
def double(x):
    return 2 * x

@TaskGenerator
def combine(xs):
    return sum(xs)

@TaskGenerator
def unrelated(x):
    return -x

sources = [source(i) for i in range(4)]
doubled = [double(s) for s in sources]
result = combine(doubled)
other = unrelated(1)
"""


def status(file, *args):
    return json.loads(daskbio("status", file, "--json", *args, check=True).stdout)


@pytest.fixture
def chain(tmp_path):
    file = write_pipeline(tmp_path, CHAIN)
    daskbio("run", file, check=True)
    return file


def entries(file):
    return FileSystemStore(file.with_name("pipeline.daskbio"))


def test_run_then_rerun_reports_everything_cached(tmp_path):
    file = write_pipeline(tmp_path, CHAIN)
    first = daskbio("run", file, check=True)
    assert "ran" in first.stdout and "10" in first.stdout
    second = daskbio("run", file, check=True)
    assert "All 10 Tasks were cached" in second.stdout
    assert (tmp_path / "pipeline.daskbio").is_dir()


HEAVY = ("numpy", "dask", "distributed", "zarr")


@pytest.mark.parametrize("command", ["run", "status"])
def test_cached_runs_and_status_import_no_heavy_module(tmp_path, command):
    file = write_pipeline(tmp_path, CHAIN)
    daskbio("run", file, check=True)
    # dask-jobqueue leaves this file on every machine it ran on; it holds no daskbio key.
    config = tmp_path / "dask-config"
    config.mkdir()
    (config / "jobqueue.yaml").write_text("jobqueue:\n  slurm:\n    cores: 4\n")
    script = (
        "import sys\n"
        "from daskbio.cli import main\n"
        f"sys.argv = ['daskbio', {command!r}, {str(file)!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print('heavy:', sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}
    out = subprocess.run(
        [sys.executable, "-c", script], env={**env, "DASK_CONFIG": str(config)},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "heavy: []" in out.stdout, out.stdout


def test_a_daskbio_key_in_a_dask_config_file_is_read(tmp_path):
    file = write_pipeline(tmp_path, CHAIN)
    config = tmp_path / "dask-config"
    config.mkdir()
    (config / "daskbio.yaml").write_text(f"daskbio:\n  cache: {tmp_path / 'elsewhere'}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}
    daskbio("run", file, env={**env, "DASK_CONFIG": str(config)}, check=True)
    assert (tmp_path / "elsewhere").is_dir() and not (tmp_path / "pipeline.daskbio").exists()


def test_status_json_counts_per_function(chain):
    report = status(chain)
    assert report["double"] == {
        "total": 4,
        "done": 4,
        "failed": 0,
        "running": 0,
        "waiting": 0,
        "stale": 0,
    }
    assert report["combine"]["done"] == 1


def test_status_reports_stale_results_after_a_code_change(chain):
    chain.write_text(chain.read_text().replace("return 2 * x", "return 3 * x"))
    report = status(chain)
    assert report["double"]["stale"] == 4
    assert report["source"]["stale"] == 0
    # Code is not in the hash: nothing recomputes by itself.
    assert "All 10 Tasks were cached" in daskbio("run", chain, check=True).stdout


def test_status_counts_failed_tasks_and_run_names_the_failure(tmp_path):
    file = write_pipeline(
        tmp_path,
        CHAIN + "\n@TaskGenerator\ndef broken(x):\n    return 1 / 0\n\nbad = broken(result)\n",
    )
    out = daskbio("run", file, "--scheduler", "sync")
    assert out.returncode == 1
    assert "broken" in out.stderr and "ZeroDivisionError" in out.stderr
    report = status(file)
    assert report["broken"]["failed"] == 1
    assert report["combine"]["done"] == 1


def test_invalidate_by_name_removes_exactly_the_downstream_set(chain):
    store = entries(chain)
    before = set(store.keys())
    out = daskbio("invalidate", "double", chain, check=True)
    removed = before - set(store.keys())
    assert len(removed) == 5  # 4 double + combine
    assert "Removed 5 entries" in out.stdout
    report = status(chain)
    assert report["double"]["waiting"] == 4 and report["combine"]["waiting"] == 1
    assert report["source"]["done"] == 4 and report["unrelated"]["done"] == 1


def test_invalidate_also_removes_partly_written_arrays(chain):
    store = FileSystemStore(chain.with_suffix(".daskbio"))
    partial = "ef" * 16
    import numpy as np

    # A group as a killed write leaves it: chunks, no entry.
    store.begin_array(partial, (4,), np.dtype("f8"), (2,), "killed")
    store.write_chunk(partial, (0,), np.ones(2), "killed")
    assert store.partial() == {partial}
    out = daskbio("invalidate", "combine", chain, check=True).stdout
    assert f"removed a partly written array {partial}" in out
    assert store.partial() == set()


def test_invalidate_by_hash_prefix_and_dry_run(chain):
    store = entries(chain)
    keys = set(store.keys())
    target = store.metadata(next(k for k in keys if store.metadata(k)["name"] == "source"))["key"]
    dry = daskbio("invalidate", target[:10], "-f", chain, "--dry-run", check=True)
    assert "would remove" in dry.stdout and set(store.keys()) == keys
    daskbio("invalidate", target[:10], "-f", chain, check=True)
    assert len(keys - set(store.keys())) == 3  # source, its double, combine


@pytest.mark.parametrize(
    "args, message",
    [
        (["invalidate", "nosuchfunction"], "no Task named 'nosuchfunction'"),
        (["invalidate", "ffffffffffff"], "no Task with a hash starting"),
        (["invalidate", ""], "no Task"),
    ],
)
def test_invalidate_errors_are_one_line_and_delete_nothing(chain, args, message):
    store = entries(chain)
    keys = set(store.keys())
    out = daskbio(*args, "-f", chain)
    assert out.returncode == 1
    assert message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert set(store.keys()) == keys


def test_an_ambiguous_hash_prefix_is_refused(chain):
    store = entries(chain)
    keys = sorted(store.keys())
    prefixes = [k[:1] for k in keys]
    common = max(set(prefixes), key=prefixes.count)
    assert prefixes.count(common) > 1, "10 keys over 16 digits always share a first digit"
    out = daskbio("invalidate", common, "-f", chain)
    assert out.returncode == 1 and "ambiguous" in out.stderr
    assert sorted(store.keys()) == keys


@pytest.mark.parametrize("command", ["run", "status", "check", "cleanup", "shell", "sleep-until"])
def test_a_missing_file_is_a_one_line_error(tmp_path, command):
    out = daskbio(command, tmp_path / "nope.py", stdin=subprocess.DEVNULL)
    assert out.returncode == 1
    assert "not found" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_missing_default_file_for_invalidate(tmp_path):
    out = daskbio("invalidate", "double", cwd=tmp_path)
    assert out.returncode == 1 and "pipeline.py" in out.stderr


def test_cleanup_removes_only_what_the_pipeline_no_longer_reaches(chain):
    store = entries(chain)
    chain.write_text(chain.read_text().replace("other = unrelated(1)", ""))
    dry = daskbio("cleanup", chain, "--dry-run", check=True)
    assert "Would free" in dry.stdout and len(store.keys()) == 10
    out = daskbio("cleanup", chain, check=True)
    assert "Freed" in out.stdout and "1 entries" in out.stdout
    assert len(store.keys()) == 9
    assert int(out.stdout.split("Freed ")[1].split()[0]) > 0


def test_check_exit_status_follows_completion(tmp_path):
    file = write_pipeline(tmp_path, CHAIN)
    assert daskbio("check", file).returncode == 1
    daskbio("run", file, check=True)
    assert daskbio("check", file).returncode == 0


def test_sleep_until_returns_once_another_run_finishes(tmp_path):
    file = write_pipeline(tmp_path, CHAIN)
    waiter = subprocess.Popen(
        [*DASKBIO, "sleep-until", file, "--interval", "0.2"], stdout=subprocess.PIPE, text=True
    )
    time.sleep(1.0)
    assert waiter.poll() is None
    daskbio("run", file, check=True)
    assert waiter.wait(timeout=60) == 0
    assert "are done" in waiter.stdout.read()


def test_shell_has_the_pipeline_names_and_value(chain):
    out = daskbio("shell", chain, input="print('RESULT', value(result))\n")
    assert out.returncode == 0
    assert "RESULT 12" in out.stdout


def test_value_mid_file_is_a_barrier_for_status_but_computes_in_run(tmp_path):
    source = (
        CHAIN
        + "\nfrom daskbio import value\nn = value(result)\nextra = [double(i) for i in range(n)]\n"
    )
    file = write_pipeline(tmp_path, source)
    out = daskbio("status", file, "--json")
    assert out.returncode == 0 and "value()" in out.stderr
    daskbio("run", file, check=True)
    report = status(file)
    assert report["double"]["total"] == 4 + 12  # double(source(i)) is not double(i)
    assert daskbio("check", file).returncode == 0


@pytest.mark.parametrize("command", main.list_commands(None))
def test_every_command_has_help_with_an_example(command):
    out = daskbio(command, "--help", check=True)
    assert "Example" in out.stdout


def test_run_local_cluster_prints_the_dashboard_before_work(tmp_path):
    file = write_pipeline(tmp_path, CHAIN)
    out = daskbio("run", file, "--scheduler", "local", "--workers", "1", check=True)
    assert "Dask dashboard: http" in out.stdout
    assert out.stdout.index("dashboard") < out.stdout.index("total")
    assert daskbio("check", file).returncode == 0


SLOW = """
import time
from daskbio import TaskGenerator

@TaskGenerator
def slow(i):
    time.sleep(0.4)
    return i

results = [slow(i) for i in range(20)]
"""


def test_ctrl_c_keeps_every_result_completed_so_far(tmp_path):
    file = write_pipeline(tmp_path, SLOW)
    proc = subprocess.Popen(
        [*DASKBIO, "run", file, "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(3.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "kept in the cache" in err
    done = status(file)["slow"]["done"]
    assert 0 < done < 20
    rerun = daskbio("run", file, "--workers", "2", check=True)
    assert str(20 - done) in rerun.stdout
    assert status(file)["slow"]["done"] == 20


NESTED = """
import dask.array as da
import mahotas as mh
import numpy as np
from daskbio import TaskGenerator

@TaskGenerator
def slow(i):
    open(f"started-{i}", "w").close()
    # mahotas on the threads of a nested dask computation, for many seconds
    x = da.from_array(np.zeros((2000, 2000)), chunks=1000)
    for _ in range(200):
        x.map_blocks(mh.gaussian_filter, 8.0, dtype=float).sum().compute()
    return i

results = [slow(i) for i in range(4)]
"""


def test_a_second_ctrl_c_abandons_the_running_tasks_without_recording_failures(tmp_path):
    file = write_pipeline(tmp_path, NESTED)
    proc = subprocess.Popen(
        [*DASKBIO, "run", file, "--workers", "2", "--quiet"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("started-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(list(tmp_path.glob("started-*"))) == 2, "the Tasks did not start"
    proc.send_signal(signal.SIGINT)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)  # at once: not after the Tasks' minutes
    assert proc.returncode == 130, err
    assert "Ctrl-C again to abandon them" in err
    assert "the Tasks still running were abandoned and leave nothing" in err
    assert "terminate called" not in err
    # A normal exit would have shut Dask's pools down under the running Tasks, which
    # then failed with "cannot schedule new futures after shutdown", recorded as theirs.
    assert status(file)["slow"] == {**status(file)["slow"], "done": 0, "failed": 0}


def test_run_on_a_scheduler_address_uses_that_cluster(tmp_path):
    distributed = pytest.importorskip("distributed")
    file = write_pipeline(tmp_path, CHAIN)
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        out = daskbio("run", file, "--scheduler", cluster.scheduler_address, check=True)
        assert "Dask dashboard" in out.stdout
        prefixes = client.run_on_scheduler(lambda dask_scheduler: set(dask_scheduler.task_prefixes))
    assert {"source", "double", "combine", "unrelated"} <= prefixes
    assert daskbio("check", file).returncode == 0


def test_a_file_that_makes_no_task_is_one_error_line_not_all_0_cached(tmp_path):
    no_task = "def f(x):\n    return x\n\n\nresults = [f(i) for i in range(3)]\n"
    file = write_pipeline(tmp_path, no_task)
    for command in ("run", "status", "check"):
        result = daskbio(command, file)
        assert result.returncode == 1
        assert result.stderr.splitlines() == [
            f"Error: no Task found in {file}: is a function missing @TaskGenerator?"
        ], result.stderr
        assert "All 0 Tasks" not in result.stdout


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("misspelt scheduler", "--scheduler 'threds' is none of sync, threads, processes or"),
        ("misspelt scheduler", "(did you mean 'threads'?)"),
        ("unreachable scheduler", "cannot reach the Dask scheduler at tcp://127.0.0.1:"),
        ("cache is a file", "it is a file, not a folder"),
    ],
)
def test_command_line_mistakes_are_one_error_line_and_exit_1(chain, case, message):
    options = {
        "misspelt scheduler": ["--scheduler", "threds"],
        "unreachable scheduler": ["--scheduler", f"tcp://127.0.0.1:{_free_port()}"],
        "cache is a file": ["--cache", str(chain)],
    }[case]
    result = daskbio("run", chain, *options)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert message in lines[0]


def test_invalidate_takes_file_as_an_argument_or_as_dash_f_but_not_two_different(chain):
    dry = daskbio("invalidate", "combine", chain, "--dry-run", check=True).stdout
    assert dry == daskbio("invalidate", "combine", "-f", chain, "--dry-run", check=True).stdout
    assert "Would remove 1 entries" in dry
    clash = daskbio("invalidate", "combine", chain, "-f", chain.with_name("other.py"))
    assert clash.returncode == 2
    assert "two pipeline files given" in clash.stderr
