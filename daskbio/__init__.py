"""daskbio: Jug-style hashed Tasks run on Dask, with a persistent cache of results.

The public API, re-exported; see the submodules for everything else.
"""

from daskbio.graph import (
    Barrier,
    CachedFunction,
    Task,
    TaskFailed,
    TaskGenerator,
    Tasklet,
    compute,
    iteratetask,
    value,
)

__version__ = "0.1.0"

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
