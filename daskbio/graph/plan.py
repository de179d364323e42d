"""Planning on the client: which Tasks must run, and which cached results they need.

One batched existence check decides. Cached Tasks that no missing Task needs do not
appear in the plan at all (ARCHITECTURE.md decision 4).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from daskbio.cache import Store
from daskbio.graph.task import Task

log = logging.getLogger(__name__)


@dataclass
class Plan:
    """The outcome of planning ``targets`` against a store.

    Attributes
    ----------
    run : dict
        Tasks to compute, by hex hash.
    load : dict
        Cached Tasks whose results a Task in ``run`` needs, by hex hash.
    cached : set
        Hex hashes of the targets that are already cached.
    failed : set
        Hex hashes of the Tasks in ``run`` whose last attempt failed.
    stale : dict
        Why each cached result used is stale (computed by other code, from changed input
        files), by hash (filled in by :func:`daskbio.graph.compute.execute`).
    """

    run: dict[str, Task] = field(default_factory=dict)
    load: dict[str, Task] = field(default_factory=dict)
    cached: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    stale: dict[str, str] = field(default_factory=dict)


def closure(tasks: Iterable[Task]) -> dict[str, Task]:
    """Every Task reachable from ``tasks`` through their arguments, by hex hash."""
    found: dict[str, Task] = {}
    stack = list(tasks)
    while stack:
        task = stack.pop()
        h = task.hash()
        if h not in found:
            found[h] = task
            stack.extend(task.dependencies())
    return found


def plan(targets: Iterable[Task], store: Store) -> Plan:
    """Plan the computation of ``targets`` against ``store``.

    Examples
    --------
    >>> from daskbio.cache import MemoryStore
    >>> def inc(x):
    ...     return x + 1
    >>> a = Task(inc, 1)
    >>> b = Task(inc, a)
    >>> store = MemoryStore()
    >>> _ = store.save(a.hash(), 2)
    >>> p = plan([b], store)
    >>> list(p.run) == [b.hash()], list(p.load) == [a.hash()]
    (True, True)
    """
    by_hash = {t.hash(): t for t in targets}
    present = store.has_many(by_hash)
    result = Plan(cached=present)
    if len(present) == len(by_hash):
        return result
    everything = closure(by_hash[h] for h in by_hash.keys() - present)
    more, failed = store.lookup(everything.keys() - present)
    present |= more
    stack = [t for h, t in by_hash.items() if h not in present]
    while stack:
        task = stack.pop()
        h = task.hash()
        if h in result.run:
            continue
        result.run[h] = task
        for dep in task.dependencies():
            if dep.hash() in present:
                result.load[dep.hash()] = dep
            else:
                stack.append(dep)
    result.failed = failed & result.run.keys()
    log.info(
        "plan: %d Tasks to compute (%d failed before), %d cached inputs to load",
        len(result.run),
        len(result.failed),
        len(result.load),
    )
    return result
