"""Which Task a Dask key of daskbio's stands for.

A Task runs as ``<function>-<hash>`` (:func:`daskbio.graph.to_dask.dask_key`), a cached
input is read as ``load-<function>-<hash>``, and each chunk of a dask array that a Task
writes to the cache as ``store_chunk-<hash>-<n>-<write>-<function>`` (:func:`chunk_key`), so
progress displays and the dashboard can count every one of them by function.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from daskbio.graph.to_dask import dask_key

# A hash is 32 hex digits, split after 8 when it has no decimal digit (see dask_key).
_HASH = r"(?P<head>[0-9a-f]{8})-?(?P<tail>[0-9a-f]{24})"
_TASK = re.compile(rf"(?P<name>.+)-{_HASH}")
CHUNK_PREFIX = "store_chunk-"
_CHUNK = re.compile(rf"{CHUNK_PREFIX}{_HASH}-(?P<n>\d+)-(?P<write>[0-9a-f]{{16}})-(?P<name>.+)")


class Parsed(NamedTuple):
    """What a key stands for: ``kind`` is ``"task"``, ``"load"`` or ``"chunk"``."""

    kind: str
    name: str
    key: str


def chunk_key(name: str, key: str, n: int, write: str) -> str:
    """The Dask key of chunk number ``n`` (in C order) of the array Task ``key`` of
    function ``name`` writes; the dashboard's task stream shows it as ``store_chunk``.

    ``write`` (16 hex digits) tells apart writes of the same Task that are not the same:
    to another cache, or of another array (another dask graph or code). Two runs on one
    scheduler must never share a chunk's key, or the second would be handed the first's
    result (the digest of a chunk written to the first run's cache only).

    Examples
    --------
    >>> from dask.utils import key_split
    >>> k = chunk_key("smooth", "0123456789abcdef" * 2, 3, "feed" * 4)
    >>> k, key_split(k)
    ('store_chunk-0123456789abcdef0123456789abcdef-3-feedfeedfeedfeed-smooth', 'store_chunk')
    >>> parse(k)
    Parsed(kind='chunk', name='smooth', key='0123456789abcdef0123456789abcdef')
    """
    return f"{dask_key(CHUNK_PREFIX[:-1], key)}-{n}-{write}-{name}"


def parse(dask_key: object) -> Parsed | None:
    """What ``dask_key`` stands for, or None for a key that is not daskbio's (a tuple key of
    a dask array's chunk, a user's own key).

    Examples
    --------
    >>> parse("load-segment-" + "0123456789abcdef" * 2).kind
    'load'
    >>> parse("segment-" + "abcdef01" + "-" + "abcdef" * 4).key
    'abcdef01abcdefabcdefabcdefabcdef'
    >>> parse(("array-3f2a", 0, 1)) is None
    True
    """
    if not isinstance(dask_key, str):
        return None
    if dask_key.startswith(CHUNK_PREFIX) and (found := _CHUNK.fullmatch(dask_key)):
        return Parsed("chunk", found["name"], found["head"] + found["tail"])
    if found := _TASK.fullmatch(dask_key):
        name = found["name"]
        kind = "task"
        if name.startswith("load-"):
            kind, name = "load", name[len("load-") :]
        return Parsed(kind, name, found["head"] + found["tail"])
    return None
