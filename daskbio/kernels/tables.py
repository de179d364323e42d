"""Per-region feature tables: the measures of every labelled region as one pandas DataFrame.

Each column is one of the per-object reductions of :mod:`daskbio.kernels.measures` or
:func:`daskbio.kernels.features.haralick_objects` (one task per chunk and one to combine
them, so the graph grows linearly with the number of chunks), on the region's pixels of
``image`` and of its Sobel magnitude (:func:`daskbio.kernels.filters.sobel`). Counts,
minima and maxima are exact; means and standard deviations are computed in float64 from
sums added in another order than a raster scan (equal to about 1e-12, relative); Haralick
features are bit for bit those of mahotas on each region's crop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from daskbio.kernels._chunked import as_dask, check_dtype
from daskbio.kernels.features import haralick_objects
from daskbio.kernels.filters import sobel
from daskbio.kernels.measures import labeled_max, labeled_min, labeled_size, labeled_sum

if TYPE_CHECKING:
    import pandas

__all__ = ["region_table"]

#: The feature groups :func:`region_table` knows.
GROUPS = ("intensity", "sobel", "haralick")


def _statistics(values: Any, labeled: Any, size: np.ndarray, prefix: str) -> dict[str, Any]:
    """Mean and standard deviation of ``values`` over each label (float64)."""
    as_float = values.astype(np.float64)
    count = np.maximum(size, 1).astype(np.float64)
    mean = labeled_sum(as_float, labeled) / count
    square = labeled_sum(as_float * as_float, labeled) / count
    return {f"{prefix}mean": mean, f"{prefix}std": np.sqrt(np.maximum(square - mean**2, 0))}


def region_table(image: Any, labeled: Any, features: Sequence[str] = GROUPS) -> pandas.DataFrame:
    """The features of every region of ``labeled`` measured on ``image``, one row each.

    Parameters
    ----------
    image : numpy or dask array, 2D, unsigned integer
        Grey levels (Haralick texture needs unsigned integers, as in mahotas).
    labeled : numpy or dask array of integer labels, same shape
        0 is background; the regions are the labels above it present in the image.
    features : sequence of {"intensity", "sobel", "haralick"}
        Which groups of columns: ``size``, ``mean``, ``std``, ``min`` and ``max`` of the
        region's pixels; ``sobel_mean`` and ``sobel_std`` of their Sobel magnitude;
        the 13 Haralick features of the region (mean over the four directions, zeros
        ignored: the crop's pixels outside the region are set to 0), named as
        ``mahotas.features.texture.haralick_labels``.

    Returns
    -------
    pandas.DataFrame
        Indexed by label (``label``), the regions present, in increasing order.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.arange(36, dtype=np.uint8).reshape(6, 6)
    >>> labeled = np.zeros((6, 6), np.int32)
    >>> labeled[:2, :3], labeled[3:, 2:] = 1, 3
    >>> table = region_table(image, labeled, features=["intensity"])
    >>> table.index.tolist(), table["size"].tolist(), table["max"].tolist()
    ([1, 3], [6, 12], [8, 35])
    >>> float(table.loc[3, "mean"]) == float(image[3:, 2:].mean())
    True
    """
    import pandas as pd

    unknown = sorted(set(features) - set(GROUPS))
    if unknown:
        raise ValueError(f"features must be among {GROUPS}, got {unknown}")
    image = as_dask(image, "image", ndims=(2,))
    check_dtype(image, "u", "image", "unsigned integer")
    labeled = as_dask(labeled, "labeled", ndims=(2,))
    if labeled.shape != image.shape:
        raise ValueError(f"labeled must have image's shape {image.shape}, got {labeled.shape}")
    labeled = labeled.rechunk(image.chunks)
    size = labeled_size(labeled)
    columns: dict[str, Any] = {}
    if "intensity" in features:
        columns["size"] = size
        columns.update(_statistics(image, labeled, size, ""))
        columns["min"] = labeled_min(image, labeled)
        columns["max"] = labeled_max(image, labeled)
    if "sobel" in features:
        columns.update(_statistics(sobel(image, just_filter=True), labeled, size, "sobel_"))
    present = np.flatnonzero(size)
    present = present[present > 0]
    table = pd.DataFrame(
        {name: np.asarray(values)[present] for name, values in columns.items()},
        index=pd.Index(present, name="label"),
    )
    if "haralick" in features:
        from mahotas.features.texture import haralick_labels

        texture = haralick_objects(image, labeled, ignore_zeros=True, return_mean=True)
        rows = np.asarray(texture)[present - 1]
        for i, name in enumerate(haralick_labels[: rows.shape[1]]):
            table[name] = rows[:, i]
    return table
