"""Canonical, fast hashing of Task arguments (ARCHITECTURE.md, decisions 1 and 2).

Every value is encoded as a typed, length-prefixed byte string and the whole encoding
is hashed with xxh3-128. The encoding never uses Python's salted ``hash()`` or pickle
bytes, so the same arguments give the same hash in every process, on every machine.

Changing anything here that changes a hash invalidates every user's cache: bump
``HASH_FORMAT_VERSION`` and say so in the changelog. ``tests/test_hashing.py`` pins
known values to catch accidental changes.
"""

from __future__ import annotations

import contextlib
import struct
import sys
import types
from pathlib import PurePath
from typing import Any

import xxhash

#: Version of the byte encoding below. It is part of every hash.
HASH_FORMAT_VERSION = 1

HOOK = "__daskbio_hash__"

_pack_q = struct.Struct("<q").pack
_pack_d = struct.Struct("<d").pack
_pack_dd = struct.Struct("<dd").pack
_xxh128 = xxhash.xxh3_128_digest

#: What every hash starts with, by kind; the format version is part of each.
TASK_PREFIX = b"daskbio-task\x00" + _pack_q(HASH_FORMAT_VERSION)
TASKLET_PREFIX = b"daskbio-tasklet\x00" + _pack_q(HASH_FORMAT_VERSION)
VALUE_PREFIX = b"daskbio-value\x00" + _pack_q(HASH_FORMAT_VERSION)

# Arrays larger than this are hashed on their own and only their digest is embedded,
# so the buffer is read in place instead of being copied into the encoding.
_INLINE_ARRAY_BYTES = 4096
_SLAB_BYTES = 1 << 24


class Unhashable(TypeError):
    """An argument has a type the hasher does not know; ``path`` says where it sits."""

    def __init__(self, value: Any) -> None:
        super().__init__(type(value))
        self.value = value
        self.path: list[str] = []

    def where(self, root: str) -> str:
        return root + "".join(reversed(self.path))


def _length(n: int) -> bytes:
    return _pack_q(n)


def _enc_none(x: Any, out: bytearray) -> None:
    out += b"N"


def _enc_bool(x: bool, out: bytearray) -> None:
    out += b"T" if x else b"F"


def _enc_int(x: int, out: bytearray) -> None:
    if -(2**63) <= x < 2**63:
        out += b"i"
        out += _pack_q(x)
    else:
        text = str(x).encode()
        out += b"I"
        out += _length(len(text))
        out += text


def _enc_float(x: float, out: bytearray) -> None:
    out += b"f"
    out += _pack_d(x)


def _enc_complex(x: complex, out: bytearray) -> None:
    out += b"c"
    out += _pack_dd(x.real, x.imag)


def _enc_str(x: str, out: bytearray) -> None:
    data = x.encode("utf-8", "surrogatepass")
    out += b"s"
    out += _length(len(data))
    out += data


def _enc_bytes(x: bytes, out: bytearray) -> None:
    out += b"b"
    out += _length(len(x))
    out += x


def _enc_bytearray(x: bytearray, out: bytearray) -> None:
    out += b"B"
    out += _length(len(x))
    out += x


def _enc_sequence(tag: bytes, x: list | tuple, out: bytearray) -> None:
    out += tag
    out += _length(len(x))
    get = _ENCODERS.get
    for i, item in enumerate(x):
        # Dispatching here, not through encode(), saves a call per item on the hot path.
        encoder = get(type(item), encode)
        try:
            encoder(item, out)
        except Unhashable as e:
            e.path.append(f"[{i}]")
            raise


def _enc_tuple(x: tuple, out: bytearray) -> None:
    _enc_sequence(b"t", x, out)


def _enc_list(x: list, out: bytearray) -> None:
    _enc_sequence(b"l", x, out)


def _encoded(x: Any, where: str) -> bytes:
    buf = bytearray()
    try:
        encode(x, buf)
    except Unhashable as e:
        e.path.append(where)
        raise
    return bytes(buf)


