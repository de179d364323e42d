"""The NETs study (Coelho et al. 2015) as a daskbio pipeline.

Coelho, L. P., Pato, C., Friães, A., Neumann, A., von Köckritz-Blickwede, M., Ramirez, M.
and Carriço, J. A. "Automatic determination of NET (neutrophil extracellular traps)
coverage in fluorescent microscopy images", Bioinformatics 31(14):2364-2370, 2015,
doi:10.1093/bioinformatics/btv156. Cite the paper when you use this pipeline or its data.
This file is written from the paper's description; it is not the study's original code.

What it computes
----------------
For each of the 88 fields (30 experiments, the ``sample`` column of
``daskbio.datasets.nets()``) the target is the fraction of pixels inside the NET regions
a person drew (``rois > 0``). Six methods break each image into pieces, describe every
piece by a feature vector and label it with its local NET fraction:

- ``pixel``: the centres of a regular grid of cells (every ``NETS_PIXEL_STEP``-th pixel,
  default 8), described by a filter bank on both channels (thresholds at the mean and at
  mean + 2 sd, z-score, Gaussians of the z-score at sigma 1, 2, 4 and 8, a difference of
  Gaussians, the squared Sobel gradient of the channel scaled to [0, 1] by the field's
  range, as ``mahotas.sobel``); the label is the NET fraction of the cell;
- ``regions``: an oversegmentation (seeded watershed of the smoothed histone channel from
  a regular grid of seeds, ``NETS_REGION_SEEDS`` pixels apart, default 24; regions under
  ``NETS_REGION_MIN_SIZE`` pixels dropped), described on both channels by Haralick
  texture, intensity and Sobel statistics, the channels' overlap (their correlation, and
  the fraction of pixels above the mean in both) and the region's size; the label is the
  region's NET fraction, and the image's prediction is weighted by region size;
- ``surf(1)``, ``surf(2)``, ``surf(4)``, ``surf(8)``: dense SURF descriptors
  (``daskbio.kernels.surf_dense``, ``NETS_SURF_SPACING`` pixels apart, default 16) of
  the histone channel (and, with ``NETS_FULL=1``, of the DNA channel at the same
  points); the label is the NET fraction of
  a window of half-width 10 x scale around each point.

Per method a random forest regressor (scikit-learn) is trained on the pieces of the
training images and predicts the pieces of each held-out image, averaged into the
image's predicted NET fraction (``raw``). A least-squares line fit on the training
images (their predictions from an inner, grouped cross-validation against their targets)
corrects it (``corrected``, clipped to [0, 1]). The six methods are combined by a
linear regression fit on the same inner predictions of the training images
(``combined``, ``corrected``; its ``raw`` row is the plain mean of the six raw
predictions). Validation is
leave-one-experiment-out (``by-experiment``, the honest one: images of one experiment are
alike) and, for contrast, leave-one-image-out (``by-image``). Baselines: a second person's
labelling of the 37 doubly labelled fields as the prediction of the first's (``human``,
``second-person``), and the foreground fraction of a Bernsen local threshold of the
histone channel (``bernsen``, raw and with the same linear correction). Scores over all
images: Q² = 1 - SSE/SST and R² = the squared Pearson correlation.

The features are computed with ``daskbio.kernels`` (``gaussian_filter``, ``convolve``,
``bernsen``, ``surf_dense``, ``region_table``), which give what mahotas gives on the whole
image, chunk by chunk, so the same code serves a field and a mosaic larger than memory
(``NETS_MOSAIC``, below).

Every step is a Task: one per (method, image) for the features, one per (method, fold)
for training and predicting, one per fold for the corrections and the combination, then
the evaluation and the report. Tasks take file paths and small parameters, so changing
one method's parameter (e.g. ``NETS_PIXEL_STEP=16``) recomputes only that method's
Tasks and what is computed from them (the folds' combinations, the scores, the report);
``NETS_SURF_SPACING`` is shared by the four SURF methods.

Running it
----------
From the repository root, with the data at hand (``DASKBIO_DATA`` names the folder
holding ``nets/``; without it, ``daskbio.datasets.nets()`` downloads them)::

    DASKBIO_DATA=/work/shared/data daskbio run examples/nets/pipeline.py
    daskbio status examples/nets/pipeline.py

At its defaults it takes about 11 minutes on 2 cores (1569 Tasks; a second run takes
about a second, all cached); with ``NETS_FULL=1``, hours. It writes into
``examples/nets/results/``: ``results.csv`` (columns
``method,validation,correction,q2,r2``), ``results.md`` (the same as a Markdown table),
``predictions.csv`` (each image's target and predictions), ``predicted-vs-human.png``,
``q2.png`` (Q² per method, raw and corrected) and ``residuals.png`` (the scatter matrix
of the methods' residuals with their correlations). The cache is
``examples/nets/pipeline.daskbio/``. The report is a Task too: if you delete the
``results/`` folder, ``daskbio invalidate report examples/nets/pipeline.py`` and run again.

Settings (environment variables, read when the pipeline file is loaded):

- ``NETS_FULL=1``: settings closer to the paper's (200 trees grown fully, a third of
  the features tried per split, up to 2000 training pieces per image, 5 inner folds,
  SURF of the DNA channel too) instead of the defaults (20 trees, sqrt of the features
  per split, leaves of at least 5 pieces, at most 80 training pieces per image, 2 inner
  folds whose held-out images are predicted from 80 pieces each, SURF of the histone
  channel only). The defaults trade accuracy (noisier, smaller forests trained on few
  pieces) for a run of minutes instead of hours; the held-out images of the outer
  cross-validation are always predicted from all their pieces.
- ``NETS_SURF_DNA=1``: SURF descriptors of the DNA channel as well, at the defaults.
- ``NETS_TREES``, ``NETS_PIECES``, ``NETS_INNER_FOLDS``: override those three.
- ``NETS_SAMPLES``: only some experiments, ``4`` for the first four or ``9,10,11`` for
  those (a quick look, and the tests).
- ``NETS_MOSAIC=16384``: the study at scale. One Task tiles the fields into a 16384 x
  16384 mosaic (any multiple of 512 with a tile per field), written by
  ``daskbio.io.to_ome_zarr`` to ``results-mosaic-16384/mosaic.ome.zarr`` (channels DNA
  and histone, the first person's regions as the label image ``rois``, a pyramid for
  viewers such as napari): tile ``t`` is field ``t % n`` turned by one of the square's 8
  symmetries, so each field has several distinct copies (11 or 12 of the 88 at 16384).
  Each feature Task reads its field's copies from the mosaic, each with the margin
  around it that its kernels reach (the neighbouring tiles), so a copy's features are
  those of the whole mosaic (``tests/test_nets_mosaic.py`` checks them against mahotas
  on the whole mosaic); no Task holds more than a few tiles, though the filter bank of
  the whole mosaic (18 float64 images of 16384²) would take 36 GiB. The oversegmentation
  stays within each copy. Learning and evaluation are unchanged (per field, all its
  copies' pieces); the report goes to ``results-mosaic-16384/``. With
  ``daskbio submit --cluster slurm`` the feature Tasks spread over the jobs.
- ``NETS_PIXEL_STEP``, ``NETS_REGION_SEEDS``, ``NETS_REGION_MIN_SIZE``,
  ``NETS_SURF_SPACING``, ``NETS_BERNSEN_RADIUS``, ``NETS_BERNSEN_CONTRAST``: the
  methods' parameters.

Simplifications against the paper: the forests are smaller and trained on subsampled
pieces (above); the per-method correction and the combination are fit on inner
cross-validated predictions of the training images; the feature sets follow the paper's
description, not its code.
"""

