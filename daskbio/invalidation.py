"""Removing results so that they are computed again: a Task's, and everything downstream
(from entry metadata alone, ARCHITECTURE.md decision 7), or a pipeline's stale ones."""

from __future__ import annotations

import re
from collections.abc import Iterable

from daskbio.cache import Store


class NoSuchTask(LookupError):
    """Nothing in the cache matches what was asked for."""


def downstream(store: Store, start: Iterable[str]) -> dict[str, dict]:
    """``start`` and every entry that depends on it, transitively, from entry metadata
    alone; maps each key to its metadata ({} for failure records and damaged entries)."""
    keys = store.keys()
    metas = dict(zip(keys, store.metadata_many(keys)))
    users: dict[str, list[str]] = {}
    for key, meta in metas.items():
        for dep in (meta or {}).get("deps", ()):
            users.setdefault(dep, []).append(key)
    found: dict[str, dict] = {}
    stack = list(start)
    while stack:
        key = stack.pop()
        if key not in found:
            found[key] = metas.get(key) or {}
            stack.extend(users.get(key, ()))
    return found


def matching(store: Store, task: str) -> set[str]:
    """Keys whose function is named ``task``, else the one key starting with ``task``.

    Raises
    ------
    NoSuchTask
        When nothing matches, or a hash prefix matches more than one key.
    """
    keys = store.keys()
    failed = store.failures()
    by_name = {
        k
        for k, m in zip(keys, store.metadata_many(keys))
        if m and task in (m.get("name"), m.get("function"))
    }
    for k, info in store.failure_many(failed).items():
        if task in (info.get("name"), info.get("function")):
            by_name.add(k)
    if by_name:
        return by_name
    if not re.fullmatch(r"[0-9a-f]+", task):
        raise NoSuchTask(f"no Task named {task!r} in the cache {store.location}")
    found = {k for k in set(keys) | failed if k.startswith(task)}
    if not found:
        raise NoSuchTask(f"no Task with a hash starting {task!r} in the cache {store.location}")
    if len(found) > 1:
        raise NoSuchTask(
            f"hash prefix {task!r} is ambiguous: it matches {len(found)} entries "
            f"({', '.join(sorted(found)[:3])}, ...); give more digits"
        )
    return found


def remove(store: Store, keys: Iterable[str]) -> int:
    """Remove the entries of ``keys``; the bytes freed."""
    return store.delete_many(keys)


def cleanup(store: Store, keep: set[str], dry_run: bool = False) -> tuple[list[str], int]:
    """Remove what the Tasks ``keep`` do not reach; the keys removed and the bytes freed.

    That is: results, failure records and partly written arrays of other Tasks, hidden
    temporary files of interrupted writes over an hour old, and whatever a kept Task's
    payload folder holds beside what its entry names (an array of a failed write). Tasks
    a live run holds the lock of are left alone, whatever their state (cleanup first
    joins the runs on the cache, so that one alone there takes its locks). Partly written
    arrays of kept Tasks stay, for the next run to resume. With ``dry_run``, nothing is removed
    and the bytes are those that would be freed by the first part.

    Examples
    --------
    >>> from daskbio.cache import MemoryStore
    >>> store = MemoryStore()
    >>> _ = store.save("ab" * 16, 1), store.save("cd" * 16, 2)
    >>> removed, _ = cleanup(store, {"ab" * 16})
    >>> removed, store.keys()
    (['cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd'], ['abababababababababababababababab'])
    """
    if dry_run:
        return _cleanup(store, keep, dry_run)
    # Joining as a run makes runs alone on the cache take their locks first: then the
    # Tasks they are computing are known, and spared (graph/solo.py).
    from daskbio.graph.job import Run
    from daskbio.graph.solo import registered

    with registered(store, Run(), in_process=False):
        return _cleanup(store, keep, dry_run)


def _cleanup(store: Store, keep: set[str], dry_run: bool) -> tuple[list[str], int]:
    # What a live run is computing is left alone: its payload is not committed yet.
    busy = {k for k, holder in store.holders().items() if holder.live}
    found = set(store.keys()) | store.failures() | store.partial()
    unreached = sorted(k for k in found if k not in keep and k not in busy)
    if dry_run:
        return unreached, store.size_many(unreached)
    freed = remove(store, unreached) + store.sweep()
    return unreached, freed + store.tidy_many((store.payloads.keys() & keep) - busy)
