"""Inspecting a pipeline's cache: ``status --failed``, ``show``, ``why``, ``check`` and
``sleep-until`` on failures, and the key parts entries record (daskbio.provenance).

Pipelines are written to disk, run for real into a filesystem cache beside them, and the
commands run in-process through click's CliRunner (the subprocess tests of the same
commands are in test_cli.py).
"""

from __future__ import annotations

import itertools
import json

import pytest
from click.testing import CliRunner
from conftest import write_pipeline

from daskbio.cache import FileSystemStore
from daskbio.cli import main
from daskbio.graph.job import Ref
from daskbio.pipeline import load
from daskbio.provenance import MAX_PARTS, MAX_REPR, Difference, explain, key_parts, select
from daskbio.status import remaining

SMOOTH = """
from daskbio import TaskGenerator

SIGMA = {sigma}
MASK = {mask}
PATHS = {paths}

@TaskGenerator
def load(path):
    return len(path)

@TaskGenerator
def smooth(image, sigma, opts):
    return image * sigma

@TaskGenerator
def total(xs):
    return sum(xs)

images = [load(p) for p in PATHS]
smoothed = [smooth(im, SIGMA, {{"mask": MASK, "size": 3}}) for im in images]
result = total(smoothed)
"""

FAILING = """
from daskbio import TaskGenerator

@TaskGenerator
def source(i):
    return i

@TaskGenerator
def invert(x):
    return 1 / x

@TaskGenerator
def combine(xs):
    return sum(xs)

inverted = [invert(source(i)) for i in range(3)]
total = combine(inverted)
"""


def daskbio(*args: object, code: int = 0) -> str:
    """Run the command in-process; its stdout (and stderr, when it fails), after checking
    its exit status."""
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result.stdout if code == 0 else result.output


def smooth_pipeline(folder, sigma=2, mask=True, paths=("a.tif", "bb.tif", "ccc.tif")):
    return write_pipeline(folder, SMOOTH.format(sigma=sigma, mask=mask, paths=list(paths)))


@pytest.fixture
def computed(tmp_path):
    """The smoothing pipeline, run once."""
    file = smooth_pipeline(tmp_path)
    daskbio("run", file, "--scheduler", "sync")
    return file


def store_of(file):
    return FileSystemStore(file.with_name("pipeline.daskbio"))


def explained(file, text):
    """What daskbio.provenance says of the Tasks ``text`` names in ``file`` now."""
    store = store_of(file)
    with load(file, store, may_compute=False) as pipeline:
        return [explain(t, store, pipeline.tasks) for t in select(pipeline.tasks, text, "")]


# key parts ---------------------------------------------------------------------------


def test_entries_record_their_key_parts_by_argument_path(computed):
    store = store_of(computed)
    metas = [m for m in store.metadata_many(store.keys()) if m["name"] == "smooth"]
    parts = metas[0]["key_parts"]
    assert sorted(parts) == ["args[0]", "args[1]", "args[2]"]
    assert parts["args[0]"][0] in {"@" + d for d in metas[0]["deps"]}
    assert parts["args[1]"][1] == "2"
    assert parts["args[2]"][2]["['mask']"][1] == "True"


def test_key_parts_are_bounded_in_count_and_size():
    parts = key_parts(len, (list(range(1000)), "x" * 1000), {})
    count = 0
    pending = list(parts.values())
    while pending:
        node = pending.pop()
        count += 1
        assert len(node[1]) <= MAX_REPR
        pending.extend(node[2].values() if len(node) > 2 else ())
    assert count == MAX_PARTS
    assert parts["args[1]"][1].endswith("...")


def test_key_parts_of_a_dependency_inside_a_container_name_its_hash():
    ref = Ref("ab" * 16, (0,))
    parts = key_parts(len, ([ref, 1],), {})
    assert parts["args[0]"][2]["[0]"] == ["@" + "ab" * 16 + "[0]", ""]
    assert parts["args[0]"][0] != key_parts(len, ([Ref("cd" * 16, (0,)), 1],), {})["args[0]"][0]


