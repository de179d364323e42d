"""Tests of what identifies a Task's function and its code (issue 9, "Trust").

A Task's hash knows its function by ``module.qualname`` (docs/hashing.md, "Identity
rules"); two different functions under one identity would share cached results. The
code fingerprint stored beside each result covers the user's code the function runs, so
a result computed by other code is reported as stale. Neither may keep a loaded pipeline
alive after it is dropped.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
import types
import weakref
from pathlib import Path

import numpy as np
import pytest
import xxhash

import daskbio.pipeline
from daskbio import Task
from daskbio.cache import MemoryStore
from daskbio.graph import hashing
from daskbio.graph.hashing import code_fingerprint, function_identity
from daskbio.graph.task import collect_tasks


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def import_fresh(tmp_path):
    """``import_fresh(folder, {module: source}, name)`` writes the modules to
    ``tmp_path/folder`` and imports ``name`` from there, forgetting any module of the
    same names imported before (and all of them at the end of the test)."""
    written: set[str] = set()

    def load(folder: str, modules: dict[str, str], name: str) -> types.ModuleType:
        for module, source in modules.items():
            _write(tmp_path / folder, f"{module}.py", source)
            sys.modules.pop(module, None)
            written.add(module)
        sys.path.insert(0, str(tmp_path / folder))
        try:
            importlib.invalidate_caches()
            return importlib.import_module(name)
        finally:
            sys.path.remove(str(tmp_path / folder))

    yield load
    for module in written:
        sys.modules.pop(module, None)


def _load(path: Path):
    return daskbio.pipeline.load(path, MemoryStore(), may_compute=False)


# --------------------------------------------------------------------------------------
# (c) A function defined twice in one pipeline file
# --------------------------------------------------------------------------------------

DEFINED_TWICE = """\
from daskbio import TaskGenerator

@TaskGenerator
def step(x):
    return x + 1

a = step(1)

@TaskGenerator
def step(x):
    return x * 2

