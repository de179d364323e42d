"""Array results as Zarr v3 groups, whole or refused.

An array lives in its key's payload folder (:class:`~daskbio.cache.payloads.Payloads`):

``data``
    A dask array result, chunked as the dask array was (made regular), written one chunk
    at a time by the workers (:mod:`daskbio.graph.chunked`).
``done``
    One 16-byte tag per chunk of ``data``: a keyed MAC of the chunk's digest, set once the
    chunk is written. A write that was killed resumes from the chunks whose stored bytes
    still match their tag; nothing else in a partial write is trusted.
``numpy-<random>``
    A numpy array result, written in one go under a name of its own, so that two
    processes saving the same key at once never mix their chunks.

Every chunk is written, those equal to the fill value included, and the SHA-256 digest of
each chunk's stored bytes and of the array's ``zarr.json`` goes into the entry's signed
metadata (the *manifest*). Reads go through :class:`VerifyingStore`, which refuses a
missing or altered chunk or metadata file as it is read: all of them for a numpy result,
each chunk as a computation reads it for a lazy one. An extra file is found by
:func:`verify`.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Callable, Iterator
from typing import Any

from daskbio.cache.signing import digest

FORMAT = "zarr"
DATA = "data"
DONE = "done"
GRAPH = "daskbio-graph"  # group attribute: what makes the array being written
METADATA = "zarr.json"
TAG_BYTES = 16
# Chunks equal to the fill value are written too: a missing file is then damage, never
# "zeros". A runtime setting: every writer opens the array with it.
WRITE_EVERY_CHUNK = {"write_empty_chunks": True}

#: Called as ``on_damage(why, file)`` when a read finds damage; it raises.
OnDamage = Callable[[str, str], None]
#: ``tag(metadata_sha, chunk, sha)``: the keyed tag of a chunk written under that metadata.
Tagger = Callable[[str, str, str], bytes]


class ChunkDamaged(Exception):
    """Raised inside Zarr's event loop by :class:`VerifyingStore`; turned into a call of
    ``on_damage`` (which may do I/O) once outside it, by :func:`_checked`."""

    def __init__(self, why: str, file: str) -> None:
        super().__init__(why, file)
        self.why = why
        self.file = file


@contextlib.contextmanager
def _checked(on_damage: OnDamage) -> Iterator[None]:
    try:
        yield
    except ChunkDamaged as e:
        on_damage(e.why, e.file)


class _CheckedReads:
    """A Zarr array for ``dask.array.from_array`` whose damaged reads call ``on_damage``."""

    def __init__(self, data: Any, on_damage: OnDamage) -> None:
        self.data = data
        self.on_damage = on_damage
        self.shape, self.dtype, self.ndim = data.shape, data.dtype, data.ndim

    def __getitem__(self, region: Any) -> Any:
        with _checked(self.on_damage):
            return self.data[region]


def is_array(value: Any) -> bool:
    """Whether ``value`` is stored as a Zarr array: a numpy or dask array of a numeric or
    boolean dtype with at least one dimension (others are pickled or stored as ``.npy``)."""
    np = sys.modules.get("numpy")
    numpy_array = np is not None and type(value) is np.ndarray
    return (numpy_array or is_dask_array(value)) and value.ndim > 0 and value.dtype.kind in "biufc"


def is_dask_array(value: Any) -> bool:
    """Whether ``value`` is a dask array (without importing dask.array when it is not)."""
    # The class, not the package: while another thread is importing dask.array (a Task
    # doing so for the first time) the package is there half made, without ``Array``.
    array = getattr(sys.modules.get("dask.array.core"), "Array", None)
    return array is not None and isinstance(value, array)


def chunk_key(index: tuple[int, ...]) -> str:
    """The name of chunk ``index`` inside its array (Zarr v3's default encoding)."""
    return "c/" + "/".join(map(str, index))


def _grid(shape: tuple[int, ...], chunks: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(math.ceil(n / c) for n, c in zip(shape, chunks))


def _indices(grid: tuple[int, ...]) -> Iterator[tuple[int, ...]]:
    import numpy as np

    return (tuple(map(int, i)) for i in np.ndindex(*grid))


def _create_array(group: Any, name: str, shape: tuple, dtype: Any, chunks: Any) -> Any:
    from zarr.codecs import BloscCodec, Crc32cCodec

    return group.create_array(
        name,
        shape=shape,
        dtype=dtype,
        chunks=chunks,
        compressors=[BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"), Crc32cCodec()],
        config=WRITE_EVERY_CHUNK,
    )


def _raw(where: Any, relative: str) -> bytes | None:
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    buffer = sync((where / relative).get(default_buffer_prototype()))
    return None if buffer is None else buffer.to_bytes()


def sync_delete_dir(where: Any, name: str) -> None:
    """Remove the folder ``name`` of the group at ``where``."""
    from zarr.core.sync import sync

    sync(where.store.delete_dir(f"{where.path}/{name}"))


def write_numpy(where: Any, value: Any, write_id: str) -> dict[str, Any]:
    """Write the numpy array ``value`` into the group at ``where``; return its manifest."""
    import uuid

    import zarr

    try:
        group = zarr.open_group(where, mode="a")
    except zarr.errors.ContainsGroupError:
        # Another process created the group between our look and our write.
        group = zarr.open_group(where, mode="r+")
    name = f"numpy-{uuid.uuid4().hex[:16]}"
    try:
        data = _create_array(group, name, value.shape, value.dtype, "auto")
        data[...] = value
    except BaseException:
        # A full disk, say: leave no array that nothing will ever name.
        with contextlib.suppress(Exception):
            sync_delete_dir(where, name)
        raise
    grid = _grid(data.shape, data.chunks)
    digests = {i: digest(_raw(where, f"{name}/{chunk_key(i)}") or b"") for i in _indices(grid)}
    return manifest(where, name, digests, write_id)


def manifest(
    where: Any,
    name: str,
    digests: dict[tuple[int, ...], str],
    write_id: str,
    tag: Tagger | None = None,
) -> dict[str, Any]:
    """What makes the array ``name`` whole: shape, dtype, chunk grid, the digest of its
    metadata file and of every chunk (``digests``, by chunk index).

    With ``tag`` (a chunk-by-chunk write), every chunk's tag in ``done`` must show it was
    written with that digest under the metadata there is now: a shape or codec edited
    meanwhile is refused, not signed.
    """
    import zarr

    meta = _raw(where, f"{name}/{METADATA}")
    if meta is None:
        raise FileNotFoundError(f"{name}/{METADATA} is missing")
    data = zarr.open_array(where, path=name, mode="r")
    grid = _grid(data.shape, data.chunks)
    missing = [i for i in _indices(grid) if i not in digests]
    if tag is not None and not missing:
        meta_sha, tags = digest(meta), zarr.open_array(where, path=DONE, mode="r")[...]
        missing = [
            i
            for i in _indices(grid)
            if tags[i].tobytes() != tag(meta_sha, chunk_key(i), digests[i])
        ]
    if missing:
        raise RuntimeError(
            f"chunks {missing[:3]} of the array at {where} are not those this write wrote: "
            "was it removed or changed meanwhile (by another run of the same Task)?"
        )
    return {
        "path": name,
        "shape": list(data.shape),
        "dtype": str(data.dtype),
        "chunks": list(data.chunks),
        "nbytes": int(data.nbytes),
        "stored": int(data.nbytes_stored()),
        "metadata_sha": digest(meta),
        "chunk_sha": "".join(digests[i] for i in _indices(grid)),
        "write": write_id,
    }


def expected_files(manifest: dict[str, Any]) -> dict[str, str]:
    """Every file of the array a manifest describes (relative to its group), with its
    digest."""
    grid = _grid(tuple(manifest["shape"]), tuple(manifest["chunks"]))
    sha = manifest["chunk_sha"]
    width = len(sha) // max(1, math.prod(grid))
    name = manifest["path"]
    files = {f"{name}/{METADATA}": manifest["metadata_sha"]}
    for n, i in enumerate(_indices(grid)):
        files[f"{name}/{chunk_key(i)}"] = sha[n * width : (n + 1) * width]
    return files


def _verifying_store_class() -> type:
    from zarr.storage import WrapperStore

    class VerifyingStore(WrapperStore):
        """A Zarr store that serves the files of one manifest only if their bytes match
        it; other keys pass through."""

        def __init__(self, store: Any, prefix: str, files: dict[str, str]) -> None:
            super().__init__(store)
            self._prefix = prefix
            self._files = files

        def _with_store(self, store: Any) -> Any:
            return type(self)(store, self._prefix, self._files)

        def __reduce__(self) -> tuple:
            return (_verifying_store, (self._store, self._prefix, self._files))

        async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
            relative = key[len(self._prefix) + 1 :] if key.startswith(self._prefix) else None
            expected = self._files.get(relative) if relative is not None else None
            if expected is None:
                return await self._store.get(key, prototype, byte_range)
            buffer = await self._store.get(key, prototype)
            if buffer is None:
                raise ChunkDamaged(f"{relative} is missing", key)
            if digest(buffer.as_buffer_like()) != expected:
                raise ChunkDamaged(f"{relative} does not match its checksum", key)
            if byte_range is not None:
                # Part of the bytes just checked, never a second read.
                return prototype.buffer.from_bytes(_part(buffer.to_bytes(), byte_range))
            return buffer

        async def get_partial_values(self, prototype: Any, key_ranges: Any) -> list:
            return [await self.get(key, prototype, part) for key, part in key_ranges]

    return VerifyingStore


def _part(data: bytes, byte_range: Any) -> bytes:
    """The bytes of ``data`` that a Zarr ``ByteRequest`` asks for."""
    from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest

    if isinstance(byte_range, RangeByteRequest):
        return data[byte_range.start : byte_range.end]
    if isinstance(byte_range, OffsetByteRequest):
        return data[byte_range.offset :]
    if isinstance(byte_range, SuffixByteRequest):
        return data[len(data) - byte_range.suffix :]
    raise TypeError(f"unknown byte range {byte_range!r}")


def _verifying_store(store: Any, prefix: str, files: dict[str, str]) -> Any:
    return _verifying_store_class()(store, prefix, files)


def open_verified(where: Any, manifest: dict[str, Any], on_damage: OnDamage) -> Any:
    """The Zarr array of ``manifest`` in the group at ``where`` (a ``StorePath``), read
    through a :class:`VerifyingStore`."""
    import zarr
    from zarr.storage import StorePath

    checked = _verifying_store(where.store, where.path, expected_files(manifest))
    with _checked(on_damage):
        data = zarr.open_array(StorePath(checked, where.path), path=manifest["path"], mode="r")
    if [list(data.shape), str(data.dtype), list(data.chunks)] != [
        manifest["shape"],
        manifest["dtype"],
        manifest["chunks"],
    ]:
        name = f"{manifest['path']}/{METADATA}"
        on_damage(f"{name} does not describe the array stored", f"{where.path}/{name}")
    return data


def load(where: Any, manifest: dict[str, Any], name: str, on_damage: OnDamage) -> Any:
    """The array of ``manifest``: a numpy array (every chunk checked now, and no file
    beside them), or a dask array chunked as stored, named ``name`` (each chunk checked
    when read), when it holds more than :func:`lazy_threshold` bytes."""
    data = open_verified(where, manifest, on_damage)
    if manifest["nbytes"] > lazy_threshold():
        import dask.array as da
        import numpy as np

        reads = _CheckedReads(data, on_damage)
        meta = np.empty((0,) * data.ndim, dtype=data.dtype)
        return da.from_array(reads, chunks=data.chunks, name=name, meta=meta, asarray=False)
    _refuse_extra_files(where, manifest, on_damage)
    with _checked(on_damage):
        return data[...]


def _refuse_extra_files(where: Any, manifest: dict[str, Any], on_damage: OnDamage) -> None:
    from zarr.core.sync import sync

    files = expected_files(manifest)
    prefix = f"{where.path}/{manifest['path']}/"

    async def listing() -> set[str]:
        return {k[len(where.path) + 1 :] async for k in where.store.list_prefix(prefix)}

    extra = sorted(name for name in sync(listing()) if name not in files)
    if extra:
        why = f"{extra[0]} is not part of the array ({len(extra)} extra files)"
        on_damage(why, f"{where.path}/{extra[0]}")


def verify(where: Any, manifest: dict[str, Any], on_damage: OnDamage) -> None:
    """Check every file of the array of ``manifest``: none missing, extra or altered."""
    _refuse_extra_files(where, manifest, on_damage)
    for relative, expected in expected_files(manifest).items():
        raw = _raw(where, relative)
        if raw is None:
            on_damage(f"{relative} is missing", f"{where.path}/{relative}")
        elif digest(raw) != expected:
            on_damage(f"{relative} does not match its checksum", f"{where.path}/{relative}")


def open_for_resume(
    where: Any, shape: tuple, dtype: Any, chunks: tuple, identity: str, fresh: bool
) -> tuple[Any, Any]:
    """The ``data`` and ``done`` arrays at ``where`` for writing an array of ``shape``,
    ``dtype`` and ``chunks``: unless ``fresh``, those of an earlier write of the same array
    (same ``identity``: dask graph name and code fingerprint) if there is one; else new
    ones."""
    import zarr

    try:
        if fresh:
            raise FileNotFoundError
        group = zarr.open_group(where, mode="r+")
        data, done = group[DATA], group[DONE]
        same = (data.shape, data.dtype, data.chunks) == (shape, dtype, chunks)
        tags = done.shape == (*_grid(shape, chunks), TAG_BYTES)
        if same and tags and group.attrs.get(GRAPH) == identity:
            return data.with_config(WRITE_EVERY_CHUNK), done
    except (FileNotFoundError, KeyError, ValueError, TypeError):
        pass
    group = zarr.open_group(where, mode="w", attributes={GRAPH: identity})
    data = _create_array(group, DATA, shape, dtype, chunks)
    grid = _grid(shape, chunks)
    done = group.create_array(
        DONE, shape=(*grid, TAG_BYTES), dtype="u1", chunks=(1,) * len(grid) + (TAG_BYTES,)
    )
    return data, done


def resumable(where: Any) -> bool:
    """Whether the group at ``where`` holds a chunk-by-chunk write that can resume."""
    return _raw(where, f"{DATA}/{METADATA}") is not None


def written_chunks(where: Any, done: Any, tag: Tagger) -> dict:
    """The chunks of ``data`` whose stored bytes, and the metadata there is now, match the
    tag ``done`` holds for them, with their digests: what a resumed write keeps."""
    import numpy as np

    meta = _raw(where, f"{DATA}/{METADATA}")
    if meta is None:
        return {}
    meta_sha, tags = digest(meta), done[...]
    found = {}
    for i in zip(*np.nonzero(tags.any(axis=-1))):
        index = tuple(map(int, i))
        raw = _raw(where, f"{DATA}/{chunk_key(index)}")
        if raw is None:
            continue
        sha = digest(raw)
        if tags[index].tobytes() == tag(meta_sha, chunk_key(index), sha):
            found[index] = sha
    return found


def write_chunk(where: Any, index: tuple[int, ...], block: Any, tag: Tagger) -> str:
    """Write ``block`` into chunk ``index`` of the ``data`` array at ``where``, then its tag
    into ``done``; return the digest of the chunk's stored bytes."""
    import numpy as np
    import zarr

    group = zarr.open_group(where, mode="r+")
    data, done = group[DATA].with_config(WRITE_EVERY_CHUNK), group[DONE]
    meta = _raw(where, f"{DATA}/{METADATA}") or b""
    region = tuple(slice(i * c, i * c + n) for i, c, n in zip(index, data.chunks, block.shape))
    data[region] = block
    # Read back: the digest is of the bytes Zarr stored, which the manifest will name.
    sha = digest(_raw(where, f"{DATA}/{chunk_key(index)}") or b"")
    done[index] = np.frombuffer(tag(digest(meta), chunk_key(index), sha), dtype=np.uint8)
    return sha


def lazy_threshold() -> int:
    """Bytes above which a cached array is returned lazily: the Dask config key
    ``daskbio.lazy-above`` (e.g. ``"1 GiB"``), 256 MiB by default."""
    from dask.utils import parse_bytes

    from daskbio import config

    return parse_bytes(config.get("daskbio.lazy-above"))
