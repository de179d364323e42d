"""Canonical, fast hashing of Task arguments (ARCHITECTURE.md, decisions 1 and 2).

Every value is encoded as a typed, length-prefixed byte string and the whole encoding
is hashed with xxh3-128. The encoding never uses Python's salted ``hash()`` or pickle
bytes, so the same arguments give the same hash in every process, on every machine.

Changing anything here that changes a hash invalidates every user's cache: bump
``HASH_FORMAT_VERSION`` and say so in the changelog. ``tests/test_hashing.py`` pins
known values to catch accidental changes.

Also here: :func:`code_fingerprint`, a hash of the code a function runs, which is stored
beside results to report stale ones and is never part of a Task's hash.
"""

from __future__ import annotations

import contextlib
import copyreg
import enum
import functools
import inspect
import os
import struct
import sys
import sysconfig
import types
import weakref
from pathlib import PurePath
from typing import Any

import xxhash

#: Version of the byte encoding below. It is part of every hash.
HASH_FORMAT_VERSION = 1

HOOK = "__daskbio_hash__"
#: Jug's hook, honoured for types that have no daskbio one: it returns Jug's hash string.
JUG_HOOK = "__jug_hash__"

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
    if _enc_hooked(x, HOOK, b"h", out):
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
    # Last, so that only values unhashable before hash by these: no existing hash changes.
    if _enc_hooked(x, JUG_HOOK, b"j", out):
        return
    if isinstance(x, enum.Enum):
        out += b"e"
        _enc_str(function_identity(type(x)), out)
        _enc_str(x.name, out)
        return
    if _enc_state(x, out):
        return
    raise Unhashable(x)


def _enc_state(x: Any, out: bytearray) -> bool:
    """Encode an instance of a class defined in Python (a dataclass, a plain class) by its
    class's identity and its state, as pickle would take it (``__getstate__``, else its
    ``__dict__`` and ``__slots__``); False for anything else: modules, functions, types,
    objects pickle cannot take apart (a lock, a file) or that pickle their own way."""
    cls = type(x)
    if (
        not cls.__flags__ & _HEAP_TYPE
        or isinstance(x, _NOT_STATE)
        or cls.__reduce_ex__ is not object.__reduce_ex__
        or cls.__reduce__ is not object.__reduce__
    ):
        return False
    try:
        # Python's own default reduction: it refuses what has state it cannot see.
        reduced = x.__reduce_ex__(4)
    except Exception:
        return False
    if reduced[0] is not copyreg.__newobj__ or len(reduced[1]) != 1:
        return False  # made with arguments (__getnewargs__): not state alone
    state = reduced[2] if len(reduced) > 2 else None
    if cls.__getstate__ is object.__getstate__:
        # Python's default: the __dict__ (None when empty), with the slots beside it.
        attrs, slots = state if isinstance(state, tuple) else (state, None)
        state = {**(attrs or {}), **(slots or {})}
    out += b"o"
    _enc_str(function_identity(cls), out)
    if type(state) is dict and all(type(k) is str for k in state):
        # Attributes by name, sorted, so that an unhashable one is named in the error.
        out += b"d"
        out += _length(len(state))
        for name in sorted(state):
            _enc_str(name, out)
            try:
                encode(state[name], out)
            except Unhashable as e:
                e.path.append(f".{name}")
                raise
        return True
    try:
        encode(state, out)
    except Unhashable as e:
        e.path.append(".__getstate__()")
        raise
    return True


# Py_TPFLAGS_HEAPTYPE: every class statement makes one (so do some C types, which the
# default reduction then refuses); static C types (object, int ...) are not.
_HEAP_TYPE = 1 << 9
# Their state, if pickle took it, would not say what they compute or hold.
_NOT_STATE = (type, types.ModuleType, types.FunctionType, types.MethodType, BaseException)