# why ---------------------------------------------------------------------------------


def test_why_names_the_changed_argument_with_old_and_new_value(computed):
    smooth_pipeline(computed.parent, sigma=3)
    found = explained(computed, "smooth")
    assert [[str(d) for d in e.differences] for e in found] == [["sigma: 2 -> 3"]] * 3
    out = daskbio("why", "smooth", computed)
    assert "smooth: 3 Tasks in" in out and "0 cached, 3 not in the cache" in out
    assert "  3 Tasks: sigma: 2 -> 3 (e.g. " in out


def test_why_names_a_nested_argument_by_its_path(computed):
    smooth_pipeline(computed.parent, mask=False)
    (first, *_) = explained(computed, "smooth")
    assert first.differences == [Difference("opts['mask']", "True", "False")]


def test_why_names_positional_arguments_without_a_parameter_by_index(tmp_path):
    source = """
    from daskbio import TaskGenerator

    @TaskGenerator
    def measure(*args):
        return len(args)

    m = measure(1, {{"mask": {mask}}})
    """
    file = write_pipeline(tmp_path, source.format(mask=True))
    daskbio("run", file, "--scheduler", "sync")
    write_pipeline(tmp_path, source.format(mask=False))
    (why,) = explained(file, "measure")
    assert why.differences == [Difference("args[1]['mask']", "True", "False")]


def test_why_follows_an_upstream_task_and_says_why_it_misses(computed):
    smooth_pipeline(computed.parent, paths=("a.tif", "bb.tif", "cccc.tif"))
    store = store_of(computed)
    with load(computed, store, may_compute=False) as pipeline:
        changed = [t for t in pipeline.tasks if t.name == "smooth"][2]
        why = explain(changed, store, pipeline.tasks)
        old_load = next(
            k for k, m in zip(store.keys(), store.metadata_many(store.keys()))
            if m["name"] == "load" and m["key_parts"]["args[0]"][1] == "'ccc.tif'"
        )  # fmt: skip
    (difference,) = why.differences
    assert difference.part == "image"
    assert difference.old == f"load {old_load[:12]}"
    assert difference.new == f"load {changed.dependencies()[0].hash()[:12]}"
    assert difference.upstream.cached is False
    assert difference.upstream.differences == [Difference("path", "'ccc.tif'", "'cccc.tif'")]
    out = daskbio("why", changed.hash()[:10], computed)
    assert f"smooth {changed.hash()[:12]} is not in the cache." in out
    assert f"  image: load {old_load[:12]} -> load " in out
    assert "      path: 'ccc.tif' -> 'cccc.tif'" in out


def test_why_groups_the_tasks_of_a_function_by_reason(computed):
    smooth_pipeline(computed.parent, paths=("a.tif", "bb.tif", "cccc.tif"))
    out = daskbio("why", "total", computed).splitlines()
    assert out[2].startswith("  xs[2]: smooth ")
    assert out[-1] == "          path: 'ccc.tif' -> 'cccc.tif'"
    out = daskbio("why", "smooth", computed)
    assert "3 Tasks in" in out and "2 cached, 1 not in the cache" in out
    assert "  1 Task: image: upstream load differs (path: 'ccc.tif' -> 'cccc.tif')" in out


def test_why_reports_a_changed_code_version(tmp_path):
    source = """
    from daskbio import TaskGenerator

    @TaskGenerator(version="{version}")
    def step(x):
        return x

    s = step(1)
    """
    file = write_pipeline(tmp_path, source.format(version="1"))
    daskbio("run", file, "--scheduler", "sync")
    write_pipeline(tmp_path, source.format(version="2"))
    (why,) = explained(file, "step")
    assert why.differences == [Difference("version", "1", "2")]
    assert "  version: 1 -> 2" in daskbio("why", "step", file)


