"""Loading a pipeline file: run it as ``__main__`` and collect every Task it makes."""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daskbio.cache import Store
from daskbio.graph.compute import Barrier, session
from daskbio.graph.task import Task, collect_tasks


class PipelineNotFound(FileNotFoundError):
    """The pipeline file does not exist."""


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
    code = compile(path.read_bytes(), str(path), "exec")
    saved_main, saved_path = sys.modules.get("__main__"), list(sys.path)
    sys.modules["__main__"] = module
    sys.path.insert(0, str(path.absolute().parent))
    barrier = None
    try:
        with collect_tasks() as made, session(store=store, may_compute=may_compute, **settings):
            try:
                exec(code, module.__dict__)
            except Barrier as b:
                if may_compute:
                    raise
                barrier = b
        tasks = list({t.hash(): t for t in made}.values())
        with session(store=store, may_compute=may_compute, **settings):
            yield Pipeline(path, module.__dict__, tasks, barrier)
    finally:
        sys.path[:] = saved_path
        if saved_main is not None:
            sys.modules["__main__"] = saved_main
