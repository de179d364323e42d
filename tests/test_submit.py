"""``daskbio submit`` and ``daskbio.cluster``: job scripts, safety checks, and whole runs on
the real one-node SLURM that ``.ci/start-slurm`` starts (tests marked ``slurm``)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from daskbio.cache import FileSystemStore
from tests.conftest import DASKBIO, daskbio, write_pipeline

# The scheduler listens on localhost, where the one-node cluster's workers find it; set
# through Dask's config, as a cluster user would in jobqueue.yaml.
JOBQUEUE_ENV = {"DASK_JOBQUEUE__SLURM__SCHEDULER_OPTIONS": '{"host": "127.0.0.1"}'}
SMALL_JOBS = ["--cores", "1", "--memory", "1GiB", "--walltime", "00:10:00"]

SQUARES = """
    import os
    import time

    from daskbio import TaskGenerator

    @TaskGenerator
    def square(i):
        time.sleep(float(os.environ.get("SQUARE_SECONDS", "0")))
        return i * i

    @TaskGenerator
    def total(xs):
        return sum(xs)

    result = total([square(i) for i in range(16)])
"""


def _slurm_problem() -> str | None:
    if shutil.which("sbatch") is None:
        return "SLURM is not installed (no sbatch); .ci/run installs and starts it"
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10
        )
    except subprocess.TimeoutExpired:
        return "sinfo did not answer in 10 s"
    if out.returncode != 0 or not re.search(r"idle|mix|alloc", out.stdout):
        last = (out.stderr.strip().splitlines() or [""])[-1]
        return f"no usable SLURM node (start it with .ci/start-slurm): {last}"
    return None


SLURM_PROBLEM = _slurm_problem()
# .ci/run sets this: there, a SLURM that does not work fails the tests instead of skipping them.
SLURM_REQUIRED = os.environ.get("DASKBIO_REQUIRE_SLURM") == "1"


def jobs() -> list[str]:
    """squeue's jobs as "id name state" lines; none where there is no SLURM."""
    if SLURM_PROBLEM is not None:
        return []
    out = subprocess.run(["squeue", "-h", "-o", "%i %j %T"], capture_output=True, text=True)
    return out.stdout.split("\n")[:-1]


def running_workers() -> list[str]:
    """The job ids of the dask workers that SLURM runs now."""
    return [line.split()[0] for line in jobs() if "dask-worker" in line and "RUNNING" in line]


