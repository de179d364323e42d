"""Loading a pipeline file: run it as ``__main__`` and collect every Task it makes."""

from __future__ import annotations

import importlib.machinery
import inspect
import logging
import os
import sys
import time
import types
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daskbio.cache import Store
from daskbio.graph.compute import Barrier, session
from daskbio.graph.hashing import function_identity
from daskbio.graph.task import Task, collect_tasks
from daskbio.tracebacks import own_frames

log = logging.getLogger(__name__)


class PipelineNotFound(FileNotFoundError):
    """The pipeline file does not exist."""


class PipelineError(Exception):
    """The pipeline file has a syntax error, or raised while it ran (``error``, also the
    ``__cause__``). The message shows the file, line and caret of a syntax error, or the
    traceback through the pipeline's own frames only (see :mod:`daskbio.tracebacks`)."""

    def __init__(self, path: Path, error: BaseException) -> None:
        what = "has a syntax error" if isinstance(error, SyntaxError) else "raised an error"
        super().__init__(f"the pipeline {path} {what}:\n{own_frames(error)}")
        self.path = path
        self.error = error


class SharedIdentity(ValueError):
    """Tasks of two different functions would share one identity, and so cached results
    (a function defined twice under one name)."""


def _own_errors() -> tuple[type[BaseException], ...]:
    """What a pipeline's run may raise that is daskbio's to report, not the file's: a
    Task that failed under ``value()``, a cache that cannot be written or read."""
    from daskbio.cache import CacheWriteError, CorruptEntry
    from daskbio.cache.signing import KeyFileError
    from daskbio.graph.job import TaskFailed, TasksFailed

    return (Barrier, TaskFailed, TasksFailed, CacheWriteError, CorruptEntry, KeyFileError)


@dataclass
class Pipeline:
    """A loaded pipeline file.

    Attributes
    ----------
    path : Path
        The file.
    namespace : dict
        Its global names after running it.
    tasks : list of Task
        Every distinct Task it made, in the order made.
    barrier : Barrier or None
        Set when loading stopped at a ``value()`` of a Task that is not computed yet
        (only when loaded with ``may_compute=False``): later Tasks are not known.
    """

    path: Path
    namespace: dict[str, Any]
    tasks: list[Task]
    barrier: Barrier | None = None

    def hashes(self) -> set[str]:
        return {t.hash() for t in self.tasks}


@contextmanager
def load(
    path: str | os.PathLike[str], store: Store, may_compute: bool = True, **settings: Any
) -> Iterator[Pipeline]:
    """Run the pipeline file at ``path`` as ``__main__`` and yield what it made.

    While the block lasts the file is ``sys.modules["__main__"]`` (so results of classes
    it defines pickle and unpickle as they would under ``python FILE``) and its folder is
    on ``sys.path``. ``value()`` calls in the file compute through ``store`` when
    ``may_compute``; otherwise loading stops at the first one that would need to.
    """
    path = Path(path)
    if not path.is_file():
        raise PipelineNotFound(f"pipeline file not found: {path}")
    module = types.ModuleType("__main__")
    module.__file__ = str(path.absolute())
    # A spec named __main__: multiprocessing's spawn (the processes scheduler, a
    # LocalCluster's workers) then does not run the whole file again in every worker
    # process, as it does for a __main__ known only by its path. Workers need none of
    # it: a Task's function travels pickled.
    module.__spec__ = importlib.machinery.ModuleSpec("__main__", None, origin=module.__file__)
    # dont_inherit: the file is compiled as Python would compile it, not with the
    # __future__ imports of this module (its functions would then differ from the same
    # file imported as a module, in their annotations and their code fingerprints).
    try:
        code = compile(path.read_bytes(), str(path), "exec", dont_inherit=True)
    except SyntaxError as e:
        raise PipelineError(path, e) from e
    saved_main, saved_path = sys.modules.get("__main__"), list(sys.path)
    sys.modules["__main__"] = module
    sys.path.insert(0, str(path.absolute().parent))
    barrier = None
    start = time.perf_counter()
    try:
        with collect_tasks() as made, session(store=store, may_compute=may_compute, **settings):
            try:
                exec(code, module.__dict__)
            except Barrier as b:
                if may_compute:
                    raise
                barrier = b
            except _own_errors():
                raise
            except Exception as e:
                raise PipelineError(path, e) from e
        _check_identities(path, made)
        tasks = list({t.hash(): t for t in made}.values())
        log.info(
            "%s made %d Tasks in %.2f s (cache %s)",
            path,
            len(tasks),
            time.perf_counter() - start,
            store.location,
        )
        with session(store=store, may_compute=may_compute, **settings):
            yield Pipeline(path, module.__dict__, tasks, barrier)
    finally:
        sys.path[:] = saved_path
        if saved_main is not None:
            sys.modules["__main__"] = saved_main


