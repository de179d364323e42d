"""daskbio: Jug-style hashed Tasks run on Dask, with a persistent cache of results.

The public API is :mod:`daskbio.graph`'s and :func:`daskbio.clusters.cluster`, re-exported
here; see the submodules for the rest (``daskbio.cache``, ``daskbio.kernels``,
``daskbio.io``, ``daskbio.datasets``). ``import daskbio`` is enough for those too: they are
imported on first use (``daskbio.kernels.label(...)``), so that a fully cached run, which
uses none of them, imports neither dask.array nor mahotas.
"""

import importlib
from typing import Any

from daskbio.clusters import cluster
from daskbio.graph import *  # noqa: F403
from daskbio.graph import __all__ as _graph_all
from daskbio.pipeline import init

__all__ = [*_graph_all, "cluster", "init"]

__version__ = "0.1.0"

#: Submodules imported on first use (PEP 562).
_ON_FIRST_USE = ("datasets", "io", "kernels")


def __getattr__(name: str) -> Any:
    if name in _ON_FIRST_USE:
        return importlib.import_module(f"daskbio.{name}")
    raise AttributeError(f"module 'daskbio' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_ON_FIRST_USE})
