"""Translation of a Plan into a Dask graph: one key per Task, named after its function."""

from __future__ import annotations

from typing import Any

from daskbio.cache import Store
from daskbio.graph.job import Job, Run, load_result, run_job
from daskbio.graph.plan import Plan


def dask_key(name: str, key: str) -> str:
    """The Dask key of a Task: ``"<function name>-<32 hex digit hash>"``.

    ``dask.utils.key_split`` (which the dashboard uses to group work) takes a word made
    of letters only into the name, so in the rare case (about 1 in 10**14) of a hash of
    only the digits a-f, the hash is split after 8 digits, which key_split skips.

    Examples
    --------
    >>> from dask.utils import key_split
    >>> key_split(dask_key("method1", "0123456789abcdef" * 2))
    'method1'
    >>> key_split(dask_key("method1", "abcdef" * 5 + "ab"))
    'method1'
    """
    if key.isalpha():
        return f"{name}-{key[:8]}-{key[8:]}"
    return f"{name}-{key}"


def to_dask(plan: Plan, store: Store, run: Run) -> tuple[dict[str, Any], dict[str, str]]:
    """The Dask graph of ``plan`` and the Dask key of each Task in it (by hex hash).

    Cached inputs become ``load-<function>`` keys that read the cache on the worker;
    every Task to run becomes a key that computes it there and commits its result.
    """
    keys = {h: dask_key(f"load-{t.name}", h) for h, t in plan.load.items()}
    keys.update((h, dask_key(t.name, h)) for h, t in plan.run.items())
    graph: dict[str, Any] = {keys[h]: (load_result, store, h) for h in plan.load}
    for h, task in plan.run.items():
        graph[keys[h]] = (
            run_job,
            Job.of(task, store, run, h in plan.failed),
            *(keys[d.hash()] for d in task.dependencies()),
        )
    return graph, keys
