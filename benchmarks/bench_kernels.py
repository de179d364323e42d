"""Benchmark of ``daskbio.kernels`` against mahotas (whole array) and dask-image (same chunks).

Run from the repository root (daskbio, dask-image, mahotas and rich must be installed)::

    python benchmarks/bench_kernels.py            # ~9 min, up to ~3 GiB in one process
    python benchmarks/bench_kernels.py --quick    # ~1.5 min, smaller images, shorter timeouts

It prints one table, measured in one run, of:

* ``gaussian_filter`` (sigma 2) on an 8192x8192 float32 image with 1024x1024 chunks:
  daskbio on one thread (``scheduler="sync"``) and on the threaded scheduler with one
  worker per core, against ``mahotas.gaussian_filter`` on the whole array (one thread),
  ``dask_image.ndfilters.gaussian_filter`` on the same chunks (one thread and all
  cores), and this machine's *parallel limit*: as many independent processes as there
  are cores, each running ``mahotas.gaussian_filter`` on its share of the rows (a
  chunk-aligned slab, e.g. 4096x8192 on 2 cores), all released by one barrier and timed
  from it to the last one's end. Two processes on a memory-bound filter share the
  memory bandwidth, so the limit is measured here, never assumed to be "cores x 1".
  For diagnosis only, the same share filtered chunk by chunk (1024x1024 blocks plus the
  8-pixel halo, mahotas called directly, no dask) is timed in 1 and in N processes.
* ``label`` + ``sizes`` on a 4096x4096 binary image (smoothed noise thresholded: a few
  thousand blobs of all sizes, many crossing chunk faces) at 16, 64 and 256 chunks,
  threaded, against ``mahotas.label`` + ``mahotas.labeled.labeled_size`` (whole array)
  and ``dask_image.ndmeasure.label`` + ``dask_image.ndmeasure.area`` (one area per label,
  ``index=1..n``; ``n`` is computed with the labels persisted first, as ``area`` needs a
  concrete index). Graph tasks are counted, unoptimized distinct keys, for both:
  daskbio's label graph exactly (the input's ``from_array`` tasks included) plus the
  reduction ``sizes`` adds; dask-image's label graph exactly and ``area``'s graph by
  extrapolation from index lengths 1 and 2 (it grows by the same number of tasks per
  label; building it for thousands of labels takes longer than the run, and at 256
  chunks even those two graphs take over a minute to build). The dask-image runs get 60,
  60 and 150 s (``--timeout`` sets all three; graph construction included, task counting
  excluded from both the time and the peak memory) and are reported as "> T" when
  killed, with the phases they finished. 150 s at 256 chunks leaves room for its ~80 s
  label graph construction, so the graph's size is counted.
* ``otsu`` on a 16384x16384 uint8 image (bimodal grey levels, 1024x1024 chunks) against
  ``mahotas.otsu``; dask-image has no Otsu threshold (``ndfilters.threshold_local`` is a
  local threshold), so there is no dask-image ratio for it.

Every variant runs in a fresh process (``multiprocessing`` "spawn") that loads its input
from a ``.npy`` file written once by the parent, so its peak RSS (``VmHWM``, reset with
``/proc/self/clear_refs`` once the input is loaded) is its own; the parallel-limit rows
report the sum over their processes. "+input" is the peak above the RSS with the input
loaded. Times are wall seconds, best of all repeats (median in brackets); variants are
interleaved over ``--rounds`` rounds of ``--repeats`` repeats each, so a noisy neighbour
slows every variant rather than one. Ratio columns are "reference time / this time"
(above 1: this row is faster); against the parallel limit it is the fraction of the
limit's throughput. A measuring process that dies is started again (3 attempts in all)
and its deaths are shown in its row (daskbio's threaded ``label`` used to crash inside
``mahotas.label``: see the README).

Checked on every run: daskbio's gaussian output is bit for bit mahotas' (xxh3 digests of
the outputs; dask-image's digest is compared too, for information), daskbio's label equals
``mahotas.label`` bit for bit at 256 chunks and its sizes equal mahotas' at every chunking,
dask-image finds the same number of objects (when its label finishes), and both Otsu
thresholds are equal. Targets (printed beside the results): gaussian on one thread within
15% of whole-image mahotas; gaussian on all cores at least 90% of the parallel limit;
label's graph at most 12 tasks per chunk at 256 chunks; label+sizes at least 20x faster
than dask-image's label+area at 256 chunks; a dask-image ratio for every kernel both have.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import queue as queue_module
import resource
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
SIGMA = 2.0
LABEL_GRIDS = (4, 8, 16)  # blocks per axis: 16, 64 and 256 chunks
TARGET_ONE_THREAD = 1.15  # daskbio sync within 15% of whole-image mahotas
TARGET_LIMIT = 0.90  # daskbio threaded >= 90% of the parallel limit's throughput
TARGET_TASKS_PER_CHUNK = 12
TARGET_VS_DASK_IMAGE = 20.0
PAUSE_LIMIT = 180.0  # seconds a dask-image process may spend counting its graph's tasks


@dataclass
class Sizes:
    gauss: int
    gauss_chunk: int
    label: int
    otsu: int
    otsu_chunk: int
    rounds: int
    repeats: int
    timeouts: tuple[float, ...]  # seconds for each dask-image run, one per LABEL_GRIDS


# dask-image's label graph alone takes ~80 s to build at 256 chunks: its timeout leaves room
# for that (so its size is counted); 60 s already bounds the smaller chunkings' ratios at >100x.
DEFAULT = Sizes(8192, 1024, 4096, 16384, 1024, rounds=2, repeats=3, timeouts=(60, 60, 150))
QUICK = Sizes(4096, 512, 2048, 8192, 512, rounds=1, repeats=2, timeouts=(15, 15, 15))


# --- helpers shared by the parent and the children ------------------------------------------


def _status_kib(field_name: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak() -> bool:
    """Reset this process's peak RSS to its current RSS (Linux ``clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def rss_mib() -> float:
    kib = _status_kib("VmRSS")
    return (kib or 0) / 1024


