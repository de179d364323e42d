"""Tasks, their hashes, planning against the cache, translation to Dask, and compute()."""

from daskbio.graph.compute import Barrier, CachedFunction, compute, value
from daskbio.graph.execute import TaskFailed
from daskbio.graph.task import Task, TaskGenerator, Tasklet, iteratetask

__all__ = [
    "Barrier",
    "CachedFunction",
    "Task",
    "TaskFailed",
    "TaskGenerator",
    "Tasklet",
    "compute",
    "iteratetask",
    "value",
]