def start_submit(pipeline: Path, seconds: str) -> subprocess.Popen:
    """``daskbio submit`` of ``pipeline`` on two SLURM jobs, in the background, with each
    square taking ``seconds``."""
    return subprocess.Popen(
        [*DASKBIO, "submit", pipeline, "--cluster", "slurm", "--jobs", "2", *SMALL_JOBS,
         "--allow-local-cache"],
        env={**os.environ, **JOBQUEUE_ENV, "SQUARE_SECONDS": seconds},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@pytest.fixture
def no_job_left():
    """Every slurm test ends with no job of it left in squeue."""
    if SLURM_PROBLEM is not None:
        pytest.fail(f"DASKBIO_REQUIRE_SLURM=1, but {SLURM_PROBLEM}")
    before = {line.split()[0] for line in jobs()}
    yield
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        left = [line for line in jobs() if line.split()[0] not in before]
        if not left:
            return
        time.sleep(0.5)
    subprocess.run(["scancel", *(line.split()[0] for line in left)])
    pytest.fail(f"jobs left in squeue after the test: {left}")


def submit(*args, env=None, **kw) -> subprocess.CompletedProcess:
    return daskbio("submit", *args, env={**os.environ, **JOBQUEUE_ENV, **(env or {})}, **kw)


# --- job scripts and checks (no SLURM needed) --------------------------------------------------


def test_dry_run_prints_the_job_script_from_config_and_options_and_the_plan(tmp_path):
    pipeline = write_pipeline(tmp_path, SQUARES)
    daskbio("run", pipeline, check=True)
    write_pipeline(tmp_path, SQUARES.replace("range(16)", "range(20)"))
    before = jobs()
    out = submit(
        pipeline,
        "--cluster",
        "slurm",
        "--dry-run",
        "--allow-local-cache",
        "--cores",
        "2",
        "--memory",
        "3GiB",
        "--partition",
        "short",
        "--account",
        "lab42",
        "--job-extra",
        "--gres=gpu:1",
        "--job-extra",
        "--exclusive",
        "--adapt",
        "1:4",
        env={"DASK_JOBQUEUE__SLURM__WALLTIME": "00:07:00"},
        check=True,
    ).stdout
    directives = [line for line in out.splitlines() if line.startswith("#SBATCH")]
    assert "#SBATCH -p short" in directives and "#SBATCH -A lab42" in directives
    assert "#SBATCH --cpus-per-task=2" in directives and "#SBATCH --mem=3G" in directives
    assert "#SBATCH -t 00:07:00" in directives  # from the Dask config
    assert directives[-2:] == ["#SBATCH --gres=gpu:1", "#SBATCH --exclusive"]
    assert "Plan: 21 Tasks, 16 cached, 5 to run on 1 to 4 jobs (slurm)" in out
    assert jobs() == before  # nothing was submitted
    overridden = submit(
        pipeline, "--cluster", "slurm", "--dry-run", "--allow-local-cache", *SMALL_JOBS,
        env={"DASK_JOBQUEUE__SLURM__WALLTIME": "00:07:00"},
    ).stdout  # fmt: skip
    assert "#SBATCH -t 00:10:00" in overridden


PBS_PRO = {
    "-N": r"[A-Za-z][\w.-]{0,235}",
    "-q": r"[\w.@-]+",
    "-A": r"\S+",
    "-l": r"(select=\d+(:(ncpus|mem|ngpus|mpiprocs)=\d+[kKmMgG]?[bB]?)*|walltime=\d+:\d\d:\d\d)",
    "-e": r"\S+",
    "-o": r"\S+",
}
TORQUE = {
    **PBS_PRO,
    "-l": r"(nodes=\d+(:ppn=\d+)?(,mem=\d+[kmg]?b)?|walltime=\d+:\d\d:\d\d)",
}


def pbs_directives(script: str, grammar: dict[str, str]) -> list[str]:
    """The script's #PBS lines, each checked against what the PBS flavour accepts."""
    lines = [line for line in script.splitlines() if line.startswith("#PBS")]
    for line in lines:
        flag, _, value = line[len("#PBS ") :].partition(" ")
        assert flag in grammar, f"{line!r}: {flag} is not a directive this PBS accepts"
        assert re.fullmatch(grammar[flag], value), f"{line!r} is not valid for this PBS"
    return lines


def test_pbs_job_scripts_are_what_pbs_professional_and_torque_accept(tmp_path):
    pipeline = write_pipeline(tmp_path, SQUARES)
    common = ["--cluster", "pbs", "--dry-run", "--allow-local-cache", "--cores", "4"]
    common += ["--memory", "8GiB", "--queue", "workq", "--account", "lab42"]
    pro = submit(pipeline, *common, "--walltime", "02:30:00", check=True).stdout
    lines = pbs_directives(pro, PBS_PRO)
    assert "#PBS -l select=1:ncpus=4:mem=8192MB" in lines
    assert "#PBS -l walltime=02:30:00" in lines and "#PBS -q workq" in lines
    assert "#PBS -A lab42" in lines
    torque = submit(
        pipeline, *common, "--resource-spec", "nodes=1:ppn=4,mem=8gb", check=True
    ).stdout
    lines = pbs_directives(torque, TORQUE)
    assert "#PBS -l nodes=1:ppn=4,mem=8gb" in lines
    assert not any("select=" in line for line in lines)


def test_daskbio_submit_keys_in_the_dask_config_are_defaults(tmp_path):
    pipeline = write_pipeline(tmp_path, SQUARES)
    env = {"DASK_DASKBIO__SUBMIT__CLUSTER": "local", "DASK_DASKBIO__SUBMIT__ADAPT": "1:3"}
    out = submit(pipeline, "--dry-run", env=env, check=True).stdout
    assert "Plan: 17 Tasks, 0 cached, 17 to run on 1 to 3 jobs (local)" in out
    out = submit(pipeline, "--dry-run", "--jobs", "2", env=env, check=True).stdout
    assert "to run on 2 job(s) (local)" in out


def test_the_detached_driver_job_script_for_pbs_is_valid(tmp_path):
    from daskbio.cli.submit import _driver_script

    job = {"queue": "workq", "account": "lab42", "walltime": "02:00:00"}
    script = _driver_script(
        "pbs", tmp_path / "pipeline.py", "daskbio submit pipeline.py", tmp_path / "x.log", job
    )
    lines = pbs_directives(script, {**PBS_PRO, "-j": "oe"})
    assert "#PBS -l walltime=02:00:00" in lines and "#PBS -q workq" in lines
    assert script.rstrip().endswith("exec daskbio submit pipeline.py")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give --cluster slurm, pbs or local"),
        (["--cluster", "slurm", *SMALL_JOBS], "private to this machine"),
        (["--cluster", "slurm", "--cache", "file:///tmp/x.daskbio"], "private to this machine"),
        (["--cluster", "slurm", "--allow-local-cache"], "give --cores and --memory"),
        (["--cluster", "slurm", "--jobs", "2", "--adapt", "1:2"], "not both"),
        (["--cluster", "slurm", "--adapt", "3:1"], "0 <= MIN <= MAX"),
    ],
)
def test_bad_submissions_are_one_line_errors_and_start_no_job(tmp_path, args, message):
    pipeline = write_pipeline(tmp_path, SQUARES)
    before = jobs()
    out = submit(pipeline, *args)
    assert out.returncode != 0
    assert message in out.stderr and "Traceback" not in out.stderr
    assert jobs() == before
    assert not (tmp_path / "pipeline.daskbio").exists()


