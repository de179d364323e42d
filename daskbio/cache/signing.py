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

import contextlib
import hashlib
import hmac
import os
import secrets
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


def _create(path: Path) -> None:
    """Write a new random key at ``path``, owner-only, unless another process did first."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, secrets.token_hex(KEY_BYTES).encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        # link, not rename: it fails when the key exists, so two processes creating it at
        # once agree on one key.
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)


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
        st = path.stat()
        text = path.read_bytes().strip()
    except OSError as e:
        raise KeyFileError(
            f"cannot read or create the cache signing key {path}: {e.strerror or e}"
        ) from None
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise KeyFileError(
            f"the cache signing key {path} is writable by others (mode "
            f"{stat.S_IMODE(st.st_mode):o}): chmod go-w {path}"
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
    >>> signer.valid(b"entry", b"metadata", tag), signer.valid(b"entry", b"metadatA", tag)
    (True, False)
    """

    def __init__(self, key: bytes) -> None:
        self._key = key
        #: Names the key in entries and messages without revealing it.
        self.key_id = hashlib.sha256(b"daskbio-key-id\x00" + key).hexdigest()[:16]

    def sign(self, *parts: bytes) -> str:
        """The HMAC-SHA256 of ``parts`` (each length-prefixed, so parts cannot shift)."""
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        for part in parts:
            mac.update(len(part).to_bytes(8, "little"))
            mac.update(part)
        return mac.hexdigest()

    def valid(self, *parts_and_tag: bytes | str) -> bool:
        """Whether the last argument is :meth:`sign` of the others."""
        *parts, tag = parts_and_tag
        return hmac.compare_digest(self.sign(*parts), str(tag))

    def __reduce__(self) -> tuple:
        raise TypeError("a Signer holds the secret key and is never pickled")


def digest(data: bytes | memoryview) -> str:
    """The SHA-256 of ``data``, truncated to 128 bits (a chunk's or payload's checksum)."""
    return hashlib.sha256(data).hexdigest()[:32]


def share_key(target: Path, group: str, source: Path | None = None) -> Path:
    """Copy the signing key to ``target``, readable by ``group`` (mode 0640).

    Everyone of the lab then sets ``daskbio.key-file`` (or ``DASKBIO_KEY_FILE``) to
    ``target``, so entries one of them computed are trusted by the others.
    """
    import grp

    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        raise KeyFileError(f"no group named {group!r} on this machine") from None
    key = load_key(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchown(fd, -1, gid)
        os.fchmod(fd, 0o640)
        os.write(fd, key.hex().encode() + b"\n")
    finally:
        os.close(fd)
    try:
        os.replace(tmp, target)
    except OSError:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return target
