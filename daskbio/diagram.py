"""A pipeline's Task graph as a picture: collapsed by function, or every Task of a small one.

:func:`collapsed` makes one node per function with its counts (:func:`daskbio.status.status`
decides them) and one edge per pair of functions, labelled with how many Task-to-Task
dependencies it stands for: a picture of a few boxes, whether the pipeline has 10 Tasks or
100,000, built in one pass over the Tasks. :func:`full` makes one node per Task, for small
pipelines. :func:`write` draws either with graphviz as ``.dot`` (no graphviz program needed),
``.svg`` or ``.png`` (Debian's ``graphviz`` package: ``dot``).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from html import escape
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from daskbio.cache import Store
from daskbio.graph.task import Task
from daskbio.status import Counts, Status, status

if TYPE_CHECKING:
    import graphviz

#: States of a node. A Task is done, failed, running or waiting; a function is
#: done (all its Tasks), failed (some), partly done (some done or running) or waiting (none).
DONE = "done"
FAILED = "failed"
RUNNING = "running"
PARTLY_DONE = "partly done"
WAITING = "waiting"

#: The most Tasks :func:`full` draws one by one.
FULL_LIMIT = 2000

#: The file formats :func:`write` writes, by extension.
FORMATS = ("dot", "svg", "png")

#: A node's fill colour by its state.
FILL = MappingProxyType(
    {
        DONE: "#b7e1a1",
        FAILED: "#f4a3a3",
        RUNNING: "#ffd27f",
        PARTLY_DONE: "#ffd27f",
        WAITING: "#e3e3e3",
    }
)
STALE_BORDER = "#6a3d9a"
LEGEND = (
    "green: done, amber: partly done or running, red: failed, grey: waiting, "
    "dashed purple border: stale results"
)
ARROW_COUNTS = "an arrow's number: how many Task-to-Task dependencies it stands for"


class TooManyTasks(ValueError):
    """:func:`full` was given more Tasks than it draws one by one."""


class DotNotFound(RuntimeError):
    """Graphviz's ``dot`` program, needed for ``.svg`` and ``.png``, is not installed."""


@dataclass(frozen=True)
class FunctionNode:
    """One function of a collapsed graph, with how many of its Tasks are in each state."""

    name: str
    counts: Counts

    @property
    def key(self) -> str:
        return self.name

    @property
    def state(self) -> str:
        c = self.counts
        if c.failed:
            return FAILED
        if c.done == c.total:
            return DONE
        if c.done or c.running:
            return PARTLY_DONE
        return WAITING

    @property
    def stale(self) -> bool:
        return self.counts.stale > 0

    @property
    def label(self) -> str:
        c = self.counts
        tasks = "Task" if c.total == 1 else "Tasks"
        return (
            f"{self.name}\n{c.total} {tasks} · {c.done} done · {c.stale} stale\n"
            f"{c.failed} failed · {c.running} running · {c.waiting} waiting"
        )


@dataclass(frozen=True)
class TaskNode:
    """One Task of a full graph: its function, hash and state."""

    hash: str
    name: str
    state: str
    stale: bool

    @property
    def key(self) -> str:
        return self.hash

    @property
    def label(self) -> str:
        return f"{self.name}\n{self.hash[:8]}"


@dataclass(frozen=True)
class Edge:
    """Tasks of ``target`` use results of ``source``: ``count`` Task-to-Task dependencies
    (node keys: function names in a collapsed graph, Task hashes in a full one)."""

    source: str
    target: str
    count: int


@dataclass(frozen=True)
class Diagram:
    """Nodes and the edges between them, in the order the Tasks were made: a node per
    function (``by_function``, :func:`collapsed`) or per Task (:func:`full`)."""

    nodes: list[FunctionNode] | list[TaskNode]
    edges: list[Edge]
    by_function: bool


