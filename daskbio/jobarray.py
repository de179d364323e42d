"""Job arrays: a pipeline run by N cooperating ``daskbio run`` processes, the elements of one
SLURM or PBS job array, on one shared cache (Jug's ``jug execute`` started N times).

This is for clusters where long-lived Dask workers connected to a scheduler on the login node
are not welcome: each element is an ordinary batch job that runs ``daskbio run FILE --cache
CACHE --scheduler threads --workers CORES`` on its own cores. The elements share nothing but
the cache, which must therefore be on a filesystem every node sees (or at a URL every node
reaches).

The scheduler directives come from dask-jobqueue's own job classes (``SLURMJob``,
``PBSJob``), so that an array asks for what ``daskbio submit --jobs`` workers would ask for
with the same options and the same ``jobqueue.yaml`` (cores, memory, walltime, queue,
account, extra and skipped directives, shebang, prologue); only the output lines are
replaced, by one log per element in the log folder.

Each element writes its exit status beside its log when ``daskbio run`` returns: that, not
the scheduler's accounting (which many clusters, and the CI's SLURM, do not keep), is how
:meth:`JobArray.wait` tells the elements that succeeded from those that failed or were
killed (walltime, memory, ``scancel``), which leave no status.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

ARRAY_KINDS = ("slurm", "pbs")
# Seconds between two looks at the queue while waiting for an array.
POLL_SECONDS = 2.0
# How long a finished element's exit status may take to show on this machine: a shared
# filesystem's attribute cache can hide a file written on another node for a while.
STATUS_GRACE_SECONDS = 10.0
# Each element's exit status, beside its log (the job name is safe inside double quotes).
STATUS_FILE = "{name}-{job}_{index}.exit"
# Consecutive failed looks at the queue (a busy or restarting controller) before giving up.
QUERY_RETRIES = 15


# PBS job states (qstat's S column): queued, held, waiting, in transit, suspended; and
# finished (X: a subjob that ended, F: with job history).
PBS_WAITING = {"Q", "H", "W", "T", "S"}
PBS_FINISHED = {"X", "F"}


class JobArrayError(RuntimeError):
    """The batch system refused or failed a request (submit, query, cancel) about an array."""


@dataclass(frozen=True)
class _Batch:
    """What differs between SLURM and PBS Professional for a job array."""

    prefix: str
    # The directive making the job an array of ``{size}`` elements numbered from 1.
    array: str
    # Directives sending each element's output and errors to one ``{log}`` file, and that
    # file's name in them (the batch system puts in the element's numbers).
    log: tuple[str, ...]
    log_pattern: str
    # Each element's log as named on disk, from the array's job number and the index.
    log_file: str
    # Shell expressions, inside an element, for its array's job number and its index.
    job_var: str
    index_var: str
    submit: tuple[str, ...]
    cancel: str


BATCH = {
    "slurm": _Batch(
        prefix="#SBATCH",
        array="--array=1-{size}",
        log=("-o {log}",),
        log_pattern="{name}-%A_%a.log",
        log_file="{name}-{job}_{index}.log",
        job_var="${SLURM_ARRAY_JOB_ID}",
        index_var="${SLURM_ARRAY_TASK_ID}",
        submit=("sbatch", "--parsable"),
        cancel="scancel",
    ),
    # PBS puts only the index into a path (^array_index^), not the job's number.
    "pbs": _Batch(
        prefix="#PBS",
        array="-J 1-{size}",
        log=("-j oe", "-o {log}"),
        log_pattern="{name}-^array_index^.log",
        log_file="{name}-{index}.log",
        # PBS_ARRAY_ID is "1234[].server": its number is what comes before the "[".
        job_var="${PBS_ARRAY_ID%%\\[*}",
        index_var="${PBS_ARRAY_INDEX}",
        submit=("qsub",),
        cancel="qdel",
    ),
}


@dataclass(frozen=True)
class Progress:
    """How far an array is: elements waiting in the queue, running, and finished with an
    exit status of 0 (``done``) or another (``failed``)."""

    pending: int
    running: int
    done: int
    failed: int


@dataclass(frozen=True)
class Element:
    """One finished element of an array: its index (from 1), the exit status of its
    ``daskbio run`` (None when it left none: killed by the batch system, for walltime,
    memory or ``scancel``) and its log file."""

    index: int
    exit_code: int | None
    log: Path

    @property
    def ok(self) -> bool:
        """Whether its ``daskbio run`` exited 0."""
        return self.exit_code == 0


@dataclass(frozen=True)
class JobArray:
    """A submitted job array (from :func:`submit_array`).

    Parameters
    ----------
    kind : {"slurm", "pbs"}
        The batch system.
    job_id : str
        The array's id as the batch system gave it (``"123"``, ``"1234[].server"``).
    size : int
        Its number of elements, indexed from 1.
    name : str
        Its job name, which starts each log's name.
    log_directory : Path
        Where the elements' logs and exit statuses go.

    Examples
    --------
    >>> array = JobArray("slurm", "123", 2, "daskbio-pipeline", Path("/data/pipeline.jobs"))
    >>> array.log(2), array.cancel_command
    (PosixPath('/data/pipeline.jobs/daskbio-pipeline-123_2.log'), 'scancel 123')
    >>> pbs = JobArray("pbs", "1234[].pbs01", 2, "daskbio-pipeline", Path("/data/p.jobs"))
    >>> pbs.number, pbs.log(2).name
    ('1234', 'daskbio-pipeline-2.log')
    """

    kind: str
    job_id: str
    size: int
    name: str
    log_directory: Path

    @property
    def number(self) -> str:
        """The array's job number, without cluster or server name."""
        return re.split(r"[\[.;]", self.job_id, maxsplit=1)[0]

    @property
    def cancel_command(self) -> str:
        """The shell command that cancels the array (``"scancel 123"``)."""
        return f"{BATCH[self.kind].cancel} {shlex.quote(self.job_id)}"

    def log(self, index: int) -> Path:
        """The log file of element ``index`` (from 1)."""
        name = BATCH[self.kind].log_file.format(name=self.name, job=self.number, index=index)
        return self.log_directory / name

    def exit_code(self, index: int) -> int | None:
        """The exit status element ``index`` left, or None (none yet, or killed)."""
        path = self.log_directory / STATUS_FILE.format(name=self.name, job=self.number, index=index)
        try:
            return int(path.read_text())
        except (OSError, ValueError):  # not there, or being written
            return None

    def _progress(self, queued: Sequence[str]) -> Progress:
        codes = [self.exit_code(i) for i in range(1, self.size + 1)]
        return Progress(
            pending=queued.count("pending"),
            running=queued.count("running"),
            done=codes.count(0),
            failed=sum(code not in (None, 0) for code in codes),
        )

    def wait(
        self,
        on_progress: Callable[[Progress], None] | None = None,
        poll: float = POLL_SECONDS,
        grace: float = STATUS_GRACE_SECONDS,
    ) -> list[Element]:
        """Wait until no element is left in the queue; return every element, finished.

        Parameters
        ----------
        on_progress : callable, optional
            Called with a :class:`Progress` at the start and whenever it changes.
        poll : float
            Seconds between two looks at the queue.
        grace : float
            How long to wait, once the queue is empty, for exit statuses not seen yet.

        Raises
        ------
        JobArrayError
            When the queue could not be read :data:`QUERY_RETRIES` times in a row (the
            array is left as it is).
        """
        last, misses = None, 0
        while True:
            try:
                queued = _queued(self.kind, self.job_id)
            except JobArrayError as e:
                misses += 1
                if misses >= QUERY_RETRIES:
                    raise JobArrayError(
                        f"{e}; job array {self.job_id} may still be queued "
                        f"({self.cancel_command} cancels it)"
                    ) from None
                time.sleep(poll)
                continue
            misses = 0
            progress = self._progress(queued)
            if on_progress is not None and progress != last:
                on_progress(progress)
            last = progress
            if not queued:
                return self._finished(grace, poll)
            time.sleep(poll)

    def _finished(self, grace: float, poll: float) -> list[Element]:
        deadline = time.monotonic() + grace
        while True:
            codes = {i: self.exit_code(i) for i in range(1, self.size + 1)}
            if None not in codes.values() or time.monotonic() >= deadline:
                return [Element(i, code, self.log(i)) for i, code in codes.items()]
            time.sleep(min(poll, 1.0))

    def cancel(self) -> None:
        """Cancel every element still queued or running (``scancel``, ``qdel``).

        Raises
        ------
        JobArrayError
            When the batch system refuses and elements are still in the queue.
        """
        done = _call(self.kind, shlex.split(self.cancel_command))
        if done.returncode != 0 and _queued(self.kind, self.job_id):
            raise JobArrayError(f"could not cancel job array {self.job_id}: {_said(done)}")