def _enc_hooked(x: Any, hook_name: str, tag: bytes, out: bytearray) -> bool:
    """Encode ``x`` by the hook its type defines under ``hook_name`` (``tag``, the type's
    qualified name, then what the hook returns); False if the type has no such hook."""
    hook = getattr(type(x), hook_name, None)
    if hook is None:
        return False
    out += tag
    _enc_str(_type_name(type(x)), out)
    try:
        encode(hook(x), out)
    except Unhashable as e:
        e.path.append(f".{hook_name}()")
        raise
    return True


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
    if bound is None or isinstance(bound, types.ModuleType):
        return
    if isinstance(bound, type):
        if _inherited(f, bound):
            # A classmethod reached through a subclass runs with that subclass as cls.
            out += b"k"
            _enc_str(function_identity(bound), out)
    else:
        out += b"m"
        try:
            encode(bound, out)
        except Unhashable as e:
            e.path.append(".__self__")
            raise


def _inherited(f: Any, cls: type) -> bool:
    """Whether the classmethod ``f``, bound to ``cls``, is defined on a base of ``cls``."""
    # Looked up in the class's own namespace rather than compared by name, which a
    # library may rewrite (``__module__`` set to its public module).
    own = vars(cls).get(getattr(f, "__name__", None))
    func = getattr(f, "__func__", None)
    if func is None:
        # A built-in classmethod (dict.fromkeys): defined here if the class names it.
        return own is None
    return not (isinstance(own, classmethod) and own.__func__ is func)


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


# Weak keys: a function must not be kept alive (with its module and every Task its
# pipeline made) only because its identity was once asked for.
_identities: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


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


# --------------------------------------------------------------------------------------
# Code fingerprints
# --------------------------------------------------------------------------------------

# Weak keys, as for _identities: callers (execute.py, the CLI) ask for every Task's
# function, and a memo must not keep earlier pipelines alive.
_fingerprints: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()

#: Per code object: the digest of its own bytecode and constants, and the names it uses.
_code_parts: weakref.WeakKeyDictionary[types.CodeType, tuple[bytes, tuple[str, ...]]] = (
    weakref.WeakKeyDictionary()
)

# A module-level constant is read whole only up to these sizes; a bigger one contributes
# its type and length, so a fingerprint never costs more than a few milliseconds.
_CONSTANT_ITEMS = 1000
_CONSTANT_CHARS = 1 << 20
_SCALARS = frozenset({type(None), bool, int, float, complex, str, bytes, type(Ellipsis)})


def code_fingerprint(f: Any) -> str:
    """A short hash of the code ``f`` runs, stored beside its results to spot stale ones.

    It covers ``f``'s bytecode, constants, parameters and defaults, and, transitively,
    the functions, classes and module-level constants of the user's own modules that
    ``f`` refers to by a global name (``helper(x)``, ``helpers.smooth(x)``, ``SIGMA``).
    Code of installed packages, the standard library and daskbio is not followed.
    Line numbers and file names are left out, so moving code does not make results
    stale. Computed once per function object per process.

    Examples
    --------
    >>> def f(x):
    ...     return x + 1
    >>> len(code_fingerprint(f)), code_fingerprint(f) == code_fingerprint(f)
    (16, True)
    >>> code_fingerprint(len)
    ''
    """
    try:
        return _fingerprints[f]
    except (KeyError, TypeError):
        pass
    walk = _Walk()
    fingerprint = walk.h.hexdigest() if walk.root(f) else ""
    with contextlib.suppress(TypeError):
        _fingerprints[f] = fingerprint
    return fingerprint


