"""Benchmark: daskbio against Jug and plain ``dask.delayed`` on a 20,000-Task pipeline.

Run it from anywhere (daskbio, jug, dask and rich must be installed)::

    python benchmarks/bench_pipeline.py                  # 10,000 leaves, best of 3 (Jug cold: 1)
    python benchmarks/bench_pipeline.py --tasks 2000 --repeats 5 --jug-cold-repeats 2

The pipeline is a pairwise reduction tree: ``add(i, 1)`` for ``i < N``, then ``add`` of
neighbours until one Task is left (``2N - 1`` Tasks; 19,999 for the default ``N = 10000``);
its value is ``N (N + 1) / 2`` (50005000 by default).

It is written into a fresh temporary folder twice: ``pipeline.py`` (``from daskbio import
TaskGenerator``) and ``jugfile.py`` (``from jug import TaskGenerator``), and each command is
timed as a whole process (``subprocess``, wall clock, best of the repeats; the user and
system CPU time of that best run are shown beside it):

* cold run: ``daskbio run pipeline.py --scheduler threads`` on an empty cache vs
  ``jug execute jugfile.py`` on an empty ``jugfile.jugdata`` (before each repeat the
  cache is moved aside, and all are deleted at the end: see ``Emptier`` for why;
  ``--delete-between`` deletes them in place instead);
* warm run: the same commands again once everything is computed;
* status: ``daskbio status pipeline.py`` vs ``jug status jugfile.py`` on the full cache;
* the same graph as plain ``dask.delayed`` (no cache) on the threaded scheduler, as a
  whole process and, inside this process, ``dask.compute`` alone (graph already built);
* for context, the start-up time of ``python -c pass`` and ``python -c "import dask"``.

Both tools' results are checked: ``daskbio check`` / ``jug check`` exit 0 and the final
Task's value, loaded from each cache, is ``N (N + 1) / 2``. The ratio column is always
"reference time / daskbio time", so above 1 means daskbio is faster. Console scripts are
taken from the folder of the running interpreter (so no pyenv shim is timed).

Cold runs create 20,000 files, so they time the filesystem as much as the tools: on this
machine's ext4 (no journal) file creation is several times slower for ~5 minutes after
many files were deleted, which includes the end of a previous run of this benchmark.
Leave a few minutes between runs when comparing cold numbers.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

PIPELINE = """\
from {module} import TaskGenerator


@TaskGenerator
def add(a, b):
    return a + b


xs = [add(i, 1) for i in range({n})]
while len(xs) > 1:
    xs = [add(xs[i], xs[i + 1]) if i + 1 < len(xs) else xs[i] for i in range(0, len(xs), 2)]
"""

DELAYED = """\
import sys
import time

import dask
from dask import delayed


def add(a, b):
    return a + b


def build(n):
    xs = [delayed(add)(i, 1) for i in range(n)]
    while len(xs) > 1:
        xs = [
            delayed(add)(xs[i], xs[i + 1]) if i + 1 < len(xs) else xs[i]
            for i in range(0, len(xs), 2)
        ]
    return xs[0]


if __name__ == "__main__":
    (result,) = dask.compute(build(int(sys.argv[1])), scheduler="threads")
    print(result)
"""

DASKBIO_VALUE = """\
import sys

from daskbio import compute
from daskbio.cache import open_store
from daskbio.pipeline import load

store = open_store(sys.argv[2])
with load(sys.argv[1], store, may_compute=False) as pipeline:
    last = pipeline.namespace["xs"][0]
    if not store.has(last.hash()):
        sys.exit("the final Task is not in the cache")
    print(compute(last, cache=store))
"""

JUG_VALUE = """\
import sys

import jug

_, space = jug.init(sys.argv[1], sys.argv[2])
print(jug.value(space["xs"][0]))
"""


@dataclass
class Timing:
    """Best-of-N wall time of a command, with the CPU times and output of that best run."""

    wall: float
    user: float
    sys: float
    runs: int
    output: str = ""
    worst: float = 0.0

    @property
    def walls(self) -> str:
        """The best wall time, and the worst one when there were several runs."""
        return f"{self.wall:.3f}" + (f" ({self.worst:.2f})" if self.runs > 1 else "")

    @property
    def cpu(self) -> str:
        return f"{self.user:.2f} / {self.sys:.2f}"


#: What a fully cached run must not import (each costs 50 to 300 ms of start-up).
HEAVY = ("dask.array", "distributed", "zarr", "rich")

#: ``daskbio run pipeline.py`` in this process, then which of HEAVY it imported.
HEAVY_IMPORTS = """
import sys
from daskbio.cli import main
try:
    main(["run", "pipeline.py"])
except SystemExit:
    pass