def _enc_dict(x: dict, out: bytearray) -> None:
    if not x:
        out += _EMPTY_DICT
        return
    # Canonical order: sort by the encoded key, which never depends on insertion order.
    items = []
    for k, v in x.items():
        key = _encoded(k, f"[{k!r}] (a key)")
        items.append((key, k, v))
    items.sort(key=lambda item: item[0])
    out += b"d"
    out += _length(len(items))
    for key, k, v in items:
        out += key
        try:
            encode(v, out)
        except Unhashable as e:
            e.path.append(f"[{k!r}]")
            raise


_EMPTY_DICT = b"d" + _length(0)


def _enc_set(tag: bytes, x: set | frozenset, out: bytearray) -> None:
    members = sorted(_encoded(m, "{member}") for m in x)
    out += tag
    out += _length(len(members))
    for m in members:
        out += m


def _enc_path(x: PurePath, out: bytearray) -> None:
    out += b"p"
    _enc_str(x.as_posix(), out)


def _enc_slice(x: slice, out: bytearray) -> None:
    out += b":"
    _enc_tuple((x.start, x.stop, x.step), out)


def _enc_ellipsis(x: Any, out: bytearray) -> None:
    out += b"."


def _enc_range(x: range, out: bytearray) -> None:
    out += b"r"
    _enc_tuple((x.start, x.stop, x.step), out)


def _enc_task(x: Any, out: bytearray) -> None:
    out += b"@"
    out += x.digest


_ENCODERS: dict[type, Any] = {
    type(None): _enc_none,
    bool: _enc_bool,
    int: _enc_int,
    float: _enc_float,
    complex: _enc_complex,
    str: _enc_str,
    bytes: _enc_bytes,
    bytearray: _enc_bytearray,
    tuple: _enc_tuple,
    list: _enc_list,
    dict: _enc_dict,
    set: lambda x, out: _enc_set(b"S", x, out),
    frozenset: lambda x, out: _enc_set(b"Z", x, out),
    slice: _enc_slice,
    range: _enc_range,
    type(Ellipsis): _enc_ellipsis,
}


def register_task_type(cls: type) -> None:
    """Encode instances of ``cls`` (Task, Tasklet) by their own ``digest``."""
    _ENCODERS[cls] = _enc_task


def _enc_numpy(x: Any, out: bytearray) -> bool:
    np = sys.modules.get("numpy")
    if np is None:
        return False
    if isinstance(x, np.ndarray):
        if type(x) is not np.ndarray:
            # Masked arrays, matrices ...: their meaning is more than their buffer.
            raise Unhashable(x)
        _enc_ndarray(np, x, out)
        return True
    if isinstance(x, np.generic):
        out += b"g"
        _enc_str(x.dtype.str if x.dtype.fields is None else str(x.dtype.descr), out)
        if x.dtype.hasobject:
            encode(x.item(), out)
        else:
            out += x.tobytes()
        return True
    return False


