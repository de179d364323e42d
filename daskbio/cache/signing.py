"""Authentication of cache entries with a secret kept outside the cache (docs/security.md).

Every entry's metadata is signed with HMAC-SHA256 under a key that lives in the user's
config folder, readable by its owner only. The metadata holds a SHA-256 digest of the
payload and of every array chunk, so the signature covers them too: a value leaves the
cache only if it is provably the one that was stored by a holder of the key. An entry
that fails is never unpickled.

The key file is, in order: the environment variable ``DASKBIO_KEY_FILE``, the Dask config
key ``daskbio.key-file``, else ``$XDG_CONFIG_HOME/daskbio/key`` (``~/.config/daskbio/key``),
created with 32 random bytes on first use. ``daskbio key share`` gives a lab group one key
for a shared cache.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

KEY_BYTES = 32


class KeyFileError(Exception):
    """The signing key cannot be read or created."""


def key_file() -> Path:
    """Where the signing key is kept (see the module's docstring for the order)."""
    configured = os.environ.get("DASKBIO_KEY_FILE")
    if not configured:
        from daskbio import config

        configured = config.get("daskbio.key-file")
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "daskbio" / "key"


def token(n: int) -> str:
    """``n`` random bytes as hexadecimal digits (names nobody can guess)."""
    return os.urandom(n).hex()


def _create(path: Path, mode: int = 0o600, gid: int = -1) -> bool:
    """Write a new random key at ``path`` unless there is one; whether it was written.

    Linked into place from a temporary file, not renamed: the link fails when the key
    exists, so two processes creating it at once agree on one key.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{token(8)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchown(fd, -1, gid)
        os.fchmod(fd, mode)
        os.write(fd, token(KEY_BYTES).encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)
    return True


def load_key(path: Path | None = None) -> bytes:
    """The signing key in ``path`` (default :func:`key_file`), created when missing.

    Raises
    ------
    KeyFileError
        When the file cannot be created or read, is not a key, or others may write it.
    """
    path = key_file() if path is None else path
    try:
        if not path.exists():
            _create(path)
        # One open file for the checks and the read, and no symbolic link followed.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            st = os.fstat(fd)
            text = os.read(fd, 4096).strip()
        finally:
            os.close(fd)
    except OSError as e:
        raise KeyFileError(
            f"cannot read or create the cache signing key {path}: {e.strerror or e}"
        ) from None
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH | stat.S_IROTH):
        raise KeyFileError(
            f"the cache signing key {path} may be read or written by others (mode "
            f"{stat.S_IMODE(st.st_mode):o}): chmod o-rwx,g-w {path}"
        )
    try:
        key = bytes.fromhex(text.decode())
    except ValueError:
        key = b""
    if len(key) < 16:
        raise KeyFileError(f"{path} is not a daskbio key (expected 64 hex digits)")
    return key


class Signer:
    """Signs and checks entry metadata with one key; knows the key only by a short id.

    Examples
    --------
    >>> signer = Signer(bytes(32))
    >>> tag = signer.sign(b"entry", b"metadata")
    >>> tag = tag.encode()
    >>> signer.valid(b"entry", b"metadata", tag), signer.valid(b"entry", b"metadatA", tag)
    (True, False)
    """

    def __init__(self, key: bytes) -> None:
        self._key = key
        #: Names the key in entries and messages without revealing it.
        self.key_id = hashlib.sha256(b"daskbio-key-id\x00" + key).hexdigest()[:16]

    def sign(self, *parts: bytes) -> str:
        """The HMAC-SHA256 of ``parts`` (each length-prefixed, so parts cannot shift)."""
        import hmac

        message = b"".join([len(part).to_bytes(8, "little") + part for part in parts])
        return hmac.digest(self._key, message, "sha256").hex()

    def valid(self, *parts_and_tag: bytes) -> bool:
        """Whether the last argument is :meth:`sign` of the others (as bytes)."""
        import hmac

        *parts, tag = parts_and_tag
        return hmac.compare_digest(self.sign(*parts).encode(), tag)

    def __reduce__(self) -> tuple:
        raise TypeError("a Signer holds the secret key and is never pickled")


def digest(data: bytes | memoryview) -> str:
    """The SHA-256 of ``data``, truncated to 128 bits (a chunk's or payload's checksum)."""
    return hashlib.sha256(data).hexdigest()[:32]


def share_key(target: Path, group: str) -> Path:
    """Create a new key at ``target`` for a cache that ``group`` shares: readable by the
    group (mode 0640), never by others.

    A new key, not a copy of yours: your own key keeps signing your own caches. Everyone
    of the lab then sets ``daskbio.key-file`` (or ``DASKBIO_KEY_FILE``) to ``target``;
    entries of the shared cache signed with other keys are computed again once.

    Raises
    ------
    KeyFileError
        When ``group`` does not exist or ``target`` exists already.
    """
    import grp

    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        raise KeyFileError(f"no group named {group!r} on this machine") from None
    try:
        created = _create(target, 0o640, gid)
    except OSError as e:
        raise KeyFileError(f"cannot create {target}: {e.strerror or e}") from None
    if not created:
        raise KeyFileError(
            f"{target} exists already: point DASKBIO_KEY_FILE at it, or remove it first "
            "(entries it signed would then be computed again)"
        )
    return target
