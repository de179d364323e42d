"""The default cache of interactive sessions: one per notebook, none where no file is known.

Notebooks run on real Jupyter kernels (nbclient); ``python -c`` and ``python -`` in real
subprocesses.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from daskbio.cache import FileSystemStore

MESSAGE = (
    "no pipeline file to put the cache beside (interactive session): pass "
    'compute(..., cache="folder") or set the Dask config key daskbio.cache'
)


def step_source(offset: int) -> str:
    return f"import daskbio\n\n@daskbio.TaskGenerator\ndef step(x):\n    return x + {offset}\n\n"


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment less any Dask setting or notebook name, plus ``extra``."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("DASK_") and k != "JPY_SESSION_NAME"
    }
    return {**env, **extra}


def write_notebook(path: Path, *cells: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)
    return path


def run_notebook(path: Path, env: dict[str, str]) -> list[dict]:
    """Run the notebook on a python3 kernel started in its folder with ``env``, as a Jupyter
    server does; return the outputs of its last cell."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=120,
        allow_errors=True,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute(env=env)
    return nb.cells[-1].outputs


def printed(outputs: list[dict]) -> str:
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, errors
    return "".join(o.text for o in outputs if o.output_type == "stream")


def test_two_notebooks_in_one_folder_each_get_their_own_cache(tmp_path):
    printed_by = {}
    for name, offset in [("first", 10), ("second", 20)]:
        notebook = write_notebook(
            tmp_path / f"{name}.ipynb", step_source(offset), "print(daskbio.compute(step(1)))"
        )
        env = clean_env(JPY_SESSION_NAME=str(notebook))
        printed_by[name] = printed(run_notebook(notebook, env)).strip()
    assert printed_by == {"first": "11", "second": "21"}
    folders = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert folders == ["first.daskbio", "second.daskbio"]
    # The two Tasks have one hash (same function name, same argument): one entry in each.
    stored = {}
    for name in ("first", "second"):
        store = FileSystemStore(tmp_path / f"{name}.daskbio")
        (key,) = store.keys()
        stored[name] = (key, store.load(key))
    assert stored["first"][0] == stored["second"][0]
    assert (stored["first"][1], stored["second"][1]) == (11, 21)


def test_a_vscode_notebook_gets_the_cache_beside_its_file(tmp_path):
    notebook = tmp_path / "analysis.ipynb"
    write_notebook(
        notebook,
        # What VS Code's Jupyter extension runs in the kernel before the first cell.
        f"__vsc_ipynb_file__ = {str(notebook)!r}",
        step_source(5) + "print(daskbio.compute(step(1)))",
    )
    assert printed(run_notebook(notebook, clean_env())).strip() == "6"
    assert (tmp_path / "analysis.daskbio").is_dir()


def test_a_kernel_without_a_notebook_name_asks_for_a_cache(tmp_path):
    notebook = write_notebook(tmp_path / "a.ipynb", step_source(1) + "daskbio.compute(step(1))")
    (error,) = [o for o in run_notebook(notebook, clean_env()) if o.output_type == "error"]
    assert (error.ename, error.evalue) == ("NoDefaultCache", MESSAGE)
    assert [p.name for p in tmp_path.iterdir()] == ["a.ipynb"]


def test_a_kernel_with_a_console_session_name_asks_for_a_cache(tmp_path):
    notebook = write_notebook(tmp_path / "a.ipynb", step_source(1) + "daskbio.compute(step(1))")
    # A JupyterLab console's session is named like this: there is no file to go beside.
    env = clean_env(JPY_SESSION_NAME=str(tmp_path / "Console 1"))
    (error,) = [o for o in run_notebook(notebook, env) if o.output_type == "error"]
    assert (error.ename, error.evalue) == ("NoDefaultCache", MESSAGE)


SCRIPT = step_source(1) + "print(daskbio.compute(step(1)))\n"