def peak_mib() -> float:
    kib = _status_kib("VmHWM")
    if kib is None:  # not Linux: the lifetime peak
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024


def digest(arr: np.ndarray) -> str:
    import xxhash

    arr = np.ascontiguousarray(arr)
    return f"{arr.dtype}{arr.shape}:{xxhash.xxh3_128_hexdigest(memoryview(arr).cast('B'))}"


def graph_keys(*collections: Any) -> set:
    keys: set = set()
    for c in collections:
        keys.update(c.__dask_graph__().keys())
    return keys


def scheduler(workers: int) -> dict[str, Any]:
    if workers == 1:
        return {"scheduler": "sync"}
    return {"scheduler": "threads", "num_workers": workers}


def timed(op, repeats: int) -> tuple[list[float], Any]:
    """Wall times of ``repeats`` calls of ``op`` and the last result (the previous one is
    dropped before each call, so two results never coexist)."""
    times, result = [], None
    for _ in range(repeats):
        result = None
        gc.collect()
        start = time.perf_counter()
        result = op()
        times.append(time.perf_counter() - start)
    return times, result


# --- children: one fresh process per measurement --------------------------------------------


def child_main(kind: str, params: dict[str, Any], out: Any) -> None:
    """Entry point of a measuring process: runs ``CHILDREN[kind]`` and reports on ``out``."""
    try:
        CHILDREN[kind](params, out.put)
    except BaseException:
        out.put({"error": traceback.format_exc()})
    finally:
        out.put({"done": True})


def _measure(op, params: dict[str, Any], emit, **extra: Any) -> Any:
    """Time ``op`` after resetting the peak RSS; emit times and memory; return the result."""
    base = rss_mib()
    exact_peak = reset_peak()
    times, result = timed(op, params["repeats"])
    emit(
        {
            "times": times,
            "peak": peak_mib(),
            "base": base,
            "exact_peak": exact_peak,
            **extra,
        }
    )
    return result


def child_gauss(p: dict[str, Any], emit) -> None:
    import dask.array as da
    import mahotas as mh

    x = np.load(p["path"])
    if p["impl"] == "mahotas":
        result = _measure(lambda: mh.gaussian_filter(x, SIGMA), p, emit)
    else:
        d = da.from_array(x, chunks=p["chunk"])
        if p["impl"] == "daskbio":
            from daskbio.kernels import gaussian_filter
        else:
            from dask_image.ndfilters import gaussian_filter
        tasks = len(graph_keys(gaussian_filter(d, SIGMA)))
        sched = scheduler(p["workers"])
        result = _measure(lambda: gaussian_filter(d, SIGMA).compute(**sched), p, emit, tasks=tasks)
    emit({"digest": digest(result), "dtype": str(result.dtype)})


def child_label(p: dict[str, Any], emit) -> None:
    import dask
    import dask.array as da
    import mahotas as mh

    b = np.load(p["path"])
    if p["impl"] == "mahotas":

        def op():
            labeled, _ = mh.label(b)
            return mh.labeled.labeled_size(labeled)

        sizes = _measure(op, p, emit)
    else:
        from daskbio.kernels import label, labeled_size

        d = da.from_array(b, chunks=p["chunk"])
        workers = p["workers"]

        def op():
            labeled, _ = label(d)
            with dask.config.set(scheduler="threads", num_workers=workers):
                return labeled_size(labeled)

        labeled, n = label(d)
        label_keys = graph_keys(labeled, n)
        try:  # the graph labeled_size computes (built by a private helper; counted only)
            from daskbio.kernels.measures import _reduce, _size_part, _size_total

            sizes_tasks = len(graph_keys(_reduce(_size_part, _size_total, labeled)) - label_keys)
        except ImportError:
            sizes_tasks = None
        sizes = _measure(op, p, emit, tasks=len(label_keys), sizes_tasks=sizes_tasks)
    emit({"digest": digest(np.asarray(sizes)), "n": len(sizes) - 1})