class _Walk:
    """One fingerprint: feeds every object reached into ``h``, each once.

    An object met again (recursion, two callers of one helper) contributes only the
    order in which it was first met, which keeps the fingerprint finite and determined
    by the code alone.
    """

    def __init__(self) -> None:
        self.h = xxhash.xxh3_64()
        # By id(): each object met is held by a namespace or another object met, so no id
        # is reused while the walk lasts.
        self.seen: dict[int, int] = {}
        self.scanned: set[tuple[int, int]] = set()

    def first_visit(self, x: Any) -> bool:
        index = self.seen.get(id(x))
        if index is not None:
            self.h.update(b"^" + _pack_q(index))
            return False
        self.seen[id(x)] = len(self.seen)
        return True

    def root(self, f: Any) -> bool:
        """Feed ``f`` whatever module it is in; False if it has no Python code."""
        if isinstance(f, types.FunctionType):
            self.function(f)
        elif isinstance(f, types.MethodType):
            self.root(f.__func__)
            owner = f.__self__ if isinstance(f.__self__, type) else type(f.__self__)
            self.reference("__self__", owner, ())
        elif isinstance(f, type):
            self.cls(f)
        elif _wrapped(f) is not None:
            return self.root(_wrapped(f))
        elif isinstance(vars(type(f)).get("__call__"), types.FunctionType):
            self.cls(type(f))
        else:
            return False
        return True

    def function(self, f: types.FunctionType) -> None:
        if not self.first_visit(f):
            return
        own, names = _code_part(f.__code__)
        self.h.update(b"F" + own)
        if f.__defaults__:
            self.h.update(b"D" + _constant_bytes(f.__defaults__))
        if f.__kwdefaults__:
            self.h.update(b"K" + _constant_bytes(tuple(sorted(f.__kwdefaults__.items()))))
        self.names(names, f.__globals__, names)
        wrapped = _wrapped(f)
        if wrapped is not None:
            self.reference("__wrapped__", wrapped, ())

    def names(
        self, names: tuple[str, ...], namespace: dict[str, Any], used: tuple[str, ...]
    ) -> None:
        """Feed what each of ``names`` refers to in ``namespace`` (a module's globals)."""
        for name in names:
            if name.startswith("__") or name not in namespace:
                # Dunders (__file__, __name__) hold where the code is, not what it does.
                continue
            self.reference(name, namespace[name], used)

    def reference(self, name: str, x: Any, used: tuple[str, ...]) -> None:
        """Feed ``x``, known as ``name``, if it is user code or a plain constant.

        ``used`` are the names of the code that referred to ``x``: if ``x`` is a user
        module, those of its attributes are followed (``helpers.smooth``).
        """
        kind = type(x)
        if kind is types.FunctionType:
            if _is_user_file(x.__code__.co_filename):
                self.h.update(b"G" + name.encode())
                self.function(x)
        elif isinstance(x, type):
            if _is_user_class(x):
                self.h.update(b"G" + name.encode())
                self.cls(x)
        elif kind is types.ModuleType:
            key = (id(x), id(used))
            # vars(), not getattr(): a module's __getattr__ may import on demand.
            if key not in self.scanned and _is_user_file(vars(x).get("__file__")):
                self.scanned.add(key)
                self.h.update(b"M" + name.encode())
                self.names(used, vars(x), used)
        elif kind is types.MethodType:
            self.reference(name, x.__func__, used)
        elif kind is functools.partial:
            self.reference(name, x.func, used)
            self.h.update(b"P" + _constant_bytes((x.args, tuple(sorted(x.keywords.items())))))
        elif kind in _SCALARS or kind is tuple or kind is frozenset or kind is slice:
            self.h.update(b"=" + name.encode() + b"\x00" + _constant_bytes(x))
        elif kind is not dict and kind is not list and kind is not set:
            # TaskGenerator and functools.wraps-style wrappers: the code they run.
            wrapped = _wrapped(x) if callable(x) else None
            if wrapped is not None:
                self.reference(name, wrapped, used)
            elif _is_user_class(kind):
                # An instance (``MODEL.predict(x)``): the code of its class, not its state.
                self.h.update(b"I" + name.encode())
                self.cls(kind)
        # The content of mutable objects is runtime state, not code: a memo filled by the
        # function would make its fingerprint differ between runs.

    def cls(self, c: type) -> None:
        if not self.first_visit(c):
            return
        self.h.update(b"C" + c.__qualname__.encode())
        for base in c.__bases__:
            self.reference("", base, ())
        namespace = vars(c)
        for name in sorted(namespace):
            value = namespace[name]
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            if isinstance(value, property):
                for accessor in (value.fget, value.fset, value.fdel):
                    if isinstance(accessor, types.FunctionType):
                        self.h.update(b"." + name.encode())
                        self.function(accessor)
            elif isinstance(value, types.FunctionType):
                # The class's own methods are followed whatever file made them
                # (dataclass methods are generated code).
                self.h.update(b"." + name.encode())
                self.function(value)
            elif not name.startswith("__"):
                self.reference(name, value, ())


