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

import sys
from typing import Any

FORMAT = "zarr"
DATA = "data"
DONE = "done"


def is_array(value: Any) -> bool:
    """Whether ``value`` is stored as a Zarr array: a numpy or dask array of a numeric or
    boolean dtype with at least one dimension (others are pickled or stored as ``.npy``)."""
    np = sys.modules.get("numpy")
    if np is not None and type(value) is np.ndarray:
        return value.ndim > 0 and value.dtype.kind in "biufc"
    return is_dask_array(value) and value.ndim > 0 and value.dtype.kind in "biufc"


def is_dask_array(value: Any) -> bool:
    da = sys.modules.get("dask.array")
    return da is not None and isinstance(value, da.Array)


def _codecs() -> dict[str, Any]:
    from zarr.codecs import BloscCodec, Crc32cCodec

    return {"compressors": [BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"), Crc32cCodec()]}


def write(where: Any, value: Any) -> dict[str, Any]:
    """Write the array ``value`` to the Zarr group at ``where``; return its description.

    A numpy array is written in one go. A dask array is written chunk by chunk by the
    workers of the running Dask scheduler (the active ``distributed`` cluster when called
    on one of its workers, else threads), skipping the chunks that an earlier, interrupted
    write of the same array already completed.
    """
    if is_dask_array(value):
        return _write_dask(where, value)
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


def _write_dask(where: Any, x: Any) -> dict[str, Any]:
    import dask
    import numpy as np
    import zarr

    x = _regular(x)
    data, done = _open_for_resume(where, x)
    finished = done[...]
    blocks = x.to_delayed()
    store_chunk = dask.delayed(_store_chunk, pure=True)
    writes = [
        store_chunk(blocks[index], data, done, index)
        for index in np.ndindex(*x.numblocks)
        if not finished[index]
    ]
    if writes:
        _compute(writes)
    return _describe(zarr.open_array(where, path=DATA, mode="r"))


def _open_for_resume(where: Any, x: Any) -> tuple[Any, Any]:
    """The ``data`` and ``done`` arrays at ``where``: those of an earlier write of the
    same shape, dtype and chunks if there is one, else new ones."""
    import zarr

    try:
        group = zarr.open_group(where, mode="r+")
        data, done = group[DATA], group[DONE]
        if (data.shape, data.dtype, data.chunks) == (x.shape, x.dtype, x.chunksize):
            return data, done
    except (FileNotFoundError, KeyError, ValueError):
        pass
    group = zarr.open_group(where, mode="w")
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


def _compute(writes: list[Any]) -> None:
    """Run ``writes`` on the cluster this code runs on: from inside a ``distributed``
    worker through its client (the worker leaves its thread pool meanwhile, so the chunks
    can run on it too), elsewhere on Dask's threads."""
    distributed = sys.modules.get("distributed")
    if distributed is not None:
        try:
            distributed.get_worker()
        except ValueError:
            pass
        else:
            with distributed.worker_client() as client:
                client.gather(client.compute(writes))
            return
    import dask

    dask.compute(*writes, scheduler="threads")


def load(where: Any, path: str) -> Any:
    """The array ``path`` of the group at ``where``: a numpy array, or a dask array chunked
    as stored when it holds more than :func:`lazy_threshold` bytes."""
    import zarr

    data = zarr.open_array(where, path=path, mode="r")
    if data.nbytes > lazy_threshold():
        import dask.array as da

        return da.from_zarr(data)
    return data[...]


def lazy_threshold() -> int:
    """Bytes above which a cached array is returned lazily: the Dask config key
    ``daskbio.lazy-above`` (e.g. ``"1 GiB"``), 256 MiB by default."""
    from dask.utils import parse_bytes

    from daskbio import config

    return parse_bytes(config.get("daskbio.lazy-above"))
