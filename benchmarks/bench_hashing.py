"""Benchmark of daskbio's hashing: array throughput and the cost of making a Task.

Run from the repository root::

    python benchmarks/bench_hashing.py

It measures, in one run (about 30 s, ~3 GiB of memory):

* throughput in GB/s (10^9 bytes per second) of ``hashing.digest(arr)`` on a 1 GiB
  C-contiguous float32 array, against the raw hashes of the same buffer:
  ``xxhash.xxh3_128_digest(memoryview)`` (the floor daskbio builds on) and
  ``hashlib.sha1`` (a common cryptographic alternative), with ratios to raw xxh3;
* the same for a 1 GiB Fortran-order array, which ``digest`` copies into C order first
  so that equal arrays hash equal whatever their memory order;
* the cost in microseconds per Task of making 100,000 small Tasks with a TaskGenerator,
  ``add(i, 1)``, and of a chain ``add(prev_task, i)`` (a Task argument contributes its
  hash).

Every figure is the best of several repeats. Targets (printed beside the results):
at least 4 GB/s for hashing a C-contiguous array and at most 15 µs per Task.
"""

from __future__ import annotations

import gc
import hashlib
import sys
import time

import numpy as np
import xxhash
from rich.console import Console
from rich.table import Table

from daskbio import TaskGenerator
from daskbio.graph import hashing

ARRAY_BYTES = 1 << 30  # 1 GiB
ARRAY_REPEATS = 3
N_TASKS = 100_000
TASK_REPEATS = 5
TARGET_GBPS = 4.0
TARGET_US_PER_TASK = 15.0


@TaskGenerator
def add(a, b):
    return a + b


def best_seconds(fn, repeats: int) -> float:
    """The shortest wall time of ``repeats`` calls of ``fn``."""
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def gbps(nbytes: int, seconds: float) -> float:
    return nbytes / seconds / 1e9


def make_independent_tasks() -> None:
    tasks = [add(i, 1) for i in range(N_TASKS)]
    assert len(tasks) == N_TASKS


def make_chain() -> None:
    prev = add(0, 0)
    for i in range(N_TASKS):
        prev = add(prev, i)


def verdict(ok: bool) -> str:
    return "[green]met[/green]" if ok else "[red]missed[/red]"


def time_arrays(console: Console) -> tuple[dict[str, float], int]:
    """Best times of each array hash; the arrays are freed on return."""
    side = int(np.sqrt(ARRAY_BYTES // 4))  # 16384 x 16384 float32 = 1 GiB
    console.print(f"Preparing two {ARRAY_BYTES / 2**30:.0f} GiB float32 arrays ({side}x{side})...")
    c_array = np.arange(side * side, dtype=np.float32).reshape(side, side)
    f_array = np.asfortranarray(c_array)
    assert c_array.nbytes == f_array.nbytes == ARRAY_BYTES
    assert f_array.flags.f_contiguous and not f_array.flags.c_contiguous
    nbytes = c_array.nbytes
    buffer = memoryview(c_array.reshape(-1).view(np.uint8))

    def sha1() -> None:
        hashlib.sha1(buffer).digest()

    # The digests of both orders must agree, or the comparison would be meaningless.
    assert hashing.digest(c_array) == hashing.digest(f_array)

    seconds = {
        "xxh3_raw": best_seconds(lambda: xxhash.xxh3_128_digest(buffer), ARRAY_REPEATS),
        "digest_c": best_seconds(lambda: hashing.digest(c_array), ARRAY_REPEATS),
        "sha1": best_seconds(sha1, ARRAY_REPEATS),
        "digest_f": best_seconds(lambda: hashing.digest(f_array), ARRAY_REPEATS),
    }
    buffer.release()
    return seconds, nbytes


def main() -> None:
    # Wide enough for the table when the output is piped to a file.
    console = Console(width=None if sys.stdout.isatty() else 120)
    t0 = time.perf_counter()
    seconds, nbytes = time_arrays(console)
    rate = {k: gbps(nbytes, s) for k, s in seconds.items()}

    us_independent = best_seconds(make_independent_tasks, TASK_REPEATS) / N_TASKS * 1e6
    us_chain = best_seconds(make_chain, TASK_REPEATS) / N_TASKS * 1e6

    table = Table(title="daskbio hashing benchmark (best of repeats; GB = 10^9 bytes)")
    table.add_column("measurement")
    table.add_column("result", justify="right")
    table.add_column("vs raw xxh3", justify="right")
    table.add_column("target", justify="right")
    table.add_column("status")

    def array_row(label: str, key: str, target: bool) -> None:
        table.add_row(
            label,
            f"{rate[key]:.2f} GB/s ({seconds[key] * 1e3:.0f} ms)",
            f"{rate[key] / rate['xxh3_raw']:.2f}x",
            f"≥ {TARGET_GBPS:g} GB/s" if target else "",
            verdict(rate[key] >= TARGET_GBPS) if target else "",
        )

    array_row("xxh3_128_digest(memoryview), 1 GiB float32 (raw)", "xxh3_raw", False)
    array_row("hashing.digest(arr), 1 GiB float32, C order", "digest_c", True)
    array_row("hashlib.sha1, same buffer", "sha1", False)
    array_row("hashing.digest(arr), 1 GiB float32, Fortran order (copied to C)", "digest_f", False)
    for label, us in [
        (f"TaskGenerator add(i, 1), {N_TASKS:,} Tasks", us_independent),
        (f"TaskGenerator add(prev_task, i) chain, {N_TASKS:,} Tasks", us_chain),
    ]:
        table.add_row(
            label,
            f"{us:.2f} µs/Task",
            "",
            f"≤ {TARGET_US_PER_TASK:g} µs",
            verdict(us <= TARGET_US_PER_TASK),
        )
    console.print(table)
    console.print(
        f"array repeats: {ARRAY_REPEATS}, Task repeats: {TASK_REPEATS}, "
        f"total time: {time.perf_counter() - t0:.1f} s"
    )


if __name__ == "__main__":
    main()
