"""daskbio: Jug-style hashed Tasks run on Dask, with a persistent cache of results.

The public API is :mod:`daskbio.graph`'s and :func:`daskbio.clusters.cluster`, re-exported
here; see the submodules for the rest (``daskbio.cache``, ``daskbio.kernels``,
``daskbio.io``, ``daskbio.datasets``).
"""

from daskbio.clusters import cluster
from daskbio.graph import *  # noqa: F403
from daskbio.graph import __all__ as _graph_all

__all__ = [*_graph_all, "cluster"]

__version__ = "0.1.0"