def child_label_verify(p: dict[str, Any], emit) -> None:
    """daskbio's label vs mahotas.label, bit for bit (sync scheduler: values, not speed)."""
    import dask.array as da
    import mahotas as mh

    from daskbio.kernels import label

    b = np.load(p["path"])
    expected, n_expected = mh.label(b)
    labeled, n = label(da.from_array(b, chunks=p["chunk"]))
    got, n_got = labeled.compute(scheduler="sync"), int(n.compute(scheduler="sync"))
    exact = n_got == n_expected and got.dtype == expected.dtype and bool((got == expected).all())
    emit(
        {
            "n": int(n_expected),
            "exact": exact,
            "sizes_digest": digest(np.asarray(mh.labeled.labeled_size(expected))),
        }
    )


def child_dask_image_label(p: dict[str, Any], emit) -> None:
    """dask-image label + area, in phases; the parent kills it at its deadline."""
    import dask
    import dask.array as da
    import dask_image.ndmeasure as ndm

    b = np.load(p["path"])
    d = da.from_array(b, chunks=p["chunk"])
    sched = scheduler(p["workers"])
    reset_peak()
    start = time.perf_counter()
    emit({"phase": "start", "t": start, "chunks": d.npartitions})
    labeled, n = ndm.label(d)
    build = time.perf_counter() - start
    emit({"phase": "label graph", "seconds": build, "peak": peak_mib()})

    # Counting is neither timed (the parent suspends its deadline from "counting" to
    # "counted") nor in the peak memory (reset afterwards; the peak before it is kept).
    count_start = time.perf_counter()
    emit({"phase": "counting", "t": count_start, "peak": peak_mib()})
    label_keys = graph_keys(labeled, n)
    emit({"label_tasks": len(label_keys)})
    area_tasks = []
    for k in (1, 2):  # area's graph grows by the same number of tasks for every label
        area = ndm.area(d, labeled, index=np.arange(1, k + 1))
        area_tasks.append(len(graph_keys(area) - label_keys))
        del area
    gc.collect()
    reset_peak()
    emit(
        {
            "phase": "counted",
            "area_1": area_tasks[0],
            "area_per_label": area_tasks[1] - area_tasks[0],
            "count_seconds": time.perf_counter() - count_start,
        }
    )

    t = time.perf_counter()
    labeled, n = dask.persist(labeled, n, **sched)
    n = int(n.compute(**sched))
    label_seconds = build + time.perf_counter() - t
    emit({"phase": "label", "seconds": label_seconds, "n": n, "peak": peak_mib()})

    t = time.perf_counter()
    area = ndm.area(d, labeled, index=np.arange(1, n + 1))
    area_build = time.perf_counter() - t
    emit({"phase": "area graph", "seconds": area_build, "peak": peak_mib()})
    t = time.perf_counter()
    sizes = np.asarray(area.compute(**sched))
    total = label_seconds + area_build + time.perf_counter() - t
    emit(
        {
            "phase": "area",
            "seconds": total,
            "peak": peak_mib(),
            "sorted_digest": digest(np.sort(sizes).astype(np.int64)),
        }
    )


def child_otsu(p: dict[str, Any], emit) -> None:
    import dask.array as da
    import mahotas as mh

    x = np.load(p["path"])
    if p["impl"] == "mahotas":
        value = _measure(lambda: mh.otsu(x), p, emit)
    else:
        from daskbio.kernels import otsu

        d = da.from_array(x, chunks=p["chunk"])
        sched = scheduler(p["workers"])
        tasks = len(graph_keys(otsu(d)))
        value = _measure(lambda: int(otsu(d).compute(**sched)), p, emit, tasks=tasks)
    emit({"value": int(value)})


def _blockwise_gaussian(slab: np.ndarray, top: int, rows: range, chunk: int, halo: int):
    """Filter ``rows`` of the image (``slab`` holds rows ``top..``) chunk by chunk, each
    chunk with a ``halo`` (none at the image's edges), as daskbio does, without dask."""
    import mahotas as mh

    height = top + slab.shape[0]  # the image's edge, or the end of the share's lower halo
    width = slab.shape[1]
    out = np.empty((len(rows), width), slab.dtype)
    for r0 in range(rows.start, rows.stop, chunk):
        r1 = min(r0 + chunk, rows.stop)
        a, b = max(r0 - halo, 0), min(r1 + halo, height)
        for c0 in range(0, width, chunk):
            c1 = min(c0 + chunk, width)
            e, f = max(c0 - halo, 0), min(c1 + halo, width)
            block = np.ascontiguousarray(slab[a - top : b - top, e:f])
            res = mh.gaussian_filter(block, SIGMA)
            out[r0 - rows.start : r1 - rows.start, c0:c1] = res[r0 - a : r1 - a, c0 - e : c1 - e]
    return out


def limit_worker(p: dict[str, Any], index: int, barrier: Any, out: Any) -> None:
    """One process of the parallel limit: its share of rows, released by ``barrier``."""
    try:
        import mahotas as mh

        full = np.load(p["path"], mmap_mode="r")
        r0, r1 = p["shares"][index]
        if p["mode"] == "whole":
            slab = np.array(full[r0:r1])
            top = r0
        else:
            top = max(r0 - p["halo"], 0)
            slab = np.array(full[top : min(r1 + p["halo"], full.shape[0])])
        del full
        base = rss_mib()
        reset_peak()
        for rep in range(p["repeats"]):
            result = None
            gc.collect()
            barrier.wait()
            start = time.perf_counter()
            if p["mode"] == "whole":
                result = mh.gaussian_filter(slab, SIGMA)
            else:
                result = _blockwise_gaussian(slab, top, range(r0, r1), p["chunk"], p["halo"])
            out.put({"rep": rep, "start": start, "end": time.perf_counter()})
        del result
        out.put({"peak": peak_mib(), "base": base})
    except BaseException:
        out.put({"error": traceback.format_exc()})
        barrier.abort()