import os
from pathlib import Path

import mahotas as mh
import numpy as np

import daskbio
from daskbio import TaskGenerator
from daskbio.datasets import nets

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def _int(name, default):
    return int(os.environ.get(name, default))


FULL = os.environ.get("NETS_FULL") == "1"
FOREST = {
    "n_estimators": _int("NETS_TREES", 200 if FULL else 20),
    "max_pieces": _int("NETS_PIECES", 2000 if FULL else 80),
    "inner_folds": _int("NETS_INNER_FOLDS", 5 if FULL else 2),
    "min_samples_leaf": 1 if FULL else 5,
    "max_features": 0.33 if FULL else "sqrt",
    "seed": 0,
}
PIXEL_STEP = _int("NETS_PIXEL_STEP", 8)
REGION_SEEDS = _int("NETS_REGION_SEEDS", 24)
REGION_MIN_SIZE = _int("NETS_REGION_MIN_SIZE", 16)
REGION_SIGMA = 2.0
SURF_SPACING = _int("NETS_SURF_SPACING", 16)
SURF_SCALES = (1, 2, 4, 8)
SURF_DNA = FULL or os.environ.get("NETS_SURF_DNA") == "1"
BERNSEN_RADIUS = _int("NETS_BERNSEN_RADIUS", 15)
BERNSEN_CONTRAST = _int("NETS_BERNSEN_CONTRAST", 16)
METHODS = ("pixel", "regions", *(f"surf({s})" for s in SURF_SCALES))
MOSAIC = _int("NETS_MOSAIC", 0)
MOSAIC_CHUNK = 1024
TILE = 512  # the fields' side
SIGMAS = (1, 2, 4, 8)  # the filter bank's Gaussians
GAUSSIAN_REACH = int(4 * max(SIGMAS) + 0.5)  # mahotas' truncation radius
if MOSAIC:
    RESULTS = HERE / f"results-mosaic-{MOSAIC}"