def test_why_of_a_cached_task_says_so_and_whether_it_is_stale(computed):
    text = computed.read_text().replace("return image * sigma", "return image * sigma + 0")
    computed.write_text(text)
    out = daskbio("why", "total", computed)
    assert out.endswith(" is cached (stale: computed from a stale result).\n")
    out = daskbio("why", "smooth", computed)
    assert "3 cached (3 stale), 0 not in the cache." in out
    (first, *_) = explained(computed, "smooth")
    assert first.cached and first.stale == "computed by other code" and not first.differences


def test_why_cannot_tell_from_entries_written_without_key_parts(computed):
    store = store_of(computed)
    added_by_store = {"key", "format", "size", "payload", "written", "key_id", "key_parts"}
    for key, meta in zip(store.keys(), store.metadata_many(store.keys())):
        older = {k: v for k, v in meta.items() if k not in added_by_store}
        store.save(key, store.load(key), older)
    assert all("key_parts" not in m for m in store.metadata_many(store.keys()))
    smooth_pipeline(computed.parent, sigma=3)
    (first, *_) = explained(computed, "smooth")
    assert first.differences == []
    assert first.note.startswith("the 3 cached Tasks of smooth were written by a daskbio")
    assert "cannot tell which part" in first.note
    out = daskbio("why", "smooth", computed)
    assert "  3 Tasks: the 3 cached Tasks of smooth were written by a daskbio that " in out


def test_why_of_a_function_never_computed_says_there_is_nothing_to_compare(computed):
    computed.write_text(computed.read_text() + "\n@TaskGenerator\ndef extra(x):\n    return x\n")
    computed.write_text(computed.read_text() + "e = extra(result)\n")
    (why,) = explained(computed, "extra")
    assert why.note == "no Task of extra is in the cache" and not why.cached


# show --------------------------------------------------------------------------------


def test_show_gives_a_done_tasks_provenance(computed):
    store = store_of(computed)
    with load(computed, store, may_compute=False) as pipeline:
        t = next(t for t in pipeline.tasks if t.name == "smooth")
        (dep,) = t.dependencies()
    described = json.loads(daskbio("show", t.hash()[:8], computed, "--json"))
    meta = store.metadata(t.hash())
    assert described["hash"] == t.hash()
    assert described["function"] == "pipeline.smooth"
    assert described["arguments"] == {
        "image": f"<load {dep.hash()[:12]}>",
        "sigma": "2",
        "opts": "{'mask': True, 'size': 3}",
    }
    assert described["dependencies"] == [{"name": "load", "hash": dep.hash(), "done": True}]
    assert described["state"] == "done" and described["code_matches"] is True
    assert described["computed_by"] == described["fingerprint"] == meta["fingerprint"]
    assert (described["start"], described["host"]) == (meta["start"], meta["host"])
    assert (described["result"], described["format"]) == ("int", "pickle")
    assert described["size"] == meta["size"]
    text = daskbio("show", t.hash()[:8], computed)
    assert text.splitlines()[0] == f"smooth {t.hash()}"
    assert f"  depends on: load {dep.hash()} (done)" in text
    assert f"fingerprint {meta['fingerprint']}, the same as the code now" in text
    assert "  result:     int, stored as pickle, " in text


def test_show_a_task_whose_code_changed_says_it_does_not_match(computed):
    computed.write_text(computed.read_text().replace("return sum(xs)", "return sum(xs) + 0"))
    described = json.loads(daskbio("show", "total", computed, "--json"))
    assert described["code_matches"] is False
    assert described["stale"] == "computed by other code"


