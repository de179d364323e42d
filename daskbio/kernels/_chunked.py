"""The one chunk-mapping helper every kernel is built on, and the input checks they share.

Exactness rule (ARCHITECTURE.md decision 8): a local kernel sees each chunk with a halo at
least as deep as its neighbourhood reaches, and no padding at the array's true edges
(``boundary="none"``), so mahotas applies its own edge ``mode`` there exactly as it does on
the whole array. Dask is always given ``dtype`` and ``meta``: otherwise it calls the kernel
on an empty array to guess them, and some mahotas functions crash the process on one.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import dask.array as da

Depth = int | Sequence[int]


def as_dask(image: Any, name: str = "image", ndims: Sequence[int] = (2, 3)) -> da.Array:
    """``image`` as a dask array, checked to have one of ``ndims`` dimensions.

    numpy arrays are wrapped (one chunk per Dask's automatic chunking); anything else
    array-like is refused with a message naming the argument.
    """
    import dask.array as da

    if isinstance(image, da.Array):
        arr = image
    elif isinstance(image, np.ndarray):
        arr = da.from_array(image, chunks="auto")
    else:
        raise TypeError(f"{name} must be a numpy or dask array, got {type(image).__name__}")
    if arr.ndim not in ndims:
        dims = " or ".join(f"{n}D" for n in ndims)
        raise ValueError(f"{name} must be {dims}, got {arr.ndim}D with shape {arr.shape}")
    if 0 in arr.shape:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    return arr


def check_dtype(image: Any, kinds: str, name: str = "image", what: str = "") -> None:
    """Refuse ``image`` unless its dtype kind is one of ``kinds`` (numpy kind codes:
    b bool, i signed, u unsigned, f float)."""
    if image.dtype.kind not in kinds:
        names = {"b": "bool", "i": "signed integer", "u": "unsigned integer", "f": "float"}
        allowed = ", ".join(names[k] for k in kinds)
        raise TypeError(f"{name} must be {what or allowed}, got dtype {image.dtype}")


def check_structuring_element(Bc: Any, ndim: int, name: str = "Bc") -> np.ndarray | None:
    """``Bc`` as a numpy array of rank ``ndim`` with odd sides (or None)."""
    if Bc is None:
        return None
    Bc = np.asarray(Bc)
    if Bc.ndim != ndim:
        raise ValueError(f"{name} must have the image's rank {ndim}, got {Bc.ndim}D {Bc.shape}")
    if any(s % 2 == 0 for s in Bc.shape):
        raise ValueError(f"{name} must have odd sides (a centre pixel), got shape {Bc.shape}")
    return Bc


def structuring_element(Bc: Any, ndim: int, dtype: Any = np.int32) -> np.ndarray:
    """``Bc`` as mahotas reads it on an image of ``dtype``: None is the elementary cross and
    an int mahotas' connectivity code (both expanded as mahotas does); an array is checked
    and returned as given, for mahotas to cast as each function does."""
    import mahotas as mh

    if Bc is not None and not (isinstance(Bc, (int, np.integer)) and not isinstance(Bc, bool)):
        return check_structuring_element(Bc, ndim)
    if Bc is not None and Bc < 0:
        raise ValueError(f"Bc must be a non-negative connectivity or an array, got {Bc}")
    return mh.morph.get_structuring_elem(
        np.zeros((1,) * ndim, dtype), None if Bc is None else int(Bc)
    )


def halo_of(footprint_shape: Sequence[int]) -> tuple[int, ...]:
    """The halo a neighbourhood of ``footprint_shape`` (odd sides) needs on each axis."""
    return tuple(s // 2 for s in footprint_shape)


def check_depth(depth: Depth, ndim: int, name: str = "depth") -> tuple[int, ...]:
    """``depth`` as one non-negative int per axis, or a ValueError naming ``name``."""
    depths = (depth,) * ndim if isinstance(depth, (int, np.integer)) else tuple(depth)
    if len(depths) != ndim or any(int(d) != d or d < 0 for d in depths):
        raise ValueError(
            f"{name} must be a non-negative integer or one per axis ({ndim}), got {depth!r}"
        )
    return tuple(int(d) for d in depths)


def merge_thin(chunks: tuple[int, ...], size: int) -> tuple[int, ...]:
    """``chunks`` merged with their neighbours until each is at least ``size`` long."""
    merged: list[int] = []
    for c in chunks:
        if merged and merged[-1] < size:
            merged[-1] += c
        else:
            merged.append(c)
    if len(merged) > 1 and merged[-1] < size:
        last = merged.pop()
        merged[-1] += last
    return tuple(merged)


def working_chunks(
    image: da.Array, depths: Sequence[int], min_chunk: Sequence[int]
) -> tuple[tuple[tuple[int, ...], ...], tuple[int, ...]]:
    """The chunks and halo a local kernel works with, per axis.

    Each chunk is at least ``max(depth, min_chunk)`` long (thin ones are merged with
    their neighbours); an axis too short for two such chunks becomes one chunk, which
    needs no halo at all: the kernel then sees that whole axis, as mahotas does.
    """
    chunks, halo = [], []
    for n, c, h, m in zip(image.shape, image.chunks, depths, min_chunk):
        m = max(h, m)
        if h == 0 or len(c) == 1:
            chunks.append(c)
            halo.append(0)
        elif n < 2 * m:
            chunks.append((n,))
            halo.append(0)
        else:
            chunks.append(merge_thin(c, m))
            halo.append(h)
    return tuple(chunks), tuple(halo)


def _with_own_copies(kernel: Callable[..., np.ndarray], names: list[str]) -> Callable:
    """``kernel`` called with its own copy of each array argument in ``names``.

    mahotas changes the reference count of arrays such as a structuring element with the
    GIL released; one array shared by threads running chunks at once corrupts it and can
    crash the process (seen with ``label`` on the threaded scheduler).
    """

    def call(*blocks: np.ndarray, **kwargs: Any) -> np.ndarray:
        for name in names:
            kwargs[name] = kwargs[name].copy()
        return kernel(*blocks, **kwargs)

    return call


def map_local(
    kernel: Callable[..., np.ndarray],
    image: da.Array,
    *others: da.Array,
    depth: Depth,
    dtype: Any,
    token: str | None = None,
    min_chunk: Sequence[int] | None = None,
    **kwargs: Any,
) -> da.Array:
    """Apply ``kernel(block, *other_blocks, **kwargs)`` to every chunk with a halo of ``depth``.

    The result has ``image``'s chunks and the given ``dtype``. ``others`` are further
    arrays of the same shape (e.g. a mask or markers), given to the kernel aligned with
    ``image``'s blocks. The chunks the kernel works on follow :func:`working_chunks`
    (``min_chunk`` asks for chunks at least that long on each axis, e.g. so a block takes
    the same code path in mahotas as the whole array); the result is rechunked back.
    ``token`` names the Dask keys (the dashboard groups work by it).

    Examples
    --------
    >>> import dask.array as da, mahotas as mh
    >>> x = da.random.default_rng(0).random((40, 30), chunks=10)
    >>> y = map_local(mh.gaussian_filter, x, depth=8, dtype=float, sigma=2)
    >>> bool((y.compute() == mh.gaussian_filter(x.compute(), 2)).all())
    True
    """
    import dask.array as da

    arrays_in_kwargs = [k for k, v in kwargs.items() if isinstance(v, np.ndarray)]
    # Dask's tokenize hashes an array's buffer, shape and dtype but not its strides, so a
    # transposed square array (weights.T) would get the untransposed one's keys, and one
    # graph holding both would compute only one: the keys must see values in C order.
    kwargs.update({k: np.ascontiguousarray(kwargs[k]) for k in arrays_in_kwargs})
    if arrays_in_kwargs:
        kernel = _with_own_copies(kernel, arrays_in_kwargs)
    chunks, depths = working_chunks(
        image, check_depth(depth, image.ndim), min_chunk or (0,) * image.ndim
    )
    dtype = np.dtype(dtype)
    arrays = [a if a.chunks == chunks else a.rechunk(chunks) for a in (image, *others)]
    if not any(depths):
        out = da.map_blocks(
            kernel,
            *arrays,
            dtype=dtype,
            meta=np.empty((0,) * image.ndim, dtype),
            token=token,
            **kwargs,
        )
    else:
        out = da.map_overlap(
            kernel,
            *arrays,
            depth=dict(enumerate(depths)),
            boundary="none",
            dtype=dtype,
            meta=np.empty((0,) * image.ndim, dtype),
            token=token,
            **kwargs,
        )
    return out if out.chunks == image.chunks else out.rechunk(image.chunks)


def filter_image(
    image: Any, name: str = "image", ndims: Sequence[int] = (2, 3), half: bool = False
) -> da.Array:
    """``image`` as a dask array of a dtype mahotas filters (float16 only if ``half``)."""
    arr = as_dask(image, name, ndims)
    check_dtype(arr, "biuf", name)
    if arr.dtype == np.float16 and not half:
        raise TypeError(
            f"{name} must not be float16 (mahotas does not filter it), convert it first"
        )
    return arr


def check_reach(image: da.Array, halo: Sequence[int], mode: str, name: str = "image") -> None:
    """Refuse what mahotas gets wrong: its 'reflect' edge reads outside the array (garbage)
    when a neighbourhood reaches 4 or more times an axis' length (an axis of 2 pixels and a
    Gaussian of sigma 2, say); no chunking can reproduce that."""
    if mode != "reflect":
        return
    for axis, (n, h) in enumerate(zip(image.shape, halo)):
        if 2 <= n <= h // 4:
            raise ValueError(
                f"{name} axis {axis} has {n} pixels, too few for a reach of {h} with "
                "mode='reflect' (mahotas then reads outside the array); use mode='mirror' "
                "or 'nearest', or a smaller neighbourhood"
            )


def check_integer(value: Any, name: str) -> int:
    """``value`` as an int; a bool, or anything that is not an integer, is refused."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None