b = step(1)
"""


def test_function_defined_twice_with_tasks_of_both_is_refused_at_load(tmp_path):
    path = _write(tmp_path, "pipeline.py", DEFINED_TWICE)
    with pytest.raises(ValueError) as info, _load(path):
        pass
    message = str(info.value)
    assert message.startswith("pipeline.py defines step twice (lines 3 and 9)"), message
    assert "one identity (pipeline.step)" in message
    assert message.endswith("rename one")


def test_plain_function_defined_twice_with_tasks_of_both_is_refused_at_load(tmp_path):
    source = "from daskbio import Task\n\n\ndef step(x):\n    return x\n\n\na = Task(step, 1)\n"
    path = _write(tmp_path, "twice.py", source + source.replace("return x", "return -x"))
    expected = r"twice.py defines step twice \(lines 4 and 12\)"
    with pytest.raises(ValueError, match=expected), _load(path):
        pass


def test_function_redefined_before_it_makes_tasks_is_accepted(tmp_path):
    path = _write(
        tmp_path,
        "pipeline.py",
        """\
        from daskbio import TaskGenerator

        def step(x):
            return x + 1

        @TaskGenerator
        def step(x):
            return x * 2

        made = [step(i) for i in range(3)]
        """,
    )
    with _load(path) as pipeline:
        assert len(pipeline.tasks) == 3
        assert {t.identity for t in pipeline.tasks} == {"pipeline.step"}


def test_bound_methods_and_inherited_classmethods_are_not_taken_for_redefinitions(tmp_path):
    path = _write(
        tmp_path,
        "methods.py",
        """\
        from daskbio import Task

        class Scaler:
            def __init__(self, factor):
                self.factor = factor

            def apply(self, x):
                return self.factor * x

            def __daskbio_hash__(self):
                return self.factor

            @classmethod
            def make(cls, x):
                return x

        class Sub(Scaler):
            pass

        made = [Task(Scaler(k).apply, 1) for k in range(3)]
        made += [Task(Scaler.make, 1), Task(Sub.make, 1)]
        """,
    )
    with _load(path) as pipeline:
        assert len(pipeline.tasks) == 5


# --------------------------------------------------------------------------------------
# (d) A classmethod inherited by a subclass
# --------------------------------------------------------------------------------------


class Base:
    @classmethod
    def scale(cls, x):
        return cls.__name__, x

    @staticmethod
    def twice(x):
        return 2 * x


class Sub(Base):
    pass


class Override(Base):
    @classmethod
    def scale(cls, x):
        return x


def test_inherited_classmethod_bound_to_a_subclass_has_its_own_hash():
    assert Base.scale(5) != Sub.scale(5)  # they compute different things
    hashes = {Task(Base.scale, 5).hash(), Task(Sub.scale, 5).hash()}
    hashes.add(Task(Override.scale, 5).hash())
    assert len(hashes) == 3
    assert hashing.digest(Base.scale) != hashing.digest(Sub.scale)
    assert Task(Sub.scale, 5).hash() == Task(Sub.scale, 5).hash()


def test_classmethod_bound_to_its_defining_class_keeps_its_hash():
    # The encoding of a classmethod reached through the class defining it is what it
    # was before subclasses were told apart: identity, version, args, kwargs.
    def expected(f, *args) -> bytes:
        out = bytearray(hashing.TASK_PREFIX)
        hashing._enc_str(function_identity(f), out)
        for part in (None, args, {}):
            hashing.encode(part, out)
        return xxhash.xxh3_128_digest(out)

    assert Task(Base.scale, 5).digest == expected(Base.scale, 5)
    assert Task(Override.scale, 5).digest == expected(Override.scale, 5)
    assert Task(dict.fromkeys, "ab").digest == expected(dict.fromkeys, "ab")


def test_staticmethod_reached_through_a_subclass_is_the_same_function():
    assert Sub.twice is Base.twice
    assert Task(Sub.twice, 5).hash() == Task(Base.twice, 5).hash()


# --------------------------------------------------------------------------------------
# (a), (b) One identity for code from two folders: told apart by the fingerprint
# --------------------------------------------------------------------------------------


def test_same_pipeline_stem_in_two_folders_shares_hashes_but_not_fingerprints(tmp_path):
    # The two files differ only in a constant and a helper that ``step`` uses.
    source = """\
        from daskbio import TaskGenerator

        SCALE = {}

        def _offset(x):
            return {}

        @TaskGenerator
        def step(x):
            return x * SCALE + _offset(x)

        t = step(1)
        """
    paths = [
        _write(tmp_path / "a", "pipeline.py", source.format(2, 0)),
        _write(tmp_path / "b", "pipeline.py", source.format(3, 0)),
        _write(tmp_path / "c", "pipeline.py", source.format(2, 1)),
    ]
    seen = []
    for path in paths:
        with _load(path) as pipeline:
            (task,) = pipeline.tasks
            seen.append((task.identity, task.hash(), code_fingerprint(task.f)))
    identities, hashes, fingerprints = zip(*seen)
    assert set(identities) == {"pipeline.step"}
    assert len(set(hashes)) == 1  # one cache entry: what daskbio warns about
    assert len(set(fingerprints)) == 3  # and how it tells


def test_two_top_level_modules_of_one_name_share_identity_but_not_fingerprint(import_fresh):
    source = "def smooth(x):\n    return _shift(x)\n\ndef _shift(x):\n    return x + {}\n"
    first = import_fresh("a", {"idt_util": source.format(1)}, "idt_util")
    identity_a, hash_a, code_a = (
        function_identity(first.smooth),
        Task(first.smooth, 1).hash(),
        code_fingerprint(first.smooth),
    )
    second = import_fresh("b", {"idt_util": source.format(2)}, "idt_util")
    assert second is not first
    assert function_identity(second.smooth) == identity_a == "idt_util.smooth"
    assert Task(second.smooth, 1).hash() == hash_a
    assert code_fingerprint(second.smooth) != code_a


# --------------------------------------------------------------------------------------
# The code fingerprint follows the user's own code
# --------------------------------------------------------------------------------------

CALLER = """\
import idt_helpers
from idt_helpers import smooth, SIGMA

def by_name(x):
    return smooth(x)

def by_attribute(x):
    return idt_helpers.smooth(x)

def uses_constant(x):
    return x * SIGMA
"""

HELPERS = """\
SIGMA = 2.0

def smooth(x):
    return x * SIGMA + _shift(x)

def _shift(x):
    return 1

def unrelated():
    return "unrelated"
