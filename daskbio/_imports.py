"""Importing the array stack before Tasks run on threads.

daskbio imports Zarr, dask.array, tifffile, numcodecs and mahotas lazily, so that a fully
cached run never pays for them (about 0.6 s). The first import then happens inside a Task,
a chunk read or a cache write, on whichever thread gets there first. Python takes one
import lock per module, and a thread importing a submodule (``from zarr.storage import
LocalStore``) holds that submodule's lock while it waits for the package: when another
thread is importing the package at the same moment (``import zarr``), and the package
imports that submodule, each waits for the other. Python then raises ``_DeadlockError`` in
one of them, or hands it the half-initialised module (``ImportError: cannot import name
'Store' from partially initialized module 'zarr.abc.store'``). Importing the packages in one
thread, packages before their submodules, before any Task runs, leaves those threads
nothing to import.

Only a pipeline that handles arrays needs it, and such a pipeline has imported numpy by the
time it runs (daskbio.kernels, daskbio.io and daskbio.datasets import it, as does nearly
any image code): the ~0.4 s of the import is not paid by pipelines of plain Python values.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

__all__ = ["ARRAY_STACK", "preload"]

# Packages first, then the submodules that daskbio and tifffile import by name. (mahotas
# deadlocks the same way: daskbio.kernels import mahotas.features and mahotas._histogram.)
ARRAY_STACK = (
    "numpy",
    "mahotas",
    "mahotas.features",
    "numcodecs",
    "zarr",
    "zarr.abc.store",
    "zarr.codecs",
    "zarr.core.buffer",
    "zarr.core.sync",
    "zarr.errors",
    "zarr.storage",
    "tifffile",
    "tifffile.zarr",
    "dask.array",
)

PLUGIN_NAME = "daskbio-preload"


def preload(scheduler: Any = "threads", payloads: bool = False) -> None:
    """Import :data:`ARRAY_STACK` where ``scheduler`` runs Tasks on several threads, if
    this process handles arrays (has imported numpy), or if the cache writes pickles into
    Zarr payloads (``payloads``: a store with an ``inline_limit``, such as Redis's).

    For ``"threads"``, here, once (a later call costs a few microseconds); for a
    ``distributed.Client``, on each of its workers, those that join later included (a
    worker plugin). ``"sync"`` runs one Task at a time, and each process of ``"processes"``
    one Task at a time: nothing to do.

    Examples
    --------
    >>> import sys
    >>> preload()
    >>> all(name in sys.modules for name in ARRAY_STACK)
    True
    """
    if scheduler == "threads" and (payloads or "numpy" in sys.modules):
        for name in ARRAY_STACK:
            importlib.import_module(name)
    elif hasattr(scheduler, "register_plugin"):
        from distributed import WorkerPlugin

        class Preload(WorkerPlugin):
            name = PLUGIN_NAME

            def setup(self, worker: Any) -> None:
                preload(payloads=payloads)

        # Registering again replaces the plugin; its setup is cheap once imported.
        scheduler.register_plugin(Preload(), name=PLUGIN_NAME)