CHILDREN = {
    "gauss": child_gauss,
    "label": child_label,
    "label-verify": child_label_verify,
    "dask-image-label": child_dask_image_label,
    "otsu": child_otsu,
}


# --- the parent: inputs, scheduling of the children, the table --------------------------------


@dataclass
class Result:
    """All measurements of one variant."""

    times: list[float] = field(default_factory=list)
    peak: float = 0.0
    base: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)
    timed_out: float | None = None  # seconds at which it was killed
    error: str | None = None

    @property
    def best(self) -> float:
        return min(self.times) if self.times else math.nan

    @property
    def median(self) -> float:
        return statistics.median(self.times) if self.times else math.nan


def exit_text(proc: Any) -> str:
    """A dead process's exit: "SIGSEGV" for a signal, else "exit 3"."""
    import signal

    code = proc.exitcode
    if code is not None and code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            pass
    return f"exit {code}"


def run_child(kind: str, params: dict[str, Any], result: Result, timeout: float | None = None):
    """Run one measuring process; merge what it reports into ``result``.

    With ``timeout``, the process is killed ``timeout`` seconds after it reports its
    ``start`` phase (plus the time it spends counting tasks, which is not measured)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=child_main, args=(kind, params, out), daemon=True)
    proc.start()
    deadline = None
    paused_at = None  # while the child counts tasks (untimed), at most PAUSE_LIMIT seconds
    hard_deadline = time.perf_counter() + (timeout or 0) + 600
    try:
        while True:
            now = time.perf_counter()
            if paused_at is not None:
                limit = paused_at + PAUSE_LIMIT
            else:
                limit = deadline if deadline is not None else hard_deadline
            if now >= limit:
                proc.kill()
                stop = now if paused_at is None else paused_at
                result.timed_out = (
                    stop - result.info["start"] - result.info.get("count_seconds", 0.0)
                )
                break
            wait = limit - now
            try:
                msg = out.get(timeout=min(wait, 5.0))
            except queue_module.Empty:
                if not proc.is_alive() and out.empty():
                    result.error = result.error or f"{kind} process died ({exit_text(proc)})"
                    break
                continue
            if msg.get("done"):
                break
            if "error" in msg:
                result.error = msg["error"]
            if "times" in msg:
                result.times.extend(msg["times"])
                result.peak = max(result.peak, msg["peak"])
                result.base = msg["base"]
            if "phase" in msg:
                result.info.setdefault("phases", []).append(msg["phase"])
                if msg["phase"] == "start":
                    result.info["start"] = msg["t"]
                    if timeout is not None:
                        deadline = msg["t"] + timeout
                if "peak" in msg:
                    result.peak = max(result.peak, msg["peak"])
                if "seconds" in msg:
                    result.info[msg["phase"] + " seconds"] = msg["seconds"]
                if msg["phase"] == "counting":
                    paused_at = msg["t"]
                if msg["phase"] == "counted":
                    paused_at = None
                    if deadline is not None:
                        deadline += msg["count_seconds"]
            result.info.update(
                {k: v for k, v in msg.items() if k not in ("times", "phase", "seconds", "t")}
            )
    finally:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
            proc.join()
    return result


def run_limit(params: dict[str, Any], workers: int, result: Result) -> Result:
    """``workers`` processes released together; per repeat, first start to last end."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    barrier = ctx.Barrier(workers)
    procs = [
        ctx.Process(target=limit_worker, args=(params, i, barrier, out), daemon=True)
        for i in range(workers)
    ]
    for proc in procs:
        proc.start()
    spans: dict[int, list[tuple[float, float]]] = {}
    peaks, bases, done = [], [], 0
    try:
        while done < workers:
            msg = out.get(timeout=600)
            if "error" in msg:
                result.error = msg["error"]
                done += 1
            elif "peak" in msg:
                peaks.append(msg["peak"])
                bases.append(msg["base"])
                done += 1
            else:
                spans.setdefault(msg["rep"], []).append((msg["start"], msg["end"]))
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    for rep in spans.values():
        if len(rep) == workers:
            result.times.append(max(e for _, e in rep) - min(s for s, _ in rep))
    result.peak = max(result.peak, sum(peaks))
    result.base = sum(bases)
    return result


def shares(n: int, chunk: int, parts: int) -> list[tuple[int, int]]:
    """Rows ``0..n`` split into ``parts`` chunk-aligned, near-equal ranges."""
    starts = list(range(0, n, chunk))
    groups = [g for g in np.array_split(np.arange(len(starts)), parts) if len(g)]
    return [(starts[g[0]], min(starts[g[-1]] + chunk, n)) for g in groups]


