"""Tasks, their hashes, planning against the cache, translation to Dask, and compute()."""

from daskbio.graph.compute import Barrier, CachedFunction, compute, value
from daskbio.graph.files import File
from daskbio.graph.job import TaskFailed
from daskbio.graph.task import Task, TaskGenerator, Tasklet, iteratetask

__all__ = [
    "Barrier",
    "CachedFunction",
    "File",
    "Task",
    "TaskFailed",
    "TaskGenerator",
    "Tasklet",
    "compute",
    "iteratetask",
    "value",
]