"""


def _fingerprints(import_fresh, folder: str, helpers: str) -> dict[str, str]:
    caller = import_fresh(folder, {"idt_caller": CALLER, "idt_helpers": helpers}, "idt_caller")
    names = ("by_name", "by_attribute", "uses_constant")
    return {name: code_fingerprint(getattr(caller, name)) for name in names}


def test_editing_a_helper_in_a_user_module_changes_the_callers_fingerprint(import_fresh):
    before = _fingerprints(import_fresh, "v1", HELPERS)
    again = _fingerprints(import_fresh, "v1_again", HELPERS)
    edited = _fingerprints(import_fresh, "v2", HELPERS.replace("return 1", "return 2"))
    assert before == again
    assert edited["by_name"] != before["by_name"]
    assert edited["by_attribute"] != before["by_attribute"]
    assert edited["uses_constant"] == before["uses_constant"]


def test_editing_a_module_constant_the_function_uses_changes_its_fingerprint(import_fresh):
    before = _fingerprints(import_fresh, "v1", HELPERS)
    edited = _fingerprints(import_fresh, "v2", HELPERS.replace("2.0", "2.5"))
    assert all(edited[name] != before[name] for name in before)


def test_editing_an_unrelated_function_or_moving_code_keeps_the_fingerprint(import_fresh):
    before = _fingerprints(import_fresh, "v1", HELPERS)
    edited = HELPERS.replace('"unrelated"', '"edited"') + "\n\ndef added():\n    return 3\n"
    moved = "\n\n\n# moved down\n" + edited
    assert _fingerprints(import_fresh, "v2", moved) == before


def test_installed_packages_and_the_standard_library_are_not_followed(import_fresh):
    def f(x):
        return np.mean(x)

    user_np = import_fresh("u", {"idt_fake_np": "def mean(x):\n    return 0\n"}, "idt_fake_np")
    with_numpy = types.FunctionType(f.__code__, {"np": np})
    with_stdlib = types.FunctionType(f.__code__, {"np": json})
    with_user_module = types.FunctionType(f.__code__, {"np": user_np})
    assert code_fingerprint(with_numpy) == code_fingerprint(with_stdlib)
    assert code_fingerprint(with_numpy) != code_fingerprint(with_user_module)
    assert code_fingerprint(f) == code_fingerprint(types.FunctionType(f.__code__, f.__globals__))
    assert not hashing._is_user_file(np.__file__)
    assert not hashing._is_user_file(json.__file__)
    assert not hashing._is_user_file(hashing.__file__)
    assert hashing._is_user_file(__file__)


RECURSIVE = """\
def fact(n):
    return 1 if n <= 1 else n * fact(n - 1)

def ping(n):
    return pong(n - 1) if n else "ping"

def pong(n):
    return ping(n - 1) if n else "pong"

class Tree:
    def grow(self):
        return Tree()
"""


def test_recursive_and_mutually_recursive_code_terminates_and_is_covered(import_fresh):
    module = import_fresh("v1", {"idt_rec": RECURSIVE}, "idt_rec")
    before = [code_fingerprint(f) for f in (module.fact, module.ping, module.pong, module.Tree)]
    assert all(len(fp) == 16 for fp in before)
    edited = import_fresh("v2", {"idt_rec": RECURSIVE.replace('"pong"', '"PONG"')}, "idt_rec")
    after = [code_fingerprint(f) for f in (edited.fact, edited.ping, edited.pong, edited.Tree)]
    assert after[0] == before[0]
    assert after[1] != before[1]  # ping's code is unchanged; pong, which it calls, is not
    assert after[2] != before[2]
    assert after[3] == before[3]


def test_classes_and_task_generators_a_function_uses_are_followed(import_fresh):
    source = """\
        from daskbio import TaskGenerator

        class Model:
            def fit(self, x):
                return x + 1

        @TaskGenerator
        def prepare(x):
            return x - 1

        MODEL = Model()

        def run(x):
            return Model().fit(prepare.f(x))

        def run_instance(x):
            return MODEL.fit(x)
        """
    versions = [
        import_fresh(folder, {"idt_model": text}, "idt_model")
        for folder, text in [
            ("v1", source),
            ("v2", source.replace("x + 1", "x + 2")),  # a method edited
            ("v3", source.replace("x - 1", "x - 2")),  # the TaskGenerator's function edited
        ]
    ]
    assert len({code_fingerprint(m.run) for m in versions}) == 3
    first, method_edited, wrapped_edited = (code_fingerprint(m.run_instance) for m in versions)
    assert first != method_edited
    assert first == wrapped_edited


def test_runtime_state_in_module_globals_does_not_change_the_fingerprint(import_fresh):
    source = "_memo = {}\n\ndef cached(x):\n    _memo[x] = x\n    return x\n"
    module = import_fresh("v1", {"idt_memo": source}, "idt_memo")
    before = code_fingerprint(module.cached)
    module.cached(1)
    rebuilt = types.FunctionType(module.cached.__code__, module.cached.__globals__)
    assert code_fingerprint(rebuilt) == before


def test_fingerprint_is_the_same_in_every_process_whatever_the_hash_seed(tmp_path):
    _write(
        tmp_path,
        "idt_seeded.py",
        """\
        NAMES = frozenset({"alpha", "beta", "gamma", "delta", "epsilon"})

        def member(x):
            return x in {"alpha", "beta", "gamma", "delta", "epsilon"} and x in NAMES
        """,
    )
    script = (
        "import idt_seeded as m, daskbio.graph.hashing as h; print(h.code_fingerprint(m.member))"
    )
    printed = set()
    for seed in ("0", "1", "2", "3"):
        path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
        env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=path)
        done = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        printed.add(done.stdout.strip())
    assert len(printed) == 1
    assert len(printed.pop()) == 16


def test_fingerprints_of_a_hundred_functions_take_a_few_milliseconds(import_fresh):
    helpers = (
        "\n".join(f"def h{i}(x):\n    return h{i + 1}(x) + {i}\n" for i in range(9))
        + "\ndef h9(x):\n    return x\n"
    )
    steps = "import numpy as np\nimport idt_many_helpers as hp\nfrom idt_many_helpers import h5\n"
    steps += "".join(
        f"\ndef step{i}(x, k={i}):\n    return np.mean(hp.h{i % 10}(x)) + h5(k)\n"
        for i in range(100)
    )
    module = import_fresh(
        "v1", {"idt_many_helpers": helpers, "idt_many_steps": steps}, "idt_many_steps"
    )
    functions = [getattr(module, f"step{i}") for i in range(100)]
    start = time.perf_counter()
    fingerprints = [code_fingerprint(f) for f in functions]
    elapsed = time.perf_counter() - start
    assert len(set(fingerprints)) == 100
    assert elapsed < 0.05, f"{elapsed * 1e3:.1f} ms"  # a few ms; generous for slow machines


# --------------------------------------------------------------------------------------
# Nothing keeps a loaded pipeline alive
# --------------------------------------------------------------------------------------

LARGE_PIPELINE = """\
from daskbio import TaskGenerator