def _selected(fields):
    """The fields of the experiments ``NETS_SAMPLES`` names (all by default)."""
    chosen = os.environ.get("NETS_SAMPLES", "").strip()
    if not chosen:
        return fields
    if "," in chosen:
        keep = [int(s) for s in chosen.split(",") if s.strip()]
    else:
        keep = sorted(fields["sample"].unique())[: int(chosen)]
    return fields[fields["sample"].isin(keep)].reset_index(drop=True)


def _read(path):
    image = mh.imread(path)
    return image if image.ndim == 2 else image[..., 0]


def _fraction_in_windows(mask, ys, xs, half):
    """The fraction of ``mask`` inside the square of half-width ``half`` around each point
    (clipped to the image), from an integral image."""
    integral = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1))
    integral[1:, 1:] = mask.cumsum(0).cumsum(1)
    y0 = np.clip(ys - half, 0, mask.shape[0])
    y1 = np.clip(ys + half + 1, 0, mask.shape[0])
    x0 = np.clip(xs - half, 0, mask.shape[1])
    x1 = np.clip(xs + half + 1, 0, mask.shape[1])
    inside = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
    return inside / ((y1 - y0) * (x1 - x0))


def _pieces(features, labels, weights=None):
    features = np.nan_to_num(np.asarray(features, dtype=np.float32))
    weights = np.ones(len(labels)) if weights is None else weights
    return {"X": features, "y": np.asarray(labels, np.float32), "w": np.asarray(weights, float)}


def _joined(parts):
    """The pieces of every copy of a field, as one set."""
    return {k: np.concatenate([p[k] for p in parts]) for k in ("X", "y", "w")}


# --- Where a field's pixels come from: its files, or its copies in a mosaic ---------------