def default_log_directory(pipeline: str | os.PathLike[str]) -> Path:
    """Where the logs of ``pipeline``'s batch jobs go: ``<stem>.jobs/`` beside it.

    Examples
    --------
    >>> default_log_directory("/data/project/pipeline.py")
    PosixPath('/data/project/pipeline.jobs')
    """
    return Path(pipeline).absolute().with_suffix(".jobs")


def shared_cache(pipeline: str | os.PathLike[str], cache: str | os.PathLike[str] | None) -> str:
    """The cache that every element must use, as this machine resolves it: the absolute
    folder ``daskbio run`` here would use (``cache``, the Dask config's ``daskbio.cache``,
    or ``<stem>.daskbio/`` beside the pipeline), or the URL as given.

    Resolved here rather than on the compute nodes, whose working folder and Dask config
    may differ.

    Examples
    --------
    >>> import dask
    >>> with dask.config.set({"daskbio.cache": None}):
    ...     shared_cache("/data/project/pipeline.py", None)
    '/data/project/pipeline.daskbio'
    >>> shared_cache("/data/project/pipeline.py", "s3://lab/cache")
    's3://lab/cache'
    """
    from daskbio.cache import FileSystemStore, default_location, open_store

    location = default_location(pipeline) if cache is None else cache
    store = open_store(location, pipeline_file=pipeline)
    return str(store.root) if isinstance(store, FileSystemStore) else str(location)


