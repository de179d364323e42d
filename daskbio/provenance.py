"""Where a result came from (``daskbio show``) and why a Task is not in the cache
(``daskbio why``), read from the entries' metadata: a Python API the CLI only prints.

A Task's key is a hash of its function, its code version (``TaskGenerator(version=...)``)
and its arguments; an argument that is a Task contributes that Task's key. The hash alone
cannot say which part changed, so each entry also records its key's parts
(:func:`key_parts`): per argument path (``sigma``, ``args[1]['mask']``) the hash of that
part and a short repr. :func:`explain` compares a missing Task's parts with those of the
nearest cached Task of the same function, and follows an upstream Task that differs to
say why it differs in turn. Entries written before parts were recorded cannot be
compared: :func:`explain` says so rather than guess.
"""

from __future__ import annotations

import ast
import difflib
import inspect
import reprlib
import sys
import types
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from daskbio.cache import Store
from daskbio.graph import hashing
from daskbio.graph.job import Job, Ref, Run, failure_line, last_error_line
from daskbio.graph.task import Task, replace_tasks
from daskbio.invalidation import NoSuchTask
from daskbio.status import stale_results

#: At most this many parts are recorded per entry, top-level arguments first.
MAX_PARTS = 50
#: Containers are opened to this depth: ``args[1]['mask'][0]`` is depth 3.
MAX_DEPTH = 3
#: A part's repr is cut to this many characters.
MAX_REPR = 60
#: A value shared by more cached Tasks than this does not help find the nearest one.
_COMMON = 100
#: Cached Tasks compared in full to find the nearest: at most this many that tie,
#: else the best few.
_CANDIDATES = 50
_CLOSE = 5
#: Failed upstream Tasks named for a Task that misses.
_FAILED_SHOWN = 5
#: Upstream Tasks followed to explain a miss, from the Task asked about.
_MAX_UPSTREAM = 20
#: Results up to this size are loaded by :func:`describe` to name their type.
_LOAD_TYPE_BYTES = 1 << 20

_KEY_TYPES = (str, int, float, bool, type(None))
_SCALARS = frozenset(_KEY_TYPES)


class _ShortRepr(reprlib.Repr):
    def repr_ndarray(self, x: Any, level: int) -> str:
        return f"array(shape={x.shape}, dtype={x.dtype})"


_short = _ShortRepr()
_short.maxstring = _short.maxother = 40
_short.maxlist = _short.maxtuple = _short.maxset = _short.maxfrozenset = 4
_short.maxdict = 3
_short.maxlevel = 2


def _repr(x: Any) -> str:
    kind = type(x)
    # A long string is cut before its repr is made.
    text = repr(x[:MAX_REPR] if kind is str else x) if kind in _SCALARS else _short.repr(x)
    return text if len(text) <= MAX_REPR else text[: MAX_REPR - 3] + "..."


class _Upstream:
    """A dependency inside a container, hashed by its key (as a Task is)."""

    __slots__ = ("text",)

    def __init__(self, ref: Ref) -> None:
        self.text = _upstream_text(ref)

    def __daskbio_hash__(self) -> str:
        return self.text


def _upstream_text(ref: Ref) -> str:
    return "@" + ref.key + "".join(f"[{i!r}]" for i in ref.path)


def _part_hash(x: Any) -> str:
    try:
        return hashing.digest(x)[:8].hex()
    except hashing.Unhashable:
        # The arguments hashed when the Task was made: what fails is a dependency in a
        # container.
        return hashing.digest(replace_tasks(x, _Upstream, kinds=Ref))[:8].hex()


