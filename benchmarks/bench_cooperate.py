"""Benchmark: many ``daskbio run`` processes on one cache, and ``status`` on Redis.

Run it from anywhere (daskbio must be installed; redis-server on PATH for the second part)::

    python benchmarks/bench_cooperate.py                # 10,000 leaves: 19,999 Tasks
    python benchmarks/bench_cooperate.py --leaves 2000 --runs 3

It uses the 20,000-Task pairwise reduction of ``bench_pipeline.py``, its ``add`` changed to
append one byte to a log file per execution (``O_APPEND``: whole, across processes), so the
log's size is the number of Tasks executed, by every process together.

1. **One run** of ``daskbio run pipeline.py`` on an empty cache, then **N cooperating
   runs** started together on another empty cache: the wall time of each (from the common
   start to its exit), the Tasks each says it computed, and the total executions, which
   must be 19,999 both times (each Task once) or the benchmark fails. The machine's cores
   are shared by all runs, so N runs are not expected to finish sooner than one: the point
   is that they add no work.
2. **status on Redis vs the filesystem**: the same pipeline computed into a filesystem
   cache and into a Redis store (a ``redis-server`` started here on 127.0.0.1 with a
   password, AOF off) with payloads in a folder, then ``daskbio status`` timed on each as a
   whole process (best of the repeats). The goal is Redis at most half the filesystem's
   time. Beside it, in one fresh process: the one batched query ``status`` makes of the
   store (``Store.lookup`` of every key, best of the repeats) and the import of redis-py,
   which a Redis cache adds to every command. On a local disk, listing a folder cache
   costs little; the query is where a Redis index gains on a network filesystem.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_pipeline import PIPELINE, best_of, run, script

COUNTED = "import os\n\nLOG = os.open({log!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT)\n"
COUNTED += PIPELINE.format(module="daskbio", n="{n}").replace(
    "def add(a, b):\n    return a + b", "def add(a, b):\n    os.write(LOG, b'.')\n    return a + b"
)


def executions(log: Path) -> int:
    return log.stat().st_size if log.exists() else 0


def computed(output: str) -> int:
    """N in daskbio run's 'This run computed N Tasks ...' line."""
    for line in output.splitlines():
        if line.startswith("This run computed"):
            return int(line.split()[3])
    sys.exit(f"benchmark aborted: no 'This run computed' line in:\n{output[-2000:]}")


def cooperating(daskbio: str, folder: Path, cache: Path, runs: int) -> list[tuple[float, str]]:
    """Start ``runs`` runs together; each one's wall time from the common start, and output."""
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [daskbio, "run", "pipeline.py", "--cache", str(cache)],
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(runs)
    ]
    results = []
    for p in procs:
        out, _ = p.communicate()
        results.append((time.perf_counter() - start, out))
        if p.returncode != 0:
            sys.exit(f"benchmark aborted: a cooperating run exited {p.returncode}:\n{out[-3000:]}")
    return results


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_server(folder: Path) -> tuple[subprocess.Popen, str]:
    """A redis-server on 127.0.0.1 with a random password; it and the URL of db 0."""
    port, password = free_port(), secrets.token_hex(16)
    server = subprocess.Popen(
        [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--requirepass",
            password,
            "--dir",
            str(folder),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    else:
        server.kill()
        sys.exit("benchmark aborted: redis-server did not start")
    return server, f"redis://:{password}@127.0.0.1:{port}/0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leaves", type=int, default=10000, help="Tasks: 2 * leaves - 1")
    parser.add_argument("--runs", type=int, default=4, help="cooperating runs")
    parser.add_argument("--repeats", type=int, default=5, help="status: best of")
    args = parser.parse_args()
    tasks = 2 * args.leaves - 1
    daskbio = script("daskbio")
    with tempfile.TemporaryDirectory(prefix="bench-cooperate-") as tmp:
        folder = Path(tmp)
        log = folder / "log"
        (folder / "pipeline.py").write_text(COUNTED.format(n=args.leaves, log=str(log)))

        wall, _, _, out = run(
            [daskbio, "run", "pipeline.py", "--cache", str(folder / "one")], folder
        )
        alone = executions(log)
        print(f"{tasks} Tasks, {os.cpu_count()} cores\n")
        print(f"{'':28}{'wall s':>8}{'computed':>10}{'executions':>12}")
        print(f"{'1 run':28}{wall:8.2f}{computed(out):10}{alone:12}")
        log.unlink()
        results = cooperating(daskbio, folder, folder / "many", args.runs)
        together = executions(log)
        for i, (seconds, out) in enumerate(results, 1):
            print(f"{f'{args.runs} cooperating: run {i}':28}{seconds:8.2f}{computed(out):10}")
        print(
            f"{f'{args.runs} cooperating: all':28}{max(s for s, _ in results):8.2f}"
            f"{sum(computed(o) for _, o in results):10}{together:12}"
        )
        if alone != tasks or together != tasks:
            sys.exit(
                f"NOT met: executions must be {tasks} (one run: {alone}, "
                f"{args.runs} runs: {together})"
            )
        print(f"met: every Task executed once ({tasks}), alone and by {args.runs} runs\n")

        server, url = redis_server(folder)
        try:
            redis_cache = f"{url}?payloads={folder / 'payloads'}"
            run([daskbio, "run", "pipeline.py", "--cache", redis_cache], folder)
            timings = {}
            for name, cache in (("filesystem", str(folder / "one")), ("redis", redis_cache)):
                timings[name] = best_of(
                    [daskbio, "status", "pipeline.py", "--cache", cache],
                    folder,
                    args.repeats,
                    expect=str(tasks),
                )
            lookups = store_lookups(str(folder / "one"), redis_cache, args.repeats)
        finally:
            server.terminate()
            server.wait()
        fs, rd = timings["filesystem"].wall, timings["redis"].wall
        print(f"{'status (best of ' + str(args.repeats) + ')':28}{'wall s':>8}{'lookup ms':>11}")
        print(f"{'filesystem':28}{fs:8.3f}{lookups['filesystem']:11.1f}")
        print(f"{'redis':28}{rd:8.3f}{lookups['redis']:11.1f}")
        print(f"{'import redis (ms)':28}{lookups['import redis']:19.1f}")
        verdict = "met" if rd <= fs / 2 else "NOT met"
        print(f"{verdict}: redis / filesystem = {rd / fs:.2f} (goal: at most 0.5)")


def store_lookups(folder: str, redis_cache: str, repeats: int) -> dict[str, float]:
    """In a fresh process: ms to import redis-py, and the best of ``repeats`` of the one
    batched query status makes (which keys have entries or failure records) per store."""
    code = f"""
import time
start = time.perf_counter()
import redis
imported = time.perf_counter() - start
from daskbio.cache import open_store
stores = {{"filesystem": open_store({folder!r}), "redis": open_store({redis_cache!r})}}
keys = set(stores["filesystem"].keys())
best = {{}}
for name, store in stores.items():
    for _ in range({repeats}):
        start = time.perf_counter()
        store.lookup(keys)
        best[name] = min(best.get(name, 1e9), time.perf_counter() - start)
print(imported * 1e3, best["filesystem"] * 1e3, best["redis"] * 1e3)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    imported, fs, rd = (float(x) for x in out.stdout.split())
    return {"import redis": imported, "filesystem": fs, "redis": rd}


if __name__ == "__main__":
    main()