def _check_identities(path: Path, tasks: list[Task]) -> None:
    """Refuse Tasks of two different functions that share one identity.

    A Task's hash knows its function by ``module.qualname`` only, so Tasks of a function
    defined twice under one name (the second ``def step`` of a file) would share cache
    entries though they compute different things.

    Raises
    ------
    SharedIdentity
        Naming the identity and where each of its definitions is.
    """
    # One dict operation per Task; only the few distinct functions are looked at further.
    functions = {id(t.f): t.f for t in tasks}
    by_identity: dict[str, dict[int, Any]] = {}
    for f in functions.values():
        # Bound methods are made anew at each access: what is defined is the function.
        defined = getattr(f, "__func__", f)
        by_identity.setdefault(function_identity(f), {})[id(defined)] = defined
    for identity, definitions in by_identity.items():
        if len(definitions) > 1:
            raise SharedIdentity(_duplicate_message(path, identity, list(definitions.values())))


def _duplicate_message(path: Path, identity: str, definitions: list[Any]) -> str:
    places = sorted(_definition_place(f) for f in definitions)
    name = getattr(inspect.unwrap(definitions[0]), "__qualname__", identity)
    times = "twice" if len(places) == 2 else f"{len(places)} times"
    here = {file for file, _ in places} == {path.resolve()}
    lines = {line for _, line in places}
    if here and len(lines) == len(places):
        where = f"{path.name} defines {name} {times} (lines {_and(str(n) for _, n in places)})"
    elif here and len(lines) == 1:
        where = (
            f"{path.name} defines {name} {times} at line {lines.pop()} (does that line run "
            "in a loop, or does the file import itself?)"
        )
    else:
        where = f"{name} is defined {times} ({_and(f'{f}:{n}' for f, n in places)})"
    both = "both" if len(places) == 2 else "all"
    return (
        f"{where}, and Tasks of {both} share one identity ({identity}), so they would "
        "share cached results; rename one"
    )


def _definition_place(f: Any) -> tuple[Path, int]:
    """The file and first line of the definition of ``f`` (line 0 if unknown)."""
    f = inspect.unwrap(f)
    code = getattr(f, "__code__", None)
    if code is not None:
        return Path(code.co_filename).resolve(), code.co_firstlineno
    if isinstance(f, type):
        # inspect finds a class by name, so it would give one line for both definitions;
        # a method of each tells them apart (Python 3.13 records the class's own line).
        codes = [getattr(v, "__code__", None) for v in vars(f).values()]
        codes = [c for c in codes if c is not None and not c.co_filename.startswith("<")]
        if codes:
            first = min(codes, key=lambda c: c.co_firstlineno)
            line = vars(f).get("__firstlineno__", first.co_firstlineno)
            return Path(first.co_filename).resolve(), line
    try:
        return Path(inspect.getsourcefile(f) or "?").resolve(), inspect.getsourcelines(f)[1]
    except (OSError, TypeError):
        return Path(getattr(sys.modules.get(f.__module__), "__file__", "?")).resolve(), 0


def _and(items: Iterable[str]) -> str:
    items = list(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def init(
    pipeline_file: str | os.PathLike[str], cache: Store | str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """Load a pipeline file without computing, and make its cache the default (Jug's
    ``jug.init``): then :func:`~daskbio.value` and :func:`~daskbio.compute` read the results
    ``daskbio run FILE`` computed, in a notebook or a script.

    Parameters
    ----------
    pipeline_file : path
        The pipeline. It runs as ``daskbio status`` runs it: a ``value()`` call in it that
        needs a result not computed yet stops the loading there.
    cache : Store, path or URL, optional
        The cache; by default the one ``daskbio run FILE`` uses (the Dask config key
        ``daskbio.cache``, else ``<stem>.daskbio/`` beside the file).

    Returns
    -------
    dict
        The file's namespace: its Tasks, by the names it gave them. A plain ``import``
        of the file's module afterwards makes the same Tasks (their hashes name the file,
        not ``__main__``), which find the same results.

    Examples
    --------
    >>> ns = init("examples/segmentation/pipeline.py")  # doctest: +SKIP
    >>> value(ns["results"])[:2]  # doctest: +SKIP
    """
    from daskbio.cache import open_store
    from daskbio.graph.compute import set_defaults

    store = open_store(cache, pipeline_file=pipeline_file)
    with load(pipeline_file, store, may_compute=False) as pipeline:
        namespace = pipeline.namespace
    set_defaults(store=store)
    return namespace
