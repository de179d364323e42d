"""Storing a dask array result chunk by chunk, on the workers of the running cluster.

A Task that returns a dask array does not compute it: the worker running the Task
submits one Dask task per chunk (``store_chunk`` on the dashboard, its key naming the
Task: :func:`daskbio.monitor.keys.chunk_key`), which computes that chunk and writes it to
the cache. Dask chunks are made regular first, so each write covers
exactly one Zarr chunk and no two writers ever share one; no lock is taken. A write that
was interrupted resumes with the chunks it lacks (:meth:`daskbio.cache.Store.begin_array`).
"""

from __future__ import annotations

import math
import sys
from typing import Any

from daskbio.cache import Store
from daskbio.cache.arrays import is_array

#: The Dask config key of the callbacks that count chunk writes on local schedulers
#: (:meth:`daskbio.monitor.watch.Watch.following` sets it).
CALLBACKS = "daskbio.chunk-callbacks"


def _regular(x: Any) -> Any:
    """``x`` with chunks that fit a Zarr chunk grid: all equal along an axis except a
    smaller last one. Dask blocks then map one to one onto Zarr chunks."""
    if all(len(set(c[:-1])) <= 1 and c[-1] <= c[0] for c in x.chunks):
        return x
    return x.rechunk(x.chunksize)


def store_chunk(store: Store, key: str, identity: str, index: tuple[int, ...], block: Any) -> tuple:
    """Write one block of ``key``'s array; return its index and digest."""
    return index, store.write_chunk(key, index, block, identity)


def write(store: Store, key: str, x: Any, code: str, meta: dict[str, Any], clear: bool) -> int:
    """Compute the dask array ``x`` chunk by chunk into ``store`` under ``key`` and commit
    it with ``meta``; return the stored size.

    Chunks that an interrupted write of the same array left are kept when it was the same
    array: the same dask graph name (Dask derives it from the functions and arguments that
    make the array; cached inputs are named by their write) and the same ``code``
    fingerprint of the Task's function, shape, dtype and chunks. A committed array is never
    rewritten in place: a second computation of the same Task keeps the committed one.
    """
    import dask
    import numpy as np

    if store.has(key):
        return store.metadata(key)["size"]
    if any(math.isnan(n) for sizes in x.chunks for n in sizes):
        raise ValueError(
            "a dask array of unknown chunk sizes (from boolean indexing?) cannot be stored "
            "chunk by chunk: return x.compute_chunk_sizes() instead"
        )
    x = _regular(x)
    identity = f"{x.name} {code}"
    digests = store.begin_array(key, x.shape, x.dtype, x.chunksize, identity)
    import xxhash

    from daskbio.monitor.keys import chunk_key

    write = xxhash.xxh3_64_hexdigest(f"{store.location}\0{identity}".encode())
    blocks = x.to_delayed()
    write_one = dask.delayed(store_chunk, pure=True)
    # Keys named after the Task, so that progress displays count its chunks.
    writes = [
        write_one(
            store,
            key,
            identity,
            index,
            blocks[index],
            dask_key_name=chunk_key(meta.get("name", "array"), key, n, write),
        )
        for n, index in enumerate(map(tuple, np.ndindex(*x.numblocks)))
        if index not in digests
    ]
    if writes:
        digests.update(compute_here(*writes))
    return store.commit_array(key, digests, identity, meta, clear)


def compute_here(*collections: Any) -> tuple:
    """``dask.compute(*collections)`` on the cluster this code runs on: from inside a
    ``distributed`` worker through its client (the worker leaves its thread pool meanwhile,
    so the work can run on it too), elsewhere on Dask's threads (or in this thread, for a
    "sync" run)."""
    if "distributed" in sys.modules:  # else this cannot be a distributed worker
        # An import, not sys.modules' entry: another thread may be importing distributed,
        # and the import waits until it is complete.
        from distributed import get_worker, worker_client

        try:
            get_worker()
        except ValueError:
            pass
        else:
            with worker_client() as client:
                return tuple(client.gather(client.compute(list(collections))))
    import dask

    # Threads, with the run's worker count (``num_workers``), unless the run is "sync";
    # never processes from inside a process pool's worker.
    synchronous = dask.config.get("scheduler", None) in ("sync", "synchronous")
    return dask.compute(
        *collections,
        scheduler="sync" if synchronous else "threads",
        # Dask sets its global callbacks aside while the run's own compute goes on.
        callbacks=dask.config.get(CALLBACKS, ()),
    )


def computed(value: Any) -> Any:
    """``value``, with the dask collections in it (or in its top-level items) computed,
    except a dask array alone, which :func:`write` stores chunk by chunk.

    A Task may return ``kernels.label(x)``'s ``(labeled, n)`` or ``x.sum()``: storing
    their graphs would recompute them on every load.
    """
    dask = sys.modules.get("dask")
    if dask is None or is_array(value):
        return value
    items = value.values() if isinstance(value, dict) else value
    if dask.is_dask_collection(value) or (
        isinstance(value, (tuple, list, dict)) and any(map(dask.is_dask_collection, items))
    ):
        return compute_here(value)[0]
    return value
