"""OME-Zarr (NGFF 0.5, Zarr v3): write multiscale images with labels, read them back.

Layout written by :func:`to_ome_zarr`::

    image.ome.zarr/         group; attributes {"ome": {"version": "0.5", "multiscales": [...]}}
      0/ 1/ ...             one Zarr array per level, dimension_names = the axes
      labels/               group; {"ome": {"version": "0.5", "labels": ["cells", ...]}}
        cells/              group; {"ome": {..., "image-label": {...}, "multiscales": [...]}}
          0/ 1/ ...

The pixels are written by Dask, one task per block of whole Zarr chunks (see
:mod:`daskbio.io.pyramid`), with no lock. The OME metadata is written last, after every
chunk: a write that fails or is killed leaves a group that no OME-Zarr reader takes for a
complete image (missing chunks would otherwise read as zeros).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from daskbio.io._checks import check_index, pick_level
from daskbio.io.pyramid import level_chunks, mean_pyramid, n_levels_to_fit, stride_pyramid

if TYPE_CHECKING:
    import dask.array as da
    import zarr
    from dask.delayed import Delayed

__all__ = ["OmeZarrMetadata", "read_ome_zarr_metadata", "to_ome_zarr"]

NGFF_VERSION = "0.5"
AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
DEFAULT_AXES = {2: "yx", 3: "zyx", 4: "czyx", 5: "tczyx"}
DEFAULT_CHUNKS = {"t": 1, "c": 1, "z": 16, "y": 512, "x": 512}
# The units NGFF lists (UDUNITS-2 spellings); napari and other readers know these.
SPACE_UNITS = frozenset(
    "angstrom attometer centimeter decimeter exameter femtometer foot gigameter hectometer "  # noqa: SIM905
    "inch kilometer megameter meter micrometer mile millimeter nanometer parsec petameter "
    "picometer terameter yard yoctometer yottameter zeptometer zettameter".split()
)
TIME_UNITS = frozenset(
    "attosecond centisecond day decisecond exasecond femtosecond gigasecond hectosecond hour "  # noqa: SIM905
    "kilosecond megasecond microsecond millisecond minute nanosecond petasecond picosecond "
    "second terasecond yoctosecond yottasecond zeptosecond zettasecond".split()
)


# --- reading -----------------------------------------------------------------------------


@dataclass(frozen=True)
class OmeZarrMetadata:
    """What an OME-Zarr image's metadata says, in plain Python values.

    Attributes
    ----------
    version : str
        The NGFF version ("0.5" for Zarr v3 images, "0.4" for Zarr v2 ones).
    name : str or None
        The multiscale image's name.
    axes : tuple of str
        Axis names, e.g. ``("c", "y", "x")``.
    axis_types : tuple of str or None
        "time", "channel", "space" or None, one per axis.
    units : dict
        Unit per axis name, for the axes that have one.
    paths : tuple of str
        The array path of each level, full resolution first.
    shapes : tuple of tuple of int
        The array shape of each level.
    scales : tuple of tuple of float
        The pixel size of each level, per axis (its dataset's scale times the
        multiscale's own scale, if it has one).
    downscaling : str or None
        The multiscale's ``type`` (how the levels were made), e.g. "mean".
    labels : tuple of str
        The names of the image's label images (``labels/<name>``), if any.
    """

    version: str
    name: str | None
    axes: tuple[str, ...]
    axis_types: tuple[str | None, ...]
    units: dict[str, str]
    paths: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    scales: tuple[tuple[float, ...], ...]
    downscaling: str | None
    labels: tuple[str, ...]


def _ome_attributes(attrs: Mapping[str, Any]) -> tuple[str | None, Mapping[str, Any]]:
    """The NGFF version and metadata of a group's attributes: under "ome" from 0.5 on,
    at the top level before."""
    if "ome" in attrs:
        return str(attrs["ome"].get("version")), attrs["ome"]
    multiscales = attrs.get("multiscales")
    if multiscales:
        return str(multiscales[0].get("version")), attrs
    return None, attrs


def _open_node(path: str) -> zarr.Array | zarr.Group:
    import zarr

    try:
        # An absolute path, as the store travels in the graph to workers that may run in
        # another folder.
        return zarr.open(os.path.abspath(path), mode="r")
    except (FileNotFoundError, zarr.errors.NodeNotFoundError):
        if os.path.exists(path):
            raise ValueError(
                f"cannot read {path!r} as Zarr: it has no zarr.json, .zarray or .zgroup"
            ) from None
        raise FileNotFoundError(f"no such file or Zarr store: {path!r}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"cannot read {path!r} as Zarr: {exc}") from exc


def _multiscale(path: str, group: zarr.Group) -> tuple[str | None, Mapping[str, Any]]:
    version, ome = _ome_attributes(group.attrs.asdict())
    if ome.get("multiscales"):
        return version, ome["multiscales"][0]
    if "labels" in ome:
        names = ", ".join(repr(f"{path}/{n}") for n in ome["labels"])
        raise ValueError(
            f"{path!r} is an OME-Zarr labels group, not an image; read one of its labels: {names}"
        )
    members = ", ".join(sorted(group.keys())) or "none"
    raise ValueError(
        f"{path!r} is a Zarr group without multiscale (OME-Zarr) metadata; give the path of "
        f"one of its arrays or images (its members: {members})"
    )


def open_zarr(path: str, level: int = 0, chunks: Any = None) -> da.Array:
    """A Zarr array, or level ``level`` of an OME-Zarr multiscale image, as a dask array
    chunked as stored (or as ``chunks``)."""
    import dask.array as da
    import zarr

    node = _open_node(path)
    if isinstance(node, zarr.Array):
        pick_level(path, level, 1)
        array = node
    else:
        _, multiscale = _multiscale(path, node)
        datasets = multiscale["datasets"]
        array = node[datasets[pick_level(path, level, len(datasets))]["path"]]
    return da.from_zarr(array, chunks=chunks)


def read_ome_zarr_metadata(path: str | os.PathLike) -> OmeZarrMetadata:
    """Read the multiscale metadata of an OME-Zarr image (NGFF 0.4 or 0.5).

    Parameters
    ----------
    path : str or path-like
        The image's group, e.g. ``"x.ome.zarr"`` or ``"x.ome.zarr/labels/cells"``.

    Returns
    -------
    OmeZarrMetadata
        Axes, units, and each level's path, shape and pixel size.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> out = os.path.join(tempfile.mkdtemp(), "x.ome.zarr")
    >>> to_ome_zarr(np.zeros((64, 48), np.uint8), out, scales=(0.5, 0.5), levels=2,
    ...             units={"y": "micrometer", "x": "micrometer"})
    >>> meta = read_ome_zarr_metadata(out)
    >>> meta.axes, meta.shapes, meta.scales
    (('y', 'x'), ((64, 48), (32, 24)), ((0.5, 0.5), (1.0, 1.0)))
    """
    import zarr

    path = os.fspath(path)
    node = _open_node(path)
    if isinstance(node, zarr.Array):
        raise ValueError(f"{path!r} is a Zarr array, not an OME-Zarr image group")
    version, multiscale = _multiscale(path, node)
    if version not in ("0.4", "0.5"):
        raise ValueError(f"{path!r} is OME-Zarr {version}; this reads versions 0.4 and 0.5")
    axes = [a if isinstance(a, dict) else {"name": a} for a in multiscale["axes"]]
    overall = _scale_of(multiscale.get("coordinateTransformations", []), len(axes))
    datasets = multiscale["datasets"]
    scales = []
    for dataset in datasets:
        scale = _scale_of(dataset.get("coordinateTransformations", []), len(axes))
        scales.append(tuple(float(s * o) for s, o in zip(scale, overall)))
    labels: tuple[str, ...] = ()
    if "labels" in node:
        _, ome = _ome_attributes(node["labels"].attrs.asdict())
        labels = tuple(ome.get("labels", ()))
    return OmeZarrMetadata(
        version=version,
        name=multiscale.get("name"),
        axes=tuple(a["name"] for a in axes),
        axis_types=tuple(a.get("type") for a in axes),
        units={a["name"]: a["unit"] for a in axes if a.get("unit")},
        paths=tuple(d["path"] for d in datasets),
        shapes=tuple(tuple(node[d["path"]].shape) for d in datasets),
        scales=tuple(scales),
        downscaling=multiscale.get("type"),
        labels=labels,
    )


def _scale_of(transformations: Sequence[Mapping[str, Any]], ndim: int) -> list[float]:
    for t in transformations:
        if t.get("type") == "scale" and "scale" in t:
            return [float(s) for s in t["scale"]]
    return [1.0] * ndim


# --- checking the writer's arguments -----------------------------------------------------


def _as_dask(array: Any, name: str) -> da.Array:
    import dask.array as da

    if isinstance(array, np.ndarray):
        array = da.from_array(array, chunks="auto")
    elif not isinstance(array, da.Array):
        raise TypeError(f"{name} must be a numpy or dask array, got {type(array).__name__}")
    if 0 in array.shape:
        raise ValueError(f"{name} must not be empty, got shape {array.shape}")
    return array


def _check_axes(axes: str | Sequence[str] | None, ndim: int) -> tuple[str, ...]:
    if not 2 <= ndim <= 5:
        raise ValueError(f"image must have 2 to 5 dimensions (OME-Zarr), got {ndim}")
    if axes is None:
        return tuple(DEFAULT_AXES[ndim])
    names = tuple(axes)
    order = "".join(AXIS_TYPES)
    if (
        len(names) != ndim
        or any(a not in AXIS_TYPES for a in names)
        or len(set(names)) != ndim
        or [order.index(a) for a in names] != sorted(order.index(a) for a in names)
        or not {"y", "x"} <= set(names)
    ):
        raise ValueError(
            f"axes must name the image's {ndim} axes in the order of 'tczyx' (a subset "
            f"with 'y' and 'x', e.g. {DEFAULT_AXES[ndim]!r}), got {axes!r}"
        )
    return names


def _check_scales(scales: Sequence[float] | None, axes: tuple[str, ...]) -> tuple[float, ...]:
    if scales is None:
        return (1.0,) * len(axes)
    values = tuple(scales)
    if len(values) != len(axes) or not all(
        isinstance(s, (int, float, np.number)) and math.isfinite(s) and s > 0 for s in values
    ):
        raise ValueError(
            f"scales must be one positive pixel size per axis {''.join(axes)!r}, got {scales!r}"
        )
    return tuple(float(s) for s in values)


def _check_units(units: Mapping[str, str] | None, axes: tuple[str, ...]) -> dict[str, str]:
    if units is None:
        return {}
    if not isinstance(units, Mapping):
        raise TypeError(f"units must be a dict of axis name to unit, got {units!r}")
    for axis, unit in units.items():
        if axis not in axes or AXIS_TYPES[axis] == "channel":
            raise ValueError(
                f"units names axis {axis!r}, which is not a space or time axis of {axes}"
            )
        allowed = TIME_UNITS if AXIS_TYPES[axis] == "time" else SPACE_UNITS
        if unit not in allowed:
            example = "second" if AXIS_TYPES[axis] == "time" else "micrometer"
            raise ValueError(
                f"units[{axis!r}] must be a unit NGFF names (e.g. {example!r}), got {unit!r}"
            )
    return dict(units)


def _check_downscale(downscale: int | Mapping[str, int], axes: tuple[str, ...]) -> tuple:
    if isinstance(downscale, Mapping):
        by_axis = dict(downscale)
    else:
        by_axis = {"y": downscale, "x": downscale}
    for axis, f in by_axis.items():
        if axis not in axes or AXIS_TYPES[axis] != "space":
            raise ValueError(f"downscale names axis {axis!r}, which is not a space axis of {axes}")
        if isinstance(f, bool) or not isinstance(f, (int, np.integer)) or f < 1:
            raise ValueError(f"downscale must be a positive integer per axis, got {downscale!r}")
    return tuple(int(by_axis.get(a, 1)) for a in axes)


def _check_chunks(chunks: Sequence[int] | None, axes: tuple[str, ...]) -> tuple[int, ...]:
    if chunks is None:
        return tuple(DEFAULT_CHUNKS[a] for a in axes)
    values = tuple(chunks)
    if len(values) != len(axes) or not all(
        isinstance(c, (int, np.integer)) and not isinstance(c, bool) and c > 0 for c in values
    ):
        raise ValueError(
            f"chunks must be one positive chunk length per axis {''.join(axes)!r}, got {chunks!r}"
        )
    return tuple(int(c) for c in values)


def _check_levels(
    levels: int | None, shape: tuple[int, ...], factors: tuple[int, ...], chunks: tuple
) -> int:
    if levels is None:
        return n_levels_to_fit(shape, factors, chunks)
    levels = check_index(levels, "levels")
    if levels < 1:
        raise ValueError(f"levels must be at least 1, got {levels}")
    if levels > 1 and all(f == 1 for f in factors):
        raise ValueError(f"levels={levels} needs a downscale factor above 1 on some axis")
    return levels


def _check_labels(
    labels: Mapping[str, Any] | None, image: da.Array, axes: tuple[str, ...]
) -> dict[str, tuple[da.Array, tuple[str, ...]]]:
    """Each label image as a dask array, with its axes: the image's, less "c" if it has
    one fewer dimension."""
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise TypeError(f"labels must be a dict of name to label image, got {labels!r}")
    checked = {}
    for name, label in labels.items():
        where = f"labels[{name!r}]"
        if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
            raise ValueError(f"label names must be non-empty and without '/', got {name!r}")
        label = _as_dask(label, where)
        if label.dtype == bool:
            label = label.astype(np.uint8)
        if label.dtype.kind not in "iu":
            raise TypeError(f"{where} must be an integer (or bool) array, got {label.dtype}")
        label_axes = axes if label.ndim == len(axes) else tuple(a for a in axes if a != "c")
        expected = tuple(n for a, n in zip(axes, image.shape) if a in label_axes)
        if label.shape != expected:
            raise ValueError(
                f"{where} must have the image's shape {expected} on axes "
                f"{''.join(label_axes)!r}, got {label.shape}"
            )
        checked[name] = (label, label_axes)
    return checked


def _check_target(path: str, overwrite: bool) -> None:
    if not os.path.exists(path):
        return
    if not overwrite:
        raise FileExistsError(f"{path!r} exists; pass overwrite=True to replace it")
    is_zarr = os.path.isdir(path) and any(
        os.path.exists(os.path.join(path, f)) for f in ("zarr.json", ".zgroup", ".zarray")
    )
    if not is_zarr and not (os.path.isdir(path) and not os.listdir(path)):
        # overwrite=True empties the folder: refuse anything that is not a Zarr store.
        raise FileExistsError(f"{path!r} exists and is not a Zarr store; refusing to overwrite it")


# --- writing -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """What every multiscale image of one write shares, by axis name."""

    scales: dict[str, float]
    units: dict[str, str]
    factors: dict[str, int]
    chunks: dict[str, int]
    levels: int


_METHODS = {
    "mean": (mean_pyramid, "the mean of each block of {} pixels"),
    "nearest": (stride_pyramid, "the first pixel of each block of {} pixels"),
}


def _add_multiscale(
    group: zarr.Group,
    array: da.Array,
    axes: tuple[str, ...],
    layout: _Layout,
    name: str,
    method: str,
) -> tuple[list[da.Array], list[zarr.Array], dict[str, Any]]:
    """Create the level arrays of ``array``'s pyramid in ``group``: the arrays to write,
    the Zarr arrays to write them to, and the group's "multiscales" entry."""
    pyramid_of, description = _METHODS[method]
    factors = tuple(layout.factors[a] for a in axes)
    chunks = level_chunks(
        array.shape, factors, layout.levels, tuple(layout.chunks[a] for a in axes)
    )
    pyramid = pyramid_of(array, factors, chunks)
    targets = []
    for k, (level, level_chunks_k) in enumerate(zip(pyramid, chunks)):
        # Every write block is a whole number of Zarr chunks (pyramid.py), so the
        # lock-free parallel writes never share a chunk.
        if not all(
            all(c % z == 0 for c in sizes[:-1]) for sizes, z in zip(level.chunks, level_chunks_k)
        ):
            raise RuntimeError(f"write blocks {level.chunks} straddle Zarr chunks {level_chunks_k}")
        targets.append(
            group.create_array(
                str(k),
                shape=level.shape,
                chunks=level_chunks_k,
                dtype=level.dtype,
                fill_value=np.zeros((), level.dtype).item(),
                dimension_names=axes,
            )
        )
    blocks = " x ".join(f"{f}**k" if f > 1 else "1" for f in factors)
    entry = {
        "name": name,
        "axes": [
            {"name": a, "type": AXIS_TYPES[a]}
            | ({"unit": layout.units[a]} if a in layout.units else {})
            for a in axes
        ],
        "datasets": [
            {
                "path": str(k),
                "coordinateTransformations": [
                    {
                        "type": "scale",
                        "scale": [layout.scales[a] * layout.factors[a] ** k for a in axes],
                    }
                ],
            }
            for k in range(layout.levels)
        ],
        "type": method,
        "metadata": {
            "description": "level k: " + description.format(blocks),
            "method": "daskbio.io.to_ome_zarr",
        },
    }
    return pyramid, targets, entry


def _write_metadata(_stored: Any, path: str, attributes: dict[str, dict[str, Any]]) -> None:
    """Set each group's OME attributes (``attributes`` by group path), once every chunk
    is written (``_stored`` is the write's result, here only to order this after it)."""
    import zarr

    root = zarr.open_group(path, mode="r+", zarr_format=3)
    for group_path, attrs in attributes.items():
        group = root[group_path] if group_path else root
        group.attrs.update(attrs)


def to_ome_zarr(
    image: Any,
    path: str | os.PathLike,
    *,
    axes: str | Sequence[str] | None = None,
    scales: Sequence[float] | None = None,
    units: Mapping[str, str] | None = None,
    levels: int | None = None,
    downscale: int | Mapping[str, int] = 2,
    chunks: Sequence[int] | None = None,
    labels: Mapping[str, Any] | None = None,
    name: str | None = None,
    overwrite: bool = False,
    compute: bool = True,
) -> Delayed | None:
    """Write an image (and label images) as a multiscale OME-Zarr (NGFF 0.5, Zarr v3).

    Dask writes the pixels chunk by chunk, each task a block of whole Zarr chunks, with
    no lock: numpy arrays and dask arrays larger than memory alike. Level ``k`` divides
    each downscaled axis by ``downscale**k`` (rounding up); an image's level is the mean
    of each block (rounded to the nearest integer for integer images), a label image's is
    the block's first pixel, so label values stay exact. The OME metadata is written after
    all pixels, so an interrupted write is not mistaken for a complete image.

    Parameters
    ----------
    image : numpy or dask array, 2D to 5D, bool, integer or float
        The full-resolution image.
    path : str or path-like
        The folder to write, by convention ending in ``.ome.zarr``.
    axes : str or sequence of str, optional
        Axis names, a subset of "tczyx" in that order that includes "y" and "x".
        Default: "yx", "zyx", "czyx" or "tczyx" by the image's dimensions.
    scales : sequence of float, optional
        The physical pixel size along each axis at full resolution (default 1).
    units : dict, optional
        Unit by axis name, as NGFF names them: e.g. ``{"y": "micrometer", "x":
        "micrometer", "t": "second"}``.
    levels : int, optional
        The number of resolution levels, full resolution included. Default: as many as
        it takes for the smallest level to fit one chunk along every downscaled axis.
    downscale : int or dict, optional
        The factor between levels: an int for "y" and "x" (default 2), or a factor by
        axis name, e.g. ``{"z": 2, "y": 2, "x": 2}`` for isotropic volumes.
    chunks : sequence of int, optional
        The Zarr chunk shape. Default: 1 along "t" and "c", 16 along "z", 512 along
        "y" and "x" (clipped to each level's shape).
    labels : dict, optional
        Label images by name, written to ``labels/<name>`` with the image's levels and
        scales. Each has the image's shape, or its shape without the "c" axis; integer
        dtype (bool masks are written as uint8).
    name : str, optional
        The image's name in the metadata. Default: the folder's name less its suffix.
    overwrite : bool, optional
        Replace an existing Zarr store at ``path`` (default False: refuse). A folder
        that is not a Zarr store is never replaced. The old store is emptied before the
        image is read, so ``image`` must not be read from ``path`` itself (write to a new
        path, then move it).
    compute : bool, optional
        Write now (default), or return a ``dask.delayed`` object whose computation
        writes, e.g. to combine with other computations.

    Returns
    -------
    None, or a dask Delayed when ``compute=False``.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from daskbio.io import imread
    >>> image = np.random.default_rng(0).integers(0, 1000, (2, 300, 200), dtype=np.uint16)
    >>> cells = (image[0] > 500).astype(np.uint32)
    >>> out = os.path.join(tempfile.mkdtemp(), "cells.ome.zarr")
    >>> to_ome_zarr(image, out, axes="cyx", scales=(1, 0.25, 0.25), levels=3,
    ...             chunks=(1, 128, 128), labels={"cells": cells})
    >>> imread(out, level=2).shape
    (2, 75, 50)
    >>> bool((imread(out + "/labels/cells", level=1).compute() == cells[::2, ::2]).all())
    True
    """
    import dask
    import dask.array as da
    import zarr

    path = os.fspath(path)
    image = _as_dask(image, "image")
    if image.dtype.kind not in "biuf":
        raise TypeError(f"image must be bool, integer or float, got dtype {image.dtype}")
    axes = _check_axes(axes, image.ndim)
    scales = _check_scales(scales, axes)
    units = _check_units(units, axes)
    factors = _check_downscale(downscale, axes)
    chunks = _check_chunks(chunks, axes)
    levels = _check_levels(levels, image.shape, factors, chunks)
    label_images = _check_labels(labels, image, axes)
    if name is None:
        name = os.path.basename(os.path.normpath(path)).removesuffix(".zarr")
        name = name.removesuffix(".ome")
    _check_target(path, overwrite)

    layout = _Layout(
        scales=dict(zip(axes, scales)),
        units=units,
        factors=dict(zip(axes, factors)),
        chunks=dict(zip(axes, chunks)),
        levels=levels,
    )
    # An absolute path, as the arrays travel in the graph to workers in other folders.
    path = os.path.abspath(path)
    root = zarr.open_group(path, mode="w" if overwrite else "w-", zarr_format=3)
    sources, targets, entry = _add_multiscale(root, image, axes, layout, name, "mean")
    ome = {"version": NGFF_VERSION}
    attributes = {"": {"ome": {**ome, "multiscales": [entry]}}}
    if label_images:
        root.create_group("labels")
        attributes["labels"] = {"ome": {**ome, "labels": list(label_images)}}
    for label_name, (label, label_axes) in label_images.items():
        group = root.create_group(f"labels/{label_name}")
        pyramid, label_targets, entry = _add_multiscale(
            group, label, label_axes, layout, label_name, "nearest"
        )
        sources += pyramid
        targets += label_targets
        image_label = {"source": {"image": "../../"}}
        attributes[f"labels/{label_name}"] = {
            "ome": {**ome, "image-label": image_label, "multiscales": [entry]}
        }
    stored = da.store(sources, targets, lock=False, compute=False)
    written = dask.delayed(_write_metadata, pure=False)(stored, path, attributes)
    if compute:
        written.compute()
        return None
    return written