def _wrapped(x: Any) -> Any:
    """``x.__wrapped__`` from ``x``'s own attributes (never through a ``__getattr__``)."""
    try:
        attributes = object.__getattribute__(x, "__dict__")
    except AttributeError:
        return None
    return attributes.get("__wrapped__") if isinstance(attributes, dict) else None


def _code_part(code: types.CodeType) -> tuple[bytes, tuple[str, ...]]:
    try:
        return _code_parts[code]
    except KeyError:
        pass
    h = xxhash.xxh3_128()
    names: dict[str, None] = {}
    _feed_code(code, h, names)
    part = (h.digest(), tuple(names))
    _code_parts[code] = part
    return part


def _feed_code(code: types.CodeType, h: Any, names: dict[str, None]) -> None:
    n_params = code.co_argcount + code.co_kwonlyargcount
    n_params += bool(code.co_flags & inspect.CO_VARARGS)
    n_params += bool(code.co_flags & inspect.CO_VARKEYWORDS)
    out = bytearray(code.co_code)
    # Parameter names matter to calls by keyword; other local names do not.
    encode((code.co_flags, code.co_posonlyargcount, code.co_names), out)
    encode(code.co_varnames[:n_params], out)
    names.update(dict.fromkeys(code.co_names))
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            h.update(out + b"{")
            out = bytearray()
            _feed_code(const, h, names)
            out += b"}"
        else:
            # Literal constants are plain data, and as long as the source is.
            encode(const, out)
    h.update(out)


def _constant_bytes(x: Any) -> bytes:
    """The canonical encoding of immutable plain data ``x``; for anything else or for
    bigger data, of its type name (and size), which costs nothing to compute."""
    kind = type(x)
    if kind in _SCALARS and kind is not str and kind is not bytes:
        out = bytearray()
        _ENCODERS[kind](x, out)
        return bytes(out)
    items = chars = 0
    pending = [x]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is tuple or kind is frozenset:
            items += len(item)
            pending.extend(item)
        elif kind is slice:
            pending += (item.start, item.stop, item.step)
        elif kind is str or kind is bytes:
            chars += len(item)
        elif kind not in _SCALARS:
            break
        if items > _CONSTANT_ITEMS or chars > _CONSTANT_CHARS:
            break
    else:
        out = bytearray()
        encode(x, out)
        return bytes(out)
    out = bytearray(b"?")
    _enc_str(_type_name(type(x)), out)
    if type(x) in (tuple, frozenset, str, bytes):
        _enc_int(len(x), out)
    return bytes(out)


def _is_user_class(c: type) -> bool:
    """Whether ``c`` is defined in a user module (see :func:`_is_user_file`)."""
    for value in vars(c).values():
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        # A method tells where the class was defined even when its module is not
        # importable by name (a pipeline file run as __main__).
        if isinstance(value, types.FunctionType) and value.__code__.co_filename[:1] != "<":
            return _is_user_file(value.__code__.co_filename)
    return _is_user_file(getattr(sys.modules.get(c.__module__), "__file__", None))


@functools.lru_cache(maxsize=4096)
def _is_user_file(filename: str | None) -> bool:
    """Whether code from ``filename`` is the user's own: not in the standard library, not
    in an installed package, not in daskbio, and read from a file."""
    if not filename or filename.startswith("<"):
        return False
    path = os.path.normcase(os.path.realpath(filename))
    if any(part in ("site-packages", "dist-packages") for part in PurePath(path).parts):
        return False
    return not path.startswith(_installed_roots())


@functools.cache
def _installed_roots() -> tuple[str, ...]:
    daskbio_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    roots = {daskbio_dir}
    for base, platbase in [(sys.prefix, sys.exec_prefix), (sys.base_prefix, sys.base_exec_prefix)]:
        paths = sysconfig.get_paths(
            vars={
                "base": base,
                "platbase": platbase,
                "installed_base": base,
                "installed_platbase": platbase,
            }
        )
        roots.update(paths[key] for key in ("purelib", "platlib", "stdlib", "platstdlib"))
    return tuple(os.path.join(os.path.normcase(os.path.realpath(r)), "") for r in roots)