print(", ".join(m for m in HEAVY if m in sys.modules) or "none")
""".replace("HEAVY", repr(HEAVY))


def script(name: str) -> str:
    """The console script ``name`` beside the running interpreter, else on PATH."""
    here = Path(sys.executable).parent / name
    if here.is_file():
        return str(here)
    found = shutil.which(name)
    if found is None:
        sys.exit(f"{name} not found: install it first")
    return found


def run(cmd: list[str], cwd: Path, expect: str | None = None) -> tuple[float, float, float, str]:
    """Run ``cmd`` to completion; return wall, user and system seconds and its output.

    Exits the benchmark when the command fails or ``expect`` is not in its output.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=_ENV)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = proc.stdout + proc.stderr
    if proc.returncode != 0 or (expect is not None and expect not in out):
        sys.exit(
            f"benchmark aborted: {' '.join(cmd)} exited {proc.returncode}"
            + (f" without printing {expect!r}" if expect else "")
            + f":\n{textwrap.indent(out[-3000:], '  ')}"
        )
    return wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime, out


def best_of(
    cmd: list[str], cwd: Path, repeats: int, before_each=None, expect: str | None = None
) -> Timing:
    """The fastest of ``repeats`` runs of ``cmd``, calling ``before_each()`` (untimed) first."""
    best, worst = None, 0.0
    for _ in range(repeats):
        if before_each is not None:
            before_each()
        wall, user, system, out = run(cmd, cwd, expect)
        worst = max(worst, wall)
        if best is None or wall < best.wall:
            best = Timing(wall, user, system, repeats, out)
    assert best is not None
    best.worst = worst
    return best


class Emptier:
    """Empties a cache folder before a cold run: by moving it into a trash folder that is
    deleted at the end (default), or by deleting it in place (``delete=True``).

    Why not delete in place: on ext4 without a journal (this machine's root filesystem),
    creating a file skips every inode freed in the last 1-5 minutes (``recently_deleted``
    in ``find_inode_bit``). After a few deleted 20,000-file caches each new file costs
    ~200 us of kernel time instead of ~30 us, so the 2nd, 3rd ... cold runs, and the
    other tool's cold run after them, would time the deletions before them.
    """

    def __init__(self, trash: Path, delete: bool) -> None:
        self.trash, self.delete, self.count = trash, delete, 0

    def __call__(self, path: Path) -> None:
        if not path.exists():
            return
        if self.delete:
            shutil.rmtree(path, ignore_errors=True)
        else:
            self.trash.mkdir(exist_ok=True)
            self.count += 1
            path.rename(self.trash / f"{path.name}-{self.count}")
        if path.exists():
            sys.exit(f"could not empty {path}")