def collapsed(tasks: list[Task], store: Store) -> Diagram:
    """The graph of ``tasks`` with one node per function, in the states of ``store``.

    Parameters
    ----------
    tasks : list of Task
        Distinct Tasks, with the Tasks they use (as a pipeline's ``tasks`` are).
    store : Store
        The cache whose results, failures and runs decide the states.

    Returns
    -------
    Diagram
        A :class:`FunctionNode` per function with its counts (as ``daskbio status`` shows
        them) and an :class:`Edge` per pair of functions: its count is the number of Tasks of
        the target that use a Task of the source, summed over them (a Task using the same
        Task twice counts once).

    Examples
    --------
    >>> from daskbio.cache import MemoryStore
    >>> def load(i):
    ...     return i
    >>> def total(xs):
    ...     return sum(xs)
    >>> loads = [Task(load, i) for i in range(3)]
    >>> tasks = [*loads, Task(total, loads)]
    >>> store = MemoryStore()
    >>> _ = store.save(loads[0].hash(), 0)
    >>> diagram = collapsed(tasks, store)
    >>> [(n.name, n.counts.total, n.counts.done, n.state) for n in diagram.nodes]
    [('load', 3, 1, 'partly done'), ('total', 1, 0, 'waiting')]
    >>> diagram.edges
    [Edge(source='load', target='total', count=3)]
    """
    report = status(tasks, store)
    uses: Counter[tuple[str, str]] = Counter()
    for t in tasks:
        for d in t.dependencies():
            uses[d.name, t.name] += 1
    return Diagram(
        nodes=[FunctionNode(name, c) for name, c in report.counts.items()],
        edges=[Edge(source, target, n) for (source, target), n in uses.items()],
        by_function=True,
    )


def task_states(tasks: list[Task], store: Store, report: Status | None = None) -> dict[str, str]:
    """The state of each of ``tasks`` in ``store``, by hash: done, failed, running or
    waiting, decided as :func:`daskbio.status.status` counts them (``report``, when given, is
    its result for the same Tasks and store).

    Examples
    --------
    >>> from daskbio.cache import MemoryStore
    >>> def inc(x):
    ...     return x + 1
    >>> a, b = Task(inc, 1), Task(inc, 2)
    >>> store = MemoryStore()
    >>> _ = store.save(a.hash(), 2)
    >>> store.record_failure(b.hash(), {"error": "ZeroDivisionError"})
    >>> states = task_states([a, b], store)
    >>> states[a.hash()], states[b.hash()]
    ('done', 'failed')
    """
    if report is None:
        report = status(tasks, store, with_stale=False)
    present, failed = store.lookup(t.hash() for t in tasks)
    states = {}
    for t in tasks:
        h = t.hash()
        if h in present:
            states[h] = DONE
        elif h in report.running:
            states[h] = RUNNING
        elif h in failed:
            states[h] = FAILED
        else:
            states[h] = WAITING
    return states


def full(tasks: list[Task], store: Store, limit: int = FULL_LIMIT) -> Diagram:
    """The graph of ``tasks`` with one node per Task, in the states of ``store``.

    Parameters
    ----------
    tasks : list of Task
        Distinct Tasks, with the Tasks they use; at most ``limit``.
    store : Store
        The cache whose results, failures and runs decide the states.
    limit : int
        The most Tasks drawn: a picture of more is unreadable, and slow to lay out.

    Returns
    -------
    Diagram
        A :class:`TaskNode` per Task and an :class:`Edge` (count 1) per dependency.

    Raises
    ------
    TooManyTasks
        When there are more than ``limit`` Tasks (draw them :func:`collapsed`).

    Examples
    --------
    >>> from daskbio.cache import MemoryStore
    >>> def inc(x):
    ...     return x + 1
    >>> a = Task(inc, 1)
    >>> b = Task(inc, a)
    >>> diagram = full([a, b], MemoryStore())
    >>> [n.state for n in diagram.nodes], diagram.edges[0].target == b.hash()
    (['waiting', 'waiting'], True)
    """
    if len(tasks) > limit:
        raise TooManyTasks(
            f"{len(tasks):,} Tasks are too many to draw one by one (at most {limit:,})"
        )
    report = status(tasks, store)
    states = task_states(tasks, store, report)
    return Diagram(
        nodes=[
            TaskNode(t.hash(), t.name, states[t.hash()], t.hash() in report.stale) for t in tasks
        ],
        edges=[Edge(d.hash(), t.hash(), 1) for t in tasks for d in t.dependencies()],
        by_function=False,
    )


