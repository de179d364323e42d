"""Tracebacks a person can read: the frames of the user's own code, not daskbio's, Dask's
or the standard library's (the command line's ``-v`` shows them all)."""

from __future__ import annotations

import sysconfig
import traceback
from pathlib import Path

#: daskbio's own folder.
_PACKAGE = str(Path(__file__).resolve().parent)


def _library_folders() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    found = {_PACKAGE}
    found.update(
        str(Path(paths[k]).resolve()) for k in ("stdlib", "platstdlib", "purelib", "platlib")
    )
    return tuple(found)


def is_own(filename: str, libraries: tuple[str, ...] | None = None) -> bool:
    """Whether ``filename`` is the user's code: not in daskbio, the standard library or
    an installed package, and not made up (``<frozen ...>``, ``<string>``)."""
    if filename.startswith("<"):
        return False
    resolved = Path(filename).resolve()
    return not any(resolved.is_relative_to(folder) for folder in libraries or _library_folders())


def own_frames(error: BaseException) -> str:
    """``error`` as a traceback of the user's frames only, ending with its message.

    A :class:`SyntaxError` gives its file, line and caret. When no frame is the user's
    (an error daskbio raised about what the user gave it), the message alone.

    Examples
    --------
    >>> try:
    ...     int("seven")
    ... except ValueError as e:
    ...     print(own_frames(e).splitlines()[-1])
    ValueError: invalid literal for int() with base 10: 'seven'
    """
    last = traceback.format_exception_only(type(error), error)
    if isinstance(error, SyntaxError):
        return "".join(last).rstrip()
    libraries = _library_folders()
    frames = traceback.extract_tb(error.__traceback__)
    kept = [f for f in frames if is_own(f.filename, libraries)]
    if not kept:
        return "".join(last).rstrip()
    lines = traceback.StackSummary.from_list(kept).format()
    return "".join(["Traceback (only your code's frames):\n", *lines, *last]).rstrip()