def array_script(kind: str, pipeline: str | os.PathLike[str], size: int, **settings: Any) -> str:
    """The batch script of a job array whose ``size`` elements each run ``daskbio run
    pipeline`` on the job's cores; made without submitting anything.

    Parameters
    ----------
    kind : {"slurm", "pbs"}
        SLURM (``#SBATCH --array=1-N``) or PBS Professional (``#PBS -J 1-N``).
    pipeline : path
        The pipeline file; every element runs it from this machine's current folder.
    size : int
        Number of elements: at least 1 (SLURM) or 2 (PBS, whose arrays have two or more).
    cache : path or URL, optional
        The cache the elements share (see :func:`shared_cache`): a folder on a filesystem
        every node sees, or a URL every node reaches.
    keep_going : bool
        Pass ``--keep-going`` to every element's ``daskbio run``.
    cores, memory, walltime, queue, account : optional
        Per element, as for ``daskbio.cluster``; each element's ``daskbio run`` uses
        ``cores`` threads. Left out: the Dask config's ``jobqueue.<kind>.*``.
    job_extra : sequence of str
        Extra scheduler directives, e.g. ``["--gres=gpu:1"]``.
    resource_spec : str, optional
        PBS only: the ``-l`` resource line (default ``select=1:ncpus=...:mem=...``).
    python : str, optional
        The Python that runs ``daskbio`` on the compute nodes (default
        ``jobqueue.<kind>.python``, else this one).
    log_directory : path, optional
        Where each element's log and exit status go (default
        :func:`default_log_directory`); created if missing.
    job_script_prologue : sequence of str, optional
        Shell lines run before ``daskbio run`` (``module load ...``); default
        ``jobqueue.<kind>.job-script-prologue``.
    **settings
        Any other keyword is passed on to dask-jobqueue's job class (``shebang``,
        ``job_directives_skip``, ...).

    Returns
    -------
    str
        The script, for ``sbatch`` or ``qsub``.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> script = array_script(
    ...     "slurm", folder / "pipeline.py", 4, cache=folder / "cache", cores=8, memory="16GiB"
    ... )
    >>> print("\\n".join(line for line in script.splitlines() if "array" in line))
    #SBATCH --array=1-4
    >>> "--scheduler threads --workers 8" in script
    True
    """
    return _build(kind, pipeline, size, **settings).text


def submit_array(
    kind: str, pipeline: str | os.PathLike[str], size: int, **settings: Any
) -> JobArray:
    """Submit the job array of :func:`array_script` (same arguments) and return it.

    Returns
    -------
    JobArray
        To :meth:`~JobArray.wait` for, or :meth:`~JobArray.cancel`.

    Raises
    ------
    JobArrayError
        When ``sbatch`` / ``qsub`` is missing or refuses the script.

    Examples
    --------
    >>> array = submit_array("slurm", "pipeline.py", 10, cores=8, memory="32GiB")  # doctest: +SKIP
    >>> [element.index for element in array.wait() if not element.ok]  # doctest: +SKIP
    []
    """
    script = _build(kind, pipeline, size, **settings)
    done = _call(kind, list(BATCH[kind].submit), input=script.text)
    if done.returncode != 0:
        raise JobArrayError(f"{BATCH[kind].submit[0]} refused the job array: {_said(done)}")
    job_id = done.stdout.strip().split(";")[0]
    return JobArray(kind, job_id, size, script.name, script.log_directory)


class _Script(NamedTuple):
    text: str
    name: str
    log_directory: Path