def to_graphviz(diagram: Diagram) -> graphviz.Digraph:
    """``diagram`` as a graphviz graph: nodes filled by state (:data:`FILL`), stale ones
    with a dashed purple border, edges labelled with their counts in a collapsed graph.

    Examples
    --------
    >>> from daskbio.cache import MemoryStore
    >>> def inc(x):
    ...     return x + 1
    >>> a = Task(inc, 1)
    >>> source = to_graphviz(collapsed([a, Task(inc, a)], MemoryStore())).source
    >>> "inc -> inc [label=1]" in source
    True
    >>> "<b>inc</b><br/>2 Tasks · 0 done · 0 stale" in source
    True
    """
    import graphviz

    graph = graphviz.Digraph(
        "daskbio",
        graph_attr={
            "rankdir": "TB",
            "label": f"{LEGEND}\\n{ARROW_COUNTS}" if diagram.by_function else LEGEND,
            "labelloc": "b",
            "fontsize": "10",
            "fontname": "Helvetica",
        },
        node_attr={
            "shape": "box",
            "fontname": "Helvetica",
            "fontsize": "11",
            "margin": "0.15,0.08",
        },
        edge_attr={"fontname": "Helvetica", "fontsize": "10", "color": "#555555"},
    )
    for node in diagram.nodes:
        style = {"style": "rounded,filled", "fillcolor": FILL[node.state]}
        if node.stale:
            style.update(style="rounded,filled,dashed", color=STALE_BORDER, penwidth="2.5")
        graph.node(node.key, _html_label(node.label), **style)
    for edge in diagram.edges:
        graph.edge(edge.source, edge.target, label=str(edge.count) if diagram.by_function else None)
    return graph


def _html_label(label: str) -> str:
    """``label``'s lines as a graphviz HTML label, the first (the function's name) bold."""
    name, *rest = label.split("\n")
    return f"<<b>{escape(name)}</b>{''.join(f'<br/>{escape(line)}' for line in rest)}>"


def format_of(path: str | os.PathLike[str]) -> str:
    """The format named by ``path``'s extension: one of :data:`FORMATS`.

    Examples
    --------
    >>> format_of("graph.SVG")
    'svg'
    """
    fmt = Path(path).suffix.lower().removeprefix(".")
    if fmt not in FORMATS:
        raise ValueError(
            f"cannot draw a graph as {Path(path).name!r}: name a .svg, .png or .dot file"
        )
    return fmt


def write(diagram: Diagram, path: str | os.PathLike[str]) -> Path:
    """Draw ``diagram`` into ``path``, in the format its extension names (:func:`format_of`).

    ``.dot`` is graphviz's text, written without graphviz's programs; ``.svg`` and ``.png``
    are laid out by ``dot`` (:class:`DotNotFound` when it is not installed).

    Examples
    --------
    >>> import tempfile
    >>> from daskbio.cache import MemoryStore
    >>> def inc(x):
    ...     return x + 1
    >>> folder = Path(tempfile.mkdtemp())
    >>> written = write(collapsed([Task(inc, 1)], MemoryStore()), folder / "graph.dot")
    >>> written.read_text().startswith("digraph daskbio {")
    True
    """
    import graphviz

    path = Path(path)
    fmt = format_of(path)
    graph = to_graphviz(diagram)
    if fmt == "dot":
        path.write_text(graph.source)
        return path
    try:
        drawn = graph.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise DotNotFound(
            f"graphviz's 'dot' program draws .{fmt} files and is not installed "
            "(a .dot file needs none): install graphviz: apt-get install graphviz"
        ) from None
    path.write_bytes(drawn)
    return path
