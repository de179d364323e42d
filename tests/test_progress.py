"""Progress while Tasks run: plain lines in logs, none with --quiet, a live table on a
terminal, chunk counts of array Tasks, and an updating table in a notebook (a real
Jupyter kernel run by nbclient)."""

from __future__ import annotations

import os
import pty
import re
import subprocess

import nbformat
from nbclient import NotebookClient

from daskbio.monitor.tally import TOTAL
from tests.conftest import DASKBIO, daskbio, write_pipeline
from tests.test_interactive import clean_env, write_notebook

PIPELINE = """
    import time

    import dask.array as da

    from daskbio import TaskGenerator


    @TaskGenerator
    def square(x):
        time.sleep(0.25)
        return x * x


    @TaskGenerator
    def fail(x):
        raise ValueError(x)


    @TaskGenerator
    def image(n):
        return da.ones((40, 30), chunks=10) * n


    results = [square(i) for i in range(N)] + [fail(1), fail(2), image(3)]
"""


def pipeline(folder, n: int):
    return write_pipeline(folder, PIPELINE.replace("N)", f"{n})"))


def last_lines(text: str) -> dict[str, str]:
    """The last progress line of each function, without its time and rate."""
    found = {}
    for line in text.splitlines():
        if match := re.fullmatch(r"progress [^:]+: (\S+) (.*)", line):
            found[match[1]] = re.sub(r", [\d.]+/(s|min)", "", match[2])
    return found


def test_progress_in_a_log_is_plain_lines_at_an_interval_with_the_final_counts(tmp_path):
    # 2 squares and the image cached; the failures are tried again.
    daskbio("run", pipeline(tmp_path, 2), "--quiet", "--keep-going")
    done = daskbio("run", pipeline(tmp_path, 6), "--keep-going", "--progress-interval", "0.2")
    assert done.returncode == 1, done.stderr  # the failures
    out = done.stdout + done.stderr
    assert "\r" not in out and "\x1b" not in out
    assert last_lines(done.stderr) == {
        "fail": "0/2 done: cached 0, loaded 0, computed 0, running 0, failed 2, remaining 0",
        "image": "1/1 done: cached 1, loaded 0, computed 0, running 0, failed 0, remaining 0",
        "square": "6/6 done: cached 2, loaded 0, computed 4, running 0, failed 0, remaining 0",
        TOTAL: "7/9 done: cached 3, loaded 0, computed 4, running 0, failed 2, remaining 0",
    }
    # A line of the total at the start, one at least every 0.2 s while 4 Tasks of 0.25 s
    # run, and one at the end.
    assert len([line for line in done.stderr.splitlines() if f": {TOTAL} " in line]) >= 3


def test_a_dask_array_task_shows_its_chunks_written(tmp_path):
    for scheduler in ("threads", "sync"):
        done = daskbio(
            "run", pipeline(tmp_path, 1), "--keep-going", "--scheduler", scheduler,
            "--cache", tmp_path / scheduler,
        )  # fmt: skip
        # 40 x 30 in chunks of 10 x 10: 12 chunks.
        assert last_lines(done.stderr)["image"].endswith(", chunks 12/12"), done.stderr
        assert last_lines(done.stderr)[TOTAL].endswith(", chunks 12/12")


def test_quiet_shows_no_progress(tmp_path):
    done = daskbio("run", pipeline(tmp_path, 2), "--keep-going", "--quiet")
    assert done.returncode == 1
    assert not re.search(r"^progress ", done.stdout + done.stderr, re.MULTILINE)
    assert "This run computed 3 Tasks." in done.stdout


def test_a_fully_cached_run_shows_no_progress(tmp_path):
    file = pipeline(tmp_path, 2).with_name("pipeline.py")
    file.write_text(file.read_text().replace(" + [fail(1), fail(2), image(3)]", ""))
    daskbio("run", file, check=True)
    again = daskbio("run", file, check=True)
    assert again.stderr == ""
    assert again.stdout.startswith("All 2 Tasks were cached")


def test_on_a_terminal_progress_is_a_live_table(tmp_path):
    file = pipeline(tmp_path, 3)
    leader, follower = pty.openpty()
    with subprocess.Popen(
        [*DASKBIO, "run", str(file), "--keep-going"],
        stdout=subprocess.DEVNULL,
        stderr=follower,
        env={**os.environ, "COLUMNS": "120", "TERM": "xterm"},
    ) as process:
        os.close(follower)
        shown = b""
        while chunk := _read(leader):
            shown += chunk
    os.close(leader)
    assert process.returncode == 1
    text = shown.decode()
    assert "\x1b[" in text  # redrawn in place
    final = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text.rsplit("daskbio:", 1)[1])
    rows = {
        cells[0]: cells[2:6]
        for line in final.splitlines()
        if len(cells := [c.strip() for c in line.split("│")[1:-1]]) > 6
    }
    # done/total, cached, running, failed
    assert rows["square"] == ["3/3", "0", "0", "0"], final
    assert rows["fail"] == ["0/2", "0", "0", "2"], final
    assert rows[TOTAL] == ["4/6", "0", "0", "2"], final
    assert "progress " not in text  # not the plain lines


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # the other end closed
        return b""


class Recording(NotebookClient):
    """Runs a notebook on a real kernel, noting every output message of its last cell."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.messages = []

    def process_message(self, msg, cell, cell_index):
        if cell_index == len(self.nb.cells) - 1:
            self.messages.append(msg)
        return super().process_message(msg, cell, cell_index)


def test_compute_in_a_notebook_shows_an_updating_table(tmp_path):
    path = write_notebook(
        tmp_path / "analysis.ipynb",
        "import time\nimport daskbio\n\n@daskbio.TaskGenerator\n"
        "def slow(x):\n    time.sleep(0.3)\n    return x\n",
        "print(daskbio.compute([slow(i) for i in range(6)], scheduler='threads', cache='c'))",
    )
    nb = nbformat.read(path, as_version=4)
    client = Recording(
        nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute(env=clean_env(), cwd=str(tmp_path))
    kinds = [m["msg_type"] for m in client.messages if "display" in m["msg_type"]]
    assert kinds[0] == "display_data" and kinds.count("display_data") == 1
    assert kinds.count("update_display_data") >= 2, kinds
    ids = {
        m["content"]["transient"]["display_id"]
        for m in client.messages
        if "display" in m["msg_type"]
    }
    assert len(ids) == 1
    final = client.messages[[m["msg_type"] for m in client.messages].index("stream") - 1]
    outputs = nb.cells[-1].outputs
    assert outputs[-1].text == "[0, 1, 2, 3, 4, 5]\n"
    table = outputs[0].data["text/html"]
    assert re.search(r">slow</td>.*?>6/6</td>", table), table
    assert final["msg_type"] == "update_display_data"
    assert final["content"]["data"]["text/html"] == table
    assert "\x1b" not in table