def _build(
    kind: str,
    pipeline: str | os.PathLike[str],
    size: int,
    *,
    cache: str | os.PathLike[str] | None = None,
    keep_going: bool = False,
    cores: int | None = None,
    memory: str | None = None,
    job_extra: Sequence[str] = (),
    resource_spec: str | None = None,
    python: str | None = None,
    log_directory: str | os.PathLike[str] | None = None,
    job_script_prologue: Sequence[str] | None = None,
    **settings: Any,
) -> _Script:
    import dask.config

    if kind not in ARRAY_KINDS:
        raise ValueError(f"kind must be one of {ARRAY_KINDS}, got {kind!r}")
    least = 2 if kind == "pbs" else 1
    if size < least:
        raise ValueError(f"a {kind} job array needs at least {least} elements, got {size}")
    if resource_spec is not None and kind != "pbs":
        raise ValueError("resource_spec is for PBS only")
    pipeline = Path(pipeline).absolute()
    name = _job_name(pipeline)
    logs = Path(log_directory or default_log_directory(pipeline)).absolute()
    job = _job_class(kind)(
        cores=cores,
        memory=memory,
        job_name=name,
        # The job class makes the log folder, which the batch system would not.
        log_directory=str(logs),
        job_extra_directives=list(job_extra),
        python=python,
        **({"resource_spec": resource_spec} if resource_spec else {}),
        **settings,
    )
    if job_script_prologue is None:
        job_script_prologue = dask.config.get(f"jobqueue.{kind}.job-script-prologue", None)
    # dask-jobqueue keeps the Python it chooses inside its worker command: choose it alike.
    python = python or dask.config.get(f"jobqueue.{kind}.python", None) or sys.executable
    run = [
        "-m", "daskbio", "run", str(pipeline), "--cache", shared_cache(pipeline, cache),
        "--scheduler", "threads", "--workers", str(job.worker_cores),
        *(["--keep-going"] if keep_going else []),
    ]  # fmt: skip
    header = _header(BATCH[kind], job.job_header, size, name, logs)
    body = _body(BATCH[kind], f"{python} {shlex.join(run)}", name, logs)
    lines = [job.shebang, "", *header, *(job_script_prologue or ()), "", *body, ""]
    return _Script("\n".join(lines), name, logs)


def _header(batch: _Batch, jobqueue_header: str, size: int, name: str, logs: Path) -> list[str]:
    """dask-jobqueue's directives, less its output lines (which name one worker's files),
    and the array's: its size, and one log per element."""
    own_logs = (f"{batch.prefix} -o ", f"{batch.prefix} -e ")
    header = [line for line in jobqueue_header.splitlines() if not line.startswith(own_logs)]
    log = logs / batch.log_pattern.format(name=name)
    return header + [
        f"{batch.prefix} {d.format(size=size, log=log)}" for d in (batch.array, *batch.log)
    ]


def _body(batch: _Batch, command: str, name: str, logs: Path) -> list[str]:
    """Run ``command`` in this machine's current folder, and leave its exit status beside
    the element's log (a killed element leaves none)."""
    status = STATUS_FILE.format(name=name, job=batch.job_var, index=batch.index_var)
    return [
        f"cd {shlex.quote(os.getcwd())} && {command}",
        "status=$?",
        f'echo $status >{shlex.quote(f"{logs}/")}"{status}"',
        "exit $status",
    ]


def _job_name(pipeline: Path) -> str:
    """``daskbio-<stem>``, in the letters every batch system takes in a job name."""
    return "daskbio-" + re.sub(r"[^\w.-]", "_", pipeline.stem)


def _job_class(kind: str) -> Any:
    from dask_jobqueue.pbs import PBSJob
    from dask_jobqueue.slurm import SLURMJob

    return {"slurm": SLURMJob, "pbs": PBSJob}[kind]


def _queued(kind: str, job_id: str) -> list[str]:
    """``"pending"`` or ``"running"`` for each element of the array still in the queue."""
    if kind == "slurm":
        done = _call(kind, ["squeue", "-h", "-r", "-j", job_id, "-o", "%T"])
        if done.returncode != 0:
            # Once the last element has left, squeue no longer knows the id.
            if "Invalid job id" in done.stderr:
                return []
            raise JobArrayError(f"squeue failed: {_said(done)}")
        return ["pending" if s == "PENDING" else "running" for s in done.stdout.split()]
    done = _call(kind, ["qstat", "-t", job_id])
    if done.returncode != 0:
        if re.search(r"Unknown Job Id|Job has finished", done.stderr, re.IGNORECASE):
            return []
        raise JobArrayError(f"qstat failed: {_said(done)}")
    states = []
    for line in done.stdout.splitlines():
        fields = line.split()
        # Subjob lines only ("1234[1].server ... S Queue"), not the array's own "1234[]".
        if fields and re.match(r"\d+\[\d+\]", fields[0]) and len(fields) >= 2:
            state = fields[-2]
            if state in PBS_WAITING:
                states.append("pending")
            elif state not in PBS_FINISHED:
                states.append("running")
    return states


def _call(kind: str, command: list[str], input: str | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(command, input=input, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise JobArrayError(f"{command[0]} not found: is {kind} installed here?") from None
    except subprocess.TimeoutExpired:
        raise JobArrayError(f"{command[0]} did not answer in 60 s") from None


def _said(done: subprocess.CompletedProcess) -> str:
    return done.stderr.strip() or done.stdout.strip() or f"exit status {done.returncode}"
