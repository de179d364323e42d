"""daskbio: Jug-style hashed Tasks run on Dask, with a persistent cache of results.

The public API is :mod:`daskbio.graph`'s, re-exported here; see the submodules for the rest
(``daskbio.cache``, ``daskbio.kernels``, ``daskbio.datasets``).
"""

from daskbio.graph import *  # noqa: F403
from daskbio.graph import __all__ as __all__

__version__ = "0.1.0"
