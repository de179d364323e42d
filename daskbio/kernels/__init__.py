"""mahotas kernels mapped over the chunks of dask arrays, equal to mahotas on the whole array.

Local kernels (filters, morphology) see each chunk with a halo derived from their
parameters; global ones (thresholds, labels, per-object measures, regional extrema) are
reductions or a merge across chunk faces. Each module's docstring says how it is exact.

Importing this package imports ``dask.array``; ``import daskbio`` alone does not.
"""

from daskbio.kernels import (
    extrema,
    features,
    filters,
    labeling,
    measures,
    morphology,
    surf,
    tables,
    thresholds,
)
from daskbio.kernels.extrema import *  # noqa: F403
from daskbio.kernels.features import *  # noqa: F403
from daskbio.kernels.filters import *  # noqa: F403
from daskbio.kernels.labeling import *  # noqa: F403
from daskbio.kernels.measures import *  # noqa: F403
from daskbio.kernels.morphology import *  # noqa: F403
from daskbio.kernels.surf import *  # noqa: F403
from daskbio.kernels.tables import *  # noqa: F403
from daskbio.kernels.thresholds import *  # noqa: F403

__all__ = sorted(
    name
    for module in (
        extrema,
        features,
        filters,
        labeling,
        measures,
        morphology,
        surf,
        tables,
        thresholds,
    )
    for name in module.__all__
)