_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("DASK_", "JUG_"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000, help="leaves N (2N-1 Tasks)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each measurement")
    parser.add_argument(
        "--jug-cold-repeats", type=int, default=1, help="repeats of Jug's cold run (~25 s each)"
    )
    parser.add_argument(
        "--delete-between",
        action="store_true",
        help="delete caches in place between cold runs instead of moving them aside "
        "(slows later cold runs on ext4 without a journal; see Emptier)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    if args.tasks < 1 or args.repeats < 1 or args.jug_cold_repeats < 1:
        parser.error("--tasks and the repeats must be at least 1")

    import dask
    from rich.console import Console
    from rich.table import Table

    n, repeats = args.tasks, args.repeats
    expected = str(n * (n + 1) // 2)
    total_tasks = 2 * n - 1
    py, daskbio, jug = sys.executable, script("daskbio"), script("jug")
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=200)

    tmp = Path(tempfile.mkdtemp(prefix="daskbio-bench-"))
    try:
        (tmp / "pipeline.py").write_text(PIPELINE.format(module="daskbio", n=n))
        (tmp / "jugfile.py").write_text(PIPELINE.format(module="jug", n=n))
        (tmp / "delayed_run.py").write_text(DELAYED)
        (tmp / "daskbio_value.py").write_text(DASKBIO_VALUE)
        (tmp / "jug_value.py").write_text(JUG_VALUE)
        cache, jugdata = tmp / "pipeline.daskbio", tmp / "jugfile.jugdata"
        empty = Emptier(tmp / "trash", delete=args.delete_between)
        say = console.log

        say(f"{total_tasks} Tasks in {tmp}; {repeats} repeats, Jug cold {args.jug_cold_repeats}")
        startup_pass = best_of([py, "-c", "pass"], tmp, repeats)
        startup_dask = best_of([py, "-c", "import dask"], tmp, repeats)

        say("daskbio cold run")
        db_cold = best_of(
            [daskbio, "run", "pipeline.py", "--scheduler", "threads"],
            tmp,
            repeats,
            before_each=lambda: empty(cache),
        )
        run([daskbio, "check", "pipeline.py"], tmp)
        run([py, "daskbio_value.py", "pipeline.py", str(cache)], tmp, expect=expected)

        say("jug cold run")
        jug_cold = best_of(
            [jug, "execute", "jugfile.py"],
            tmp,
            args.jug_cold_repeats,
            before_each=lambda: empty(jugdata),
        )
        run([jug, "check", "jugfile.py"], tmp)
        run([py, "jug_value.py", "jugfile.py", str(jugdata)], tmp, expect=expected)

        say("warm runs and status")
        db_warm = best_of(
            [daskbio, "run", "pipeline.py", "--scheduler", "threads"],
            tmp,
            repeats,
            expect=f"All {total_tasks} Tasks were cached",
        )
        jug_warm = best_of([jug, "execute", "jugfile.py"], tmp, repeats)
        db_status = best_of([daskbio, "status", "pipeline.py"], tmp, repeats)
        jug_status = best_of([jug, "status", "jugfile.py"], tmp, repeats)
        run([daskbio, "check", "pipeline.py"], tmp)
        run([jug, "check", "jugfile.py"], tmp)
        heavy = run([py, "-c", HEAVY_IMPORTS], tmp)[3].strip().splitlines()[-1]

        say("dask.delayed")
        delayed_proc = best_of([py, "delayed_run.py", str(n)], tmp, repeats, expect=expected)
        delayed_build, delayed_compute = delayed_in_process(tmp / "delayed_run.py", n, repeats)
    finally:
        if args.keep:
            console.log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    def ratio(ref: float, ours: float) -> str:
        return f"{ref / ours:.2f}x"

    def verdict(ref: float, ours: float, target: float) -> str:
        if ref / ours >= target:
            return f"[green]>= {target:g}x: met[/green]"
        return f"[red]>= {target:g}x: NOT met[/red]"

    table = Table(
        title=f"daskbio {_version('daskbio')} / jug {_version('jug')} / dask {dask.__version__}: "
        f"{total_tasks} Tasks (add tree over {n} leaves). Wall seconds, best of N runs; "
        "(worst in brackets); CPU = user / sys s of the best run; "
        "ratio = reference / daskbio (> 1: daskbio faster)",
        title_justify="left",
    )
    for col, justify in (
        ("measurement", "left"),
        ("daskbio command", "left"),
        ("wall s", "right"),
        ("CPU s", "right"),
        ("reference", "left"),
        ("wall s", "right"),
        ("CPU s", "right"),
        ("ratio", "right"),
        ("target", "left"),
    ):
        table.add_column(col, justify=justify)

    def row(what, ours, ours_label, ref, ref_label, target=None, note="") -> None:
        table.add_row(
            what,
            f"{ours_label} (N={ours.runs})",
            ours.walls,
            ours.cpu,
            f"{ref_label} (N={ref.runs})",
            ref.walls,
            ref.cpu,
            ratio(ref.wall, ours.wall),
            verdict(ref.wall, ours.wall, target) if target else note,
        )

    row("cold run", db_cold, "run --scheduler threads", jug_cold, "jug execute", 3)
    row("warm run", db_warm, "run --scheduler threads", jug_warm, "jug execute", 2)
    row("status", db_status, "status", jug_status, "jug status", 2)
    table.add_section()
    row(
        "cold, no cache",
        db_cold,
        "run --scheduler threads",
        delayed_proc,
        "dask.delayed, whole process",
        note=f"cache costs {db_cold.wall - delayed_proc.wall:+.2f} s",
    )
    reported = _reported_seconds(db_cold.output)
    table.add_row(
        "cold, in-process",
        "run's own reported time",
        f"{reported:.3f}" if reported is not None else "?",
        "",
        f"dask.delayed, dask.compute only (N={repeats})",
        f"{delayed_compute:.3f}",
        "",
        ratio(delayed_compute, reported) if reported else "",
        f"vs whole run: {ratio(delayed_compute, db_cold.wall)}",
    )
    table.add_row(
        "",
        "",
        "",
        "",
        f"dask.delayed, building the graph (N={repeats})",
        f"{delayed_build:.3f}",
        "",
        "",
        "",
    )
    table.add_section()
    for label, timing in (
        ("python -c pass", startup_pass),
        ('python -c "import dask"', startup_dask),
    ):
        table.add_row(
            "start-up",
            "",
            "",
            "",
            f"{label} (N={timing.runs})",
            timing.walls,
            timing.cpu,
            "",
            "",
        )
    console.print(table)
    console.print(
        f"A fully cached daskbio run imports {heavy} of {', '.join(HEAVY)} "
        f"({'goal met' if heavy == 'none' else 'goal NOT met: none'})."
    )
    console.print(
        f"Checked: daskbio check and jug check exit 0; both final values = {expected}. "
        f"Cold caches {'deleted in place' if args.delete_between else 'moved aside'} "
        f"between repeats. Machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}."
    )


def delayed_in_process(path: Path, n: int, repeats: int) -> tuple[float, float]:
    """Best graph-build and best ``dask.compute`` times of the delayed script, in this process."""
    import runpy

    import dask

    build = runpy.run_path(str(path))["build"]
    best_build = best_compute = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        final = build(n)
        built = time.perf_counter()
        (result,) = dask.compute(final, scheduler="threads")
        done = time.perf_counter()
        if result != n * (n + 1) // 2:
            sys.exit(f"dask.delayed computed {result}, not {n * (n + 1) // 2}")
        best_build = min(best_build, built - start)
        best_compute = min(best_compute, done - built)
    return best_build, best_compute


def _reported_seconds(output: str) -> float | None:
    """The elapsed time ``daskbio run`` prints in its table title: ``FILE (8.12 s)``."""
    import re

    found = re.search(r"pipeline\.py \((\d+\.\d+) s\)", output)
    return float(found.group(1)) if found else None


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


if __name__ == "__main__":
    main()
