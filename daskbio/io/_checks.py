"""Argument checks and messages shared by the readers and the writer."""

from __future__ import annotations

import os
from typing import Any

import numpy as np


def check_index(value: Any, name: str) -> int:
    """``value`` as an int, or a TypeError naming ``name`` (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    return int(value)


def level_out_of_range(path: str, level: int, n_levels: int) -> str:
    """The message for a ``level`` that the image at ``path`` does not have."""
    if n_levels == 1:
        return f"level={level} is out of range for {path!r}, which has one level (0)"
    return (
        f"level={level} is out of range for {path!r}, which has {n_levels} levels "
        f"(0 to {n_levels - 1}, or -{n_levels} to -1 counting from the smallest)"
    )


def pick_level(path: str, level: int, n_levels: int) -> int:
    """``level`` (negative counts from the smallest) as an index into ``n_levels`` levels."""
    if not -n_levels <= level < n_levels:
        raise ValueError(level_out_of_range(path, level, n_levels))
    return level % n_levels


FileKey = tuple[str, int, int]


def file_key(path: str) -> FileKey:
    """``path`` made absolute, with the file's size and modification time: what a lazy
    array remembers of a file, to find it from any working folder and to notice a change."""
    st = os.stat(path)
    return (os.path.abspath(path), st.st_size, st.st_mtime_ns)


def check_unchanged(path: str, key: FileKey) -> None:
    """Refuse to read ``path`` (the user's spelling of ``key``) if it is gone or has
    changed since its header was read: its pixels may no longer fit the array."""
    try:
        now = file_key(key[0])
    except FileNotFoundError:
        raise FileNotFoundError(f"{path!r} was removed after imread") from None
    if now != key:
        raise ValueError(f"{path!r} changed after imread; read it again")