def test_show_a_failed_task_prints_its_whole_traceback(tmp_path):
    file = write_pipeline(tmp_path, FAILING)
    daskbio("run", file, "--scheduler", "sync", "--keep-going", code=1)
    failed = next(iter(json.loads(daskbio("status", file, "--failed", "--json"))))
    described = json.loads(daskbio("show", failed[:6], file, "--json"))
    assert described["state"] == "failed"
    assert described["error"] == "ZeroDivisionError: division by zero"
    assert "return 1 / x" in described["traceback"]
    text = daskbio("show", failed[:6], file)
    assert "  state:      failed: ZeroDivisionError: division by zero" in text
    assert "    Traceback (most recent call last):" in text


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ("nope", "Error: no Task named 'nope' in "),
        ("load", "Error: load names 3 Tasks of "),
        ("load", ": give a hash prefix, e.g. "),
        ("0123456789abcdef", "Error: no Task of "),
    ],
)
def test_show_and_why_refuse_what_names_no_single_task_in_one_line(computed, task, message):
    for command in ("show", "why") if task != "load" else ("show",):
        err = daskbio(command, task, computed, code=1)
        assert len(err.splitlines()) == 1 and message in err


def test_an_ambiguous_hash_prefix_lists_its_candidates(tmp_path):
    # 17 Tasks: two of them share a first digit.
    file = write_pipeline(
        tmp_path, "from daskbio import TaskGenerator\n\n"
        "@TaskGenerator\ndef source(i):\n    return i\n\n"
        "xs = [source(i) for i in range(17)]\n",
    )  # fmt: skip
    store = store_of(file)
    with load(file, store, may_compute=False) as pipeline:
        hashes = sorted(t.hash() for t in pipeline.tasks)
    prefix = next(a[0] for a, b in itertools.pairwise(hashes) if a[0] == b[0])
    matches = [h for h in hashes if h.startswith(prefix)]
    err = daskbio("show", prefix, file, code=1)
    assert len(err.splitlines()) == 1
    assert f"hash prefix {prefix!r} is ambiguous: it matches {len(matches)} Tasks of " in err
    assert all(f"source {h[:12]}" in err for h in matches[:3])


def test_a_task_of_the_cache_not_made_by_the_file_is_refused(computed):
    store = store_of(computed)
    old = next(k for k, m in zip(store.keys(), store.metadata_many(store.keys()))
               if m["name"] == "total")  # fmt: skip
    smooth_pipeline(computed.parent, sigma=3)
    err = daskbio("show", old[:10], computed, code=1)
    assert f"no Task of {computed} has a hash starting {old[:10]!r}" in err
    assert f"the cache has {old}" in err


# status --failed, check, sleep-until --------------------------------------------------


@pytest.fixture
def failing(tmp_path):
    file = write_pipeline(tmp_path, FAILING)
    daskbio("run", file, "--scheduler", "sync", "--keep-going", code=1)
    return file


def test_status_failed_lists_each_failed_task_with_its_last_error_line(failing):
    store = store_of(failing)
    (key,) = store.failures()
    out = daskbio("status", failing, "--failed")
    assert out.splitlines() == [
        f"invert {key[:12]}: ZeroDivisionError: division by zero",
        f"1 Task of {failing} failed; 'daskbio show HASH {failing}' prints the whole traceback.",
    ]
    report = json.loads(daskbio("status", failing, "--failed", "--json"))
    assert list(report) == [key]
    assert report[key]["name"] == "invert"
    assert report[key]["error"] == "ZeroDivisionError: division by zero"


def test_status_failed_when_nothing_failed(computed):
    assert daskbio("status", computed, "--failed") == f"No Task of {computed} has failed.\n"


def test_check_says_how_many_tasks_failed(failing):
    out = daskbio("check", failing, code=1)
    assert out.startswith(f"2 Task(s) of {failing} not done yet; 1 of them failed (e.g. invert ")
    assert "ZeroDivisionError: division by zero), and 1 wait on a failed Task." in out


def test_sleep_until_exits_1_when_only_failures_remain(failing):
    err = daskbio("sleep-until", failing, "--interval", "0.01", code=1)
    assert err.startswith(f"Error: the 2 Task(s) of {failing} not done can only wait on failures")
    assert len(err.splitlines()) == 1


