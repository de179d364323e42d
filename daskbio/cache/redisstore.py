"""The Redis store: records in a Redis server, payloads in a folder or a Zarr store.

::

    redis://[[user]:password@]host:port/db?payloads=PATH_OR_URL[&prefix=NAME]
    rediss://...                  the same over TLS
    unix://[[user]:password@]/path/redis.sock?db=0&payloads=PATH_OR_URL

Every record is one Redis string named ``<prefix>:<kind>:<key>`` (``daskbio:entry:3fa2...``,
``daskbio:failure:...``, ``daskbio:lock:...``, ``daskbio:code:<function>-<code>``,
``daskbio:inputs:<function>``); ``prefix`` (``daskbio`` by default) lets several caches share
one database. An entry holds its signed metadata and, up to :data:`INLINE_LIMIT`, its
pickle; larger pickles and arrays go to ``payloads`` (a folder, laid out as the filesystem
store's, or a URL Zarr opens such as ``s3://bucket/payloads``). Other query parameters go
to redis-py (``socket_timeout=...``, ``ssl_ca_certs=...``).

A payload is written before the one ``SET`` that commits its entry; a lock is taken with
``SET NX PX`` and renewed by a compare-and-swap script; existence checks are pipelined in
batches and listings use ``SCAN``, so ``status`` of thousands of Tasks costs a few round
trips. Entries are signed (:mod:`daskbio.cache.signing`): an entry whose payload is gone or
changed is refused and its Task computed again.

Durability: run the server with ``appendonly yes`` (``appendfsync everysec``): a crash then
loses at most the last second of commits. RDB snapshots alone, or no persistence, lose
every entry since the last snapshot: nothing wrong is served (those Tasks are computed
again), but the work is lost.

The connection is made on first use in each process (a Store pickled to Dask workers
carries its URL; a forked process makes its own), and importing redis-py waits for it. An
unreachable server is retried for :data:`RETRY_SECONDS` (a restart is survived), then it,
a wrong password or any error of the server is a :class:`CacheUnavailable` naming the
server, whose password is never shown.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from daskbio.cache import REDIS_SCHEMES
from daskbio.cache.errors import CacheUnavailable
from daskbio.cache.filesystem import _private_local_store
from daskbio.cache.index import Index, Kind
from daskbio.cache.payloads import Payloads
from daskbio.cache.store import Store

#: The URL schemes of a Redis cache.
#: Pickles up to this many bytes are kept inside their entry, in Redis.
INLINE_LIMIT = 64 * 1024
#: Seconds an unreachable server is retried before a :class:`CacheUnavailable`.
RETRY_SECONDS = 5.0
DEFAULT_PREFIX = "daskbio"
# Keys checked per pipelined round trip, and records read per one (each up to
# HEADER_BYTES, so a batch's replies stay a few MiB).
EXISTS_BATCH = 5000
READ_BATCH = 1000
SCAN_COUNT = 10_000
# A lock record outlives its lease by as long again (10 s at least): until then it shows
# who held it and is taken over as on other backends; then Redis drops it, so locks of dead
# holders need no cleaning up.
LOCK_GRACE = 10.0
# The query parameters daskbio reads (the rest are redis-py's).
_OURS = ("payloads", "prefix")

# Created if absent, or found holding ``data``: a retry whose first reply was lost sees its
# own write (``data`` is unique to the caller, see Index.create).
_CREATE = """
local ttl = tonumber(ARGV[2])
local done
if ttl > 0 then
  done = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ttl)
else
  done = redis.call('SET', KEYS[1], ARGV[1], 'NX')
