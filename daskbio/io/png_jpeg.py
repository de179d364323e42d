"""PNG and JPEG files as dask arrays, through Pillow: one task decodes one whole file.

Shapes and dtypes come from the files' headers (``PIL.Image.open`` reads only those), so a
glob of thousands of files is checked on the client without decoding any of them. The
array dtype for a Pillow mode is found by converting a 1x1 image of that mode, which is
exactly how the decoded file will convert.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from daskbio.io._checks import FileKey, check_unchanged, file_key

__all__ = ["PlaneFiles", "header"]


def _array_mode(mode: str, info: dict) -> str:
    """The Pillow mode an image of ``mode`` is read in: palette images become RGB(A)
    colours (what the picture shows) rather than palette indices."""
    if mode == "PA" or (mode == "P" and "transparency" in info):
        return "RGBA"
    return "RGB" if mode == "P" else mode


def _pixels(image: Any) -> np.ndarray:
    mode = _array_mode(image.mode, image.info)
    return np.asarray(image if mode == image.mode else image.convert(mode))


def header(path: str) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype ``path`` decodes to, from its header alone."""
    from PIL import Image

    kind = "JPEG" if path.lower().endswith((".jpg", ".jpeg")) else "PNG"
    try:
        with Image.open(path) as image:
            if image.format not in ("PNG", "JPEG"):
                raise ValueError(f"cannot read {path!r} as {kind}: it is a {image.format} file")
            rawmode = image.tile[0][3] if image.tile else ""  # (codec, box, offset, rawmode)
            mode = _array_mode(image.mode, image.info)
            width, height = image.size
    except (OSError, SyntaxError) as exc:
        # Pillow raises OSError (UnidentifiedImageError) for what it cannot identify, and
        # SyntaxError for some broken headers.
        raise ValueError(f"cannot read {path!r} as {kind}: {exc}") from exc
    probe = np.asarray(Image.new(mode, (1, 1)))
    if isinstance(rawmode, str) and ";16" in rawmode and probe.dtype.itemsize == 1:
        # Pillow decodes 16-bit colour PNGs to 8 bits per sample; refuse rather than lose bits.
        raise ValueError(
            f"cannot read {path!r}: it is a 16-bit {mode} PNG, which Pillow decodes to 8 bits "
            "per sample; convert it to TIFF (e.g. with tifffile) to keep its values"
        )
    return (height, width, *probe.shape[2:]), probe.dtype


def _decode(path: str, key: FileKey, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    from PIL import Image

    check_unchanged(path, key)
    try:
        with Image.open(key[0]) as image:
            pixels = _pixels(image)
    except (OSError, SyntaxError) as exc:
        # Pillow reports corrupt or truncated data as OSError (or SyntaxError for some
        # headers): name the file, as the traceback from the worker would not.
        raise ValueError(f"cannot decode {path!r}: {exc}") from exc
    if pixels.shape != shape or pixels.dtype != dtype:
        raise ValueError(
            f"{path!r} decoded to shape {pixels.shape} and dtype {pixels.dtype}, "
            f"but its header said {shape} and {dtype}"
        )
    return pixels


class PlaneFiles:
    """PNG/JPEG files of one shape and dtype, as an array Dask can slice.

    With ``stacked`` the files are planes along a new first axis (file ``i`` is
    ``array[i]``); otherwise there is one file and the array is its image. Reading any
    part of a plane decodes that whole file.
    """

    def __init__(
        self, paths: Sequence[str], shape: tuple[int, ...], dtype: Any, stacked: bool
    ) -> None:
        self.paths = list(paths)
        self.keys = [file_key(p) for p in self.paths]
        self.plane_shape, self.dtype, self.stacked = tuple(shape), np.dtype(dtype), stacked
        self.shape = (len(self.paths), *self.plane_shape) if stacked else self.plane_shape
        self.ndim = len(self.shape)

    def _plane(self, i: int) -> np.ndarray:
        return _decode(self.paths[i], self.keys[i], self.plane_shape, self.dtype)

    def __getitem__(self, index: tuple[slice, ...]) -> np.ndarray:
        if not self.stacked:
            return self._plane(0)[index]
        files, rest = index[0], index[1:]
        planes = np.stack([self._plane(i) for i in range(len(self.paths))[files]])
        return planes[(slice(None), *rest)]

    def __dask_tokenize__(self) -> tuple:
        return ("daskbio.io.PlaneFiles", self.keys, self.stacked)

    def __repr__(self) -> str:
        return f"PlaneFiles({len(self.paths)} files, shape={self.shape}, dtype={self.dtype})"
