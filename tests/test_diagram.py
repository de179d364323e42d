"""``daskbio graph`` and :mod:`daskbio.diagram`, on real pipelines, real stores and real ``dot``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import daskbio, write_pipeline

from daskbio import TaskGenerator
from daskbio.cache import FileSystemStore, open_store
from daskbio.diagram import (
    DONE,
    FAILED,
    FULL_LIMIT,
    PARTLY_DONE,
    RUNNING,
    WAITING,
    Edge,
    TooManyTasks,
    collapsed,
    full,
    to_graphviz,
    write,
)
from daskbio.graph.task import collect_tasks
from daskbio.pipeline import load

# Run once: sources and doubles are done, broken fails and after waits on it.
RUN = """
from daskbio import TaskGenerator

@TaskGenerator
def source(i):
    return i

@TaskGenerator
def double(x):
    return 2 * x

@TaskGenerator
def combine(xs):
    return sum(xs)

@TaskGenerator
def broken(x):
    return 1 / 0

@TaskGenerator
def after(x):
    return x

doubled = [double(source(i)) for i in range(4)]
result = combine(doubled)
bad = after(broken(result))
"""
# Then: double's code changes (its 4 results, and combine's made from them, are stale) and
# two more doubles are made (not computed).
LATER = RUN.replace("return 2 * x", "return x + x") + "extra = [double(i) for i in (10, 11)]\n"


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """A pipeline whose cache holds done, stale and failed Tasks, and that has waiting ones."""
    file = write_pipeline(tmp_path, RUN)
    out = daskbio("run", file, "--scheduler", "sync", "--keep-going")
    assert out.returncode == 1 and "ZeroDivisionError" in out.stderr, out.stderr
    file.write_text(LATER)
    return file


def loaded(file: Path):
    store = open_store(None, pipeline_file=file)
    with load(file, store, may_compute=False) as pipeline:
        return pipeline.tasks, store


def test_collapsed_counts_states_and_edges_exactly(mixed):
    tasks, store = loaded(mixed)
    diagram = collapsed(tasks, store)
    found = {
        n.name: (n.counts.total, n.counts.done, n.counts.failed, n.counts.running,
                 n.counts.waiting, n.counts.stale, n.state, n.stale)
        for n in diagram.nodes
    }  # fmt: skip
    assert found == {
        "source": (4, 4, 0, 0, 0, 0, DONE, False),
        "double": (6, 4, 0, 0, 2, 4, PARTLY_DONE, True),
        "combine": (1, 1, 0, 0, 0, 1, DONE, True),
        "broken": (1, 0, 1, 0, 0, 0, FAILED, False),
        "after": (1, 0, 0, 0, 1, 0, WAITING, False),
    }
    assert sorted(diagram.edges, key=lambda e: e.source) == [
        Edge("broken", "after", 1),
        Edge("combine", "broken", 1),
        Edge("double", "combine", 4),
        Edge("source", "double", 4),
    ]


def test_a_task_locked_by_a_live_run_is_running_in_both_views(mixed):
    tasks, store = loaded(mixed)
    extra = next(t for t in tasks if t.name == "double" and t.args == (10,))
    run = store.register_run("another-run", solo=False)
    lease = store.lock(extra.hash(), "another-run")
    try:
        by_function = {n.name: n for n in collapsed(tasks, store).nodes}
        by_task = {n.hash: n for n in full(tasks, store).nodes}
    finally:
        store.unlock(lease)
        store.unlock(run)
    assert (by_function["double"].counts.running, by_function["double"].counts.waiting) == (1, 1)
    assert by_task[extra.hash()].state == RUNNING


def test_full_has_one_node_per_task_in_its_own_state(mixed):
    tasks, store = loaded(mixed)
    diagram = full(tasks, store)
    assert [n.hash for n in diagram.nodes] == [t.hash() for t in tasks]
    states = {}
    for n in diagram.nodes:
        states.setdefault(n.name, set()).add((n.state, n.stale))
    assert states == {
        "source": {(DONE, False)},
        "double": {(DONE, True), (WAITING, False)},
        "combine": {(DONE, True)},
        "broken": {(FAILED, False)},
        "after": {(WAITING, False)},
    }
    assert len(diagram.edges) == 4 + 4 + 1 + 1
    combine = next(t for t in tasks if t.name == "combine")
    assert {e.source for e in diagram.edges if e.target == combine.hash()} == {
        d.hash() for d in combine.dependencies()
    }
    assert diagram.nodes[0].label == f"source\n{tasks[0].hash()[:8]}"


def test_dot_file_has_every_function_its_counts_colour_and_edge_counts(mixed, tmp_path):
    out = daskbio("graph", mixed, "-o", tmp_path / "graph.dot", check=True)
    assert out.stdout.strip() == f"Wrote {tmp_path / 'graph.dot'} (5 functions, 4 edges)"
    dot = (tmp_path / "graph.dot").read_text()
    assert "source -> double [label=4]" in dot
    assert "double -> combine [label=4]" in dot
    assert "combine -> broken [label=1]" in dot
    assert "broken -> after [label=1]" in dot
    double = next(line for line in dot.splitlines() if line.strip().startswith("double ["))
    assert (
        "<b>double</b><br/>6 Tasks · 4 done · 4 stale<br/>0 failed · 0 running · 2 waiting"
        in double
    )
    assert 'fillcolor="#ffd27f"' in double and "dashed" in double
    broken = next(line for line in dot.splitlines() if line.strip().startswith("broken ["))
    assert 'fillcolor="#f4a3a3"' in broken and "dashed" not in broken


def test_svg_and_png_are_drawn_by_dot(mixed, tmp_path):
    daskbio("graph", mixed, "-o", tmp_path / "graph.svg", check=True)
    daskbio("graph", mixed, "-o", tmp_path / "graph.png", check=True)
    svg = ET.parse(tmp_path / "graph.svg").getroot()
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    texts = {t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")}
    assert {"source", "double", "combine", "broken", "after", "4"} <= texts
    png = (tmp_path / "graph.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000


def test_full_on_the_command_line_draws_one_node_per_task(mixed, tmp_path):
    out = daskbio("graph", mixed, "--full", "-o", tmp_path / "tasks.dot", check=True)
    assert "(13 Tasks, 10 edges)" in out.stdout
    graph = to_graphviz(full(*loaded(mixed)))
    assert (tmp_path / "tasks.dot").read_text() == graph.source
    arrows = [line for line in graph.source.splitlines() if " -> " in line]
    assert len(arrows) == 10 and not any("label" in line for line in arrows)
    assert sum("label=" in line for line in graph.source.splitlines()) == 13 + 1  # + legend


def test_full_refuses_more_tasks_than_its_limit_in_one_line(tmp_path):
    file = write_pipeline(
        tmp_path,
        f"from daskbio import TaskGenerator\n\n@TaskGenerator\ndef f(i):\n    return i\n\n"
        f"xs = [f(i) for i in range({FULL_LIMIT + 1})]\n",
    )
    out = daskbio("graph", file, "--full", "-o", tmp_path / "tasks.svg")
    assert out.returncode == 1 and not (tmp_path / "tasks.svg").exists()
    assert out.stderr.splitlines() == [
        "Error: 2,001 Tasks are too many to draw one by one (at most 2,000): leave out --full "
        "to draw them collapsed by function"
    ]
    with pytest.raises(TooManyTasks, match="2,001 Tasks"):
        full(*loaded(file))


@pytest.mark.parametrize("name", ["graph.txt", "graph"])
def test_an_unknown_extension_is_one_error_line_and_exit_1(mixed, tmp_path, name):
    out = daskbio("graph", mixed, "-o", tmp_path / name)
    assert out.returncode == 1 and not (tmp_path / name).exists()
    assert out.stderr.splitlines() == [
        f"Error: cannot draw a graph as {name!r}: name a .svg, .png or .dot file"
    ]


def test_without_dot_svg_is_one_error_line_and_dot_text_still_works(mixed, tmp_path):
    empty = tmp_path / "no-programs"
    empty.mkdir()
    env = {**os.environ, "PATH": str(empty)}
    out = daskbio("graph", mixed, "-o", tmp_path / "graph.svg", env=env)
    assert out.returncode == 1 and not (tmp_path / "graph.svg").exists()
    [line] = out.stderr.splitlines()
    assert line.startswith("Error: graphviz's 'dot' program draws .svg files and is not installed")
    assert line.endswith("install graphviz: apt-get install graphviz")
    daskbio("graph", mixed, "-o", tmp_path / "graph.dot", env=env, check=True)
    assert (tmp_path / "graph.dot").read_text().startswith("digraph daskbio {")


def test_the_command_line_imports_graphviz_only_when_drawing(tmp_path):
    script = "import sys\nimport daskbio.cli\nprint('graphviz' in sys.modules)\n"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


@TaskGenerator
def read(i):
    return i


@TaskGenerator
def smooth(x):
    return x


@TaskGenerator
def measure(x, raw):
    return x


@TaskGenerator
def table(xs):
    return xs


def test_100000_tasks_collapse_to_one_node_per_function(tmp_path):
    n = 33_334
    with collect_tasks() as tasks:
        raw = [read(i) for i in range(n)]
        measured = [measure(smooth(r), r) for r in raw]
        table(measured)
    assert len(tasks) == 3 * n + 1 > 100_000
    store = FileSystemStore(tmp_path / "cache")
    for t in raw[:10]:
        store.save(t.hash(), 0)
    store.record_failure(tasks[-1].hash(), {"error": "MemoryError"})
    diagram = collapsed(tasks, store)
    assert [(n.name, n.counts.total, n.counts.done, n.state) for n in diagram.nodes] == [
        ("read", n, 10, PARTLY_DONE),
        ("smooth", n, 0, WAITING),
        ("measure", n, 0, WAITING),
        ("table", 1, 0, FAILED),
    ]
    assert {(e.source, e.target): e.count for e in diagram.edges} == {
        ("read", "smooth"): n,
        ("read", "measure"): n,
        ("smooth", "measure"): n,
        ("measure", "table"): n,
    }
    drawn = write(diagram, tmp_path / "graph.svg")
    assert ET.parse(drawn).getroot().tag == "{http://www.w3.org/2000/svg}svg"


def test_the_docs_example_prints_its_counts_and_draws_the_svg(tmp_path):
    page = (Path(__file__).parents[1] / "docs" / "graph.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", page, re.S)
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=tmp_path, capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    printed = page.split("prints\n\n```\n")[1].split("```")[0]
    assert out.stdout == printed
    assert ET.parse(tmp_path / "graph.svg").getroot().tag == "{http://www.w3.org/2000/svg}svg"
