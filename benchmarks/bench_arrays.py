"""Benchmark: a pipeline over an image larger than memory should fit in it: cold, warm,
and resumed after a kill.

    python benchmarks/bench_arrays.py                 # 65536 x 65536 uint16: 8 GiB on disk
    python benchmarks/bench_arrays.py --side 16384    # 512 MiB, a quick check

The input is generated once as an uncompressed Zarr v3 array (nuclei-like bright squares on
a noisy background, 2048 x 2048 chunks; kept in ``--data`` for later runs). The pipeline is
four Tasks, each returning a dask array or a small value, so every array result is written
to the cache chunk by chunk by the workers and read back lazily by the next Task::

    smoothed = smooth(IMAGE, 2.0)             # kernels.gaussian_filter -> uint16
    t = threshold(smoothed)                   # kernels.otsu
    labels = segment(smoothed, t)             # kernels.label(smoothed > t)
    result = summary(object_sizes(labels))    # kernels.labeled_size

Each run is ``daskbio run pipeline.py`` (threads, 2 workers) as a whole process, timed
with its peak resident memory (``wait4``):

* cold: empty cache;
* warm: everything cached;
* resume: a cold run killed (SIGKILL) once about half of ``smooth``'s chunks are written,
  then run again. The chunks the second run wrote are counted from the ``done`` markers'
  modification times; they must be exactly the ones that were missing at the kill.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PIPELINE = """\
import dask.array as da
import numpy as np

from daskbio import TaskGenerator, kernels

IMAGE = {image!r}


@TaskGenerator
def smooth(path, sigma):
    image = da.from_zarr(path)
    return kernels.gaussian_filter(image, sigma).round().astype(np.uint16)


@TaskGenerator
def threshold(image):
    return int(kernels.otsu(image))


@TaskGenerator
def segment(image, t):
    labeled, _ = kernels.label(image > t)
    return labeled


@TaskGenerator
def object_sizes(labeled):
    return kernels.labeled_size(labeled)


@TaskGenerator
def summary(sizes):
    return {{"objects": int((sizes[1:] > 0).sum()), "mean_size": float(sizes[1:].mean())}}


smoothed = smooth(IMAGE, 2.0)
result = summary(object_sizes(segment(smoothed, threshold(smoothed))))
"""

CHUNK = 2048


def _nuclei_chunk(block: np.ndarray, block_info: dict | None = None) -> np.ndarray:
    rng = np.random.default_rng(block_info[0]["chunk-location"])
    h, w = block.shape
    squares = rng.random((h // 32, w // 32)) < 0.3
    bright = np.kron(squares, np.ones((32, 32), np.float32))
    noise = rng.normal(0, 150, (h, w)).astype(np.float32)
    return np.clip(1000 + 3000 * bright + noise, 0, 65535).astype(np.uint16)


def make_input(path: Path, side: int) -> None:
    import dask.array as da
    import zarr

    if (path / "zarr.json").exists() and zarr.open_array(path, mode="r").shape == (side, side):
        return
    shutil.rmtree(path, ignore_errors=True)
    target = zarr.create_array(
        path, shape=(side, side), chunks=(CHUNK, CHUNK), dtype=np.uint16, compressors=None
    )
    image = da.zeros((side, side), chunks=CHUNK, dtype=np.uint16)
    da.store(image.map_blocks(_nuclei_chunk, dtype=np.uint16), target, lock=False)


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def run(folder: Path, kill_when=None) -> tuple[float, float, int, str]:
    """``daskbio run`` in ``folder``: wall seconds, peak RSS in GiB, exit status, output.
    ``kill_when()`` is polled; once true the run is killed with SIGKILL."""
    start = time.perf_counter()
    log = folder / "run.log"
    with open(log, "w") as out:
        child = subprocess.Popen(
            [str(Path(sys.executable).with_name("daskbio")), "run", "pipeline.py"],
            cwd=folder,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        while kill_when is not None:
            time.sleep(0.2)
            if child.poll() is not None:
                break
            if kill_when():
                os.kill(child.pid, signal.SIGKILL)
                break
        _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    return wall, usage.ru_maxrss / 2**20, os.waitstatus_to_exitcode(status), log.read_text()


def done_markers(cache: Path) -> list[Path]:
    groups = [g for g in cache.glob("*/*.zarr") if (g / "done").exists()]
    return [f for g in groups for f in (g / "done" / "c").rglob("*") if f.is_file()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--side", type=int, default=65536, help="image side (uint16)")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "daskbio-bench")
    args = parser.parse_args()
    if args.side % CHUNK:
        parser.error(f"--side must be a multiple of {CHUNK}")
    image = args.data / f"nuclei-{args.side}.zarr"
    args.data.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    make_input(image, args.side)
    print(f"input {image}: {du(image) / 2**30:.2f} GiB on disk ({time.perf_counter() - t:.0f} s)")

    folder = Path(tempfile.mkdtemp(prefix="daskbio-bench-arrays-", dir=args.data))
    (folder / "pipeline.py").write_text(PIPELINE.format(image=str(image)))
    cache = folder / "pipeline.daskbio"
    rows = []
    try:
        wall, rss, code, out = run(folder)
        assert code == 0, out
        result = out[out.index("Results:") :].strip()
        rows.append(("cold", wall, rss, f"cache {du(cache) / 2**30:.2f} GiB; {result}"))
        wall, rss, code, out = run(folder)
        assert code == 0 and "were cached" in out, out
        rows.append(("warm", wall, rss, out.strip().splitlines()[-1][:60]))

        shutil.rmtree(cache)
        n_chunks = (args.side // CHUNK) ** 2
        wall, rss, code, out = run(folder, lambda: len(done_markers(cache)) >= n_chunks // 2)
        killed_at = time.time()
        before = len(done_markers(cache))
        rows.append(("killed at ~half", wall, rss, f"{before}/{n_chunks} smooth chunks written"))
        wall, rss, code, out = run(folder)
        assert code == 0, out
        markers = done_markers(cache)
        rewritten = [f for f in markers if f.stat().st_mtime > killed_at]
        smooth_new = len(rewritten) - n_chunks  # the label array's chunks are all new
        rows.append(
            (
                "resumed",
                wall,
                rss,
                f"wrote {smooth_new}/{n_chunks} smooth chunks (missing: {n_chunks - before})",
            )
        )
        assert smooth_new == n_chunks - before, "the resumed run redid finished chunks"
        assert out[out.index("Results:") :].strip() == result, "resumed result differs"
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    width = max(len(r[0]) for r in rows)
    print(f"\n{args.side} x {args.side} uint16, {os.cpu_count()} CPUs, threads scheduler")
    print(f"{'run':<{width}}  {'wall s':>8}  {'peak RSS GiB':>12}  notes")
    for name, wall, rss, note in rows:
        print(f"{name:<{width}}  {wall:8.1f}  {rss:12.2f}  {note}")
    cold, warm = rows[0], rows[1]
    peak = max(r[2] for r in rows)
    print(
        f"\ntargets: peak RSS < 3 GiB: {peak:.2f} ({'met' if peak < 3 else 'NOT met'}); "
        f"warm < 5 s: {warm[1]:.2f} ({'met' if warm[1] < 5 else 'NOT met'}); "
        f"resumed/cold wall: {rows[3][1] / cold[1]:.2f}"
    )


if __name__ == "__main__":
    main()
