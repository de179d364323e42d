"""Dask clusters for daskbio: workers as SLURM or PBS batch jobs (dask-jobqueue), or local.

Options left out take their defaults from Dask's configuration, as dask-jobqueue's users
already write them (``jobqueue.slurm.*`` and ``jobqueue.pbs.*`` in ``~/.config/dask/``,
or ``DASK_JOBQUEUE__SLURM__*`` variables), then from dask-jobqueue's own defaults.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

KINDS = ("slurm", "pbs", "local")

# Folders that are private to one machine: a worker on another node cannot see them.
LOCAL_ONLY = ("/tmp", "/var/tmp", "/dev/shm", "/run/user")
# Batch-job settings that mean nothing to a LocalCluster.
JOB_ONLY = ("walltime", "queue", "account", "python")
# Where schedulers and dashboards listen unless told otherwise: reachable from this machine
# only. A scheduler on every interface runs code for anyone who can reach its port.
LOOPBACK = "127.0.0.1"
# dask-jobqueue's dashboard port (the one docs/cluster.md's SSH tunnel uses).
JOBQUEUE_DASHBOARD_PORT = 8787


def cluster(
    kind: str = "local",
    *,
    jobs: int | None = None,
    adapt: tuple[int, int] | None = None,
    cores: int | None = None,
    memory: str | None = None,
    processes: int | None = None,
    walltime: str | None = None,
    queue: str | None = None,
    account: str | None = None,
    job_extra: Sequence[str] = (),
    resource_spec: str | None = None,
    python: str | None = None,
    log_directory: str | os.PathLike[str] | None = None,
    listen: str | None = None,
    **options: Any,
) -> Any:
    """Start a Dask cluster and ask for its workers; returns the (started) cluster.

    Use it with ``distributed.Client(cluster)`` and ``daskbio.compute(...)`` or
    ``daskbio.compute(..., scheduler=client)``; close it (``with`` or ``.close()``) to cancel
    every job it started.

    Parameters
    ----------
    kind : {"slurm", "pbs", "local"}
        SLURM or PBS batch jobs through dask-jobqueue, or a ``distributed.LocalCluster``.
    jobs : int, optional
        Batch jobs to start (local: groups of ``processes`` worker processes). Default 1
        unless ``adapt`` is given.
    adapt : (int, int), optional
        Scale between this many jobs as the work needs, instead of a fixed ``jobs``.
    cores, memory, processes, walltime, queue, account : optional
        Per job: cores, memory (``"8GiB"``), Dask worker processes, time limit
        (``"01:00:00"``), queue or partition, and account to charge.
    job_extra : sequence of str
        Extra scheduler directives, e.g. ``["--gres=gpu:1"]`` or ``["-l mem=8gb"]``.
    resource_spec : str, optional
        PBS only: the ``-l`` resource line, e.g. ``"nodes=1:ppn=4"`` for Torque (the default
        is PBS Professional's ``select=1:ncpus=...:mem=...``).
    python : str, optional
        The Python that runs the workers on the compute nodes.
    log_directory : path, optional
        Where job logs go (default: dask-jobqueue's, the current folder).
    listen : str, optional
        Where the scheduler and its dashboard listen: a host name or IP address
        (``"0.0.0.0"`` for every interface) or a network interface's name (``"ib0"``).
        Default: a host or interface set in ``scheduler_options`` or in the Dask config
        (``jobqueue.<kind>.scheduler-options``, ``jobqueue.<kind>.interface``), else
        ``127.0.0.1``, which only this machine reaches: batch jobs on other nodes need
        ``listen`` or one of those settings. The dashboard keeps the port configured in
        ``scheduler-options`` (8787 by default; any free one for ``"local"``).
    **options
        Passed on to dask-jobqueue's cluster class (or ``LocalCluster``).

    Examples
    --------
    >>> from distributed import Client
    >>> with cluster("local", jobs=1, cores=1) as c, Client(c) as client:
    ...     client.submit(sum, [1, 2]).result()
    3
    """
    if jobs is not None and adapt is not None:
        raise ValueError("give jobs or adapt, not both")
    if jobs is not None and jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    if adapt is not None and not 0 <= adapt[0] <= adapt[1]:
        raise ValueError(f"adapt must be (min, max) with 0 <= min <= max, got {adapt}")
    started = _unstarted(
        kind,
        workers=0 if adapt else jobs or 1,
        cores=cores,
        memory=memory,
        processes=processes,
        walltime=walltime,
        queue=queue,
        account=account,
        job_extra=job_extra,
        resource_spec=resource_spec,
        python=python,
        log_directory=log_directory,
        listen=listen,
        **options,
    )
    if adapt is not None and kind == "local":
        started.adapt(minimum=adapt[0] * (processes or 1), maximum=adapt[1] * (processes or 1))
    elif adapt is not None:
        started.adapt(minimum_jobs=adapt[0], maximum_jobs=adapt[1])
    elif kind != "local":
        started.scale(jobs=jobs or 1)
    return started


def local_network(listen: str | None = None) -> dict[str, Any]:
    """``LocalCluster`` options that put its scheduler, workers and dashboard on ``listen``
    (a host, an IP address or an interface name; default ``127.0.0.1``), the dashboard on a
    free port.

    Examples
    --------
    >>> local_network()
    {'host': '127.0.0.1', 'dashboard_address': ('127.0.0.1', 0)}
    >>> local_network("0.0.0.0")["dashboard_address"]
    ('0.0.0.0', 0)
    """
    network = _network(listen or LOOPBACK)
    return {**network, "dashboard_address": (_host_of(network), 0)}


def loopback_only(address: str) -> bool:
    """Whether a scheduler at ``address`` (``"tcp://127.0.0.1:8786"``) can be reached from
    this machine only.

    Examples
    --------
    >>> loopback_only("tcp://127.0.0.1:8786"), loopback_only("tcp://10.1.2.3:8786")
    (True, False)
    """
    import ipaddress

    from distributed.comm import get_address_host

    host = get_address_host(address)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        return False


def _network(listen: str) -> dict[str, str]:
    """``{"interface": listen}`` for a network interface's name, else ``{"host": listen}``."""
    import psutil

    return {"interface": listen} if listen in psutil.net_if_addrs() else {"host": listen}


def _host_of(network: dict[str, Any]) -> str:
    """The host or IP address that a scheduler given ``network`` (its ``host`` or
    ``interface`` option) listens on."""
    if network.get("host"):
        return network["host"]
    from distributed.utils import get_ip_interface

    return get_ip_interface(network["interface"])


def _scheduler_options(
    config_name: str, listen: str | None, given: dict | None, interface: str | None
) -> dict:
    """dask-jobqueue's ``scheduler_options`` (``given``, else the Dask config's) with the
    scheduler on ``listen``; without it, on the host or interface they or the workers'
    ``interface`` choose, else on 127.0.0.1 (where dask-jobqueue would listen on every
    interface). The dashboard listens where the scheduler does (its link shows the
    scheduler's host), unless ``given`` names a host for it and ``listen`` is not given."""
    import dask.config

    if given is None:
        given = dask.config.get(f"jobqueue.{config_name}.scheduler-options", {})
    options = dict(given)
    if listen is not None:
        options = {k: v for k, v in options.items() if k not in ("host", "interface")}
        options.update(_network(listen))
    elif not {"host", "interface"} & options.keys():
        interface = interface or dask.config.get(f"jobqueue.{config_name}.interface", None)
        # As dask-jobqueue does, the scheduler goes on the workers' interface if they have one.
        options.update({"interface": interface} if interface else {"host": LOOPBACK})
    port = JOBQUEUE_DASHBOARD_PORT
    if options.get("dashboard_address") is not None:
        from distributed.utils import clean_dashboard_address

        first, *more = clean_dashboard_address(options["dashboard_address"])
        if listen is None and (first["address"] or more):
            return options
        port = first["port"]
    options["dashboard_address"] = (_host_of(options), port)
    return options


def job_script(kind: str, **settings: Any) -> str:
    """The batch script that the workers of ``cluster(kind, **settings)`` start with, made
    without submitting anything (for ``daskbio submit --dry-run``)."""
    if kind == "local":
        return "(local: no batch script; the workers are processes on this machine)"
    unstarted = _unstarted(kind, workers=0, **settings)
    try:
        return unstarted.job_script()
    finally:
        unstarted.close()


def _unstarted(
    kind: str,
    workers: int,
    cores: int | None = None,
    memory: str | None = None,
    processes: int | None = None,
    job_extra: Sequence[str] = (),
    resource_spec: str | None = None,
    log_directory: str | os.PathLike[str] | None = None,
    listen: str | None = None,
    **settings: Any,
) -> Any:
    """The cluster object, with its scheduler running but no jobs asked for yet."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if kind == "local":
        from dask.utils import parse_bytes
        from distributed import LocalCluster

        # As in a batch job: cores and memory are the job's, shared by its processes.
        processes = processes or 1
        extra = {k: v for k, v in settings.items() if k not in JOB_ONLY}
        own = {k: extra.pop(k) for k in ("host", "interface") if k in extra}
        if listen is None and own:
            network = {**own, "dashboard_address": (_host_of(own), 0)}
        else:
            network = local_network(listen)
        return LocalCluster(
            n_workers=workers * processes,
            threads_per_worker=max(1, (cores or processes) // processes),
            memory_limit=parse_bytes(memory) // processes if memory else "auto",
            **{**network, **extra},
        )
    if resource_spec is not None and kind != "pbs":
        raise ValueError("resource_spec is for PBS only")
    cls = _jobqueue_class(kind)  # which also loads dask-jobqueue's config defaults
    scheduler_options = _scheduler_options(
        settings.get("config_name", kind),
        listen,
        settings.pop("scheduler_options", None),
        settings.get("interface"),
    )
    given = {
        "cores": cores,
        "memory": memory,
        "processes": processes,
        "resource_spec": resource_spec,
        "log_directory": None if log_directory is None else str(log_directory),
        "job_extra_directives": list(job_extra) or None,
        "scheduler_options": scheduler_options,
        **settings,
    }
    return cls(**{k: v for k, v in given.items() if v is not None})


def _jobqueue_class(kind: str) -> Any:
    from dask_jobqueue import PBSCluster, SLURMCluster

    return {"slurm": SLURMCluster, "pbs": PBSCluster}[kind]


def local_only(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is in a folder private to this machine (``/tmp`` and the like),
    where workers on other nodes could not see the cache."""
    resolved = Path(path).resolve()
    return any(resolved.is_relative_to(Path(folder).resolve()) for folder in LOCAL_ONLY)
