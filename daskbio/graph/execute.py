"""What a worker runs for one Task: call the function, then commit the result to the cache.

A :class:`Job` carries one Task without its upstream graph (dependencies are replaced
by references), so shipping it to a distributed worker costs the size of its own
arguments only.
"""

from __future__ import annotations

import functools
import os
import reprlib
import socket
import time
import traceback
from dataclasses import dataclass
from typing import Any

import xxhash

from daskbio.cache import Store, arrays
from daskbio.graph import hashing
from daskbio.graph.task import Task, Tasklet, replace_tasks


class TaskFailed(Exception):
    """A Task's function raised; the message names the function and hash, and carries
    the original traceback."""

    def __init__(self, name: str, key: str, details: str) -> None:
        super().__init__(f"Task {name} ({key}) failed:\n{details}")
        self.name = name
        self.key = key
        self.details = details

    def __reduce__(self) -> tuple:
        return (type(self), (self.name, self.key, self.details))


@dataclass(frozen=True)
class Ref:
    """Stands for the value of a dependency (``key``), or an item of it (``path``)."""

    key: str
    path: tuple = ()

    def __repr__(self) -> str:
        return f"<{self.key[:8]}{''.join(f'[{i!r}]' for i in self.path)}>"


def _ref(t: Task | Tasklet) -> Ref:
    path = []
    node = t
    while isinstance(node, Tasklet):
        path.append(node.index)
        node = node.parent
    return Ref(node.hash(), tuple(reversed(path)))


_fingerprints: dict[Any, str] = {}


def fingerprint(f: Any) -> str:
    """The code fingerprint of ``f`` (computed once per function)."""
    try:
        return _fingerprints[f]
    except (KeyError, TypeError):
        value = _fingerprints[f] = hashing.code_fingerprint(f)
        return value


def code_mark(identity: str, fp: str = "") -> str:
    """The store marker saying "``identity`` has results computed by code ``fp``"
    (without ``fp``: the prefix of all such markers of ``identity``)."""
    return f"code-{xxhash.xxh3_64_hexdigest(identity.encode())}-{fp}"


@dataclass
class Job:
    """One Task, ready to run on a worker."""

    f: Any
    args: tuple
    kwargs: dict
    key: str
    name: str
    identity: str
    deps: tuple[str, ...]
    version: str | None
    store: Store
    failed_before: bool = True

    @classmethod
    def of(cls, task: Task, store: Store, failed_before: bool = True) -> Job:
        return cls(
            f=task.f,
            args=replace_tasks(task.args, _ref),
            kwargs=replace_tasks(task.kwargs, _ref),
            key=task.hash(),
            name=task.name,
            identity=task.identity,
            deps=tuple(d.hash() for d in task.dependencies()),
            version=task.version,
            store=store,
            failed_before=failed_before,
        )


@functools.cache
def _host() -> str:
    return socket.gethostname()


_summary = reprlib.Repr()
_summary.maxstring = 60
_summary.maxother = 60


def run_job(job: Job, *dep_values: Any) -> Any:
    """Run ``job`` given its dependencies' values, store the result and return it."""
    values = dict(zip(job.deps, dep_values))

    def value_of(ref: Ref) -> Any:
        value = values[ref.key]
        for index in ref.path:
            value = value[index]
        return value

    args = replace_tasks(job.args, value_of, kinds=Ref)
    kwargs = replace_tasks(job.kwargs, value_of, kinds=Ref)
    start = time.time()
    try:
        result = arrays.computed(job.f(*args, **kwargs))
        # Inside the try: a dask array result is computed here, chunk by chunk.
        job.store.save(job.key, result, _metadata(job, start), clear_failure=job.failed_before)
    except Exception as e:
        details = traceback.format_exc()
        job.store.record_failure(
            job.key,
            {
                "name": job.name,
                "function": job.identity,
                "error": repr(e),
                "traceback": details,
                "time": time.time(),
                "host": _host(),
            },
        )
        raise TaskFailed(job.name, job.key, details) from e
    job.store.mark(code_mark(job.identity, fingerprint(job.f)))
    if arrays.is_dask_array(result):
        # Dependents read the written array rather than compute its graph a second time.
        return job.store.load(job.key)
    return result


def _metadata(job: Job, start: float) -> dict[str, Any]:
    return {
        "name": job.name,
        "function": job.identity,
        "args": _summary.repr((job.args, job.kwargs)),
        "deps": job.deps,
        "fingerprint": fingerprint(job.f),
        "version": job.version,
        "hash_format": hashing.HASH_FORMAT_VERSION,
        "start": start,
        "end": time.time(),
        "host": _host(),
        "pid": os.getpid(),
    }


def load_result(store: Store, key: str) -> Any:
    """Load a cached dependency's value (runs on a worker)."""
    return store.load(key)
