"""Tests of daskbio's canonical hashing (daskbio/graph/hashing.py and the Task hash).

A hash decides whether a cached result is reused, so two kinds of mistake matter: equal
inputs hashing differently (needless recomputation, a cache that never hits across
processes) and different inputs hashing equal (a wrong result served from the cache).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import struct
import subprocess
import sys
import textwrap
import threading
from collections import OrderedDict, namedtuple
from pathlib import Path

import numpy as np
import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

import daskbio
import daskbio.pipeline
from daskbio import Task, TaskGenerator, Tasklet
from daskbio.cache import MemoryStore
from daskbio.graph import hashing
from daskbio.graph.hashing import HASH_FORMAT_VERSION, digest, function_identity

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:  # e.g. under --import-mode=importlib
    sys.path.insert(0, str(TESTS_DIR))

from hash_fixture_functions import (  # noqa: E402
    Colour,
    JugRoi,
    Plain,
    Slotted,
    Spot,
    WithState,
    add,
    combine,
    stability_hashes,
)


def _distinct(values: list) -> bool:
    """True when every value in ``values`` has its own digest."""
    return len({digest(v) for v in values}) == len(values)


def _encoding(x) -> bytes:
    out = bytearray()
    hashing.encode(x, out)
    return bytes(out)


# --------------------------------------------------------------------------------------
# Equal inputs give equal hashes
# --------------------------------------------------------------------------------------

EQUAL_VALUE_FACTORIES = {
    "int": lambda: 12345,
    "negative_int": lambda: -7,
    "big_int": lambda: 3**200,
    "float": lambda: 0.1 + 0.2,
    "complex": lambda: complex(1.5, -2),
    "str": lambda: "héllo ✓ wörld",
    "bytes": lambda: b"\x00\x01\xff",
    "bytearray": lambda: bytearray(b"abc"),
    "none": lambda: None,
    "tuple": lambda: (1, "a", None),
    "list": lambda: [1, [2, [3, [4]]]],
    "dict": lambda: {"a": 1, "b": [1, 2], 3: "x"},
    "set": lambda: {1, 2, 3, "x"},
    "frozenset": lambda: frozenset({"a", "b"}),
    "path": lambda: Path("data") / "img.tif",
    "slice": lambda: slice(1, 10, 2),
    "range": lambda: range(3, 30, 3),
    "ellipsis": lambda: ...,
    "numpy_scalar": lambda: np.float32(1.25),
    "numpy_array": lambda: np.arange(12).reshape(3, 4),
    "namedtuple": lambda: namedtuple("Point", "x y")(1, 2),
    "function": lambda: add,
    "task": lambda: Task(add, 1, 2),
    "tasklet": lambda: Task(add, 1, 2)[0],
}


@pytest.mark.parametrize("make", EQUAL_VALUE_FACTORIES.values(), ids=EQUAL_VALUE_FACTORIES)
def test_equal_values_built_separately_give_equal_digests(make):
    a, b = make(), make()
    assert digest(a) == digest(b)
    assert Task(combine, a).hash() == Task(combine, b).hash()


def test_digest_is_16_bytes_and_task_hash_is_32_hex_digits():
    assert len(digest(1)) == 16
    h = Task(add, 1, 2).hash()
    assert len(h) == 32
    assert int(h, 16) >= 0
    assert Task(add, 1, 2).hash() == h


def test_dict_insertion_order_does_not_change_hash():
    forward = {"a": 1, "b": 2, "c": 3, 4: "four"}
    backward = {4: "four", "c": 3, "b": 2, "a": 1}
    assert list(forward) != list(backward)
    assert digest(forward) == digest(backward)
    assert digest({"outer": forward}) == digest({"outer": backward})
    assert Task(combine, forward).hash() == Task(combine, backward).hash()


def test_set_member_order_does_not_change_hash():
    members = [f"member{i}" for i in range(50)] + list(range(50))
    forward, backward = set(members), set(reversed(members))
    assert digest(forward) == digest(backward)
    assert digest(frozenset(members)) == digest(frozenset(reversed(members)))


def test_set_and_frozenset_hash_differently():
    assert digest({1, 2}) != digest(frozenset({1, 2}))


def test_ordered_dict_order_is_ignored_like_dict():
    # OrderedDict compares order-sensitively, but hashes canonically like dict (plus its
    # type name): a deliberate choice, since ordered-ness rarely changes a result.
    a = OrderedDict([("a", 1), ("b", 2)])
    b = OrderedDict([("b", 2), ("a", 1)])
    assert digest(a) == digest(b)
    assert digest(a) != digest({"a": 1, "b": 2})


def test_keyword_argument_order_does_not_change_task_hash():
    assert Task(combine, a=1, b=2).hash() == Task(combine, b=2, a=1).hash()


# --------------------------------------------------------------------------------------
# Each difference gives a different hash
# --------------------------------------------------------------------------------------

DIFFERENT_PAIRS = {
    "tuple_vs_list": ((1, 2), [1, 2]),
    "empty_tuple_vs_empty_list": ((), []),
    "empty_list_vs_empty_dict": ([], {}),
    "empty_dict_vs_empty_set": ({}, set()),
    "bytes_vs_str": (b"abc", "abc"),
    "bytes_vs_bytearray": (b"abc", bytearray(b"abc")),
    "empty_bytes_vs_empty_str": (b"", ""),
    "true_vs_1": (True, 1),
    "false_vs_0": (False, 0),
    "none_vs_0": (None, 0),
    "none_vs_false": (None, False),
    "none_vs_empty_str": (None, ""),
    "negative_zero_vs_zero": (-0.0, 0.0),
    "str_1_vs_int_1": ("1", 1),
    "int_vs_big_int": (2**63 - 1, 2**63),
    "big_int_vs_float": (2**63, float(2**63)),
    "complex_vs_tuple": (complex(1, 2), (1.0, 2.0)),
    "float_vs_complex": (1.0, complex(1, 0)),
    "nested_split": ([[1, 2], [3]], [[1], [2, 3]]),
    "nested_tuple_in_list": ([(1, 2)], [[1, 2]]),
    "dict_value_tuple_vs_list": ({"a": [1]}, {"a": (1,)}),
    "dict_key_int_vs_str": ({1: "a"}, {"1": "a"}),
    "dict_key_true_vs_1": ({True: "a"}, {1: "a"}),
    "dict_vs_items": ({"a": 1}, [("a", 1)]),
    "string_boundaries": (("ab", "c"), ("a", "bc")),
    "bytes_boundaries": ([b"ab", b"c"], [b"a", b"bc"]),
    "dict_key_value_swap": ({"a": "b"}, {"b": "a"}),
    "path_vs_str": (Path("a/b"), "a/b"),
    "slice_vs_tuple": (slice(1, 2, None), (1, 2, None)),
    "range_vs_slice": (range(1, 2), slice(1, 2, 1)),
    "namedtuple_vs_tuple": (namedtuple("P", "x y")(1, 2), (1, 2)),
    "function_vs_its_name": (add, "hash_fixture_functions.add"),
    "different_functions": (add, combine),
    "unicode_normalisation": ("\u00e9", "e\u0301"),
}


@pytest.mark.parametrize(("a", "b"), DIFFERENT_PAIRS.values(), ids=DIFFERENT_PAIRS)
def test_different_values_give_different_digests(a, b):
    assert digest(a) != digest(b)
    assert Task(combine, a).hash() != Task(combine, b).hash()


def test_int_float_and_numpy_scalars_of_equal_value_all_hash_differently():
    values = [1, 1.0, np.int64(1), np.float64(1.0), np.int32(1), np.uint8(1), True, np.bool_(1)]
    assert all(v == 1 for v in values)
    assert _distinct(values)


def test_numpy_scalar_differs_from_zero_dim_array_and_python_value():
    assert _distinct([np.int64(5), np.array(5, dtype=np.int64), 5])
    assert _distinct([np.str_("a"), "a", np.bytes_(b"a"), b"a"])


def test_floats_hash_by_their_bits():
    assert digest(0.1 + 0.2) != digest(0.3)
    assert digest(float("nan")) == digest(float("nan"))
    assert digest(float("inf")) != digest(float("-inf"))
    assert digest(np.float64(-0.0)) != digest(np.float64(0.0))
    assert digest(complex(0.0, -0.0)) != digest(complex(0.0, 0.0))


def test_positional_and_keyword_arguments_hash_differently():
    hashes = {
        Task(add, 1, 2).hash(),
        Task(add, 1, b=2).hash(),
        Task(add, a=1, b=2).hash(),
        Task(add, (1, 2)).hash(),
        Task(add, {"a": 1, "b": 2}).hash(),
    }
    assert len(hashes) == 5


def test_different_keyword_names_hash_differently():
    assert Task(combine, a=1).hash() != Task(combine, b=1).hash()
    assert Task(combine, a=1, b=2).hash() != Task(combine, a=2, b=1).hash()


def test_different_functions_with_same_arguments_hash_differently():
    assert Task(add, 1, 2).hash() != Task(combine, 1, 2).hash()


def test_task_argument_contributes_its_hash_not_its_value():
    upstream = Task(add, 1, 2)  # its value would be 3
    assert Task(add, upstream, 0).hash() != Task(add, 3, 0).hash()
    assert Task(add, upstream, 0).hash() != Task(add, upstream.digest, 0).hash()
    assert Task(add, upstream, 0).hash() != Task(add, upstream.hash(), 0).hash()
    assert Task(add, upstream, 0).hash() == Task(add, Task(add, 1, 2), 0).hash()


def test_changed_upstream_arguments_change_every_downstream_hash():
    def chain(start):
        a = Task(add, start, 1)
        b = Task(add, a, 1)
        c = Task(combine, [b], key={"b": b})
        return [a.hash(), b.hash(), c.hash()]

    first, second = chain(1), chain(2)
    assert chain(1) == first
    assert all(x != y for x, y in zip(first, second))
    assert len(set(first + second)) == 6


def test_tasklets_hash_differently_from_each_other_and_their_task():
    t = Task(add, 1, 2)
    items = [t, t[0], t[1], t["0"], t[0][0], t[0][1], t[slice(0, 1)]]
    assert len({x.hash() for x in items}) == len(items)
    assert t[0].hash() == Task(add, 1, 2)[0].hash()
    assert isinstance(t[0], Tasklet)
    assert t[0].task is t

    downstream = [Task(combine, x) for x in (t, t[0], t[1])]
    assert len({d.hash() for d in downstream}) == 3
    # A Tasklet's hash never collides with a Task whose arguments look the same.
    assert t[0].hash() != Task(add, t, 0).hash()


def test_task_generator_hash_equals_task_hash_and_version_changes_it():
    plain = TaskGenerator(add)
    assert plain(1, 2).hash() == Task(add, 1, 2).hash()
    assert plain(1, b=2).hash() == Task(add, 1, b=2).hash()
    v1, v2 = TaskGenerator(version="1")(add), TaskGenerator(version=2)(add)
    assert len({plain(1, 2).hash(), v1(1, 2).hash(), v2(1, 2).hash()}) == 3
    assert v2(1, 2).hash() == TaskGenerator(version="2")(add)(1, 2).hash()


# --------------------------------------------------------------------------------------
# numpy arrays
# --------------------------------------------------------------------------------------

STRUCTURED = np.dtype([("a", "<i4"), ("b", "<f8"), ("c", "S3")])

ARRAY_DTYPES = [
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "complex64",
    "complex128",
    "datetime64[s]",
    "timedelta64[ms]",
    "U7",
    "S7",
    STRUCTURED,
    "object",
]


def _dtype_id(dtype) -> str:
    return "structured" if isinstance(dtype, np.dtype) else str(dtype)


def _sample(dtype, shape: tuple[int, int]) -> np.ndarray:
    """An array of ``dtype`` and ``shape`` whose neighbouring elements differ."""
    n = shape[0] * shape[1]
    i = np.arange(n)
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        flat = i % 2 == 0
    elif dtype.kind in "iu":
        flat = (i % min(np.iinfo(dtype).max, 2**31)).astype(dtype)
    elif dtype.kind == "f":
        flat = (i / 8).astype(dtype)  # exact in float16 up to 2048/8
        if dtype == np.float16:
            flat = ((i % 1024) / 8 + (i // 1024) % 2 * 0.0625).astype(dtype)
    elif dtype.kind == "c":
        flat = (i + 1j * (n - i)).astype(dtype)
    elif dtype.kind in "mM":
        flat = i.astype(dtype)
    elif dtype.kind == "U":
        flat = np.array([f"ü{k}" for k in range(n)], dtype=dtype)
    elif dtype.kind == "S":
        flat = np.array([b"b%d" % k for k in range(n)], dtype=dtype)
    elif dtype.fields is not None:
        flat = np.zeros(n, dtype=dtype)
        flat["a"], flat["b"], flat["c"] = i, i / 2, [b"%d" % (k % 1000) for k in range(n)]
    else:  # object, holding plain values only
        kinds = [lambda k: k, lambda k: f"s{k}", lambda k: None, lambda k: k + 0.5]
        flat = np.empty(n, dtype=object)
        flat[:] = [kinds[k % 4](k) for k in range(n)]
    assert dtype.kind == "O" or np.all(flat[1:] != flat[:-1])
    return flat.reshape(shape)


def _non_contiguous_copy(a: np.ndarray) -> np.ndarray:
    big = np.zeros((a.shape[0] * 2, a.shape[1] * 3), dtype=a.dtype)
    big[::2, ::3] = a
    view = big[::2, ::3]
    assert not view.flags.c_contiguous and not view.flags.f_contiguous
    return view


ARRAY_SIZES = {"inline": (4, 6), "digested": (64, 128)}


@pytest.mark.parametrize("size", ARRAY_SIZES.values(), ids=ARRAY_SIZES)
@pytest.mark.parametrize("dtype", ARRAY_DTYPES, ids=_dtype_id)
def test_array_hash_depends_on_values_not_memory_order(dtype, size):
    a = _sample(dtype, size)
    if a.dtype != object:
        if size == ARRAY_SIZES["inline"]:
            assert a.nbytes <= hashing._INLINE_ARRAY_BYTES
        else:
            assert a.nbytes > hashing._INLINE_ARRAY_BYTES
    fortran = np.asfortranarray(a)
    assert fortran.flags.f_contiguous and not fortran.flags.c_contiguous
    view = _non_contiguous_copy(a)

    expected = digest(a)
    assert digest(a.copy()) == expected
    assert digest(fortran) == expected
    assert digest(view) == expected

    changed = a.copy()
    changed.flat[5] = a.flat[6]  # one element
    assert not np.array_equal(changed, a) or a.dtype.kind == "O"
    assert digest(changed) != expected
    last = a.copy()
    last.flat[-1] = a.flat[-2]
    assert digest(last) != expected


@pytest.mark.parametrize("dtype", [d for d in ARRAY_DTYPES if d != "object"], ids=_dtype_id)
def test_large_arrays_are_digested_instead_of_copied_into_the_encoding(dtype):
    a = _sample(dtype, ARRAY_SIZES["digested"])
    assert len(_encoding(a)) < 200 < a.nbytes
    small = _sample(dtype, ARRAY_SIZES["inline"])
    assert len(_encoding(small)) > small.nbytes


def test_object_array_hashes_like_its_values():
    a = np.array([1, "a", None, 2.5, (1, 2)], dtype=object)
    b = np.empty(5, dtype=object)
    b[:] = [1, "a", None, 2.5, (1, 2)]
    assert digest(a) == digest(b)
    b[4] = [1, 2]  # a list, where a has a tuple
    assert digest(a) != digest(b)


def test_object_array_holding_unknown_objects_is_unhashable():
    a = np.array([1, Opaque()], dtype=object)
    with pytest.raises(TypeError, match=r"args\[0\]\[1\]"):
        Task(combine, a)


def test_equal_values_in_different_dtypes_hash_differently():
    values = [[0, 1, 2, 3, 4, 5]]
    arrays = [
        np.array(values, dtype=dt)
        for dt in ["int8", "int16", "int32", "int64", "uint8", "uint32", "float32", "float64"]
    ]
    arrays += [
        np.array(values, dtype="complex128"),
        np.array(values, dtype="datetime64[D]"),
        np.array(values, dtype="datetime64[s]"),
        np.array(values, dtype="timedelta64[s]"),
        np.array(values, dtype=object),
    ]
    assert _distinct(arrays)
    assert _distinct([np.array(["ab"], dtype="U2"), np.array(["ab"], dtype="U3")])
    assert _distinct([np.array([b"ab"], dtype="S2"), np.array(["ab"], dtype="U2")])


def test_reshaped_arrays_hash_differently():
    a = np.arange(24, dtype=np.int32)
    shapes = [(24,), (1, 24), (24, 1), (2, 12), (12, 2), (4, 6), (2, 3, 4)]
    assert _distinct([a.reshape(s) for s in shapes])
    assert _distinct([np.zeros((0, 3)), np.zeros((3, 0)), np.zeros((0,))])
    big = np.arange(4096, dtype=np.float64)  # digest path
    assert _distinct([big.reshape(64, 64), big.reshape(32, 128), big])


def test_transposed_array_hashes_by_its_own_values():
    a = np.arange(6).reshape(2, 3)
    assert digest(a.T) != digest(a)
    assert digest(a.T) == digest(np.ascontiguousarray(a.T))


def test_byte_order_is_part_of_the_hash():
    # dtype.str includes the byte order ('<i4' vs '>i4') and the raw bytes differ, so
    # arrays with equal values but different byte order hash differently. This is the
    # intended behaviour: the hash is of dtype, shape and raw bytes (ARCHITECTURE.md,
    # decision 2); convert with .astype('<i4') to share cached results.
    little = np.arange(10, dtype="<i4")
    big = np.arange(10, dtype=">i4")
    assert np.array_equal(little, big)
    assert digest(little) != digest(big)
    assert digest(big.astype("<i4")) == digest(little)
    assert digest(big) == digest(big.copy())

    large_little = np.arange(10_000, dtype="<f8")
    large_big = large_little.astype(">f8")
    assert digest(large_little) != digest(large_big)
    assert digest(large_big.astype("<f8")) == digest(large_little)


# --------------------------------------------------------------------------------------
# Known values: these must not change unless HASH_FORMAT_VERSION is bumped
# --------------------------------------------------------------------------------------

CHANGE_MESSAGE = (
    "The hash encoding changed. Every user's cache is keyed by these hashes: if the change "
    "is intended, bump HASH_FORMAT_VERSION in daskbio/graph/hashing.py, note it in the "
    "changelog and update the pinned values in tests/test_hashing.py."
)


def test_hash_format_version_is_1():
    assert HASH_FORMAT_VERSION == 1, (
        "HASH_FORMAT_VERSION changed: update the pinned hashes in tests/test_hashing.py "
        "(and any change of the encoding must bump it)."
    )


def test_fixture_function_identity_is_independent_of_pytest_import_mode():
    assert function_identity(add) == "hash_fixture_functions.add"
    assert function_identity(combine) == "hash_fixture_functions.combine"


def test_encoding_matches_its_documented_layout():
    # Derived by hand from hashing.py's encoders, independent of digest()'s code path.
    q = struct.Struct("<q").pack
    prefix = b"daskbio-value\x00" + q(HASH_FORMAT_VERSION)
    assert digest(None) == xxhash.xxh3_128_digest(prefix + b"N")
    assert digest(1) == xxhash.xxh3_128_digest(prefix + b"i" + q(1))
    assert digest("é") == xxhash.xxh3_128_digest(prefix + b"s" + q(2) + "é".encode())
    assert digest((True, 0.5)) == xxhash.xxh3_128_digest(
        prefix + b"t" + q(2) + b"T" + b"f" + struct.pack("<d", 0.5)
    )

    def s(text: str) -> bytes:
        return b"s" + q(len(text)) + text.encode()

    task = (
        b"daskbio-task\x00" + q(HASH_FORMAT_VERSION)
        + s("hash_fixture_functions.add")
        + b"N"  # version
        + b"t" + q(2) + b"i" + q(1) + b"i" + q(2)  # args
        + b"d" + q(0)  # kwargs
    )  # fmt: skip
    assert Task(add, 1, 2).digest == xxhash.xxh3_128_digest(task)


PINNED_TASK_HASHES = {
    "add(1, 2)": (lambda: Task(add, 1, 2), "9564f63beb0586f53d5dd36f0d305e79"),
    "add(a=1, b=2)": (lambda: Task(add, a=1, b=2), "7a9b0ae5b0bd3c4c0f62b7d40ecbe864"),
    "combine('x', [1, 2.5], {'k': None}, flag=True)": (
        lambda: Task(combine, "x", [1, 2.5], {"k": None}, flag=True),
        "2b27bbdfd59e6ebea341bd86c21a00d1",
    ),
    "add(add(1, 2), 3)": (
        lambda: Task(add, Task(add, 1, 2), 3),
        "a6d4ed970200c8d23888a3390d841599",
    ),
    "add(1, 2)[0]": (lambda: Task(add, 1, 2)[0], "bfd11cd339b59ec62034f417c4d4b735"),
    "add version 2": (
        lambda: TaskGenerator(version="2")(add)(1, 2),
        "0af62bf0e44a34c9a91244365324eb3f",
    ),
}


@pytest.mark.parametrize(("make", "expected"), PINNED_TASK_HASHES.values(), ids=PINNED_TASK_HASHES)
def test_task_hash_matches_pinned_value(make, expected):
    assert make().hash() == expected, CHANGE_MESSAGE


PINNED_DIGESTS = {
    "zero": (0, "6b267e4de8db9cdaf9c8e9b8c23c6910"),
    "minus_one": (-1, "927b63a64d9b76cf75b565c77eb2d543"),
    "big_int": (2**100, "959a4a015ea47deb6cd1af9ceac9a192"),
    "float": (1.5, "e85c41419d63dae7e9c9ccb1ad9bf896"),
    "unicode_str": ("héllo ✓", "988a39a8567c9f93f8e8423d23d03ae6"),
    "bytes": (b"\x00\xff", "7fa5257018b8dfb2be0b7656e675f1ca"),
    "tuple": ((1, "a"), "73e69d9af50dea5d7ccdf193ff626180"),
    "dict": ({"b": 2, "a": 1}, "3712a2ad6e04ea1588844acb619000ba"),
    "set": ({"x", "y"}, "dd92853e296b685309baa16e12ef8442"),
    "int32_array": (np.arange(6, dtype="<i4").reshape(2, 3), "d62af19df71bcb485cddc1e5f9e59d6c"),
    "float64_array": (np.linspace(0, 1, 5).astype("<f8"), "66fe5814fc6a064823825f2d5d5c4543"),
    "none": (None, "745d8f19551c232c62efbdb37937b2e4"),
    "large_float64_array": (np.arange(2000, dtype="<f8"), "51a0e36f288c8e3fee0d5faa656b08f7"),
    "jug_hash_hook": (JugRoi(3), "bd6210c711491bbf84663c3d4d100aae"),
    "enum": (Colour.GREEN, "fc4b19e0b1cabecebb0f6a288b841048"),
    "dataclass": (Spot(1, 2.5, ("a",)), "35afb052767d63e574ae87749443afe3"),
    "plain_object": (Plain(2.0, ["dna"]), "16288ed8e06a1932975100b2257a2b9e"),
    "slotted_object": (Slotted(1, "b"), "78a081d07d8ca3349655544fdf7f775c"),
    "getstate_object": (WithState("/x", None), "ea851c41d0f5ebbd54d128e5d2d34cc0"),
}


@pytest.mark.parametrize(("value", "expected"), PINNED_DIGESTS.values(), ids=PINNED_DIGESTS)
def test_digest_matches_pinned_value(value, expected):
    assert digest(value).hex() == expected, CHANGE_MESSAGE


# --------------------------------------------------------------------------------------
# Stability across processes
# --------------------------------------------------------------------------------------


def _python(*args: str, **kwargs) -> str:
    """Run a fresh Python process; return what it printed (fail on a non-zero exit)."""
    done = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=60, check=False, **kwargs
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_hashes_are_identical_in_every_process_whatever_the_hash_seed():
    script = "import json, hash_fixture_functions as h; print(json.dumps(h.stability_hashes()))"
    outputs = {}
    for seed in ["0", "1", "12345", "random"]:
        env = dict(os.environ, PYTHONHASHSEED=seed)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS_DIR), env.get("PYTHONPATH")]))
        outputs[seed] = json.loads(_python("-c", script, env=env))

    in_process = stability_hashes()
    assert len(set(in_process.values())) == len(in_process)
    for seed, hashes in outputs.items():
        assert hashes == in_process, f"PYTHONHASHSEED={seed} gave different hashes"


def test_set_of_strings_hash_does_not_depend_on_iteration_order():
    from hash_fixture_functions import WORDS

    orders = [list(WORDS), sorted(WORDS), list(reversed(WORDS))]
    assert len({digest(set(o)) for o in orders}) == 1
    assert len({digest({w: len(w) for w in o}) for o in orders}) == 1


# --------------------------------------------------------------------------------------
# Unhashable arguments and the __daskbio_hash__ hook
# --------------------------------------------------------------------------------------


class Opaque:
    """A type the hasher cannot take apart: it refuses to give its state, as a lock or
    an open connection does."""

    def __getstate__(self):
        raise TypeError("cannot pickle 'Opaque' object")


@TaskGenerator
def segment(*args, **kwargs):
    return args, kwargs


def _message(call) -> str:
    with pytest.raises(TypeError) as info:
        call()
    return str(info.value)


def test_unknown_object_nested_in_args_names_function_path_type_and_hook():
    message = _message(lambda: segment(1, {"mask": Opaque()}))
    assert "segment" in message
    assert "args[1]['mask']" in message
    assert f"{Opaque.__module__}.Opaque" in message
    assert "__daskbio_hash__" in message


def test_unknown_object_in_kwargs_names_its_keyword():
    message = _message(lambda: segment(1, x=Opaque()))
    assert "segment" in message
    assert "kwargs['x']" in message
    assert "Opaque" in message
    assert "__daskbio_hash__" in message


@pytest.mark.parametrize(
    ("make_args", "path"),
    [
        (lambda o: ([0, (1, {"k": [o]})],), "args[0][1][1]['k'][0]"),
        (lambda o: ({o},), "args[0]{member}"),
        (lambda o: ({"a": {o: 1}},), "args[0]['a']"),
        (lambda o: (Wrapper(o),), "args[0].__daskbio_hash__()"),
    ],
    ids=["deep", "set_member", "dict_key", "hook_result"],
)
def test_unhashable_error_path_points_at_the_object(make_args, path):
    message = _message(lambda: segment(*make_args(Opaque())))
    assert path in message, message
    assert "Opaque" in message


def test_unhashable_error_is_raised_by_plain_task_too():
    message = _message(lambda: Task(combine, key=[Opaque()]))
    assert "combine" in message
    assert "kwargs['key'][0]" in message


def test_unhashable_tasklet_index_is_reported():
    message = _message(lambda: Task(add, 1, 2)[Opaque()])
    assert "index" in message and "Opaque" in message


class Roi:
    """A region of interest that tells daskbio how to hash it."""

    def __init__(self, x, y, label="cell"):
        self.x, self.y, self.label = x, y, label

    def __daskbio_hash__(self):
        return (self.x, self.y, self.label)


class OtherRoi(Roi):
    pass


class Wrapper:
    def __init__(self, inner):
        self.inner = inner

    def __daskbio_hash__(self):
        return {"inner": self.inner}


def test_hash_hook_gives_equal_hashes_for_equal_hook_data():
    assert digest(Roi(1, 2)) == digest(Roi(1, 2))
    assert segment(Roi(1, 2)).hash() == segment(Roi(1, 2)).hash()
    assert segment(rois=[Roi(1, 2)]).hash() == segment(rois=[Roi(1, 2)]).hash()


def test_hash_hook_data_differences_change_the_hash():
    assert _distinct([Roi(1, 2), Roi(2, 1), Roi(1, 2, "nucleus")])


def test_hash_hook_object_differs_from_its_plain_hook_data():
    assert digest(Roi(1, 2)) != digest((1, 2, "cell"))
    assert segment(Roi(1, 2)).hash() != segment((1, 2, "cell")).hash()


def test_hash_hook_includes_the_type_name():
    assert digest(Roi(1, 2)) != digest(OtherRoi(1, 2))


def test_hash_hook_may_return_nested_data_with_arrays_and_tasks():
    t = Task(add, 1, 2)
    assert digest(Wrapper([np.arange(3), t])) == digest(Wrapper([np.arange(3), Task(add, 1, 2)]))
    assert digest(Wrapper([np.arange(3), t])) != digest(Wrapper([np.arange(4), t]))


# --------------------------------------------------------------------------------------
# function_identity and pipeline files run as __main__
# --------------------------------------------------------------------------------------


def test_function_identity_is_module_and_qualified_name():
    assert function_identity(add) == "hash_fixture_functions.add"
    assert function_identity(Roi.__daskbio_hash__) == f"{__name__}.Roi.__daskbio_hash__"
    assert function_identity(np.mean) == "numpy.mean"


PIPELINE = textwrap.dedent(
    """\
    from daskbio import Task
    from daskbio.graph.hashing import function_identity


    def f(x):
        return x


    t = Task(f, 1)
    if __name__ == "__main__":
        print(function_identity(f))
        print(t.hash())
    """
)


def test_pipeline_function_run_as_main_is_named_after_the_file_stem(tmp_path):
    path = tmp_path / "mypipe.py"
    path.write_text(PIPELINE)
    identity, script_hash = _python("mypipe.py", cwd=tmp_path).split()
    assert identity == "mypipe.f"

    with daskbio.pipeline.load(path, MemoryStore()) as pipeline:
        f = pipeline.namespace["f"]
        assert f.__module__ == "__main__"
        assert function_identity(f) == "mypipe.f"
        loaded_hash = Task(f, 1).hash()
        assert pipeline.namespace["t"].hash() == loaded_hash
        assert loaded_hash in pipeline.hashes()

    assert loaded_hash == script_hash

    # Importing the file as a module gives the same identity and hash.
    sys.path.insert(0, str(tmp_path))
    try:
        import mypipe

        assert function_identity(mypipe.f) == "mypipe.f"
        assert Task(mypipe.f, 1).hash() == script_hash
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("mypipe", None)


# --------------------------------------------------------------------------------------
# Property-based tests
# --------------------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.binary(max_size=8)
)
keys = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5)
json_like = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(children, max_size=4).map(tuple)
        | st.dictionaries(keys, children, max_size=4)
    ),
    max_leaves=20,
)


def _same(x, y) -> bool:
    """Equal with the same types all the way down, floats compared by their bits."""
    if type(x) is not type(y):
        return False
    if isinstance(x, float):
        return struct.pack("<d", x) == struct.pack("<d", y)
    if isinstance(x, (list, tuple)):
        return len(x) == len(y) and all(_same(a, b) for a, b in zip(x, y))
    if isinstance(x, dict):
        if len(x) != len(y):
            return False
        for k, v in x.items():
            match = [k2 for k2 in y if _same(k, k2)]
            if len(match) != 1 or not _same(v, y[match[0]]):
                return False
        return True
    return x == y


@settings(max_examples=200, deadline=None)
@given(json_like)
def test_digest_of_deep_copy_is_equal(x):
    assert digest(x) == digest(copy.deepcopy(x))


@settings(max_examples=300, deadline=None)
@given(json_like, json_like)
def test_digests_are_equal_exactly_when_values_and_types_are(x, y):
    equal = _same(x, y)
    assert (digest(x) == digest(y)) == equal
    if digest(x) == digest(y):
        assert x == y and type(x) is type(y)


# --------------------------------------------------------------------------------------
# Callables that a name alone does not identify, and ndarray subclasses
# --------------------------------------------------------------------------------------


def _make_adder(n):
    def adder(x):
        return x + n

    return adder


class Scaler:
    def __init__(self, factor):
        self.factor = factor

    def apply(self, x):
        return self.factor * x


def test_tasks_of_different_lambdas_or_closures_do_not_share_a_hash():
    hashes = set()
    for make in (lambda: Task(lambda x: x, 1), lambda: Task(lambda x: -x, 1)):
        try:
            hashes.add(make().hash())
        except TypeError:  # refusing unnamed functions would also be correct
            hashes.add(object())
    try:
        hashes.add(Task(_make_adder(1), 1).hash())
        hashes.add(Task(_make_adder(2), 1).hash())
    except TypeError:
        hashes.update([object(), object()])
    assert len(hashes) == 4


def test_bound_methods_of_different_instances_do_not_share_a_hash():
    try:
        as_function = Task(Scaler(2).apply, 1).hash() != Task(Scaler(3).apply, 1).hash()
    except TypeError:
        as_function = True
    try:
        as_argument = digest(Scaler(2).apply) != digest(Scaler(3).apply)
    except TypeError:
        as_argument = True
    assert as_function and as_argument


def test_masked_arrays_hash_their_mask_or_are_refused():
    data = np.arange(10_000)
    for a, b in [
        (np.ma.array([999999, 2], mask=[1, 0]), np.ma.array([999999, 2], mask=[0, 0])),
        (np.ma.array(data, mask=data % 2 == 0), np.ma.array(data, mask=data % 3 == 0)),
    ]:
        # Refusing masked arrays with a clear TypeError would also be correct.
        with contextlib.suppress(TypeError):
            assert digest(a) != digest(b)


# --------------------------------------------------------------------------------------
# Jug's __jug_hash__ hook


class OtherJugRoi(JugRoi):
    pass


class JugAndDaskbio(JugRoi):
    def __jug_hash__(self):
        return f"{id(self)}"  # differs between two equal objects

    def __daskbio_hash__(self):
        return ("daskbio", self.x)


class JugHashOfOpaque(JugRoi):
    def __jug_hash__(self):
        return Opaque()


def test_jug_hash_hook_identifies_the_value_like_jug():
    assert digest(JugRoi(3)) == digest(JugRoi(3))
    assert digest(JugRoi(3)) != digest(JugRoi(4))
    # The class name is part of it, as with __daskbio_hash__.
    assert digest(JugRoi(3)) != digest(OtherJugRoi(3))
    assert digest(JugRoi(3)) != digest("roi-3")
    assert segment(JugRoi(3)).hash() == segment(JugRoi(3)).hash()


def test_daskbio_hook_wins_over_jug_hook():
    assert digest(JugAndDaskbio(3)) == digest(JugAndDaskbio(3))
    assert digest(JugAndDaskbio(3)) != digest(JugAndDaskbio(4))


def test_a_jug_hook_returning_something_unhashable_names_the_hook():
    message = _message(lambda: segment(JugHashOfOpaque(1)))
    assert "args[0].__jug_hash__()" in message, message


# --------------------------------------------------------------------------------------
# Enums, dataclasses and instances of plain classes: by class identity and state
# --------------------------------------------------------------------------------------


def test_objects_hash_by_their_state():
    assert digest(Spot(1, 2.0)) == digest(Spot(1, 2.0))
    assert digest(Spot(1, 2.0)) != digest(Spot(1, 2.5))
    assert digest(Plain(1, ["a"])) != digest(Plain(1, ["b"]))
    assert digest(Slotted(1, 2)) != digest(Slotted(2, 1))
    # __getstate__ says what counts: the cache attribute does not.
    assert digest(WithState("/x", 1)) == digest(WithState("/x", [2]))
    assert digest(WithState("/x", 1)) != digest(WithState("/y", 1))


def test_objects_of_different_classes_with_the_same_state_differ():
    class Other:
        def __init__(self, sigma, names):
            self.sigma, self.names = sigma, names

    assert digest(Plain(1, [])) != digest(Other(1, []))
    assert digest(Plain(1, [])) != digest({"sigma": 1, "names": []})
    assert digest(Colour.RED) != digest(1)
    assert digest(Colour.RED) != digest(Colour.GREEN)


def test_attribute_order_does_not_matter():
    a, b = Plain(1, 2), Plain.__new__(Plain)
    b.names, b.sigma = 2, 1
    assert digest(a) == digest(b)


def test_an_unhashable_attribute_is_named_by_its_path():
    with pytest.raises(TypeError) as e:
        Task(combine, [Spot(1, 2.0, tags=(Opaque(),))])
    assert "args[0][0].tags[0]" in str(e.value)
    assert "Opaque" in str(e.value)


def test_an_object_that_holds_itself_is_refused_clearly():
    p = Plain(1, [])
    p.names.append(p)
    with pytest.raises(TypeError, match="nested too deeply"):
        Task(combine, p)


class Reduced:
    """Pickles its own way: what its state is, only its __reduce__ knows."""

    def __init__(self, x):
        self.x = x

    def __reduce__(self):
        return (Reduced, (self.x,))


@pytest.mark.parametrize(
    "value",
    [object(), lambda: 0, sys, threading.Lock(), ValueError("x"), Reduced(1)],
    ids=["object", "lambda", "module", "lock", "exception", "own_reduce"],
)
def test_what_has_no_state_of_its_own_is_still_refused(value):
    with pytest.raises(TypeError, match="cannot hash"):
        Task(combine, value)
