"""``daskbio submit --array``: job-array scripts for SLURM and PBS, option errors, dry runs,
waiting for an array (against stand-in batch commands), and whole runs on the real one-node
SLURM of ``.ci/start-slurm`` (tests marked ``slurm``)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from daskbio.jobarray import Element, JobArray, Progress, _queued, array_script
from tests.conftest import DASKBIO, daskbio, write_pipeline
from tests.test_submit import (
    PBS_PRO,
    SQUARES,
    jobs,
    no_job_left,  # noqa: F401 (the fixture slurm_test asks for)
    pbs_directives,
    slurm_test,
    submit,
)

ONE_CORE = ["--cores", "1", "--memory", "1GiB", "--walltime", "00:10:00", "--allow-local-cache"]

FAILING = """
    from daskbio import TaskGenerator

    @TaskGenerator
    def square(i):
        if i == 3:
            raise ValueError("three is unlucky")
        return i * i

    squares = [square(i) for i in range(8)]
"""


def stand_in(folder: Path, name: str, body: str) -> None:
    """A stand-in for a batch command: a shell script that logs its arguments to
    ``calls`` and then runs ``body``."""
    script = folder / name
    script.write_text(f'#!/usr/bin/env bash\necho "{name} $*" >>"{folder}/calls"\n{body}\n')
    script.chmod(0o755)


@pytest.fixture
def batch(tmp_path, monkeypatch) -> Path:
    """A folder of stand-in batch commands, first on PATH: ``sbatch`` runs each element of
    the array it is given here, one after the other, and says it is job 7; ``squeue`` then
    finds nothing left. Their calls are logged in ``calls``."""
    folder = tmp_path / "bin"
    folder.mkdir()
    stand_in(
        folder,
        "sbatch",
        textwrap.dedent(f"""\
            cat >"{folder}/script"
            n=$(sed -n 's/^#SBATCH --array=1-//p' "{folder}/script")
            for i in $(seq 1 "$n"); do
                SLURM_ARRAY_JOB_ID=7 SLURM_ARRAY_TASK_ID=$i bash "{folder}/script" \\
                    >"{folder}/element-$i.log" 2>&1
            done
            echo 7"""),
    )
    for name in ("squeue", "scancel", "qsub", "qstat", "qdel"):
        stand_in(folder, name, "")
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return folder


def calls(batch: Path) -> list[str]:
    log = batch / "calls"
    return log.read_text().splitlines() if log.exists() else []


# --- scripts --------------------------------------------------------------------------------


def test_slurm_array_script_runs_daskbio_run_in_each_element_with_the_job_options(tmp_path, batch):
    pipeline = write_pipeline(tmp_path, SQUARES)
    out = submit(
        pipeline, "--cluster", "slurm", "--array", "3", "--dry-run", "--allow-local-cache",
        "--cores", "4", "--memory", "6GiB", "--walltime", "01:30:00", "--partition", "short",
        "--account", "lab42", "--job-extra", "--exclusive", "--keep-going",
        "--python", "/opt/env/bin/python", cwd=tmp_path, check=True,
    ).stdout  # fmt: skip
    directives = [line for line in out.splitlines() if line.startswith("#SBATCH")]
    logs = tmp_path / "pipeline.jobs"
    assert directives == [
        "#SBATCH -J daskbio-pipeline",
        "#SBATCH -p short",
        "#SBATCH -A lab42",
        "#SBATCH -n 1",
        "#SBATCH --cpus-per-task=4",
        "#SBATCH --mem=6G",
        "#SBATCH -t 01:30:00",
        "#SBATCH --exclusive",
        "#SBATCH --array=1-3",
        f"#SBATCH -o {logs}/daskbio-pipeline-%A_%a.log",
    ]
    command = (
        f"cd {tmp_path} && /opt/env/bin/python -m daskbio run {pipeline} --cache "
        f"{tmp_path / 'pipeline.daskbio'} --scheduler threads --workers 4 --keep-going"
    )
    assert command in out.splitlines()
    status = f'{logs}/"daskbio-pipeline-${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}.exit"'
    assert f"echo $status >{status}" in out
    assert "Plan: 17 Tasks, 0 cached, 17 to run on an array of 3 jobs (slurm)" in out
    assert calls(batch) == []  # nothing was submitted


def test_pbs_array_script_is_what_pbs_professional_accepts(tmp_path, batch):
    pipeline = write_pipeline(tmp_path, SQUARES)
    out = submit(
        pipeline, "--cluster", "pbs", "--array", "2", "--dry-run", "--allow-local-cache",
        "--cores", "4", "--memory", "8GiB", "--queue", "workq", "--account", "lab42",
        "--walltime", "02:30:00", check=True,
    ).stdout  # fmt: skip
    grammar = {**PBS_PRO, "-J": r"1-\d+", "-j": "oe", "-o": r"/\S+-\^array_index\^\.log"}
    lines = pbs_directives(out, grammar)
    assert "#PBS -J 1-2" in lines and "#PBS -j oe" in lines
    assert "#PBS -l select=1:ncpus=4:mem=8192MB" in lines
    assert "#PBS -l walltime=02:30:00" in lines and "#PBS -q workq" in lines
    assert f"#PBS -o {tmp_path}/pipeline.jobs/daskbio-pipeline-^array_index^.log" in lines
    assert not any(line.startswith("#PBS -e") for line in lines)
    assert "--scheduler threads --workers 4" in out
    assert '"daskbio-pipeline-${PBS_ARRAY_ID%%\\[*}_${PBS_ARRAY_INDEX}.exit"' in out
    assert calls(batch) == []


def test_the_elements_cache_is_the_one_daskbio_run_would_use_on_the_submitting_machine(
    tmp_path, monkeypatch
):
    import dask

    pipeline = write_pipeline(tmp_path, SQUARES)
    settings = {"cores": 1, "memory": "1GiB"}
    shared = tmp_path / "shared"
    with dask.config.set({"daskbio.cache": str(shared)}):
        script = array_script("slurm", pipeline, 2, **settings)
    assert f"--cache {shared} " in script
    monkeypatch.chdir(tmp_path)
    script = array_script("slurm", "pipeline.py", 2, cache="relative.daskbio", **settings)
    assert f"run {pipeline} --cache {tmp_path / 'relative.daskbio'} " in script
    url = "redis://127.0.0.1:6379/0?payloads=/shared/payloads"
    assert f"--cache '{url}' " in array_script("slurm", pipeline, 2, cache=url, **settings)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--array", "2", "--jobs", "2"], "give --array or --jobs/--adapt, not both"),
        (["--array", "2", "--adapt", "1:2"], "give --array or --jobs/--adapt, not both"),
        (["--array", "0"], "0 is not in the range x>=1"),
        (["--array", "2", "--processes", "2"], "--processes is about Dask workers"),
        (["--array", "2", "--listen", "0.0.0.0"], "--listen is about Dask workers"),
    ],
)
def test_array_options_that_mean_nothing_to_an_array_are_usage_errors(
    tmp_path, batch, args, message
):
    pipeline = write_pipeline(tmp_path, SQUARES)
    out = submit(pipeline, "--cluster", "slurm", *ONE_CORE, *args)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr
    assert calls(batch) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cluster", "local", "--array", "2"], "--array needs --cluster slurm or pbs"),
        (["--cluster", "pbs", "--array", "1"], "a pbs job array needs at least 2 elements"),
        (["--cluster", "slurm", "--array", "2", "--resource-spec", "x"], "for PBS only"),
    ],
)
def test_array_settings_a_batch_system_cannot_take_are_one_line_errors(
    tmp_path, batch, args, message
):
    pipeline = write_pipeline(tmp_path, SQUARES)
    out = submit(pipeline, *ONE_CORE, *args)
    assert out.returncode != 0
    assert message in out.stderr and "Traceback" not in out.stderr
    assert "--cores and --memory" not in out.stderr
    assert calls(batch) == []


def test_an_array_without_cores_and_memory_says_where_to_give_them(tmp_path, batch):
    pipeline = write_pipeline(tmp_path, SQUARES)
    out = submit(pipeline, "--cluster", "slurm", "--array", "2", "--allow-local-cache")
    assert out.returncode == 1
    assert "give --cores and --memory" in out.stderr and "Traceback" not in out.stderr
    assert calls(batch) == []


# --- waiting for an array (stand-in batch commands) -----------------------------------------


def test_wait_returns_each_elements_exit_status_and_none_for_one_killed(tmp_path, batch):
    array = JobArray("slurm", "7", 3, "daskbio-pipeline", tmp_path)
    (tmp_path / "daskbio-pipeline-7_1.exit").write_text("0\n")
    (tmp_path / "daskbio-pipeline-7_2.exit").write_text("1\n")
    seen = []
    elements = array.wait(on_progress=seen.append, poll=0, grace=0)
    assert elements == [
        Element(1, 0, tmp_path / "daskbio-pipeline-7_1.log"),
        Element(2, 1, tmp_path / "daskbio-pipeline-7_2.log"),
        Element(3, None, tmp_path / "daskbio-pipeline-7_3.log"),
    ]
    assert [e.ok for e in elements] == [True, False, False]
    assert seen == [Progress(pending=0, running=0, done=1, failed=1)]
    assert calls(batch) == ["squeue -h -r -j 7 -o %T"]


def test_wait_reports_progress_until_no_element_is_left_in_the_queue(tmp_path, batch):
    # squeue's answers, one per call: both pending, one started, one finished, all gone.
    exit_file = tmp_path / "daskbio-pipeline-7_{}.exit"
    stand_in(
        batch,
        "squeue",
        textwrap.dedent(f"""\
            n=$(grep -c squeue "{batch}/calls")
            case $n in
                1) printf 'PENDING\\nPENDING\\n' ;;
                2) printf 'RUNNING\\nPENDING\\n' ;;
                3) echo 0 >{str(exit_file).format(1)}; printf 'RUNNING\\n' ;;
                *) echo 3 >{str(exit_file).format(2)} ;;
            esac"""),
    )
    seen = []
    elements = JobArray("slurm", "7", 2, "daskbio-pipeline", tmp_path).wait(seen.append, poll=0)
    assert seen == [
        Progress(pending=2, running=0, done=0, failed=0),
        Progress(pending=1, running=1, done=0, failed=0),
        Progress(pending=0, running=1, done=1, failed=0),
        Progress(pending=0, running=0, done=1, failed=1),
    ]
    assert [e.exit_code for e in elements] == [0, 3]


def test_pbs_queue_states_are_read_from_qstat_subjob_lines(batch):
    stand_in(
        batch,
        "qstat",
        textwrap.dedent("""\
            cat <<'EOF'
            Job id            Name             User              Time Use S Queue
            ----------------  ---------------- ----------------  -------- - -----
            1234[].pbs01      daskbio-pipeline alice                    0 B workq
            1234[1].pbs01     daskbio-pipeline alice             00:00:05 R workq
            1234[2].pbs01     daskbio-pipeline alice                    0 Q workq
            1234[3].pbs01     daskbio-pipeline alice             00:01:00 X workq
            EOF"""),
    )
    assert _queued("pbs", "1234[].pbs01") == ["running", "pending"]
    stand_in(batch, "qstat", 'echo "qstat: Unknown Job Id 1234[].pbs01" >&2; exit 153')
    assert _queued("pbs", "1234[].pbs01") == []


def test_submit_exits_1_and_names_each_failed_element_and_its_log(tmp_path, batch):
    pipeline = write_pipeline(tmp_path, FAILING)
    out = submit(pipeline, "--cluster", "slurm", "--array", "2", *ONE_CORE)
    assert out.returncode == 1, out.stderr
    logs = tmp_path / "pipeline.jobs"
    assert "Submitted job array 7: 2 x 'daskbio run" in out.stdout
    assert f"Logs: {logs}/daskbio-pipeline-7_1.log to {logs}/daskbio-pipeline-7_2.log" in out.stdout
    assert "Job array 7: 0 of 2 elements done, 2 failed" in out.stdout
    for i in (1, 2):
        assert f"element {i} exited with status 1; log: {logs}/daskbio-pipeline-7_{i}.log" in (
            out.stderr
        )
    assert "three is unlucky" in (batch / "element-1.log").read_text()


# --- on the real SLURM ------------------------------------------------------------------------


@slurm_test
def test_submit_array_2_on_slurm_completes_the_example_with_no_job_left(example, tmp_path):
    cache = tmp_path / "cache"
    out = submit(example, "--cluster", "slurm", "--array", "2", *ONE_CORE, "--cache", cache)
    assert out.returncode == 0, out.stdout + out.stderr
    job = re.search(r"Submitted job array (\d+)", out.stdout).group(1)
    assert f"Job array {job}: 2 of 2 elements done, 0 failed" in out.stdout
    report = json.loads(daskbio("status", example, "--cache", cache, "--json").stdout)
    assert all(r["done"] == r["total"] > 0 and r["failed"] == 0 for r in report.values())
    logs = sorted(example.with_suffix(".jobs").glob("daskbio-pipeline-*_*.log"))
    assert len(logs) == 2 and all("Cache: " + str(cache) in log.read_text() for log in logs)
    assert not any(line.startswith(f"{job}_") for line in jobs())


@slurm_test
def test_keep_going_reaches_every_element_whose_run_fails_only_for_the_failing_task(tmp_path):
    pipeline = write_pipeline(tmp_path, FAILING)
    args = [pipeline, "--cluster", "slurm", "--array", "2", *ONE_CORE, "--keep-going"]
    out = submit(*args)
    assert out.returncode == 1, out.stdout + out.stderr
    assert re.search(r"Job array \d+: 0 of 2 elements done, 2 failed", out.stdout)
    # Status 1, a failed Task; an option 'daskbio run' did not take would be a usage error, 2.
    assert "element 1 exited with status 1" in out.stderr
    assert "element 2 exited with status 1" in out.stderr
    report = json.loads(daskbio("status", pipeline, "--json").stdout)
    assert report["square"]["done"] == 7 and report["square"]["failed"] == 1


@slurm_test
def test_ctrl_c_cancels_the_array(tmp_path):
    pipeline = write_pipeline(tmp_path, SQUARES)
    child = subprocess.Popen(
        [*DASKBIO, "submit", pipeline, "--cluster", "slurm", "--array", "2", *ONE_CORE],
        env={**os.environ, "SQUARE_SECONDS": "30"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while sum("daskbio-pipeline RUNNING" in line for line in jobs()) < 2:
        assert time.monotonic() < deadline, "the elements never started"
        time.sleep(0.2)
    child.send_signal(signal.SIGINT)
    stdout, stderr = child.communicate(timeout=60)
    assert child.returncode == 130, stdout + stderr
    assert re.search(r"job array \d+ cancelled", stderr)
