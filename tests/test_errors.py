"""Errors a user can cause on the command line are a short ``Error:`` and exit status 1,
with ``-v`` for the full traceback (issue 11, item 6). Misspelt schedulers, unreachable
ones, a cache path that is a file and a file with no Task: tests/test_cli.py."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import daskbio, write_pipeline

FEW = 10  # lines: "a few", however deep the error was raised


def _error(result: subprocess.CompletedProcess) -> list[str]:
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines and lines[0].startswith("Error: "), result.stderr
    assert len(lines) <= FEW, result.stderr
    return lines


SYNTAX_ERROR = """\
from daskbio import TaskGenerator


@TaskGenerator
def f(x):
    return x + 1


results = [f(i) for i in range(3)
"""


@pytest.mark.parametrize("command", ["run", "status", "check", "cleanup"])
def test_a_syntax_error_shows_the_file_line_and_caret(tmp_path, command):
    file = write_pipeline(tmp_path, SYNTAX_ERROR)
    lines = _error(daskbio(command, file))
    assert lines == [
        f"Error: the pipeline {file} has a syntax error:",
        f'  File "{file}", line 9',
        "    results = [f(i) for i in range(3)",
        "              ^",
        "SyntaxError: '[' was never closed",
    ]


RAISES = """\
import numpy as np

from daskbio import TaskGenerator


def sizes(n):
    return np.zeros(n).reshape(7, 3)


@TaskGenerator
def f(x):
    return x + 1


shape = sizes(4)
"""


def test_an_error_at_import_shows_only_the_pipelines_frames(tmp_path):
    file = write_pipeline(tmp_path, RAISES)
    lines = _error(daskbio("run", file))
    assert lines[0] == f"Error: the pipeline {file} raised an error:"
    assert lines[-1] == "ValueError: cannot reshape array of size 4 into shape (7,3)"
    frames = [line for line in lines if line.startswith("  File ")]
    assert frames == [
        f'  File "{file}", line 15, in <module>',
        f'  File "{file}", line 7, in sizes',
    ]
    assert not any("daskbio/" in line or "numpy" in line for line in frames)


def test_dash_v_gives_the_full_traceback(tmp_path):
    file = write_pipeline(tmp_path, RAISES)
    result = daskbio("run", file, "-v")
    assert result.returncode == 1
    full, _, short = result.stderr.partition("Error: the pipeline")
    assert "daskbio/pipeline.py" in full  # daskbio's own frames, too
    assert short.startswith(f" {file} raised an error:")
    # -v before the command works as well
    assert "daskbio/pipeline.py" in daskbio("-v", "status", file).stderr


UNSTORABLE = """\
from daskbio import TaskGenerator


@TaskGenerator
def squares(n):
    return (i * i for i in range(n))


@TaskGenerator
def handle(path):
    return open(path)


results = [squares(3), handle(__file__)]
"""


@pytest.mark.parametrize(
    ("keep_going", "expected"),
    [
        (
            [],
            [
                "squares returned a generator, an iterator (used up once read), which cannot be "
                "stored: return a list, e.g. list(...)"
            ],
        ),
        (["--keep-going"], ["return a list, e.g. list(...)", "handle returned an open file ("]),
    ],
)
def test_a_result_that_cannot_be_stored_says_what_to_return(tmp_path, keep_going, expected):
    file = write_pipeline(tmp_path, UNSTORABLE)
    result = daskbio("run", file, "--scheduler", "sync", *keep_going)
    assert result.returncode == 1
    errors = result.stderr.strip().splitlines()
    assert len(errors) <= FEW, result.stderr
    for message in expected:
        assert any(message in line for line in errors), result.stderr
    assert "Traceback" not in result.stderr or "only your code" in result.stderr


def test_a_read_only_cache_is_one_error_line_and_what_is_cached_still_reads(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    file = write_pipeline(
        tmp_path,
        "from daskbio import TaskGenerator\n\n\n@TaskGenerator\ndef f(x):\n    return x + 1\n\n\n"
        "results = [f(i) for i in range(N)]\n".replace("N", "2"),
    )
    daskbio("run", file, "--cache", cache, check=True)
    file.write_text(file.read_text().replace("range(2)", "range(4)"))
    try:
        subprocess.run(["mount", "--bind", str(cache), str(cache)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"cannot bind-mount here: {e}")
    try:
        subprocess.run(
            ["mount", "-o", "remount,bind,ro", str(cache)], check=True, capture_output=True
        )
        result = daskbio("run", file, "--cache", cache)
        lines = [line for line in result.stderr.splitlines() if line.startswith("Error")]
        assert result.returncode == 1
        assert lines == [
            f"Error: cannot write to the cache {cache}: Read-only file system (what is cached "
            "can still be read: status, show, value())"
        ], result.stderr
        assert "Traceback" not in result.stderr
        status = daskbio("status", file, "--cache", cache, "--json", check=True)
        assert '"done": 2' in status.stdout
    finally:
        subprocess.run(["umount", str(cache)], check=True)


def test_dash_vv_logs_what_daskbio_does_under_the_daskbio_logger(tmp_path):
    file = write_pipeline(
        tmp_path,
        "from daskbio import TaskGenerator\n\n\n@TaskGenerator\ndef f(x):\n    return x + 1\n\n\n"
        "results = [f(i) for i in range(3)]\n",
    )
    quiet = daskbio("run", file, "--cache", tmp_path / "quiet", check=True)
    assert "daskbio INFO" not in quiet.stderr
    loud = daskbio("run", file, "-v", check=True)
    assert f"daskbio INFO: {file} made 3 Tasks" in loud.stderr
    assert "daskbio INFO: plan: 3 Tasks to compute" in loud.stderr
    again = daskbio("run", file, "-vv", check=True)
    assert "daskbio INFO: plan" not in again.stderr  # all cached: nothing planned
    assert f"daskbio INFO: {file} made 3 Tasks" in again.stderr


def test_every_command_takes_dash_v():
    from daskbio.cli import commands

    every = list(commands().items())
    while every:
        name, command = every.pop()
        assert "verbose" in [p.name for p in command.params], name
        every += [(f"{name} {n}", c) for n, c in getattr(command, "commands", {}).items()]
    assert {"show", "share"} <= set(commands()["key"].commands)  # checked above too


def test_a_misspelt_command_suggests_the_right_one():
    result = daskbio("stauts", "pipeline.py")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "Error: no command 'stauts': did you mean 'status'?"
    )


IN_MEMORY = """\
import io

from daskbio import TaskGenerator


@TaskGenerator
def render(x):
    return io.BytesIO(b"png" * x)


result = render(2)
"""


def test_a_buffer_in_memory_is_stored_not_refused_as_an_open_file(tmp_path):
    file = write_pipeline(tmp_path, IN_MEMORY)
    daskbio("run", file, "--scheduler", "sync", check=True)
    from daskbio.cache import FileSystemStore

    store = FileSystemStore(tmp_path / "pipeline.daskbio")
    (key,) = store.keys()
    assert store.load(key).getvalue() == b"pngpng"


VALUE_FAILS = """\
from daskbio import TaskGenerator, value


@TaskGenerator
def boom(x):
    raise ValueError(f"bad {x}")


if value(boom(1)):
    pass
"""


def test_a_task_failing_under_value_while_the_file_loads_is_a_short_error(tmp_path):
    file = write_pipeline(tmp_path, VALUE_FAILS)
    lines = _error(daskbio("run", file, "--scheduler", "sync", "--quiet"))
    assert lines[0].startswith("Error: Task boom (") and lines[-2:] == [
        "ValueError: bad 1",
        "(-v: the full traceback)",
    ]


TWICE = """\
from daskbio import TaskGenerator


@TaskGenerator
def step(x):
    return x


a = step(1)


@TaskGenerator
def step(x):
    return x + 1


b = step(1)
"""


def test_a_function_defined_twice_is_one_error_line(tmp_path):
    file = write_pipeline(tmp_path, TWICE)
    assert _error(daskbio("status", file)) == [
        "Error: pipeline.py defines step twice (lines 4 and 12), and Tasks of both share one "
        "identity (pipeline.step), so they would share cached results; rename one"
    ]