def make_inputs(sizes: Sizes, folder: Path, say) -> dict[str, Path]:
    import mahotas as mh

    paths = {k: folder / f"{k}.npy" for k in ("gauss", "binary", "otsu")}
    rng = np.random.default_rng(0)
    np.save(paths["gauss"], rng.random((sizes.gauss, sizes.gauss), dtype=np.float32))

    # Blobs: uniform noise smoothed (sigma 4) and thresholded at its 55th percentile.
    smooth = mh.gaussian_filter(rng.random((sizes.label, sizes.label), dtype=np.float32), 4)
    np.save(paths["binary"], smooth > np.quantile(smooth[::4, ::4], 0.55))
    del smooth

    # Bimodal grey levels (70% around 70, 30% around 170) by inverse CDF of 16-bit draws,
    # generated 1024 rows at a time.
    levels = np.arange(256) + 0.5
    erf = np.vectorize(math.erf)
    cdf = (
        0.7 * (1 + erf((levels - 70) / (20 * math.sqrt(2)))) / 2
        + 0.3 * (1 + erf((levels - 170) / (25 * math.sqrt(2)))) / 2
    )
    lut = np.searchsorted(cdf, (np.arange(65536) + 0.5) / 65536).clip(0, 255).astype(np.uint8)
    image = np.empty((sizes.otsu, sizes.otsu), np.uint8)
    for r in range(0, sizes.otsu, 1024):
        rows = image[r : r + 1024]
        rows[...] = lut[rng.integers(0, 65536, rows.shape, dtype=np.uint16)]
    np.save(paths["otsu"], image)
    say(f"inputs written to {folder}")
    return paths