def test_submit_on_a_local_cluster_runs_the_pipeline(tmp_path):
    pipeline = write_pipeline(tmp_path, SQUARES)
    out = submit(pipeline, "--cluster", "local", "--jobs", "2", check=True).stdout
    assert f": {sum(i * i for i in range(16))}" in out
    assert (tmp_path / "pipeline.dashboard").read_text().startswith("http")


# --- on the real SLURM -------------------------------------------------------------------------


def slurm_test(test):
    """Mark ``test`` as needing the real SLURM, and check that it leaves no job behind."""
    test = pytest.mark.usefixtures("no_job_left")(test)
    skip = SLURM_PROBLEM is not None and not SLURM_REQUIRED
    test = pytest.mark.skipif(skip, reason=str(SLURM_PROBLEM))(test)
    return pytest.mark.slurm(test)


@slurm_test
def test_slurm_submit_computes_the_example_as_a_local_run_does(example, tmp_path):
    local = daskbio("run", example, "--cache", tmp_path / "local", check=True).stdout
    out = submit(example, "--cluster", "slurm", "--jobs", "2", *SMALL_JOBS, "--allow-local-cache")
    assert out.returncode == 0, out.stderr
    assert "Dask dashboard: http" in out.stdout
    results = out.stdout[out.stdout.index("Results:") :].splitlines()[1]
    assert results == local[local.index("Results:") :].splitlines()[1]
    report = json.loads(daskbio("status", example, "--json", check=True).stdout)
    assert all(r["done"] == r["total"] and r["failed"] == 0 for r in report.values())
    store = FileSystemStore(example.with_suffix(".daskbio"))
    hosts_pids = {(m["host"], m["pid"]) for m in store.metadata_many(store.keys())}
    assert os.getpid() not in {pid for _, pid in hosts_pids}  # written by the workers
    assert list(example.with_suffix(".jobs").glob("dask-worker-*.out"))