def run_python(how: str, folder: Path, env: dict[str, str], source: str = SCRIPT):
    args, stdin = ([sys.executable, "-c", source], None) if how == "-c" else (
        [sys.executable, "-"], source
    )  # fmt: skip
    return subprocess.run(
        args, input=stdin, cwd=folder, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("how", ["-c", "stdin"])
def test_python_c_and_stdin_ask_for_a_cache_and_create_none(tmp_path, how):
    # A notebook's name in the environment, as inherited by `!python -c ...` from a
    # notebook, is not this process's.
    env = clean_env(JPY_SESSION_NAME=str(tmp_path / "parent.ipynb"))
    done = run_python(how, tmp_path, env)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == f"daskbio.cache.NoDefaultCache: {MESSAGE}"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("how", ["-c", "stdin"])
def test_python_c_and_stdin_use_the_cache_given(tmp_path, how):
    given = run_python(
        how, tmp_path, clean_env(), SCRIPT.replace("step(1))", 'step(1), cache="given")')
    )
    assert (given.returncode, given.stdout) == (0, "2\n"), given.stderr
    configured = run_python(how, tmp_path, clean_env(DASK_DASKBIO__CACHE=str(tmp_path / "env")))
    assert (configured.returncode, configured.stdout) == (0, "2\n"), configured.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["env", "given"]


RESULTS = """
import os

from daskbio import TaskGenerator


@TaskGenerator
def square(x):
    with open(os.path.join(os.path.dirname(__file__), "log"), "a") as log:
        log.write(f"square {x}\\n")
    return x * x


results = [square(i) for i in range(4)]
"""


def test_a_notebook_reads_what_daskbio_run_computed_through_init(tmp_path):
    project, notebooks = tmp_path / "proj", tmp_path / "notebooks"
    project.mkdir(), notebooks.mkdir()
    (project / "pipeline.py").write_text(RESULTS)
    env = clean_env()
    subprocess.run(
        [sys.executable, "-m", "daskbio", "run", "pipeline.py"], cwd=project, env=env, check=True
    )
    path = write_notebook(
        notebooks / "analysis.ipynb",
        'import daskbio\nns = daskbio.init("../proj/pipeline.py")',
        'first = daskbio.value(ns["results"])',
        # A plain import of the pipeline module makes the same Tasks, and finds them.
        'import sys\nsys.path.insert(0, "../proj")\nimport pipeline\n'
        "second = daskbio.compute(pipeline.results)",
        "third = daskbio.value(pipeline.results[3], cache='../proj/pipeline.daskbio')\n"
        "print(first, second, third)",
    )
    assert printed(run_notebook(path, env)).strip() == "[0, 1, 4, 9] [0, 1, 4, 9] 9"
    # Nothing was computed again, and no cache was made beside the notebook.
    assert sorted((project / "log").read_text().splitlines()) == [f"square {i}" for i in range(4)]
    assert not (notebooks / "analysis.daskbio").exists()


def test_a_pipeline_file_is_compiled_as_python_compiles_it_not_with_daskbios_future(
    tmp_path, monkeypatch
):
    from daskbio.cache import MemoryStore
    from daskbio.graph.hashing import code_fingerprint
    from daskbio.pipeline import load

    (tmp_path / "annotated.py").write_text(
        "from daskbio import TaskGenerator\n\n\n@TaskGenerator\n"
        "def scale(x: int) -> int:\n    return 2 * x\n\n\nresult = scale(1)\n"
    )
    with load(tmp_path / "annotated.py", MemoryStore(), may_compute=False) as pipeline:
        loaded = pipeline.namespace["scale"].f
    monkeypatch.syspath_prepend(str(tmp_path))
    import annotated

    # Not the strings that daskbio/pipeline.py's own "from __future__ import annotations"
    # would make of them; and the same code as the module imported.
    assert loaded.__annotations__ == {"x": int, "return": int}
    assert code_fingerprint(loaded) == code_fingerprint(annotated.scale.f)