SCALE = 3

@TaskGenerator
def step(i):
    return i * SCALE

@TaskGenerator
def total(parts):
    return sum(parts)

parts = [step(i) for i in range(3999)]
result = total(parts)
"""


def test_reloading_a_pipeline_does_not_keep_earlier_ones_alive(tmp_path):
    path = _write(tmp_path, "large.py", LARGE_PIPELINE)
    alive: list[weakref.ref] = []

    def reload() -> None:
        with _load(path) as pipeline:
            assert len(pipeline.tasks) == 4000
            for f in {id(t.f): t.f for t in pipeline.tasks}.values():
                # What execute.py asks of every function it runs.
                assert function_identity(f).startswith("large.")
                assert len(code_fingerprint(f)) == 16
            alive.extend(weakref.ref(t) for t in pipeline.tasks[::100])

    def memory() -> int:
        gc.collect()
        return tracemalloc.get_traced_memory()[0]

    tracemalloc.start()
    try:
        reload()  # the first load imports and caches what every later one reuses
        baseline = memory()
        with _load(path) as pipeline:
            one_pipeline = memory() - baseline
            del pipeline
        for _ in range(4):
            reload()
        after_5 = memory()
        for _ in range(15):
            reload()
        after_20 = memory()
    finally:
        tracemalloc.stop()
    assert sum(ref() is not None for ref in alive) == 0
    assert len(alive) == 20 * 40
    assert one_pipeline > 1_000_000  # the measure can see a pipeline
    assert after_20 - after_5 < one_pipeline / 10, (one_pipeline, after_5, after_20)


def test_identity_and_fingerprint_do_not_keep_a_function_alive():
    namespace: dict = {}
    exec("def transient(x):\n    return x\n", namespace)
    f = namespace.pop("transient")
    assert function_identity(f).endswith("transient")
    assert code_fingerprint(f)
    assert Task(f, 1).hash()
    ref = weakref.ref(f)
    del f
    gc.collect()
    assert ref() is None


def test_collect_tasks_collects_only_the_tasks_of_its_own_thread():
    def make():
        return Task(Base.twice, 2)

    with collect_tasks() as outer:
        first = make()
        thread = threading.Thread(target=make)
        thread.start()
        thread.join()
        with collect_tasks() as inner:
            second = make()
        third = make()
    make()
    assert outer == [first, third]
    assert inner == [second]
