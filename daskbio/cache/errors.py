"""What the cache raises when a value cannot be proven to be the one that was stored."""

from __future__ import annotations

import errno


class CorruptEntry(Exception):
    """A cache entry is damaged, unsigned or signed with another key: it is never used.

    The message names the Task (function and hash) and the file where the damage is.
    """

    def __init__(self, key: str, why: str, name: str = "", file: str = "") -> None:
        task = f"{name} ({key})" if name else key
        where = f" [{file}]" if file else ""
        super().__init__(f"cache entry of {task} is damaged: {why}{where}")
        self.key = key
        self.why = why
        self.name = name
        self.file = file
        #: Whether the entry was removed (so that its Task is computed again).
        self.removed = False

    def removal_notice(self) -> str:
        """What the warning of its removal says."""
        return f"{self}: removed, so that it is computed again"

    def __reduce__(self) -> tuple:
        return (_rebuild, (type(self), self.key, self.why, self.name, self.file, self.removed))


def _rebuild(kind: type, key: str, why: str, name: str, file: str, removed: bool) -> Exception:
    error = kind(key, why, name, file)
    error.removed = removed
    return error


class ForeignEntry(CorruptEntry):
    """An entry signed with another key (another user's, or a lab key you do not use)."""


class DamagedEntryWarning(UserWarning):
    """A damaged cache entry was found and removed, so that its Task is computed again."""


class CacheWriteError(OSError):
    """The cache cannot be written (full disk, read-only folder, permissions).

    ``str()`` is the message alone, for a one-line ``Error:``."""

    def __init__(self, location: str, cause: OSError) -> None:
        reason = cause.strerror or str(cause)
        message = f"cannot write to the cache {location}: {reason}"
        if cause.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            message += " (what is cached can still be read: status, show, value())"
        if cause.errno is None:
            super().__init__(message)
        else:
            super().__init__(cause.errno, message)
        self.location = location
        self.cause = cause

    def __str__(self) -> str:
        return self.strerror if self.errno is not None else super().__str__()

    def __reduce__(self) -> tuple:
        return (type(self), (self.location, self.cause))


class CacheUnavailable(CacheWriteError):
    """The cache cannot be used at all: its server cannot be reached or refuses this
    client (a wrong password), or its URL is incomplete.

    A :class:`CacheWriteError`, so that every command says it in one ``Error:`` line and
    a run never records it as a Task's failure. The message names the server, never its
    password."""

    def __init__(self, location: str, reason: str) -> None:
        OSError.__init__(self, f"cannot use the cache {location}: {reason}")
        self.location = location
        self.reason = reason
        self.cause = None

    def __reduce__(self) -> tuple:
        return (type(self), (self.location, self.reason))