def test_tasks_that_do_not_need_a_failure_keep_sleep_until_waiting(failing):
    failing.write_text(failing.read_text() + "\nlater = source(99)\n")
    store = store_of(failing)
    with load(failing, store, may_compute=False) as pipeline:
        left = remaining(pipeline.tasks, store)
    assert len(left.missing) == 3 and len(left.failed) == 1 and len(left.blocked) == 2
    assert not left.only_failures


def test_why_reports_a_function_that_moved_to_another_module(computed):
    moved = computed.with_name("renamed.py")
    moved.write_text(computed.read_text())
    cache = computed.with_name("pipeline.daskbio")
    store = store_of(computed)
    with load(moved, store, may_compute=False) as pipeline:
        t = next(t for t in pipeline.tasks if t.name == "load")
        why = explain(t, store, pipeline.tasks)
    assert why.differences == [Difference("function", "pipeline.load", "renamed.load")]
    assert "  function: pipeline.load -> renamed.load" in daskbio(
        "why", t.hash(), moved, "--cache", cache
    )


def test_why_of_a_task_downstream_of_a_failure_names_the_failure(failing):
    (key,) = store_of(failing).failures()
    out = daskbio("why", "combine", failing)
    assert out.splitlines()[1:] == [
        "  no Task of combine is in the cache",
        f"  it needs invert {key[:12]}, which failed: ZeroDivisionError: division by zero",
    ]


def _smooth(path, sigma):
    return len(path) * sigma


def _measure(x):
    return x + 1


def test_why_finds_the_entry_each_task_replaces_when_an_upstream_parameter_changed(tmp_path):
    # More images than the values shared by "many" entries: every measure's own argument
    # is an upstream Task that changed, so only the upstream entries can tell which
    # cached measure each new one replaces.
    from daskbio import Task, compute
    from daskbio.cache import open_store
    from daskbio.provenance import explain_all, group

    store = open_store(tmp_path / "cache")
    paths = [f"img{i:04d}.tif" for i in range(150)]
    compute([Task(_measure, Task(_smooth, p, 2)) for p in paths], cache=store, scheduler="sync")
    groups = group(explain_all([Task(_measure, Task(_smooth, p, 3)) for p in paths], store))
    assert [(len(g.tasks), g.reason) for g in groups] == [
        (150, "x: upstream _smooth differs (sigma: 2 -> 3)")
    ]


NUMPY_ARGUMENT = """
import numpy as np

from daskbio import TaskGenerator

@TaskGenerator
def total(image, k):
    return float(image.sum()) * k

result = total(np.ones((3, 3)), {k})
"""


def test_a_task_with_an_array_argument_is_computed_shown_and_explained(tmp_path):
    file = write_pipeline(tmp_path, NUMPY_ARGUMENT.format(k=2))
    assert "This run computed 1 Tasks" in daskbio("run", file, "--scheduler", "sync")
    shown = daskbio("show", "total", file)
    assert "image" in shown and "array(" in shown
    file.write_text(NUMPY_ARGUMENT.format(k=3))
    assert "k: 2 -> 3" in daskbio("why", "total", file)


GONE = """
from daskbio import TaskGenerator

import shapes

@TaskGenerator
def make(n):
    return shapes.Square(n)

result = make(2)
"""


def test_show_names_a_results_type_without_unpickling_it(tmp_path):
    (tmp_path / "shapes.py").write_text(
        "class Square:\n    def __init__(self, n):\n        self.n = n\n"
    )
    file = write_pipeline(tmp_path, GONE)
    daskbio("run", file, "--scheduler", "sync")
    (tmp_path / "shapes.py").write_text("class Circle:\n    pass\n")
    import sys

    sys.modules.pop("shapes", None)
    shown = daskbio("show", "make", file)
    assert "result:    shapes.Square, stored as pickle" in shown and "n=2" in shown
    assert len(FileSystemStore(tmp_path / "pipeline.daskbio").keys()) == 1  # never unpickled