def run_with_retries(
    kind: str, params: dict[str, Any], result: Result, timed: bool = True, attempts: int = 3
) -> Result:
    """``run_child``, again (up to ``attempts`` in all) when the process fails; the failures
    are kept in ``result.info["failures"]`` (a crash of daskbio is a finding, not noise)."""
    for _ in range(attempts):
        before = len(result.times)
        result.error = None
        run_child(kind, params, result)
        if result.error is None and (len(result.times) > before or not timed):
            return result
        if result.error is None:
            result.error = "no result"
        result.info.setdefault("failures", []).append(result.error.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller images, ~1.5 min")
    parser.add_argument("--rounds", type=int, help="rounds of interleaved variants")
    parser.add_argument("--repeats", type=int, help="repeats per variant and round")
    parser.add_argument(
        "--timeout",
        type=float,
        help="seconds allowed to each dask-image label+area run (default 60, 60 and 150 s "
        "at 16, 64 and 256 chunks; --quick: 15 s)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the inputs' temporary folder")
    args = parser.parse_args()
    base = QUICK if args.quick else DEFAULT
    sizes = Sizes(
        **{
            **base.__dict__,
            **{
                k: v
                for k, v in (
                    ("rounds", args.rounds),
                    ("repeats", args.repeats),
                    ("timeouts", None if args.timeout is None else (args.timeout,) * 3),
                )
                if v is not None
            },
        }
    )
    if sizes.rounds < 1 or sizes.repeats < 1 or min(sizes.timeouts) <= 0:
        parser.error("--rounds and --repeats must be at least 1, --timeout positive")

    import importlib.metadata as md

    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, width=None if sys.stdout.isatty() else 230)
    err = Console(stderr=True, highlight=False)
    say = err.log
    t_start = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="daskbio-bench-kernels-"))
    try:
        paths = make_inputs(sizes, folder, say)
        verified = run_with_retries(
            "label-verify",
            {"path": str(paths["binary"]), "chunk": sizes.label // LABEL_GRIDS[-1]},
            Result(),
            timed=False,
        )
        checks = {"n": 0, "exact": False, "sizes_digest": None, **verified.info}
        say(f"label verified: {checks}")
        results = measure_all(sizes, paths, say)
    finally:
        if args.keep:
            say(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)

    table = build_table(sizes, results, checks, Table, md)
    console.print(table)
    for line in notes(sizes, results, checks):
        console.print(line)
    console.print(
        f"Machine: {CORES} cores (sched_getaffinity), Python {sys.version.split()[0]}; "
        f"{sizes.rounds} round(s) x {sizes.repeats} repeat(s); dask-image timeouts "
        f"{'/'.join(f'{t:g}' for t in sizes.timeouts)} s; "
        f"total {time.perf_counter() - t_start:.0f} s."
    )


def measure_all(sizes: Sizes, paths: dict[str, Path], say) -> dict[str, Result]:
    r: dict[str, Result] = {}

    def get(name: str) -> Result:
        return r.setdefault(name, Result())

    reps = sizes.repeats
    g = {"path": str(paths["gauss"]), "chunk": sizes.gauss_chunk, "repeats": reps}
    halo = int(4 * SIGMA + 0.5)
    gauss_variants = [
        ("gauss mahotas", "gauss", {**g, "impl": "mahotas"}),
        ("gauss daskbio 1", "gauss", {**g, "impl": "daskbio", "workers": 1}),
        ("gauss dask-image 1", "gauss", {**g, "impl": "dask-image", "workers": 1}),
        ("gauss daskbio N", "gauss", {**g, "impl": "daskbio", "workers": CORES}),
        ("gauss dask-image N", "gauss", {**g, "impl": "dask-image", "workers": CORES}),
    ]
    limit = {**g, "mode": "whole", "shares": shares(sizes.gauss, sizes.gauss_chunk, CORES)}
    blocks_n = {**limit, "mode": "blocks", "halo": halo}
    blocks_1 = {**blocks_n, "shares": [(0, sizes.gauss)]}
    b = {"path": str(paths["binary"]), "repeats": reps, "workers": CORES}
    label_variants = [("label mahotas", "label", {**b, "impl": "mahotas"})] + [
        (
            f"label daskbio {grid}",
            "label",
            {**b, "impl": "daskbio", "chunk": sizes.label // grid},
        )
        for grid in LABEL_GRIDS
    ]
    o = {"path": str(paths["otsu"]), "chunk": sizes.otsu_chunk, "repeats": reps}
    otsu_variants = [
        ("otsu mahotas", "otsu", {**o, "impl": "mahotas"}),
        ("otsu daskbio 1", "otsu", {**o, "impl": "daskbio", "workers": 1}),
        ("otsu daskbio N", "otsu", {**o, "impl": "daskbio", "workers": CORES}),
    ]
    for rnd in range(sizes.rounds):
        say(f"round {rnd + 1}/{sizes.rounds}: gaussian")
        for name, kind, params in gauss_variants:
            run_with_retries(kind, params, get(name))
        run_limit(limit, CORES, get("gauss limit"))
        run_limit(blocks_1, 1, get("gauss blocks 1"))
        run_limit(blocks_n, CORES, get("gauss blocks N"))
        say(f"round {rnd + 1}/{sizes.rounds}: label, otsu")
        for name, kind, params in label_variants + otsu_variants:
            run_with_retries(kind, params, get(name))
    for grid, timeout in zip(LABEL_GRIDS, sizes.timeouts):
        say(f"dask-image label + area, {grid * grid} chunks (timeout {timeout:g} s)")
        params = {**b, "chunk": sizes.label // grid}
        run_child("dask-image-label", params, get(f"label dask-image {grid}"), timeout)
    for name, res in r.items():
        if res.error:
            say(f"[red]{name} failed:[/red]\n{res.error}")
    return r


# --- presentation ------------------------------------------------------------------------------


def secs(res: Result) -> str:
    if res.timed_out is not None:
        return f"> {res.timed_out:.0f}"
    if not res.times:
        return "failed"
    if len(res.times) == 1:
        return f"{res.best:.3f}"
    return f"{res.best:.3f} ({res.median:.3f})"


def ratio(ref: Result, ours: Result) -> str:
    """``ref`` time / ``ours`` time; a lower bound when ``ref`` was killed."""
    if not ours.times:
        return ""
    if ref.timed_out is not None:
        return f"> {math.floor(ref.timed_out / ours.best)}x"  # a lower bound: never round up
    if not ref.times:
        return ""
    return f"{ref.best / ours.best:.2f}x"


def ratio_value(ref: Result, ours: Result) -> float:
    if not ours.times:
        return math.nan
    if ref.timed_out is not None:
        return ref.timed_out / ours.best
    return ref.best / ours.best if ref.times else math.nan


def memory(res: Result) -> str:
    if not res.peak:
        return ""
    prefix = "≥ " if res.timed_out is not None else ""
    return f"{prefix}{res.peak:,.0f} (+{res.peak - res.base:,.0f})"


def verdict(ok: bool, text: str) -> str:
    return f"[green]{text}: met[/green]" if ok else f"[red]{text}: NOT met[/red]"


def build_table(sizes: Sizes, r: dict[str, Result], checks: dict[str, Any], Table, md) -> Any:
    import dask

    versions = ", ".join(
        f"{p} {md.version(p)}" for p in ("daskbio", "mahotas", "dask-image", "numpy", "scipy")
    )
    table = Table(
        title=f"daskbio.kernels benchmark (dask {dask.__version__}, {versions}; {CORES} cores). "
        "Wall s: best of all repeats (median); peak RSS MiB of the measuring process "
        "(+ above its input-loaded RSS); ratios = reference time / this row's time "
        "(> 1: this row faster)",
        title_justify="left",
    )
    for col, justify in (
        ("kernel", "left"),
        ("variant", "left"),
        ("wall s", "right"),
        ("graph tasks", "right"),
        ("peak RSS MiB", "right"),
        ("vs mahotas", "right"),
        ("vs parallel limit", "right"),
        ("vs dask-image", "right"),
        ("target", "left"),
    ):
        table.add_column(col, justify=justify)

    n_g = sizes.gauss
    gchunks = (n_g // sizes.gauss_chunk) ** 2
    gk = f"gaussian σ={SIGMA:g}\n{n_g}² float32\n{gchunks} chunks of {sizes.gauss_chunk}²"
    mh_g, lim = r["gauss mahotas"], r["gauss limit"]
    one, one_di = r["gauss daskbio 1"], r["gauss dask-image 1"]
    all_, all_di = r["gauss daskbio N"], r["gauss dask-image N"]
    share = shares(n_g, sizes.gauss_chunk, CORES)
    share_txt = f"{share[0][1] - share[0][0]}x{n_g}"

    def tasks(res: Result) -> str:
        return f"{res.info['tasks']:,}" if "tasks" in res.info else ""

    table.add_row(gk, "mahotas.gaussian_filter, whole array", secs(mh_g), "", memory(mh_g))
    t1 = ratio_value(mh_g, one)
    table.add_row(
        "",
        "daskbio gaussian_filter, sync (1 thread)" + failures(one),
        secs(one),
        tasks(one),
        memory(one),
        ratio(mh_g, one),
        "",
        ratio(one_di, one),
        verdict(t1 >= 1 / TARGET_ONE_THREAD, "within 15% of mahotas (≥ 0.87x)"),
    )
    table.add_row(
        "",
        "dask_image gaussian_filter, sync (1 thread)",
        secs(one_di),
        tasks(one_di),
        memory(one_di),
        ratio(mh_g, one_di),
    )
    table.add_row(
        "",
        f"parallel limit: {CORES} processes x mahotas whole {share_txt} slab",
        secs(lim),
        "",
        memory(lim),
        ratio(mh_g, lim),
    )
    frac = ratio_value(lim, all_)
    table.add_row(
        "",
        f"daskbio gaussian_filter, threads x{CORES}" + failures(all_),
        secs(all_),
        tasks(all_),
        memory(all_),
        ratio(mh_g, all_),
        ratio(lim, all_),
        ratio(all_di, all_),
        verdict(frac >= TARGET_LIMIT, "≥ 90% of the parallel limit"),
    )
    table.add_row(
        "",
        f"dask_image gaussian_filter, threads x{CORES}",
        secs(all_di),
        tasks(all_di),
        memory(all_di),
        ratio(mh_g, all_di),
        ratio(lim, all_di),
    )
    for name, what in (
        ("gauss blocks 1", "info: mahotas by chunk + halo, no dask, 1 process"),
        ("gauss blocks N", f"info: mahotas by chunk + halo, no dask, {CORES} processes"),
    ):
        res = r[name]
        table.add_row("", what, secs(res), "", memory(res), ratio(mh_g, res), ratio(lim, res), "")

    table.add_section()
    mh_l = r["label mahotas"]
    n_obj = checks["n"]
    table.add_row(
        f"label + sizes\n{sizes.label}² binary\n{n_obj:,} objects",
        "mahotas label + labeled_size, whole array",
        secs(mh_l),
        "",
        memory(mh_l),
    )
    for grid in LABEL_GRIDS:
        chunks = grid * grid
        ours, di = r[f"label daskbio {grid}"], r[f"label dask-image {grid}"]
        target = ""
        if grid == LABEL_GRIDS[-1]:
            per_chunk = ours.info.get("tasks", math.inf) / chunks
            fast = ratio_value(di, ours)
            target = (
                verdict(
                    per_chunk <= TARGET_TASKS_PER_CHUNK, f"≤ {TARGET_TASKS_PER_CHUNK} tasks/chunk"
                )
                + "\n"
                + (
                    "[yellow]≥ 20x dask-image: not shown (dask-image killed too early; "
                    "raise --timeout)[/yellow]"
                    if di.timed_out is not None and fast < TARGET_VS_DASK_IMAGE
                    else verdict(fast >= TARGET_VS_DASK_IMAGE, "≥ 20x dask-image")
                )
            )
        ours_tasks = ""
        if "tasks" in ours.info:
            ours_tasks = f"{ours.info['tasks']:,} label ({ours.info['tasks'] / chunks:.1f}/chunk)"
            if ours.info.get("sizes_tasks") is not None:
                ours_tasks += f"\n+ {ours.info['sizes_tasks']:,} sizes"
        table.add_row(
            "",
            f"daskbio label + sizes, {chunks} chunks of {sizes.label // grid}², threads x{CORES}"
            + failures(ours),
            secs(ours),
            ours_tasks,
            memory(ours),
            ratio(mh_l, ours),
            "",
            ratio(di, ours),
            target,
        )
        di_tasks = (
            "label graph built, not counted in time"
            if "label graph seconds" in di.info
            else "unknown (label graph not built)"
        )
        if "label_tasks" in di.info:
            di_tasks = (
                f"{di.info['label_tasks']:,} label ({di.info['label_tasks'] / chunks:,.0f}/chunk)"
            )
            if "area_per_label" in di.info:
                per = di.info["area_per_label"]
                total = di.info["area_1"] + (n_obj - 1) * per
                di_tasks += f"\n+ ≈{total:,} area ({per:,}/label, est.)"
        table.add_row(
            "",
            f"dask_image label + area, {chunks} chunks, threads x{CORES}\n" + dask_image_phases(di),
            secs(di),
            di_tasks,
            memory(di),
            ratio(mh_l, di),
        )

    table.add_section()
    mh_o, o1, on = r["otsu mahotas"], r["otsu daskbio 1"], r["otsu daskbio N"]
    ochunks = (sizes.otsu // sizes.otsu_chunk) ** 2
    table.add_row(
        f"otsu\n{sizes.otsu}² uint8\n{ochunks} chunks of {sizes.otsu_chunk}²",
        "mahotas.otsu, whole array",
        secs(mh_o),
        "",
        memory(mh_o),
    )
    for res, what in ((o1, "sync (1 thread)"), (on, f"threads x{CORES}")):
        table.add_row(
            "",
            f"daskbio otsu, {what}" + failures(res),
            secs(res),
            tasks(res),
            memory(res),
            ratio(mh_o, res),
            "",
            "n/a: dask-image has no Otsu",
        )
    gauss_ok = bool(one.times and one_di.times and all_.times and all_di.times)
    label_ok = all(
        r[f"label daskbio {g}"].times
        and (r[f"label dask-image {g}"].times or r[f"label dask-image {g}"].timed_out)
        for g in LABEL_GRIDS
    )
    table.add_section()
    table.add_row(
        "all",
        "ratio to dask-image for every kernel both have",
        "",
        "",
        "",
        "",
        "",
        "gaussian, label+sizes/area; otsu n/a",
        verdict(gauss_ok and label_ok, "reported"),
    )
    return table


def failures(res: Result) -> str:
    """The processes of this variant that died, e.g. "\n[red]2 of 4 processes died: ..."."""
    failed = res.info.get("failures", [])
    if not failed:
        return ""
    runs = len(failed) + (1 if res.error is None else 0)
    return f"\n[red]{len(failed)} of {runs} processes died: {'; '.join(sorted(set(failed)))}[/red]"


def dask_image_phases(res: Result) -> str:
    info = res.info
    parts = []
    if "label graph seconds" in info:
        parts.append(f"label graph built in {info['label graph seconds']:.1f} s")
    if "label seconds" in info:
        parts.append(f"label done at {info['label seconds']:.1f} s (n={info.get('n')})")
    if "area graph seconds" in info:
        parts.append(f"area graph {info['area graph seconds']:.1f} s")
    if res.timed_out is not None:
        parts.append("killed" + (" before the label graph was built" if not parts else ""))
    return "  " + "; ".join(parts) if parts else ""


def mark(ok: bool) -> str:
    return "[green]yes[/green]" if ok else "[red]NO[/red]"


def notes(sizes: Sizes, r: dict[str, Result], checks: dict[str, Any]) -> list[str]:
    lines = []
    mh_digest = r["gauss mahotas"].info.get("digest")
    same = [
        name
        for name in ("gauss daskbio 1", "gauss daskbio N")
        if r[name].info.get("digest") == mh_digest
    ]
    di_same = [
        name
        for name in ("gauss dask-image 1", "gauss dask-image N")
        if r[name].info.get("digest") == mh_digest
    ]
    dtypes = {name: r[name].info.get("dtype") for name in r if name.startswith("gauss ")}
    lines.append(
        f"gaussian: daskbio output bit-equal to mahotas' {mark(len(same) == 2)}"
        f" (sync and threads); dask-image's bit-equal to mahotas': "
        f"{'yes' if len(di_same) == 2 else 'no'}. Output dtypes: mahotas "
        f"{dtypes.get('gauss mahotas')} (mahotas keeps float32 input as float32, and its "
        f"intermediate pass too), daskbio {dtypes.get('gauss daskbio 1')}, dask-image "
        f"{dtypes.get('gauss dask-image 1')}."
    )
    size_digests = [r[f"label daskbio {g}"].info.get("digest") for g in LABEL_GRIDS]
    size_digests.append(r["label mahotas"].info.get("digest"))
    measured = [dg for dg in size_digests if dg is not None]
    sizes_ok = bool(measured) and all(dg == checks["sizes_digest"] for dg in measured)
    missing = len(size_digests) - len(measured)
    di_n = {
        g: r[f"label dask-image {g}"].info.get("n")
        for g in LABEL_GRIDS
        if "n" in r[f"label dask-image {g}"].info
    }
    lines.append(
        f"label: daskbio label == mahotas.label bit for bit at {LABEL_GRIDS[-1] ** 2} chunks: "
        f"{mark(checks['exact'])}; daskbio sizes == mahotas labeled_size at every chunking: "
        f"{mark(sizes_ok)}{f' ({missing} variant(s) without a result)' if missing else ''}; "
        "dask-image object count "
        + (
            ", ".join(
                f"{g * g} chunks: {n}{'' if n == checks['n'] else ' (MISMATCH)'}"
                for g, n in di_n.items()
            )
            or "not reached"
        )
        + f" (mahotas: {checks['n']})."
    )
    values = {name: r[name].info.get("value") for name in r if name.startswith("otsu ")}
    lines.append(
        f"otsu: thresholds {values}: "
        + ("[green]equal[/green]" if len(set(values.values())) == 1 else "[red]DIFFER[/red]")
        + "."
    )
    lines.append(
        "dask-image label + area: time includes building both graphs; area needs index=1..n, "
        "so labels are persisted and n computed first. Its area graph is a loop over the "
        "labels (one pass over the image per label), hence the extrapolated task count."
    )
    if not all(res.info.get("exact_peak", True) for res in r.values()):
        lines.append("peak RSS: /proc/self/clear_refs unavailable, peaks include input loading.")
    return lines


if __name__ == "__main__":
    main()