def _enc_ndarray(np: Any, x: Any, out: bytearray) -> None:
    # Equal arrays hash equal whatever their memory order: the bytes are taken in C order.
    out += b"a"
    _enc_str(x.dtype.str if x.dtype.fields is None else str(x.dtype.descr), out)
    _enc_tuple(x.shape, out)
    if x.dtype.hasobject:
        _enc_list(x.ravel().tolist(), out)
        return
    if x.nbytes <= _INLINE_ARRAY_BYTES:
        out += x.tobytes()
    elif x.flags.c_contiguous:
        out += _xxh128(x.reshape(-1).view(np.uint8))
    else:
        # Stream C-ordered slabs instead of copying the whole array: same digest, and no
        # second array of the same size in memory.
        h = xxhash.xxh3_128()
        step = max(1, _SLAB_BYTES // max(1, x[0].nbytes))
        for i in range(0, x.shape[0], step):
            h.update(np.ascontiguousarray(x[i : i + step]).reshape(-1).view(np.uint8))
        out += h.digest()


def _type_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def encode(x: Any, out: bytearray) -> None:
    """Append the canonical encoding of ``x`` to ``out``.

    Raises
    ------
    Unhashable
        If ``x`` (or something inside it) has a type the encoder does not know.
    """
    encoder = _ENCODERS.get(type(x))
    if encoder is not None:
        encoder(x, out)
        return
    hook = getattr(type(x), HOOK, None)
    if hook is not None:
        out += b"h"
        _enc_str(_type_name(type(x)), out)
        try:
            encode(hook(x), out)
        except Unhashable as e:
            e.path.append(f".{HOOK}()")
            raise
        return
    if _enc_numpy(x, out):
        return
    if isinstance(x, PurePath):
        _enc_path(x, out)
        return
    for base in (tuple, list, dict, str, bytes, int, float, set, frozenset):
        # Subclasses (namedtuple, OrderedDict, IntEnum ...) hash as their base type plus
        # their own name, so they never collide with the plain type.
        if isinstance(x, base):
            out += b"x"
            _enc_str(_type_name(type(x)), out)
            _ENCODERS[base](x, out)
            return
    if callable(x) and hasattr(x, "__qualname__") and "<" not in x.__qualname__:
        out += b"C"
        encode_function(x, out)
        return
    raise Unhashable(x)


def encode_function(f: Any, out: bytearray) -> None:
    """Encode a function by its identity, and a bound method also by the object it is
    bound to (``Scaler(2).apply`` and ``Scaler(3).apply`` are different functions).

    Raises
    ------
    TypeError
        For lambdas and functions defined inside other functions: their name does not
        identify them.
    """
    qualname = getattr(f, "__qualname__", None)
    if qualname is None:
        raise TypeError(f"{f!r} has no __qualname__; wrap it in a named function")
    if "<" in qualname:
        raise TypeError(
            f"{qualname} is a lambda or a function defined inside another function; its "
            "name does not identify it, so it cannot make a Task. Define it at module level."
        )
    _enc_str(function_identity(f), out)
    bound = getattr(f, "__self__", None)
    if bound is not None and not isinstance(bound, (type, types.ModuleType)):
        out += b"m"
        try:
            encode(bound, out)
        except Unhashable as e:
            e.path.append(".__self__")
            raise


def digest(x: Any) -> bytes:
    """The 16-byte hash of a single value.

    Examples
    --------
    >>> digest((1, "a")) == digest((1, "a"))
    True
    >>> digest([1, "a"]) == digest((1, "a"))
    False
    """
    out = bytearray(VALUE_PREFIX)
    encode(x, out)
    return _xxh128(out)


_identities: dict[Any, str] = {}


def function_identity(f: Any) -> str:
    """``module.qualname`` of ``f``, with ``__main__`` replaced by the pipeline file's stem.

    This is how a function enters a Task's hash: renaming the function or moving it to
    another module changes the hash; editing its body does not.
    """
    try:
        return _identities[f]
    except (KeyError, TypeError):
        pass
    module = getattr(f, "__module__", None)
    if module is None:
        # Built-in methods: the module of the class they belong to.
        owner = getattr(f, "__objclass__", None) or type(getattr(f, "__self__", None))
        module = owner.__module__
    if module == "__main__":
        file = getattr(f, "__globals__", {}).get("__file__")
        if file is None:
            main = sys.modules.get("__main__")
            file = getattr(main, "__file__", None)
        if file:
            module = PurePath(file).stem
    identity = f"{module}.{f.__qualname__}"
    with contextlib.suppress(TypeError):
        _identities[f] = identity
    return identity


def code_fingerprint(f: Any) -> str:
    """A short hash of a function's code, stored beside its results to spot stale ones.

    Line numbers and file names are left out, so moving a function in its file does
    not make its results stale; changing its bytecode or constants does.
    """
    code = getattr(f, "__code__", None)
    if code is None:
        # A callable object: fingerprint its __call__ method.
        code = getattr(vars(type(f)).get("__call__"), "__code__", None)
    if code is None:
        return ""
    h = xxhash.xxh3_64()
    _feed_code(code, h)
    return h.hexdigest()


def _feed_code(code: Any, h: Any) -> None:
    h.update(code.co_code)
    h.update(repr(code.co_names).encode())
    for const in code.co_consts:
        if hasattr(const, "co_code"):
            _feed_code(const, h)
        else:
            h.update(repr(const).encode())