@slurm_test
def test_a_worker_job_killed_mid_run_costs_only_its_running_tasks(tmp_path):
    pipeline = write_pipeline(tmp_path, SQUARES)
    store = FileSystemStore(tmp_path / "pipeline.daskbio")
    child = start_submit(pipeline, "1")
    deadline = time.monotonic() + 120
    while len(store.keys()) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    workers = running_workers()
    assert len(workers) == 2, jobs()
    subprocess.run(["scancel", workers[0]], check=True)
    stdout, stderr = child.communicate(timeout=240)
    assert child.returncode == 0, stderr
    assert f": {sum(i * i for i in range(16))}" in stdout
    report = json.loads(daskbio("status", pipeline, "--json", check=True).stdout)
    assert report["square"]["done"] == 16 and report["total"]["done"] == 1


@slurm_test
def test_sigterm_to_submit_cancels_every_job_it_started(tmp_path):
    pipeline = write_pipeline(tmp_path, SQUARES)
    child = start_submit(pipeline, "30")
    deadline = time.monotonic() + 60
    while len(running_workers()) < 2:
        assert time.monotonic() < deadline, "the workers never started"
        time.sleep(0.2)
    time.sleep(2)
    child.send_signal(signal.SIGTERM)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 130, stderr
    assert "every result completed so far is kept" in stderr


@slurm_test
def test_detach_submits_the_driver_as_a_job_and_status_follows_it(tmp_path):
    pipeline = write_pipeline(tmp_path, SQUARES)
    out = submit(
        pipeline, "--cluster", "slurm", "--jobs", "1", *SMALL_JOBS, "--allow-local-cache",
        "--detach", check=True,
    ).stdout  # fmt: skip
    job = re.search(r"as job (\d+)", out).group(1)
    log = Path(re.search(r"Log: (\S+)", out).group(1))
    deadline = time.monotonic() + 180
    while any(line.split()[0] == job for line in jobs()):
        assert time.monotonic() < deadline, log.read_text() if log.exists() else "no log"
        report = json.loads(daskbio("status", pipeline, "--json", check=True).stdout)
        assert report["square"]["total"] == 16
        time.sleep(1)
    assert f": {sum(i * i for i in range(16))}" in log.read_text()
    assert (tmp_path / "pipeline.dashboard").read_text().startswith("http")
    report = json.loads(daskbio("status", pipeline, "--json", check=True).stdout)
    assert report["total"]["done"] == 1


@slurm_test
def test_daskbio_cluster_from_python_runs_compute_on_slurm_jobs(tmp_path):
    import dask
    from distributed import Client

    import daskbio
    from tests.test_compute import plus

    with (
        dask.config.set({"jobqueue.slurm.scheduler-options": {"host": "127.0.0.1"}}),
        daskbio.cluster(
            "slurm", jobs=1, cores=1, memory="1GiB", log_directory=tmp_path / "logs"
        ) as cluster,
        Client(cluster) as client,
    ):
        values = daskbio.compute([plus(1, 2), plus(3, 4)], scheduler=client, cache=tmp_path)
    assert values == [3, 7]
    assert list((tmp_path / "logs").glob("*.out"))


@slurm_test
def test_slurm_submit_says_when_its_scheduler_is_on_loopback_and_listen_moves_it(tmp_path):
    pipeline = write_pipeline(tmp_path, SQUARES)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}
    args = [pipeline, "--cluster", "slurm", "--jobs", "1", *SMALL_JOBS, "--allow-local-cache"]
    # No jobqueue config: the scheduler is on 127.0.0.1 by default, which the one node reaches.
    loopback = daskbio("submit", *args, env=env)
    assert loopback.returncode == 0, loopback.stderr
    assert "Note: the scheduler listens on 127.0.0.1" in loopback.stderr
    assert "Dask dashboard: http://127.0.0.1:" in loopback.stdout
    elsewhere = daskbio("submit", *args, "--listen", "0.0.0.0", "--cache", tmp_path / "c", env=env)
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert "listens on 127.0.0.1" not in elsewhere.stderr
    assert "Dask dashboard: http://127.0.0.1:" not in elsewhere.stdout
    assert f": {sum(i * i for i in range(16))}" in elsewhere.stdout