end
if done or redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end
return 0
"""

# Which records exist, of the keys in ARGV[3] (one per line) and the kinds in ARGV[2] (comma
# separated), under the prefix ARGV[1]: a string of "0"s and "1"s, key by key, kind by kind.
# One argument and one reply for thousands of keys: redis-py packs and parses those far
# faster than a pipeline of thousands of EXISTS. (The names are made here, not passed as
# KEYS: a single server, not a Redis Cluster.)
_PRESENT = """
local kinds = {}
for kind in string.gmatch(ARGV[2], '[^,]+') do kinds[#kinds + 1] = ARGV[1] .. kind .. ':' end
local found = {}
for key in string.gmatch(ARGV[3], '[^\\n]+') do
  for _, kind in ipairs(kinds) do
    found[#found + 1] = redis.call('EXISTS', kind .. key) == 1 and '1' or '0'
  end
end
return table.concat(found)
"""

# ARGV: old, "1" to set (else delete), new, ttl in ms (0: none). A retry whose first
# reply was lost finds the new record (unique to the caller, a lease's renewal) there.
_SWAP = """
local current = redis.call('GET', KEYS[1])
if ARGV[2] == '1' and current == ARGV[3] then return 1 end
if current ~= ARGV[1] then return 0 end
local ttl = tonumber(ARGV[4])
if ARGV[2] ~= '1' then
  redis.call('DEL', KEYS[1])
elseif ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ttl)
else
  redis.call('SET', KEYS[1], ARGV[3])
end
return 1
"""

_T = TypeVar("_T")
# Records read ahead by RedisIndex.prefetched: (index, kind, head, records by key).
_prefetched: contextvars.ContextVar[tuple | None] = contextvars.ContextVar(
    "daskbio_redis_prefetched", default=None
)
# Threads that import a package's submodules at once can deadlock (see daskbio._imports):
# redis-py is imported under this lock, made anew in a forked child in
# case another thread held it at the fork.
_importing = threading.Lock()


def _new_lock_after_fork() -> None:
    global _importing
    _importing = threading.Lock()


os.register_at_fork(after_in_child=_new_lock_after_fork)


def redacted(url: str) -> str:
    """``url`` with its password replaced by ``***``, for messages.

    Examples
    --------
    >>> redacted("redis://:secret@db.lab:6379/2?payloads=/data/p")
    'redis://:***@db.lab:6379/2?payloads=/data/p'
    """
    base, mark, query = url.partition("?")
    scheme, sep, rest = base.partition("://")
    netloc, slash, path = rest.partition("/")
    userinfo, at, host = netloc.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}:***@{host}" if colon else f"***@{host}"
    items = ["password=***" if i.startswith("password=") else i for i in query.split("&")]
    return f"{scheme}{sep}{netloc}{slash}{path}{mark}{'&'.join(items)}"


def _split(url: str) -> tuple[str, dict[str, str]]:
    """The URL for redis-py, and daskbio's own query parameters."""
    base, _, query = url.partition("?")
    ours, theirs = {}, []
    for item in filter(None, query.split("&")):
        name, _, value = item.partition("=")
        if name in _OURS:
            # unquote, not parse_qs: a "+" in a path is a "+".
            ours[name] = urllib.parse.unquote(value)
        else:
            theirs.append(item)
    return base + (f"?{'&'.join(theirs)}" if theirs else ""), ours


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


class _Connection:
    """A redis-py client and the scripts registered on it, for one process."""

    __slots__ = ("client", "create", "pid", "present", "swap")

    def __init__(self, url: str) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.pid = os.getpid()
        # Retries are ours (RedisIndex._call): redis-py's would also retry a wrong password.
        self.client = redis.Redis.from_url(
            url, socket_connect_timeout=2.0, socket_timeout=10.0, retry=Retry(NoBackoff(), 0)
        )
        # redis-py passes the URL's query on as keyword arguments, and one it does not know
        # fails when a connection is made: make one now (it does not connect) to know.
        pool = self.client.connection_pool
        pool.connection_class(**pool.connection_kwargs)
        self.create = self.client.register_script(_CREATE)
        self.present = self.client.register_script(_PRESENT)
        self.swap = self.client.register_script(_SWAP)


class RedisIndex(Index):
    """Records in a Redis database, named ``<prefix>:<kind>:<key>``.

    Parameters
    ----------
    url : str
        A redis-py URL (``redis://``, ``rediss://`` or ``unix://``).
    prefix : str, optional
        What every record's name starts with, so that several caches share a database.

    Examples
    --------
    No connection is made until the index is used:

    >>> RedisIndex("redis://:secret@127.0.0.1:6379/0")
    RedisIndex('redis://:***@127.0.0.1:6379/0')
    """

    def __init__(self, url: str, prefix: str = DEFAULT_PREFIX) -> None:
        if not url.startswith(REDIS_SCHEMES):
            raise ValueError(f"url must start with one of {', '.join(REDIS_SCHEMES)}, got {url!r}")
        self.url = url
        self.prefix = prefix
        self.location = redacted(url)
        parts = urllib.parse.urlsplit(url)
        in_query = urllib.parse.parse_qs(parts.query).get("password", [""])
        self._password = urllib.parse.unquote(parts.password or "") or in_query[0]
        self._server = parts.path if url.startswith("unix://") else parts.netloc.rpartition("@")[2]
        self._connected: _Connection | None = None

    def __reduce__(self) -> tuple:
        return (type(self), (self.url, self.prefix))

    def __repr__(self) -> str:
        return f"RedisIndex({self.location!r})"

    def _name(self, kind: Kind, key: str) -> str:
        return f"{self.prefix}:{kind.value}:{key}"

    def describe(self, kind: Kind, key: str) -> str:
        return f"{self.location} key {self._name(kind, key)}"

    # Talking to the server --------------------------------------------------------------

    def _connection(self) -> _Connection:
        # Keyed by pid: a connection made before a fork is never used by both processes.
        connected = self._connected
        if connected is None or connected.pid != os.getpid():
            with _importing:
                connected = self._connected
                if connected is None or connected.pid != os.getpid():
                    try:
                        connected = self._connected = _Connection(self.url)
                    except TypeError as e:
                        # redis-py takes the URL's query as keyword arguments.
                        raise CacheUnavailable(
                            redacted(self.url), f"the URL has an option redis does not know: {e}"
                        ) from None
        return connected

    def _call(self, operation: Callable[..., _T], *args: Any) -> _T:
        """``operation(connection, *args)``; retried with backoff while the server cannot
        be reached, for up to :data:`RETRY_SECONDS` (so every operation is idempotent: one
        whose reply was lost may have been done)."""
        connection = self._connection()
        redis = sys.modules["redis"]
        deadline = None
        delay = 0.05
        while True:
            try:
                return operation(connection, *args)
            except (redis.ConnectionError, redis.TimeoutError) as e:
                if isinstance(e, redis.AuthenticationError):
                    raise self._unavailable(e) from e
                now = time.monotonic()
                deadline = deadline or now + RETRY_SECONDS
                if now + delay > deadline:
                    raise self._unavailable(e) from e
                time.sleep(delay)
                delay = min(2 * delay, 1.0)
            except redis.RedisError as e:
                raise self._unavailable(e) from e

    def _unavailable(self, error: Exception) -> CacheUnavailable:
        redis = sys.modules["redis"]
        reason = str(error) or type(error).__name__
        if self._password:
            reason = reason.replace(self._password, "***")
        if isinstance(error, redis.AuthenticationError):
            reason = (
                f"the server refused the password in the URL ({reason})"
                if self._password
                else "the server asks for a password: put it in the URL "
                "(redis://:PASSWORD@host:port/db)"
            )
        elif isinstance(error, (redis.ConnectionError, redis.TimeoutError)):
            reason = (
                f"{reason} (tried for {RETRY_SECONDS:g} s: is redis-server running at "
                f"{self._server}, and reachable from this machine?)"
            )
        else:
            reason = f"the server answered: {reason}"
        return CacheUnavailable(self.location, reason)

    # The Index ------------------------------------------------------------------------

    def get(self, kind: Kind, key: str, head: int | None = None) -> bytes:
        found = _prefetched.get()
        if found is not None and found[0] is self and found[1] is kind and key in found[3]:
            record, read = found[3][key], found[2]
            if record is None:
                raise KeyError(key)
            # What was read ahead answers shorter reads, and any read of a record shorter
            # than it (a whole record).
            if read is None or (head is not None and head <= read) or len(record) < read:
                return record
        name = self._name(kind, key)
        if head is None:
            record = self._call(lambda c: c.client.get(name))
        else:
            record = self._call(_heads, [name], head)[0]
        if record is None:
            raise KeyError(key)
        return record

    def put(self, kind: Kind, key: str, data: bytes) -> None:
        name = self._name(kind, key)
        self._call(lambda c: c.client.set(name, data))

    def create(self, kind: Kind, key: str, data: bytes, ttl: float | None = None) -> bool:
        name = self._name(kind, key)
        ms = _expiry_ms(ttl)
        return bool(self._call(lambda c: c.create(keys=[name], args=[data, ms])))

    def swap(
        self, kind: Kind, key: str, old: bytes, new: bytes | None, ttl: float | None = None
    ) -> bool:
        name = self._name(kind, key)
        args = [old, 0 if new is None else 1, new or b"", _expiry_ms(ttl)]
        return bool(self._call(lambda c: c.swap(keys=[name], args=args)))

    def remove(self, kind: Kind, key: str) -> int:
        return self._call(_strlen_and_delete, [self._name(kind, key)])

    def list(self, kind: Kind, prefix: str = "") -> Iterable[str]:
        start = f"{self.prefix}:{kind.value}:"
        pattern = _glob_escape(start + prefix) + "*"
        found = self._call(
            lambda c: set(c.client.scan_iter(match=pattern, count=SCAN_COUNT)),
        )
        return [name.decode()[len(start) :] for name in found]

    def contains(self, kind: Kind, keys: set[str]) -> set[str]:
        return self._present((kind,), keys)[kind]

    def lookup(self, keys: set[str]) -> tuple[set[str], set[str]]:
        # Failure records only for the keys without an entry: a committed entry clears its
        # failure record, and most keys of a pipeline looked up are done.
        done = self._present((Kind.ENTRY,), keys)[Kind.ENTRY]
        return done, self._present((Kind.FAILURE,), keys - done)[Kind.FAILURE]

    def _present(self, kinds: tuple[Kind, ...], keys: Iterable[str]) -> dict[Kind, set[str]]:
        """Which of ``keys`` have a record of each of ``kinds``: one round trip per batch."""
        found: dict[Kind, set[str]] = {kind: set() for kind in kinds}
        keys = list(keys)
        names = ",".join(kind.value for kind in kinds)
        for start in range(0, len(keys), EXISTS_BATCH):
            batch = keys[start : start + EXISTS_BATCH]
            args = [f"{self.prefix}:", names, "\n".join(batch)]
            flags = self._call(lambda c, a=args: c.present(args=a))
            for i, key in enumerate(batch):
                for j, kind in enumerate(kinds):
                    if flags[i * len(kinds) + j] == 49:  # b"1"
                        found[kind].add(key)
        return found

    @contextlib.contextmanager
    def prefetched(self, kind: Kind, keys: list[str], head: int | None = None) -> Iterator[None]:
        records: dict[str, bytes | None] = {}
        for start in range(0, len(keys), READ_BATCH):
            batch = keys[start : start + READ_BATCH]
            names = [self._name(kind, key) for key in batch]
            if head is None:
                records.update(zip(batch, self._call(lambda c, n=names: c.client.mget(n))))
            else:
                records.update(zip(batch, self._call(_heads, names, head)))
        token = _prefetched.set((self, kind, head, records))
        try:
            yield
        finally:
            _prefetched.reset(token)

    def remove_many(self, kind: Kind, keys: Iterable[str]) -> int:
        keys = list(keys)
        freed = 0
        for start in range(0, len(keys), READ_BATCH):
            names = [self._name(kind, key) for key in keys[start : start + READ_BATCH]]
            freed += self._call(_strlen_and_delete, names)
        return freed


def _strlen_and_delete(c: _Connection, names: list[str]) -> int:
    """Remove the records ``names``, in one transaction; the bytes they held."""
    pipe = c.client.pipeline(transaction=True)
    for name in names:
        pipe.strlen(name)
    pipe.delete(*names)
    return sum(pipe.execute()[:-1])


def _expiry_ms(ttl: float | None) -> int:
    """The expiry of a record with ``ttl`` for Redis, in ms (0: none)."""
    if ttl is None:
        return 0
    return max(1, round(1000 * (ttl + max(ttl, LOCK_GRACE))))


def _heads(c: _Connection, names: list[str], head: int) -> list[bytes | None]:
    """The first ``head`` bytes of each record (None where there is none), in one
    transaction: GETRANGE alone answers b"" for a missing record and an empty one."""
    pipe = c.client.pipeline(transaction=True)
    for name in names:
        pipe.exists(name)
        pipe.getrange(name, 0, head - 1)
    replies = pipe.execute()
    return [part if there else None for there, part in zip(replies[::2], replies[1::2])]


def _payload_store(where: str) -> Any:
    """The Zarr store of the payloads at ``where`` (a folder, or a URL Zarr opens)."""
    if "://" not in where:
        return _private_local_store(Path(where))
    import zarr.storage

    return zarr.storage.FsspecStore.from_url(where)


class RedisStore(Store):
    """The cache with its records in Redis and its payloads in a folder or a Zarr store.

    Parameters
    ----------
    url : str
        ``redis://[[user]:password@]host:port/db?payloads=PATH_OR_URL`` (``rediss://``
        for TLS, ``unix:///path/redis.sock?db=0&payloads=...`` for a socket), with an
        optional ``prefix=NAME`` (see :mod:`daskbio.cache.redisstore`).

    Raises
    ------
    CacheUnavailable
        When the URL does not say where payloads go.

    Examples
    --------
    Nothing is read from the server until the store is used:

    >>> store = RedisStore("redis://:secret@127.0.0.1:6379/0?payloads=/data/payloads")
    >>> store.location
    'redis://:***@127.0.0.1:6379/0?payloads=/data/payloads'
    >>> store.folder
    PosixPath('/data/payloads')
    """

    def __init__(self, url: str) -> None:
        server, options = _split(url)
        where = options.get("payloads")
        if not where:
            raise CacheUnavailable(
                redacted(url),
                "the URL does not say where payloads go: add ?payloads=FOLDER (or a Zarr URL)",
            )
        if where.startswith("file://"):
            where = where[len("file://") :]
        if "://" not in where:
            # Absolute, so that workers running in another folder find the same payloads.
            where = os.path.abspath(os.path.expanduser(where))
            self.folder = Path(where)
        query = [f"payloads={urllib.parse.quote(where, safe='/:@')}"]
        if "prefix" in options:
            query.append(f"prefix={urllib.parse.quote(options['prefix'], safe='')}")
        #: The URL, with the payloads' absolute path (what the store pickles as).
        self.url = f"{server}{'&' if '?' in server else '?'}{'&'.join(query)}"
        index = RedisIndex(server, options.get("prefix", DEFAULT_PREFIX))
        payloads = Payloads(opener=functools.partial(_payload_store, where))
        super().__init__(index, payloads, INLINE_LIMIT, redacted(self.url))

    def __reduce__(self) -> tuple:
        return (type(self), (self.url,))


__all__ = ["RedisIndex", "RedisStore", "redacted"]