def key_parts(f: Callable[..., Any], args: tuple, kwargs: dict) -> dict[str, list]:
    """The parts of a Task's key, as its entry records them.

    Parameters
    ----------
    f : callable
        The Task's function (a bound method's object is the part ``self``).
    args, kwargs
        Its arguments, with a :class:`~daskbio.graph.job.Ref` where a Task was (as a
        :class:`~daskbio.graph.job.Job` has them).

    Returns
    -------
    dict
        By top-level path (``args[0]``, ``kwargs['sigma']``, ``self``): ``[hash, repr]``,
        or ``[hash, repr, children]`` for a list, tuple or dict, ``children`` keyed by
        ``[index]`` alike (to depth :data:`MAX_DEPTH`). An upstream Task is
        ``["@" + its hash, ""]``. At most :data:`MAX_PARTS` parts, breadth first.

    Examples
    --------
    >>> def smooth(image, sigma, opts):
    ...     pass
    >>> parts = key_parts(smooth, ("a.tif", 2), {"opts": {"mask": True}})
    >>> sorted(parts)
    ['args[0]', 'args[1]', "kwargs['opts']"]
    >>> parts["args[1]"][1], parts["kwargs['opts']"][2]["['mask']"][1]
    ('2', 'True')
    """
    parts: dict[str, list] = {}
    pending: deque[tuple[dict, str, Any, int]] = deque()
    bound = getattr(f, "__self__", None)
    if bound is not None and not isinstance(bound, types.ModuleType):
        pending.append((parts, "self", bound, MAX_DEPTH))
    pending.extend((parts, f"args[{i}]", x, 1) for i, x in enumerate(args))
    pending.extend((parts, f"kwargs[{k!r}]", x, 1) for k, x in kwargs.items())
    count = 0
    while pending and count < MAX_PARTS:
        into, name, x, depth = pending.popleft()
        count += 1
        kind = type(x)
        if kind is Ref:
            into[name] = [_upstream_text(x), ""]
            continue
        node = [_part_hash(x), _repr(x)]
        into[name] = node
        # ``x`` last: the truth of an array or a data frame raises.
        if depth < MAX_DEPTH and (kind is list or kind is tuple or kind is dict) and x:
            children: dict[str, list] = {}
            node.append(children)
            items = x.items() if kind is dict else enumerate(x)
            items = ((k, v) for k, v in items if type(k) in _KEY_TYPES)
            for k, v in islice(items, MAX_PARTS - count - len(pending)):
                pending.append((children, f"[{k!r}]", v, depth + 1))
    return parts


def _parts_of(task: Task, store: Store, run: Run) -> dict[str, list]:
    job = Job.of(task, store, run)
    return key_parts(job.f, job.args, job.kwargs)


