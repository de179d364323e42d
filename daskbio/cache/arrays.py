"""Array results in the cache as Zarr v3: written chunk by chunk, resumable, read lazily.

An array entry is a Zarr group beside the entry's metadata blob. Every array in it is
compressed, with a CRC32C checksum per chunk that Zarr verifies on every read.

``data``
    A dask array result, chunked as the dask array was (made regular).
``done``
    One element per chunk of ``data``, set to 1 once that chunk is written. Zarr does not
    store chunks equal to the fill value, so "the chunk's file exists" cannot say whether
    a chunk was written; this array can. A write that was killed resumes from it.
``numpy-<random>``
    A numpy array result, written in one go under a name of its own, so that two
    processes saving the same key at once never mix their chunks.

The metadata blob is written last (by :meth:`Store.save`) and names the array to read, so
an entry exists only once every chunk is in place; a group without its blob is a partial
write waiting to resume.

Dask array results are computed and written by the workers, one Dask task per chunk, with
no lock: each task writes exactly one Zarr chunk, so no two writers ever share one.
"""

from __future__ import annotations

import math
import sys
from typing import Any

FORMAT = "zarr"
DATA = "data"
DONE = "done"
GRAPH = "daskbio-graph"  # group attribute: what makes the array being written


def is_array(value: Any) -> bool:
    """Whether ``value`` is stored as a Zarr array: a numpy or dask array of a numeric or
    boolean dtype with at least one dimension (others are pickled or stored as ``.npy``)."""
    np = sys.modules.get("numpy")
    numpy_array = np is not None and type(value) is np.ndarray
    return (numpy_array or is_dask_array(value)) and value.ndim > 0 and value.dtype.kind in "biufc"


def is_dask_array(value: Any) -> bool:
    """Whether ``value`` is a dask array (without importing dask.array when it is not)."""
    da = sys.modules.get("dask.array")
    return da is not None and isinstance(value, da.Array)


def _codecs() -> dict[str, Any]:
    from zarr.codecs import BloscCodec, Crc32cCodec

    return {"compressors": [BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"), Crc32cCodec()]}


def write(where: Any, value: Any, code: str | None = None) -> dict[str, Any]:
    """Write the array ``value`` to the Zarr group at ``where``; return its description.

    A numpy array is written in one go. A dask array is written chunk by chunk by the
    workers of the running Dask scheduler (the active ``distributed`` cluster when called
    on one of its workers, else threads), skipping the chunks that an earlier, interrupted
    write of the same array (same dask graph name and same ``code`` fingerprint of the
    Task's function) already completed.
    """
    if is_dask_array(value):
        return _write_dask(where, value, code)
    import uuid

    import zarr

    try:
        group = zarr.open_group(where, mode="a")
    except zarr.errors.ContainsGroupError:
        # Another process created the group between our look and our write.
        group = zarr.open_group(where, mode="r+")
    data = group.create_array(
        f"numpy-{uuid.uuid4().hex[:16]}", shape=value.shape, dtype=value.dtype, **_codecs()
    )
    data[...] = value
    return _describe(data)


def _describe(data: Any) -> dict[str, Any]:
    return {
        "path": data.basename,
        "shape": list(data.shape),
        "dtype": str(data.dtype),
        "chunks": list(data.chunks),
        "nbytes": int(data.nbytes),
        "stored": int(data.nbytes_stored()),
    }


def _regular(x: Any) -> Any:
    """``x`` with chunks that fit a Zarr chunk grid: all equal along an axis except a
    smaller last one. Dask blocks then map one to one onto Zarr chunks."""
    if all(len(set(c[:-1])) <= 1 and c[-1] <= c[0] for c in x.chunks):
        return x
    return x.rechunk(x.chunksize)


def _write_dask(where: Any, x: Any, code: str | None) -> dict[str, Any]:
    import dask
    import numpy as np
    import zarr

    if any(math.isnan(n) for sizes in x.chunks for n in sizes):
        raise ValueError(
            "a dask array of unknown chunk sizes (from boolean indexing?) cannot be stored "
            "chunk by chunk: return x.compute_chunk_sizes() instead"
        )
    x = _regular(x)
    data, done = _open_for_resume(where, x, f"{x.name} {code}")
    finished = done[...]
    blocks = x.to_delayed()
    store_chunk = dask.delayed(_store_chunk, pure=True)
    writes = [
        store_chunk(blocks[index], data, done, index)
        for index in np.ndindex(*x.numblocks)
        if not finished[index]
    ]
    if writes:
        compute_here(*writes)
    if not done[...].all():
        raise RuntimeError(
            f"chunks of the array at {where} are missing after writing it: was it removed "
            "or rewritten meanwhile (by another run of the same Task)?"
        )
    return _describe(zarr.open_array(where, path=DATA, mode="r"))


def _open_for_resume(where: Any, x: Any, identity: str) -> tuple[Any, Any]:
    """The ``data`` and ``done`` arrays at ``where``: those of an earlier write of the
    same array if there is one, else new ones.

    "The same array" means the same ``identity`` — the dask graph name (Dask derives it from
    the functions and arguments that make the array; cached inputs are named by their
    write) and the Task function's code fingerprint — as well as the same shape, dtype and
    chunks: a Task's hash does not change when code does, and chunks written by
    yesterday's code must not be mixed with today's. (Code of helpers that Dask names by
    their import path is not seen: invalidate after changing it; that removes partial
    writes too.)
    """
    import zarr

    try:
        group = zarr.open_group(where, mode="r+")
        data, done = group[DATA], group[DONE]
        same = (data.shape, data.dtype, data.chunks) == (x.shape, x.dtype, x.chunksize)
        if same and group.attrs.get(GRAPH) == identity:
            return data, done
    except (FileNotFoundError, KeyError, ValueError):
        pass
    group = zarr.open_group(where, mode="w", attributes={GRAPH: identity})
    data = group.create_array(DATA, shape=x.shape, dtype=x.dtype, chunks=x.chunksize, **_codecs())
    done = group.create_array(
        DONE, shape=x.numblocks, dtype="u1", chunks=(1,) * x.ndim, fill_value=0
    )
    return data, done


def _store_chunk(block: Any, data: Any, done: Any, index: tuple[int, ...]) -> None:
    """Write one block into its Zarr chunk, then record the chunk as complete."""
    region = tuple(slice(i * c, i * c + n) for i, c, n in zip(index, data.chunks, block.shape))
    data[region] = block
    done[index] = 1


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
    return dask.compute(*collections, scheduler="sync" if synchronous else "threads")


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


def load(where: Any, path: str, name: str | None = None) -> Any:
    """The array ``path`` of the group at ``where``: a numpy array, or a dask array chunked
    as stored (named ``name``) when it holds more than :func:`lazy_threshold` bytes."""
    import zarr

    data = zarr.open_array(where, path=path, mode="r")
    if data.nbytes > lazy_threshold():
        import dask.array as da

        return da.from_zarr(data, name=name)
    return data[...]


def lazy_threshold() -> int:
    """Bytes above which a cached array is returned lazily: the Dask config key
    ``daskbio.lazy-above`` (e.g. ``"1 GiB"``), 256 MiB by default."""
    from dask.utils import parse_bytes

    from daskbio import config

    return parse_bytes(config.get("daskbio.lazy-above"))
