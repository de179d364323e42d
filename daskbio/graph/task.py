"""The Task model: Jug's ``Task``, ``Tasklet``, ``TaskGenerator`` and ``iteratetask``.

A Task is a function plus its arguments, identified by a hash of the function's identity
and of the arguments, recursively (a Task argument contributes its own hash). The hash is
computed when the Task is made, so an argument the hasher does not know is reported at
the line of the pipeline that made it. Nothing here does I/O or knows about Dask.
"""

from __future__ import annotations

import contextvars
import functools
import sys
from collections.abc import Callable, Iterator
from typing import Any

import xxhash

from daskbio.graph import hashing

# A context variable, not a module global: a pipeline loaded in one thread (or asyncio
# task) collects only its own Tasks, and the list is referenced by nothing but the block.
_pipeline_tasks: contextvars.ContextVar[list[Task] | None] = contextvars.ContextVar(
    "daskbio_pipeline_tasks", default=None
)


class Task:
    """A call of ``f(*args, **kwargs)`` whose result is computed once and cached.

    Parameters
    ----------
    f : callable
        A named function (module-level, or a method reachable by its qualified name).
    *args, **kwargs
        Its arguments. Tasks may appear anywhere inside lists, tuples, dicts and sets;
        they are replaced by their values when ``f`` runs.

    Examples
    --------
    >>> def add(a, b):
    ...     return a + b
    >>> t = Task(add, 1, 2)
    >>> t.name, len(t.hash())
    ('add', 32)
    >>> Task(add, 1, 2).hash() == t.hash()
    True
    >>> Task(add, t, 3).dependencies() == [t]
    True
    """

    __slots__ = ("__weakref__", "_deps", "_hex", "args", "digest", "f", "kwargs", "name", "version")

    def __init__(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._init(f, args, kwargs, None)

    def _init(
        self,
        f: Callable[..., Any],
        args: tuple,
        kwargs: dict,
        version: str | None,
        head: bytes | None = None,
    ) -> None:
        self.f = f
        self.args = args
        self.kwargs = kwargs
        self.version = version
        self.name = getattr(f, "__name__", type(f).__name__)
        out = bytearray(head or _head(f, version))
        root = "args"
        try:
            hashing.encode(args, out)
            root = "kwargs"
            if kwargs:
                hashing.encode(kwargs, out)
            else:
                out += _NO_KWARGS
        except hashing.Unhashable as e:
            raise _unhashable_error(self.name, e, root) from None
        except RecursionError:
            raise TypeError(
                f"{self.name}: cannot hash {root}: nested too deeply (does a container "
                "hold itself?)"
            ) from None
        self.digest = xxhash.xxh3_128_digest(out)
        self._hex = self.digest.hex()
        self._deps: list[Task] | None = None
        made = _pipeline_tasks.get()
        if made is not None:
            made.append(self)

    def __reduce__(self) -> tuple:
        # The hash travels with the Task: unpickling does not hash the arguments again.
        return (_rebuilt_task, (_pickled_function(self.f), self.args, self.kwargs,
                                self.version, self.digest))  # fmt: skip

    def hash(self) -> str:
        """The Task's hash as 32 hexadecimal digits (Jug's ``Task.hash()``)."""
        return self._hex

    def dependencies(self) -> list[Task]:
        """The Tasks this one needs, each once, in the order they appear in the arguments.

        A Tasklet argument (``t[0]``) counts as its parent Task ``t``.
        """
        if self._deps is None:
            seen: dict[bytes, Task] = {}
            for sub in walk_tasks((self.args, self.kwargs)):
                root = sub.task
                seen.setdefault(root.digest, root)
            self._deps = list(seen.values())
        return self._deps

    @property
    def task(self) -> Task:
        return self

    @property
    def identity(self) -> str:
        return hashing.function_identity(self.f)

    def __getitem__(self, index: Any) -> Tasklet:
        return Tasklet(self, index)

    def __repr__(self) -> str:
        return f"Task({self.name}, {self.hash()})"


# Most Tasks have no keyword arguments: their encoding is a constant.
_NO_KWARGS = bytearray()
hashing.encode({}, _NO_KWARGS)


def _head(f: Callable[..., Any], version: str | None) -> bytes:
    """The start of the encoding of every Task of ``f``: format, function and version."""
    name = getattr(f, "__name__", type(f).__name__)
    if not callable(f):
        raise TypeError(f"Task needs a callable as its first argument, got {type(f).__name__}")
    out = bytearray(hashing.TASK_PREFIX)
    try:
        hashing.encode_function(f, out)
    except hashing.Unhashable as e:
        raise _unhashable_error(name, e, "function") from None
    hashing.encode(version, out)
    return bytes(out)


class Tasklet:
    """A lazy item of a Task's result, ``t[index]`` (Jug's Tasklet).

    It is not stored on its own: its value is taken from its parent's cached result.
    Its hash derives from the parent's hash and the index.

    Examples
    --------
    >>> def pair():
    ...     return ("a", "b")
    >>> t = Task(pair)
    >>> first = t[0]
    >>> first.task is t, first.hash() != t.hash()
    (True, True)
    """

    __slots__ = ("digest", "index", "parent")

    def __init__(self, parent: Task | Tasklet, index: Any) -> None:
        self.parent = parent
        self.index = index
        out = bytearray(hashing.TASKLET_PREFIX)
        out += parent.digest
        try:
            hashing.encode(index, out)
        except hashing.Unhashable as e:
            raise _unhashable_error(f"{self.task.name}[...]", e, root="index") from None
        self.digest = xxhash.xxh3_128_digest(out)

    @property
    def task(self) -> Task:
        """The Task whose result this item is taken from."""
        node: Task | Tasklet = self
        while isinstance(node, Tasklet):
            node = node.parent
        return node

    @property
    def name(self) -> str:
        return self.task.name

    def hash(self) -> str:
        return self.digest.hex()

    def pick(self, value: Any) -> Any:
        """Take this item out of the parent Task's computed ``value``."""
        if isinstance(self.parent, Tasklet):
            value = self.parent.pick(value)
        return value[self.index]

    def __getitem__(self, index: Any) -> Tasklet:
        return Tasklet(self, index)

    def __repr__(self) -> str:
        return f"Tasklet({self.parent!r}[{self.index!r}])"


hashing.register_task_type(Task)
hashing.register_task_type(Tasklet)

TaskLike = Task | Tasklet


def _unhashable_error(name: str, e: hashing.Unhashable, root: str) -> TypeError:
    where = e.where(root)
    return TypeError(
        f"{name}: cannot hash argument {where} of type {type(e.value).__module__}."
        f"{type(e.value).__qualname__}. Pass plain data (numbers, strings, lists, dicts, "
        f"numpy arrays, Tasks) or give the type a {hashing.HOOK}(self) method returning "
        f"plain data that identifies the value (see docs/hashing.md)."
    )


def walk_tasks(x: Any) -> Iterator[TaskLike]:
    """Every Task or Tasklet inside ``x`` (lists, tuples, dicts and sets, recursively)."""
    t = type(x)
    if t is Task or t is Tasklet:
        yield x
    elif t is list or t is tuple or t is set or t is frozenset:
        for item in x:
            yield from walk_tasks(item)
    elif t is dict:
        for v in x.values():
            yield from walk_tasks(v)
    elif isinstance(x, (Task, Tasklet)):
        yield x
    elif isinstance(x, (list, tuple, set, frozenset)):
        for item in x:
            yield from walk_tasks(item)
    elif isinstance(x, dict):
        for v in x.values():
            yield from walk_tasks(v)


def replace_tasks(
    x: Any, value_of: Callable[[Any], Any], kinds: type | tuple[type, ...] = (Task, Tasklet)
) -> Any:
    """A copy of ``x`` with every Task or Tasklet (or other ``kinds``) replaced by
    ``value_of(it)``. Containers holding none are returned as they are, not copied.
    """
    if isinstance(x, kinds):
        return value_of(x)
    if isinstance(x, (list, tuple, set, frozenset)):
        items = [replace_tasks(item, value_of, kinds) for item in x]
        if all(a is b for a, b in zip(items, x)):
            return x
        if type(x) is list or type(x) is tuple or type(x) is set or type(x) is frozenset:
            return type(x)(items)
        if hasattr(x, "_fields"):
            return type(x)(*items)
        return type(x)(items)
    if isinstance(x, dict):
        values = {k: replace_tasks(v, value_of, kinds) for k, v in x.items()}
        if all(values[k] is v for k, v in x.items()):
            return x
        out = x.copy()
        out.update(values)
        return out
    return x


class TaskGenerator:
    """Decorator: calling the decorated function returns a :class:`Task` instead of running it.

    Parameters
    ----------
    f : callable
        The function to wrap.
    version : str, optional
        Put into the hash: change it when a change of the function's code should make
        its results be recomputed. (Without it, editing code keeps the cached results;
        ``daskbio status`` then reports them as stale.)

    Examples
    --------
    >>> @TaskGenerator
    ... def double(x):
    ...     return 2 * x
    >>> double(4).name
    'double'
    >>> double.f(4)
    8
    >>> @TaskGenerator(version="2")
    ... def triple(x):
    ...     return 3 * x
    >>> triple(1).version
    '2'
    """

    def __new__(cls, f: Callable[..., Any] | None = None, *, version: Any = None) -> Any:
        if f is None:
            return functools.partial(cls, version=version)
        return super().__new__(cls)

    def __init__(self, f: Callable[..., Any] | None = None, *, version: Any = None) -> None:
        if not callable(f):
            raise TypeError(f"TaskGenerator needs a function, got {type(f).__name__}")
        self.f = f
        self.version = None if version is None else str(version)
        self._head: bytes | None = None
        functools.update_wrapper(self, f)

    def __call__(self, *args: Any, **kwargs: Any) -> Task:
        if self._head is None:
            self._head = _head(self.f, self.version)
        task = Task.__new__(Task)
        task._init(self.f, args, kwargs, self.version, self._head)
        return task

    def __repr__(self) -> str:
        return f"TaskGenerator({self.f.__qualname__})"

    def __reduce__(self) -> str | tuple:
        module = sys.modules.get(self.__module__)
        if self.__module__ != "__main__" and getattr(module, self.__qualname__, None) is self:
            return self.__qualname__  # by reference, as pickle does for functions
        # By value (a pipeline file runs as ``__main__``, which other processes do not have):
        # the function, which cloudpickle then pickles by value too.
        return (_task_generator, (self.f, self.version))


def _task_generator(f: Callable[..., Any], version: str | None) -> TaskGenerator:
    return TaskGenerator(f, version=version)


def _pickled_function(f: Callable[..., Any]) -> Any:
    """``f``, or the TaskGenerator that took ``f``'s own name in its module (``@TaskGenerator``
    does): plain pickle finds a function by its name, where it would find the wrapper."""
    module = sys.modules.get(getattr(f, "__module__", None) or "")
    holder = getattr(module, getattr(f, "__qualname__", ""), None)
    return holder if isinstance(holder, TaskGenerator) and holder.f is f else f


def _rebuilt_task(f: Any, args: tuple, kwargs: dict, version: str | None, digest: bytes) -> Task:
    task = Task.__new__(Task)
    task.f = f.f if isinstance(f, TaskGenerator) else f
    task.args, task.kwargs, task.version = args, kwargs, version
    task.name = getattr(task.f, "__name__", type(task.f).__name__)
    task.digest, task._hex, task._deps = digest, digest.hex(), None
    return task


def iteratetask(task: TaskLike, n: int) -> tuple[Tasklet, ...]:
    """Split a Task returning a sequence of ``n`` items into ``n`` lazy items (Jug's name).

    Examples
    --------
    >>> def pair():
    ...     return 1, 2
    >>> a, b = iteratetask(Task(pair), 2)
    >>> b.index
    1
    """
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    return tuple(task[i] for i in range(n))


class collect_tasks:
    """Record every Task made inside the ``with`` block (how a pipeline file's Tasks are found)."""

    def __enter__(self) -> list[Task]:
        made: list[Task] = []
        self._token = _pipeline_tasks.set(made)
        return made

    def __exit__(self, *exc: object) -> None:
        _pipeline_tasks.reset(self._token)