def _display_names(f: Callable[..., Any]) -> Callable[[str], str]:
    """How to name a top-level path of ``f``'s parts as the user wrote it: ``args[1]``
    of ``smooth(image, sigma)`` is ``sigma``; a path with no parameter keeps its name."""
    try:
        parameters = list(inspect.signature(f).parameters.values())
    except (TypeError, ValueError):
        return lambda path: path
    positional = [
        p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    rest = next((p.name for p in parameters if p.kind is p.VAR_POSITIONAL), None)

    def name(path: str) -> str:
        if path.startswith("args["):
            i = int(path[5:-1])
            if i < len(positional):
                return positional[i]
            return f"{rest}[{i - len(positional)}]" if rest else path
        if path.startswith("kwargs["):
            key = ast.literal_eval(path[7:-1])
            return key if key.isidentifier() else path
        return path

    return name


# --------------------------------------------------------------------------------------
# Finding a Task
# --------------------------------------------------------------------------------------


def select(tasks: list[Task], text: str, where: str, store: Store | None = None) -> list[Task]:
    """The Tasks among ``tasks`` (a pipeline's, ``where`` names it) that ``text`` names:
    all Tasks of a function of that name, else the one whose hash starts with ``text``.

    Raises
    ------
    NoSuchTask
        When nothing matches (naming what the cache ``store`` has under that prefix,
        if anything), or a hash prefix matches several Tasks.

    Examples
    --------
    >>> def add(a, b):
    ...     return a + b
    >>> tasks = [Task(add, 1, 2), Task(add, 3, 4)]
    >>> len(select(tasks, "add", "pipeline.py"))
    2
    >>> select(tasks, tasks[1].hash()[:8], "pipeline.py") == [tasks[1]]
    True
    >>> select(tasks, "mul", "pipeline.py")
    Traceback (most recent call last):
    ...
    daskbio.invalidation.NoSuchTask: no Task named 'mul' in pipeline.py (its functions: add)
    """
    by_name = [t for t in tasks if text in (t.name, t.identity)]
    if by_name:
        return by_name
    if not text or any(c not in "0123456789abcdef" for c in text.lower()):
        functions = ", ".join(sorted({t.name for t in tasks})[:10])
        raise NoSuchTask(f"no Task named {text!r} in {where} (its functions: {functions})")
    text = text.lower()
    found = [t for t in tasks if t.hash().startswith(text)]
    if len(found) == 1:
        return found
    if found:
        shown = ", ".join(f"{t.name} {t.hash()[:12]}" for t in found[:3])
        raise NoSuchTask(
            f"hash prefix {text!r} is ambiguous: it matches {len(found)} Tasks of {where} "
            f"({shown}{', ...' if len(found) > 3 else ''}); give more digits"
        )
    message = f"no Task of {where} has a hash starting {text!r}"
    if store is not None:
        cached = sorted(k for k in set(store.keys()) | store.failures() if k.startswith(text))
        if cached:
            message += (
                f"; the cache has {cached[0]}{' and others' if len(cached) > 1 else ''}, "
                f"which {where} does not make (now)"
            )
    raise NoSuchTask(message)


def closure(tasks: Iterable[Task]) -> list[Task]:
    """``tasks`` and every Task they depend on, transitively, each once, dependencies
    first (the order a pipeline makes them in).

    Examples
    --------
    >>> def add(a, b):
    ...     return a + b
    >>> one = Task(add, 1, 1)
    >>> two = Task(add, one, one)
    >>> [t.hash() for t in closure([two])] == [one.hash(), two.hash()]
    True
    """
    seen: dict[str, Task] = {}
    for root in tasks:
        stack: list[tuple[Task, bool]] = [(root, False)]
        while stack:
            t, expanded = stack.pop()
            if t.hash() in seen:
                continue
            if expanded:
                seen[t.hash()] = t
                continue
            stack.append((t, True))
            stack.extend((d, False) for d in reversed(t.dependencies()) if d.hash() not in seen)
    return list(seen.values())


# --------------------------------------------------------------------------------------
# show
# --------------------------------------------------------------------------------------


@dataclass
class Dependency:
    """A Task that another one uses."""

    name: str
    hash: str
    done: bool


@dataclass
class Description:
    """One Task's provenance (:func:`describe`).

    Attributes
    ----------
    state : str
        ``done``, ``failed``, ``running`` (a live run holds its lock) or ``waiting``.
    arguments : dict
        Each top-level argument by the parameter it is passed to: its short repr, or
        ``<name hash>`` for an upstream Task.
    fingerprint : str
        The code fingerprint of the function now; ``computed_by`` the one that computed
        the cached result (``code_matches`` whether they are the same).
    start, end, host, pid, run
        When, where and in which run the result was computed (None when not cached).
    result : str or None
        The result's type (``list``, ``array float64 (512, 512)``), and ``format`` and
        ``size`` how it is stored.
    error, traceback : str or None
        The last line of the error and the whole traceback, when its last computation
        failed (``failed_at``, ``failed_host``: when and where).
    """

    hash: str
    name: str
    function: str
    version: str | None
    arguments: dict[str, str]
    dependencies: list[Dependency]
    fingerprint: str
    state: str
    stale: str | None = None
    computed_by: str | None = None
    code_matches: bool | None = None
    start: float | None = None
    end: float | None = None
    host: str | None = None
    pid: int | None = None
    run: str | None = None
    format: str | None = None
    size: int | None = None
    result: str | None = None
    running_in: str | None = None
    error: str | None = None
    traceback: str | None = None
    failed_at: float | None = None
    failed_host: str | None = None


def arguments(task: Task, store: Store) -> dict[str, str]:
    """``task``'s top-level arguments by the parameter each is passed to, each as a short
    repr, an upstream Task as ``<name hash>``.

    Examples
    --------
    >>> from daskbio.cache import MemoryStore
    >>> def smooth(image, sigma=1):
    ...     return image
    >>> source = Task(smooth, "a.tif")
    >>> arguments(Task(smooth, source, sigma=2), MemoryStore())  # doctest: +ELLIPSIS
    {'image': '<smooth ...>', 'sigma': '2'}
    """
    names = _display_names(task.f)
    deps = {d.hash(): d for d in task.dependencies()}
    shown = {}
    for path, node in _parts_of(task, store, Run()).items():
        text = node[1]
        if node[0].startswith("@"):
            dep = deps[node[0][1:33]]
            text = f"<{dep.name} {dep.hash()[:12]}>{node[0][33:]}"
        shown[names(path)] = text
    return shown


def describe(task: Task, store: Store, tasks: list[Task] | None = None) -> Description:
    """What the cache knows of ``task``: its key's parts, state, who computed it and how,
    or how it failed.

    Parameters
    ----------
    task : Task
        The Task to describe.
    store : Store
        The cache.
    tasks : list of Task, optional
        The pipeline it belongs to (for staleness through upstream results); default:
        ``task`` and what it depends on.

    Examples
    --------
    >>> from daskbio.cache import MemoryStore
    >>> from daskbio.graph.compute import compute
    >>> def add(a, b):
    ...     return a + b
    >>> store, t = MemoryStore(), Task(add, 1, 2)
    >>> describe(t, store).state
    'waiting'
    >>> _ = compute(t, scheduler="sync", cache=store)
    >>> d = describe(t, store)
    >>> d.state, d.arguments, d.result, d.code_matches
    ('done', {'a': '1', 'b': '2'}, 'int', True)
    """
    key = task.hash()
    deps = {d.hash(): d for d in task.dependencies()}
    done_deps = store.has_many(deps)
    description = Description(
        hash=key,
        name=task.name,
        function=task.identity,
        version=task.version,
        arguments=arguments(task, store),
        dependencies=[Dependency(d.name, h, h in done_deps) for h, d in deps.items()],
        fingerprint=hashing.code_fingerprint(task.f),
        state="waiting",
    )
    present, failed = store.lookup([key])
    if key in present:
        meta = store.metadata(key)
        description.state = "done"
        everything = closure(tasks or [task])
        done = store.has_many(t.hash() for t in everything)
        description.stale = stale_results(everything, store, done).get(key)
        description.computed_by = meta.get("fingerprint")
        description.code_matches = description.computed_by == description.fingerprint
        for name in ("start", "end", "host", "pid", "run", "format", "size"):
            setattr(description, name, meta.get(name))
        description.result = _result_type(store, key, meta)
        return description
    holder = store.holders([key]).get(key)
    if holder is not None and holder.live:
        description.state = "running"
        description.running_in = holder.where
    if key in failed:
        info = store.failure(key)
        if description.state == "waiting":
            description.state = "failed"
        description.error = last_error_line(info)
        description.traceback = info.get("traceback") or info.get("error")
        description.failed_at = info.get("time")
        description.failed_host = info.get("host")
    return description


def _result_type(store: Store, key: str, meta: dict[str, Any]) -> str | None:
    array = meta.get("array")
    if array is not None:
        return f"array {array['dtype']} {tuple(array['shape'])}"
    if "type" in meta or (meta.get("size") or 0) > _LOAD_TYPE_BYTES:
        return meta.get("type")
    # An entry written before its type was recorded. (One that does not unpickle here
    # is refused by the store, and computed again by the next run.)
    value = store.load(key)
    np = sys.modules.get("numpy")
    if np is not None and isinstance(value, np.ndarray):
        return f"array {value.dtype} {value.shape}"
    kind = type(value)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


# --------------------------------------------------------------------------------------
# why
# --------------------------------------------------------------------------------------


@dataclass
class Difference:
    """One part of a Task's key that is not what the nearest cached Task had.

    ``part`` is ``function``, ``version``, ``hash format`` or an argument's path as
    written (``sigma``, ``args[1]['mask']``); ``old`` and ``new`` its values (``""``:
    not given). For an upstream Task, ``old`` and ``new`` are ``name hash`` and
    ``upstream`` says why the new one is not the old one.
    """

    part: str
    old: str
    new: str
    upstream: Explanation | None = None

    def __str__(self) -> str:
        return f"{self.part}: {self.old or '(not given)'} -> {self.new or '(not given)'}"

    def reason(self) -> str:
        """This difference without the hashes of upstream Tasks (which differ from Task
        to Task), followed upstream."""
        return f"{self.part}: {self.change()}"

    def change(self) -> str:
        """What changed in the part, without its path (see :meth:`reason`)."""
        if self.upstream is None:
            return f"{self.old or '(not given)'} -> {self.new or '(not given)'}"
        up = self.upstream
        cached = ", cached," if up.cached else ""
        return f"upstream {up.name}{cached} differs ({up.reason()})"


@dataclass
class Explanation:
    """Why a Task is, or is not, in the cache (:func:`explain`).

    Attributes
    ----------
    cached : bool
        Whether it has a result; then ``stale`` says why that result is stale, if it is.
    failed : str or None
        The last line of the error of its last computation, if that failed.
    needs_failed : list of str
        When it is not cached: the Tasks it needs (directly or not) whose last
        computation failed, as ``name hash: last line of the error`` (a few).
    nearest : str or None
        The hash of the cached Task of the same function it is compared with.
    differences : list of Difference
        What differs from ``nearest``.
    note : str
        When there is nothing to compare with, or the comparison cannot tell: why.
    """

    task: str
    name: str
    cached: bool
    stale: str | None = None
    failed: str | None = None
    needs_failed: list[str] = field(default_factory=list)
    nearest: str | None = None
    differences: list[Difference] = field(default_factory=list)
    note: str = ""

    def reason(self) -> str:
        """Why, in one line without hashes: Tasks that miss for the same reason read the
        same (``sigma: 2 -> 3``)."""
        if self.cached and not self.differences:
            return "cached" + (f" (stale: {self.stale})" if self.stale else "")
        # Parts that changed alike are said once: "xs[0], xs[1]: upstream smooth ...".
        parts: dict[str, list[str]] = {}
        for d in self.differences:
            parts.setdefault(d.change(), []).append(d.part)
        return "; ".join(f"{', '.join(p)}: {change}" for change, p in parts.items()) or self.note


@dataclass
class Group:
    """Tasks of one function that miss the cache for the same reason."""

    reason: str
    tasks: list[Explanation]


def explain(task: Task, store: Store, tasks: list[Task] | None = None) -> Explanation:
    """Why ``task`` is not in the cache: which part of its key differs from the nearest
    cached Task of the same function (following an upstream Task that differs), or that
    it is cached (and whether the result is stale).

    Parameters
    ----------
    task : Task
        The Task to explain.
    store : Store
        The cache.
    tasks : list of Task, optional
        The pipeline it belongs to (for staleness); default: ``task`` and what it
        depends on.

    Examples
    --------
    >>> from daskbio.cache import MemoryStore
    >>> from daskbio.graph.compute import compute
    >>> def smooth(image, sigma):
    ...     return image * sigma
    >>> store = MemoryStore()
    >>> _ = compute(Task(smooth, 10, 2), scheduler="sync", cache=store)
    >>> why = explain(Task(smooth, 10, 3), store)
    >>> why.cached, [str(d) for d in why.differences]
    (False, ['sigma: 2 -> 3'])
    >>> explain(Task(smooth, 10, 2), store).reason()
    'cached'
    """
    return explain_all([task], store, tasks)[0]


def explain_all(
    asked: list[Task], store: Store, tasks: list[Task] | None = None
) -> list[Explanation]:
    """:func:`explain` of each of ``asked``, the cache's entries read once for all."""
    return _Explainer(store, closure(tasks or asked)).explain_all(asked)


def group(explanations: list[Explanation]) -> list[Group]:
    """``explanations`` grouped by :meth:`Explanation.reason`, largest group first
    ("40 Tasks: sigma: 2 -> 3").

    Examples
    --------
    >>> a = Explanation("a" * 32, "f", False, differences=[Difference("sigma", "2", "3")])
    >>> b = Explanation("b" * 32, "f", False, differences=[Difference("sigma", "2", "3")])
    >>> [(g.reason, len(g.tasks)) for g in group([a, b])]
    [('sigma: 2 -> 3', 2)]
    """
    groups: dict[str, Group] = {}
    for e in explanations:
        reason = e.reason()
        groups.setdefault(reason, Group(reason, [])).tasks.append(e)
    return sorted(groups.values(), key=lambda g: (-len(g.tasks), g.reason))


def entries_by_function(store: Store) -> dict[str, dict[str, dict[str, Any]]]:
    """The metadata of every entry of ``store``, by function name, then by key (all
    entries are read, in batches: for a command run by hand, not on every run).

    Examples
    --------
    >>> from daskbio.cache import MemoryStore
    >>> store = MemoryStore()
    >>> _ = store.save("ab" * 16, 1, {"name": "f"})
    >>> list(entries_by_function(store)["f"])
    ['abababababababababababababababab']
    """
    keys = store.keys()
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for key, meta in zip(keys, store.metadata_many(keys)):
        if meta is not None:
            found.setdefault(str(meta.get("name", "")), {})[key] = meta
    return found


def _signature(identity: str, version: Any, parts: dict[str, list]) -> set[tuple[str, str]]:
    """The top-level parts of a key, as comparable pairs."""
    pairs = {(path, node[0]) for path, node in parts.items()}
    pairs.add(("function", identity))
    pairs.add(("version", str(version)))
    return pairs


class _Function:
    """The cached entries of one function, indexed by their key's top-level parts."""

    def __init__(self, entries: dict[str, dict[str, Any]]) -> None:
        self.entries = entries
        self.signatures = {
            key: _signature(str(m.get("function")), m.get("version"), m["key_parts"])
            for key, m in entries.items()
            if "key_parts" in m
        }
        self.unrecorded = len(entries) - len(self.signatures)
        self.postings: dict[tuple[str, str], list[str]] = {}
        for key, pairs in self.signatures.items():
            for pair in pairs:
                self.postings.setdefault(pair, []).append(key)

    def candidates(self, signature: set[tuple[str, str]]) -> list[str]:
        """The entries (of those that record their parts: there must be one) whose keys
        share the most top-level parts with ``signature``, the best first.

        Values shared by many entries are left out of the count, which keeps this fast
        for thousands of entries.
        """
        lists = sorted((self.postings.get(p, []) for p in signature), key=len)
        counts: Counter[str] = Counter()
        for keys in lists:
            if len(keys) > _COMMON:
                break
            counts.update(keys)
        if counts:
            ranked = counts.most_common()
            # All that tie with the best (up to a bound), so that values alike can decide.
            best = [k for k, n in ranked[:_CANDIDATES] if n == ranked[0][1]]
            return best if len(best) > 1 else [k for k, _ in ranked[:_CLOSE]]
        return next((keys for keys in lists if keys), list(self.signatures))[:_CANDIDATES]


class _Explainer:
    """Explanations against one reading of the cache's entries."""

    def __init__(self, store: Store, tasks: list[Task]) -> None:
        self.store = store
        self.tasks = {t.hash(): t for t in tasks}
        self.run = Run()
        self.done = store.has_many(self.tasks)
        self.failures = store.failure_many(self.tasks.keys() - self.done)
        self.stale = stale_results(tasks, store, self.done)
        self.by_function = entries_by_function(store)
        self.entries = {k: m for entries in self.by_function.values() for k, m in entries.items()}
        self._functions: dict[str, _Function] = {}
        self._memo: dict[tuple[str, str | None], Explanation] = {}
        self._parts: dict[str, dict[str, list]] = {}

    def explain_all(self, asked: list[Task]) -> list[Explanation]:
        return [self.explain(t) for t in asked]

    def function(self, name: str) -> _Function:
        if name not in self._functions:
            self._functions[name] = _Function(self.by_function.get(name, {}))
        return self._functions[name]

    def explain(self, task: Task, old: str | None = None, depth: int = 0) -> Explanation:
        """Why ``task`` misses; compared with the entry ``old`` when given (an upstream
        Task is compared with the one used before), else with the nearest."""
        memo = (task.hash(), old)
        if memo not in self._memo:
            self._memo[memo] = self._explain(task, old, depth)
        return self._memo[memo]

    def _explain(self, task: Task, old: str | None, depth: int) -> Explanation:
        key = task.hash()
        result = Explanation(key, task.name, key in self.done, stale=self.stale.get(key))
        if key in self.failures:
            result.failed = last_error_line(self.failures[key])
        if result.cached and old is None:
            return result
        if not result.cached:
            result.needs_failed = [
                failure_line(k, self.failures[k]) for k in self._failed_upstream(task)
            ]
        of = self.function(task.name)
        unrecorded = (
            "written by a daskbio that did not record key parts: cannot tell "
            "which part of the key differs"
        )
        if old in of.entries and old not in of.signatures:
            result.nearest = old
            result.note = f"the Task it replaces ({old[:12]}) was {unrecorded}"
            return result
        if old not in of.entries:
            if not of.entries:
                result.note = f"no Task of {task.name} is in the cache"
                return result
            if not of.signatures:
                result.note = f"the {len(of.entries)} cached Tasks of {task.name} were {unrecorded}"
                return result
        parts = self.parts(task)
        if old not in of.signatures:
            old = self.nearest(task, parts, of, depth)
        result.nearest = old
        result.differences = self._differences(task, parts, of.entries[old], depth)
        if not result.differences:
            result.note = (
                f"cannot tell: its recorded parts equal those of {task.name} {old[:12]} "
                f"(only the first {MAX_PARTS} parts of a key are recorded)"
            )
        if of.unrecorded:
            result.note = (result.note + "; " if result.note else "") + (
                f"{of.unrecorded} cached Tasks of {task.name} written by an earlier daskbio "
                "do not record their key's parts and were not compared"
            )
        return result

    def _failed_upstream(self, task: Task) -> list[str]:
        """Up to :data:`_FAILED_SHOWN` failed Tasks that ``task`` needs through Tasks not
        done."""
        found: dict[str, None] = {}
        seen: set[str] = set()
        stack = [d for d in task.dependencies() if d.hash() not in self.done]
        while stack and len(found) < _FAILED_SHOWN:
            t = stack.pop()
            if t.hash() in seen:
                continue
            seen.add(t.hash())
            if t.hash() in self.failures:
                found[t.hash()] = None
            stack.extend(d for d in t.dependencies() if d.hash() not in self.done)
        return list(found)

    def parts(self, task: Task) -> dict[str, list]:
        if task.hash() not in self._parts:
            self._parts[task.hash()] = _parts_of(task, self.store, self.run)
        return self._parts[task.hash()]

    def nearest(self, task: Task, parts: dict[str, list], of: _Function, depth: int) -> str:
        """The cached Task of ``of`` nearest to ``task``: fewest top-level parts that
        differ; among those, upstream Tasks that differ least (one level up), then values
        that read most alike ("ccc.tif" is nearer "cccc.tif" than "a.tif" is)."""
        signature = _signature(task.identity, task.version, parts)
        deps = {d.hash(): d for d in task.dependencies()}
        searched = set(signature)
        if depth < _MAX_UPSTREAM:
            # An upstream Task not cached stands as the entry nearest to it: when what
            # changed is upstream (the first step's parameter, for every image), the entry
            # this one replaces is the one that used that upstream entry.
            for path, node in parts.items():
                dep = deps.get(node[0][1:33]) if node[0].startswith("@") else None
                if dep is not None and dep.hash() not in self.done:
                    old = self.explain(dep, depth=depth + 1).nearest
                    if old is not None:
                        searched.discard((path, node[0]))
                        searched.add((path, "@" + old + node[0][33:]))

        def distance(key: str) -> tuple:
            upstream, alike = 0, 0.0
            old_parts = of.entries[key]["key_parts"]
            for path in parts.keys() & old_parts.keys():
                new, old = parts[path], old_parts[path]
                if new[0] == old[0]:
                    continue
                if new[0].startswith("@") and old[0].startswith("@"):
                    far, near = self._upstream_distance(deps.get(new[0][1:33]), old[0][1:33])
                    upstream += far
                    alike += near
                else:
                    alike += _alike(old[1], new[1])
            return (len(of.signatures[key] ^ signature), upstream, -alike, key)

        return min(of.candidates(searched), key=distance)

    def _upstream_distance(self, task: Task | None, old: str) -> tuple[int, float]:
        """How many top-level parts of the upstream ``task`` differ from the entry
        ``old``'s, and how alike the differing values read."""
        meta = self.entries.get(old)
        if task is None or meta is None or "key_parts" not in meta:
            return MAX_PARTS, 0.0
        parts, old_parts = self.parts(task), meta["key_parts"]
        theirs = _signature(str(meta.get("function")), meta.get("version"), old_parts)
        far = len(_signature(task.identity, task.version, parts) ^ theirs)
        near = sum(
            _alike(old_parts[p][1], parts[p][1])
            for p in parts.keys() & old_parts.keys()
            if parts[p][0] != old_parts[p][0]
        )
        return far, near

    def _differences(
        self, task: Task, parts: dict[str, list], meta: dict[str, Any], depth: int
    ) -> list[Difference]:
        found = []
        if meta.get("function") != task.identity:
            found.append(Difference("function", str(meta.get("function")), task.identity))
        if meta.get("version") != task.version:
            found.append(Difference("version", str(meta.get("version")), str(task.version)))
        if meta.get("hash_format") != hashing.HASH_FORMAT_VERSION:
            now = str(hashing.HASH_FORMAT_VERSION)
            found.append(Difference("hash format", str(meta.get("hash_format")), now))
        names = _display_names(task.f)
        deps = {d.hash(): d for d in task.dependencies()}
        old_parts = meta["key_parts"]
        for path in sorted(old_parts.keys() | parts.keys(), key=_path_order):
            self._compare(names(path), old_parts.get(path), parts.get(path), deps, depth, found)
        return found

    def _compare(
        self,
        path: str,
        old: list | None,
        new: list | None,
        deps: dict[str, Task],
        depth: int,
        found: list[Difference],
    ) -> None:
        """Add to ``found`` how the part ``path`` differs, as deep as both record it."""
        if old is not None and new is not None and old[0] == new[0]:
            return
        if old is not None and new is not None:
            if old[0].startswith("@") and new[0].startswith("@"):
                found.append(self._upstream(path, old[0], new[0], deps, depth))
                return
            old_children = old[2] if len(old) > 2 else {}
            new_children = new[2] if len(new) > 2 else {}
            if old_children and old_children.keys() == new_children.keys():
                before = len(found)
                for suffix, child in old_children.items():
                    self._compare(path + suffix, child, new_children[suffix], deps, depth, found)
                if len(found) > before:
                    return
        found.append(Difference(path, self._shown(old), self._shown(new)))

    def _shown(self, node: list | None) -> str:
        if node is None:
            return ""
        return self._named(node[0]) if node[0].startswith("@") else node[1]

    def _named(self, upstream: str) -> str:
        """``name hash`` of the upstream Task ``@hash[index]``."""
        key = upstream[1:33]
        meta = self.entries.get(key)
        task = self.tasks.get(key)
        name = meta.get("name") if meta else task.name if task else "a Task"
        return f"{name} {key[:12]}{upstream[33:]}"

    def _upstream(
        self, path: str, old: str, new: str, deps: dict[str, Task], depth: int
    ) -> Difference:
        difference = Difference(path, self._named(old), self._named(new))
        upstream = deps.get(new[1:33])
        if old[1:33] != new[1:33] and upstream is not None and depth < _MAX_UPSTREAM:
            difference.upstream = self.explain(upstream, old[1:33], depth + 1)
        return difference


def _alike(a: str, b: str) -> float:
    """How alike two short reprs read, from 0 to 1."""
    return difflib.SequenceMatcher(None, a, b).ratio()


def _path_order(path: str) -> tuple:
    """``self``, then positional arguments in order, then keyword arguments by name."""
    if path.startswith("args["):
        return (1, int(path[5:-1]), "")
    return (0 if path == "self" else 2, 0, path)


__all__ = [
    "Dependency",
    "Description",
    "Difference",
    "Explanation",
    "Group",
    "arguments",
    "closure",
    "describe",
    "entries_by_function",
    "explain",
    "explain_all",
    "group",
    "key_parts",
    "select",
]
