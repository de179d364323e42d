"""Everything a pipeline makes pickles: TaskGenerators, Tasks and Tasklets, with pickle and
cloudpickle, defined in an importable module or in a pipeline file (run as ``__main__``)."""

from __future__ import annotations

import pickle
import subprocess
import sys

import cloudpickle
import pytest

from daskbio import Task, TaskGenerator
from tests.conftest import write_pipeline


@TaskGenerator
def double(x):
    return 2 * x


@TaskGenerator(version="3")
def triple(x):
    return 3 * x


def plain(x):
    return x


@pytest.mark.parametrize("module", [pickle, cloudpickle], ids=["pickle", "cloudpickle"])
def test_task_generators_tasks_and_tasklets_pickle(module):
    # Before: pickle.loads(pickle.dumps(TaskGenerator(f))) raised "invalid partial state",
    # and a Task of a decorated function "is not the same object as tests...double".
    assert module.loads(module.dumps(double)) is double
    assert module.loads(module.dumps(triple))(1).version == "3"
    made = [double(3), triple(double(3)), double(3)[0], Task(plain, [1, 2])]
    for task in made:
        again = module.loads(module.dumps(task))
        assert again.hash() == task.hash()
        assert again.task.f is task.task.f
        assert [d.hash() for d in again.task.dependencies()] == [
            d.hash() for d in task.task.dependencies()
        ]
    generator = module.loads(module.dumps(TaskGenerator(plain, version="2")))
    assert generator(5).hash() == TaskGenerator(plain, version="2")(5).hash()


GLOBAL_GENERATORS = """
from daskbio import TaskGenerator


@TaskGenerator
def double(x):
    return 2 * x


@TaskGenerator
def square(x):
    return x * x


# A global holding TaskGenerators, used inside a Task: it travels with the function.
STEPS = [double, square]


@TaskGenerator
def apply_all(x):
    return [step.f(x) for step in STEPS] + [len(STEPS[0](x).hash())]


results = [apply_all(i) for i in range(3)]
"""


@pytest.mark.parametrize("scheduler", ["threads", "processes", "local"])
def test_a_task_using_a_global_task_generator_runs_on_every_scheduler(tmp_path, scheduler):
    file = write_pipeline(tmp_path, GLOBAL_GENERATORS)
    run = subprocess.run(
        [sys.executable, "-m", "daskbio", "run", str(file), "--scheduler", scheduler],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    from daskbio.cache import FileSystemStore

    store = FileSystemStore(tmp_path / "pipeline.daskbio")
    values = sorted(store.load(k) for k in list(store.keys()))
    assert values == [[0, 0, 32], [2, 1, 32], [4, 4, 32]]


DASKBIO_RUN = [sys.executable, "-m", "daskbio", "run"]

START_ERRORS = """
import os
import shutil
import threading

from daskbio import Task, TaskGenerator

import only_here


def refuse():
    raise TypeError("invalid partial state")


class Broken:
    # Hashes fine, pickles fine, but cannot be unpickled (as a global list holding an
    # object whose state does not survive the trip once did).
    def __daskbio_hash__(self):
        return "broken"

    def __reduce__(self):
        return (refuse, ())


class Locked:
    # Hashes fine but cannot be pickled at all.
    def __init__(self):
        self.lock = threading.Lock()

    def __daskbio_hash__(self):
        return "locked"


@TaskGenerator
def ok(x):
    return x + 1


@TaskGenerator
def takes(x, thing):
    return x


# Workers start from a fresh interpreter: a module only this process has loaded is
# not there for them.
os.remove(only_here.__file__)
shutil.rmtree(os.path.join(os.path.dirname(only_here.__file__), "__pycache__"), True)

results = [ok(1), takes(1, Broken()), takes(2, Locked()), Task(only_here.step, 3)]
"""

ONLY_HERE = """
def step(x):
    return x * 10
"""


@pytest.mark.parametrize("scheduler", ["processes", "local"])
def test_a_task_that_cannot_be_sent_or_started_gets_a_readable_failure_record(tmp_path, scheduler):
    file = write_pipeline(tmp_path, START_ERRORS)
    write_pipeline(tmp_path, ONLY_HERE, name="only_here.py")
    run = subprocess.run(
        [*DASKBIO_RUN, str(file), "--scheduler", scheduler, "--workers", "1", "--keep-going"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "3 Tasks failed:" in run.stderr
    from daskbio.cache import FileSystemStore

    store = FileSystemStore(tmp_path / "pipeline.daskbio")
    assert sorted(store.load(k) for k in list(store.keys())) == [2]
    failures = list(store.failure_many(store.failures()).values())
    assert sorted(info["name"] for info in failures) == ["step", "takes", "takes"]
    last_lines = [info["traceback"].strip().splitlines()[-1] for info in failures]
    assert any(
        "cannot unpickle Task step" in line
        and "ModuleNotFoundError" in line
        and "installed on the workers" in line
        for line in last_lines
    ), last_lines
    assert any(
        "cannot unpickle Task takes" in line and "invalid partial state" in line
        for line in last_lines
    ), last_lines
    assert any("cannot pickle Task takes" in line and "lock" in line for line in last_lines), (
        last_lines
    )