def _layout(n_fields, side):
    """Which field fills each tile of a ``side`` x ``side`` mosaic, row by row: tile ``t``
    is field ``t % n_fields`` turned by the ``(t // n_fields) % 8``-th symmetry of the
    square, so that copies of a field differ."""
    per_side = side // TILE
    return [
        [((r * per_side + c) % n_fields, ((r * per_side + c) // n_fields) % 8)
         for c in range(per_side)]
        for r in range(per_side)
    ]  # fmt: skip


def _turned(image, symmetry):
    image = np.rot90(image, symmetry % 4)
    return np.ascontiguousarray(image.T if symmetry >= 4 else image)


def _tile(path, symmetry, as_labels=False):
    image = _read(path)
    return _turned(image > 0 if as_labels else image, symmetry).astype(np.uint8)


@TaskGenerator
def mosaic(fields, side, path):
    """Tile the fields into one ``side`` x ``side`` OME-Zarr image (channels DNA and
    histone, the first person's regions as the label image ``rois``), written chunk by
    chunk by ``daskbio.io.to_ome_zarr``; returns its path."""
    import dask
    import dask.array as da

    from daskbio.io import to_ome_zarr

    layout = _layout(len(fields), side)

    def channel(name, as_labels=False):
        return da.block([
            [da.from_delayed(dask.delayed(_tile)(fields[i][name], k, as_labels),
                             (TILE, TILE), np.uint8) for i, k in row]
            for row in layout
        ])  # fmt: skip

    chunk = min(side, MOSAIC_CHUNK)
    image = da.stack([channel("dna"), channel("protein")])
    writing = to_ome_zarr(
        image,
        path,
        axes="cyx",
        chunks=(1, chunk, chunk),
        labels={"rois": channel("rois", as_labels=True)},
        overwrite=True,
        compute=False,
    )
    writing.compute(scheduler="threads")  # the other Tasks wait for this one
    return path


def _copies(source, margin, align=1):
    """Each copy of a field as dask arrays ``(dna, protein, rois, box)``: the arrays hold
    the copy and at least ``margin`` pixels of the mosaic around it, where there are (the
    window starts at a multiple of ``align``, so grids of points fall where they fall on
    the whole mosaic); ``box`` is the copy within them. A kernel whose reach is at most
    ``margin``, applied to the window and cut to ``box``, gives what it gives on the whole
    mosaic."""
    import dask.array as da

    if "mosaic" not in source:
        arrays = [da.from_array(_read(source[c])) for c in ("dna", "protein")]
        yield *arrays, da.from_array(_read(source["rois"]) > 0), (slice(None), slice(None))
        return
    from daskbio.io import imread

    if not os.path.isdir(source["mosaic"]):
        raise FileNotFoundError(
            f"the mosaic {source['mosaic']} is gone: write it again with "
            f"`daskbio invalidate mosaic {__file__}`, then run"
        )
    image = imread(source["mosaic"])
    rois = imread(source["mosaic"] + "/labels/rois")
    side = image.shape[-1]
    for y, x in source["tiles"]:
        y0, x0 = (max(0, (v - margin) // align * align) for v in (y, x))
        y1, x1 = (min(side, v + TILE + margin) for v in (y, x))
        window = (slice(y0, y1), slice(x0, x1))
        box = (slice(y - y0, y - y0 + TILE), slice(x - x0, x - x0 + TILE))
        yield image[0][window], image[1][window], rois[window] > 0, box


def _now(*arrays):
    """Compute dask arrays on the Task's own thread (Tasks are the parallel unit). The
    scheduler is given to this call, not set in Dask's config, which every thread of a run
    shares."""
    import dask

    return dask.compute(*arrays, scheduler="synchronous")


# --- Targets and baselines ---------------------------------------------------------------


@TaskGenerator
def target(rois):
    """The fraction of pixels inside the NET regions a person drew."""
    return float((_read(rois) > 0).mean())


@TaskGenerator
def bernsen_fraction(source, radius, contrast):
    """The foreground fraction of a Bernsen local threshold of the histone channel."""
    fractions = _now(*[
        daskbio.kernels.bernsen(protein, radius, contrast)[box].mean()
        for _, protein, _, box in _copies(source, radius)
    ])  # fmt: skip
    return float(np.mean(fractions))


# --- Features per (method, image) --------------------------------------------------------


def _filter_bank(channel, box):
    """The filter bank of one channel, with the mean and sd of the copy in ``box``: every
    filter a local one, so that a copy's values do not depend on what is far from it."""
    channel = channel.astype(float)
    mean, sd = (float(v) for v in _now(channel[box].mean(), channel[box].std()))
    sd = sd or 1.0
    z = (channel - mean) / sd
    gaussians = [daskbio.kernels.gaussian_filter(z, sigma) for sigma in SIGMAS]
    return [
        channel > mean,
        channel > mean + 2 * sd,
        z,
        *gaussians,
        gaussians[1] - gaussians[2],
        _sobel(channel, box),
    ]


# mahotas.sobel scales an image to [0, 1] by its own minimum and maximum first, which makes
# a pixel's value depend on the whole image; scaled by the copy's range instead, it depends
# on 3 x 3 pixels (and is mahotas.sobel's value for a field on its own).
SOBEL = np.array([[-1.0, -2.0, -1.0], [0.0, 0.0, 0.0], [1.0, 2.0, 1.0]]) / 8


def _sobel(channel, box):
    """``mahotas.sobel(just_filter=True)`` with the range of the copy in ``box``."""
    low, high = (float(v) for v in _now(channel[box].min(), channel[box].max()))
    scaled = (channel - low) / (high - low or 1.0)
    rows, cols = (daskbio.kernels.convolve(scaled, w, mode="nearest") for w in (SOBEL, SOBEL.T))
    return rows**2 + cols**2


@TaskGenerator
def pixel_features(source, step):
    """A grid of cells ``step`` pixels wide: the filter bank at each cell's centre, the
    cell's NET fraction as its label."""
    parts = []
    for dna, protein, rois, box in _copies(source, GAUSSIAN_REACH):
        centre = step // 2
        bank = _filter_bank(dna, box) + _filter_bank(protein, box)
        *sampled, mask = _now(*[f[box][centre::step, centre::step] for f in bank], rois[box])
        h, w = (mask.shape[0] // step) * step, (mask.shape[1] // step) * step
        cells = mask[:h, :w].reshape(h // step, step, w // step, step).mean(axis=(1, 3))
        features = np.stack([f[: h // step, : w // step].ravel() for f in sampled], axis=1)
        parts.append(_pieces(features, cells.ravel()))
    return _joined(parts)


def _oversegment(protein, spacing, sigma, min_size):
    """Seeded watershed of the smoothed histone channel from a grid of seeds, regions under
    ``min_size`` pixels set to background."""
    smooth = mh.gaussian_filter(protein.astype(float), sigma)
    seeds = np.zeros(smooth.shape, np.int32)
    grid = seeds[spacing // 2 :: spacing, spacing // 2 :: spacing]
    grid[...] = np.arange(1, grid.size + 1).reshape(grid.shape)
    # Flat background would let one seed flood it all: the distance to the nearest seed,
    # added to the grey levels (scaled to 0..255), keeps the regions compact.
    y, x = np.indices(smooth.shape)
    ramp = np.hypot(
        np.abs((y - spacing // 2 + spacing / 2) % spacing - spacing / 2),
        np.abs((x - spacing // 2 + spacing / 2) % spacing - spacing / 2),
    )
    surface = 255 * (smooth - smooth.min()) / max(np.ptp(smooth), 1e-9) + ramp
    labeled = mh.cwatershed(surface, seeds)
    sizes = np.bincount(labeled.ravel())
    labeled[sizes[labeled] < min_size] = 0
    return labeled


def _region_rows(dna, protein, rois, labeled):
    """Per region: log size; per channel the Haralick texture (of 32 grey levels), mean,
    sd and Sobel mean and sd; the channels' correlation and the fraction of pixels above
    the mean in both. The region's NET fraction is its label."""
    tables = []
    for c in (dna, protein):
        stats = daskbio.kernels.region_table(c, labeled, ["intensity", "sobel"])
        texture = daskbio.kernels.region_table((c // 8 + 1).astype(np.uint8), labeled, ["haralick"])
        tables.append((stats, texture.iloc[:, -13:]))
    product = daskbio.kernels.region_table(dna.astype(np.uint16) * protein, labeled, ["intensity"])
    above = ((dna > dna.mean()) & (protein > protein.mean())).astype(np.uint8)
    both = daskbio.kernels.region_table(above, labeled, ["intensity"])["mean"]
    nets = daskbio.kernels.region_table(rois.astype(np.uint8), labeled, ["intensity"])["mean"]
    (first, _), (second, _) = tables
    sd = first["std"] * second["std"]
    covariance = product["mean"] - first["mean"] * second["mean"]
    columns = [np.log(first["size"])]
    for stats, texture in tables:
        columns.extend([texture, stats[["mean", "std", "sobel_mean", "sobel_std"]]])
    columns.extend([(covariance / sd).where(sd > 0, 0.0), both])
    import pandas as pd

    return pd.concat(columns, axis=1).to_numpy(), nets.to_numpy(), first["size"].to_numpy()


@TaskGenerator
def region_features(source, spacing, sigma, min_size):
    """An oversegmentation of each copy of the field (a seeded watershed, within the copy),
    described region by region (``_region_rows``) with ``daskbio.kernels.region_table``."""
    parts = []
    for dna, protein, rois, box in _copies(source, 0):
        dna, protein, rois = _now(dna[box], protein[box], rois[box])
        labeled = _oversegment(protein, spacing, sigma, min_size)
        rows, labels, sizes = _region_rows(dna, protein, rois, labeled)
        parts.append(_pieces(rows, labels, sizes.astype(float)))
    return _joined(parts)


@TaskGenerator
def surf_features(source, scale, spacing, with_dna):
    """Dense SURF descriptors of the histone channel (and of the DNA channel at the same
    points if ``with_dna``) on a grid; each point's label is the NET fraction of the
    window of half-width 10 x scale around it."""
    parts = []
    reach = max(daskbio.kernels.surf_halo(scale), int(10 * scale))
    for dna, protein, rois, box in _copies(source, reach, align=spacing):
        points, mask = _now(daskbio.kernels.surf_dense(protein, spacing, scale, True), rois)
        ys, xs = points[:, 0].astype(int), points[:, 1].astype(int)
        rows, cols = (np.arange(*b.indices(n))[[0, -1]] for b, n in zip(box, rois.shape))
        inside = (ys >= rows[0]) & (ys <= rows[1]) & (xs >= cols[0]) & (xs <= cols[1])
        descriptors = [points[inside, 6:]]
        if with_dna:
            descriptors.append(_now(daskbio.kernels.surf_dense(dna, spacing, scale))[0][inside])
        labels = _fraction_in_windows(mask, ys[inside], xs[inside], int(10 * scale))
        parts.append(_pieces(np.hstack(descriptors), labels))
    return _joined(parts)


# --- Learning, per (method, fold) --------------------------------------------------------


def _forest(settings, seed):
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(
        n_estimators=settings["n_estimators"],
        min_samples_leaf=settings["min_samples_leaf"],
        max_features=settings["max_features"],
        random_state=seed,
        n_jobs=1,
    )


def _train(images, settings, seed):
    """A forest fit on up to ``max_pieces`` pieces of each image (a fixed subsample)."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for pieces in images:
        n = len(pieces["y"])
        keep = (
            rng.choice(n, settings["max_pieces"], replace=False)
            if n > settings["max_pieces"]
            else slice(None)
        )
        xs.append(pieces["X"][keep])
        ys.append(pieces["y"][keep])
    forest = _forest(settings, seed)
    forest.fit(np.concatenate(xs), np.concatenate(ys))
    return forest


def _predict(forest, pieces, at_most=None, seed=0):
    """The image's NET fraction: its pieces' predictions (of ``at_most`` pieces drawn at
    random, if given), averaged with their weights."""
    n = len(pieces["y"])
    if n == 0:
        return 0.0
    keep = slice(None)
    if at_most is not None and n > at_most:
        keep = np.random.default_rng(seed).choice(n, at_most, replace=False)
    return float(np.average(forest.predict(pieces["X"][keep]), weights=pieces["w"][keep]))


@TaskGenerator
def fit_predict(train, groups, test, settings):
    """Train on the ``train`` images' pieces and predict the ``test`` images; predict
    each training image too from an inner cross-validation grouped by ``groups`` (for the
    linear correction and the combination, fit on training images only)."""
    from sklearn.model_selection import GroupKFold

    forest = _train(train, settings, settings["seed"])
    predicted = [_predict(forest, pieces) for pieces in test]
    inner = np.zeros(len(train))
    n_folds = min(settings["inner_folds"], len(set(groups)))
    folds = GroupKFold(n_splits=n_folds).split(np.zeros(len(train)), groups=groups)
    for k, (fit, held) in enumerate(folds):
        model = _train([train[i] for i in fit], settings, settings["seed"] + 1 + k)
        for i in held:
            inner[i] = _predict(model, train[i], settings["max_pieces"], i)
    return {"test": predicted, "inner": inner.tolist()}


def _line(x, y):
    """The least-squares line y ~ a x + b (a constant when x does not vary)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if np.ptp(x) == 0:
        return 0.0, float(y.mean())
    a, b = np.polyfit(x, y, 1)
    return float(a), float(b)


def _fractions(values):
    """Corrected predictions, clipped to the range of a fraction."""
    return np.clip(np.asarray(values, float), 0.0, 1.0).tolist()


@TaskGenerator
def correct_and_combine(fits, train_targets, bernsen_train, bernsen_test):
    """One fold's held-out predictions, per method raw and linearly corrected, the
    combination of the six methods, and the Bernsen baseline (corrected predictions
    clipped to [0, 1])."""
    out = {}
    for method, fit in fits.items():
        a, b = _line(fit["inner"], train_targets)
        out[method] = {
            "raw": fit["test"],
            "corrected": _fractions(a * np.asarray(fit["test"]) + b),
        }
    inner = np.array([fits[m]["inner"] for m in fits]).T
    test = np.array([fits[m]["test"] for m in fits]).T
    design = np.hstack([inner, np.ones((len(inner), 1))])
    coefficients, *_ = np.linalg.lstsq(design, np.asarray(train_targets, float), rcond=None)
    out["combined"] = {
        "raw": test.mean(axis=1).tolist(),
        "corrected": _fractions(np.hstack([test, np.ones((len(test), 1))]) @ coefficients),
    }
    a, b = _line(bernsen_train, train_targets)
    corrected = _fractions(a * np.asarray(bernsen_test) + b)
    out["bernsen"] = {"raw": list(bernsen_test), "corrected": corrected}
    return out


# --- Evaluation and report ---------------------------------------------------------------


def _scores(predicted, truth):
    predicted, truth = np.asarray(predicted, float), np.asarray(truth, float)
    sst = ((truth - truth.mean()) ** 2).sum()
    q2 = 1.0 - ((truth - predicted) ** 2).sum() / sst
    r2 = np.corrcoef(predicted, truth)[0, 1] ** 2 if np.std(predicted) > 0 else 0.0
    return float(q2), float(r2)


@TaskGenerator
def evaluate(folds, targets, human_pairs):
    """Gather the held-out predictions of every validation and score them."""
    predictions = {}  # (method, validation, correction) -> one value per image
    for validation, per_fold in folds.items():
        for test, result in per_fold:
            for method, by_correction in result.items():
                for correction, values in by_correction.items():
                    key = (method, validation, correction)
                    slot = predictions.setdefault(key, [np.nan] * len(targets))
                    for i, value in zip(test, values):
                        slot[i] = value
    rows = []
    for (method, validation, correction), values in predictions.items():
        q2, r2 = _scores(values, targets)
        rows.append([method, validation, correction, q2, r2])
    second, first = zip(*human_pairs) if human_pairs else ((), ())
    if len(first) > 1:
        rows.append(["human", "second-person", "raw", *_scores(second, first)])
    return {"rows": rows, "predictions": {"|".join(k): v for k, v in predictions.items()}}


def _markdown(table):
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    for row in table.itertuples(index=False):
        cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@TaskGenerator
def report(evaluation, fields, targets, human_pairs, folder):
    """Write results.csv, results.md, predictions.csv and the plots into ``folder``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    order = [*METHODS, "combined", "bernsen", "human"]
    table = pd.DataFrame(
        evaluation["rows"], columns=["method", "validation", "correction", "q2", "r2"]
    )
    table["method"] = pd.Categorical(table["method"], order, ordered=True)
    table = table.sort_values(["method", "validation", "correction"]).reset_index(drop=True)
    table["method"] = table["method"].astype(str)
    table.to_csv(folder / "results.csv", index=False, float_format="%.4f")
    (folder / "results.md").write_text(_markdown(table))

    predictions = pd.DataFrame(
        {"sample": fields["sample"], "field": fields["field"], "target": targets}
    )
    for key, values in evaluation["predictions"].items():
        predictions[key] = values
    predictions.to_csv(folder / "predictions.csv", index=False, float_format="%.5f")

    shown = [*METHODS, "combined", "bernsen"]
    fig, axes = plt.subplots(3, 3, figsize=(10, 10), sharex=True, sharey=True)
    for ax, method in zip(axes.flat, shown):
        values = evaluation["predictions"][f"{method}|by-experiment|corrected"]
        ax.scatter(targets, values, s=10)
        ax.set_title(f"{method} (by-experiment, corrected)", fontsize=9)
    second, first = zip(*human_pairs) if human_pairs else ((), ())
    axes.flat[-1].scatter(first, second, s=10, color="C1")
    axes.flat[-1].set_title("second person", fontsize=9)
    for ax in axes.flat:
        ax.plot([0, 1], [0, 1], color="grey", lw=0.5)
    for ax in axes[-1]:
        ax.set_xlabel("NET fraction (first person)")
    for ax in axes[:, 0]:
        ax.set_ylabel("predicted")
    fig.tight_layout()
    fig.savefig(folder / "predicted-vs-human.png", dpi=80)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, validation in zip(axes, ["by-experiment", "by-image"]):
        part = table[table["validation"] == validation]
        for k, correction in enumerate(["raw", "corrected"]):
            values = part[part["correction"] == correction].set_index("method")["q2"]
            values = values.reindex(shown)
            ax.bar(np.arange(len(shown)) + 0.4 * k - 0.2, values, width=0.4, label=correction)
        ax.set_xticks(np.arange(len(shown)), shown, rotation=45, ha="right")
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_title(f"Q² ({validation})")
        ax.set_ylim(max(-1.0, ax.get_ylim()[0]), 1)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(folder / "q2.png", dpi=80)
    plt.close(fig)

    residuals = np.array(
        [
            np.asarray(evaluation["predictions"][f"{m}|by-experiment|corrected"]) - targets
            for m in METHODS
        ]
    )
    n = len(METHODS)
    fig, axes = plt.subplots(n, n, figsize=(12, 12))
    for i in range(n):
        for j in range(n):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if i == j:
                ax.hist(residuals[i], bins=20)
            else:
                ax.scatter(residuals[j], residuals[i], s=4)
                r = np.corrcoef(residuals[j], residuals[i])[0, 1]
                ax.set_title(f"r = {r:.2f}", fontsize=8)
            if j == 0:
                ax.set_ylabel(METHODS[i], fontsize=8)
            if i == n - 1:
                ax.set_xlabel(METHODS[j], fontsize=8)
    fig.suptitle("Residuals (by-experiment, corrected) and their correlations")
    fig.tight_layout()
    fig.savefig(folder / "residuals.png", dpi=70)
    plt.close(fig)
    combined = table[(table["method"] == "combined") & (table["correction"] == "corrected")]
    return {
        "folder": str(folder),
        "combined, corrected, Q²": dict(zip(combined["validation"], combined["q2"].round(3))),
    }


def _mosaic_sources(channels, side):
    """The Task writing the mosaic, and for each field where its copies are in it."""
    if side % TILE or (side // TILE) ** 2 < len(channels):
        smallest = TILE * int(np.ceil(np.sqrt(len(channels))))
        raise ValueError(
            f"NETS_MOSAIC={side}: give a multiple of {TILE} with a tile for each of the "
            f"{len(channels)} fields, at least {smallest}"
        )
    built = mosaic(channels, side, str(RESULTS / "mosaic.ome.zarr"))
    tiles = [[] for _ in channels]
    for r, row in enumerate(_layout(len(channels), side)):
        for c, (i, _) in enumerate(row):
            tiles[i].append((r * TILE, c * TILE))
    return [{"mosaic": built, "tiles": t} for t in tiles]


# --- The pipeline ------------------------------------------------------------------------

fields = _selected(nets())
images = fields.to_dict("records")
targets = [target(f["rois"]) for f in images]
human_pairs = [
    (target(f["rois2"]), targets[i]) for i, f in enumerate(images) if isinstance(f["rois2"], str)
]
channels = [{c: f[c] for c in ("dna", "protein", "rois")} for f in images]
sources = _mosaic_sources(channels, MOSAIC) if MOSAIC else channels
bernsen = [bernsen_fraction(s, BERNSEN_RADIUS, BERNSEN_CONTRAST) for s in sources]

features = {
    "pixel": [pixel_features(s, PIXEL_STEP) for s in sources],
    "regions": [region_features(s, REGION_SEEDS, REGION_SIGMA, REGION_MIN_SIZE) for s in sources],
}
for scale in SURF_SCALES:
    features[f"surf({scale})"] = [surf_features(s, scale, SURF_SPACING, SURF_DNA) for s in sources]

samples = [int(s) for s in fields["sample"]]
validations = {
    "by-experiment": [
        [i for i, s in enumerate(samples) if s == sample] for sample in sorted(set(samples))
    ],
    "by-image": [[i] for i in range(len(images))],
}

folds = {}
for validation, tests in validations.items():
    folds[validation] = []
    for test in tests:
        train = [i for i in range(len(images)) if i not in test]
        groups = [samples[i] if validation == "by-experiment" else i for i in train]
        fits = {
            method: fit_predict(
                [features[method][i] for i in train],
                groups,
                [features[method][i] for i in test],
                FOREST,
            )
            for method in METHODS
        }
        combined = correct_and_combine(
            fits,
            [targets[i] for i in train],
            [bernsen[i] for i in train],
            [bernsen[i] for i in test],
        )
        folds[validation].append((test, combined))

evaluation = evaluate(folds, targets, human_pairs)
summary = report(
    evaluation, fields[["sample", "field"]].to_dict("list"), targets, human_pairs, str(RESULTS)
)
