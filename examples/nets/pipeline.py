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
  mean + 2 sd, z-score, Gaussians at sigma 1, 2, 4 and 8, a difference of Gaussians, the
  Sobel magnitude); the label is the NET fraction of the cell;
- ``regions``: an oversegmentation (seeded watershed of the smoothed histone channel from
  a regular grid of seeds, ``NETS_REGION_SEEDS`` pixels apart, default 24; regions under
  ``NETS_REGION_MIN_SIZE`` pixels dropped), described on both channels by Haralick
  texture, intensity and Sobel statistics, the channels' overlap (their correlation, and
  the fraction of pixels above the mean in both) and the region's size; the label is the
  region's NET fraction, and the image's prediction is weighted by region size;
- ``surf(1)``, ``surf(2)``, ``surf(4)``, ``surf(8)``: dense SURF descriptors
  (``mahotas.features.surf.dense``, ``NETS_SURF_SPACING`` pixels apart, default 16) of
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

At its defaults it takes about 10 minutes on 2 cores (1569 Tasks; a second run takes
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
import mahotas.features.surf
import numpy as np

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


# --- Targets and baselines ---------------------------------------------------------------


@TaskGenerator
def target(rois):
    """The fraction of pixels inside the NET regions a person drew."""
    return float((_read(rois) > 0).mean())


@TaskGenerator
def bernsen_fraction(protein, radius, contrast):
    """The foreground fraction of a Bernsen local threshold of the histone channel."""
    return float(mh.thresholding.bernsen(_read(protein), radius, contrast).mean())


# --- Features per (method, image) --------------------------------------------------------


def _filter_bank(channel):
    channel = channel.astype(float)
    mean, sd = channel.mean(), channel.std() or 1.0
    z = (channel - mean) / sd
    gaussians = [mh.gaussian_filter(z, sigma) for sigma in (1, 2, 4, 8)]
    return [
        channel > mean,
        channel > mean + 2 * sd,
        z,
        *gaussians,
        gaussians[1] - gaussians[2],
        mh.sobel(channel, just_filter=True),
    ]


@TaskGenerator
def pixel_features(dna, protein, rois, step):
    """A grid of cells ``step`` pixels wide: the filter bank at each cell's centre, the
    cell's NET fraction as its label."""
    bank = _filter_bank(_read(dna)) + _filter_bank(_read(protein))
    centre = step // 2
    features = np.stack([f[centre::step, centre::step].ravel() for f in bank], axis=1)
    mask = _read(rois) > 0
    h, w = (mask.shape[0] // step) * step, (mask.shape[1] // step) * step
    cells = mask[:h, :w].reshape(h // step, step, w // step, step).mean(axis=(1, 3))
    n = cells.size
    return _pieces(features[:n], cells.ravel())


def _haralick(crop):
    """Haralick features of a crop quantised to 32 grey levels (0 outside the region)."""
    try:
        return mh.features.haralick(crop, ignore_zeros=True, return_mean=True)
    except ValueError:  # too small a region for some direction
        return np.zeros(13)


@TaskGenerator
def region_features(dna, protein, rois, spacing, sigma, min_size):
    """Seeded watershed of the smoothed histone channel from a grid of seeds; per region
    (of at least ``min_size`` pixels) texture, intensity, Sobel and overlap features."""
    from scipy import ndimage

    channels = [_read(dna), _read(protein)]
    smooth = mh.gaussian_filter(channels[1].astype(float), sigma)
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
    mask = _read(rois) > 0
    sobels = [mh.sobel(c.astype(float), just_filter=True) for c in channels]
    above = [c > c.mean() for c in channels]
    quantised = [(c // 8 + 1).astype(np.uint8) for c in channels]
    rows, labels, sizes = [], [], []
    for label, box in enumerate(ndimage.find_objects(labeled), start=1):
        if box is None:
            continue
        inside = labeled[box] == label
        size = int(inside.sum())
        if size < min_size:
            continue
        row = [np.log(size)]
        values = [c[box][inside].astype(float) for c in channels]
        for q, s, v in zip(quantised, sobels, values):
            row.extend(_haralick(np.where(inside, q[box], 0)))
            row.extend([v.mean(), v.std(), s[box][inside].mean(), s[box][inside].std()])
        both = above[0][box][inside] & above[1][box][inside]
        sd = values[0].std() * values[1].std()
        covariance = np.mean((values[0] - values[0].mean()) * (values[1] - values[1].mean()))
        row.extend([covariance / sd if sd > 0 else 0.0, both.mean()])
        rows.append(row)
        labels.append(mask[box][inside].mean())
        sizes.append(size)
    return _pieces(rows, labels, np.asarray(sizes, float))


@TaskGenerator
def surf_features(dna, protein, rois, scale, spacing, with_dna):
    """Dense SURF descriptors of the histone channel (and of the DNA channel at the same
    points if ``with_dna``) on a grid; each point's label is the NET fraction of the
    window of half-width 10 x scale around it."""
    points = mh.features.surf.dense(
        _read(protein), spacing, scale=scale, include_interest_point=True
    )
    descriptors = [points[:, 6:]]
    if with_dna:
        descriptors.append(mh.features.surf.dense(_read(dna), spacing, scale=scale))
    ys, xs = points[:, 0].astype(int), points[:, 1].astype(int)
    labels = _fraction_in_windows(_read(rois) > 0, ys, xs, int(10 * scale))
    return _pieces(np.hstack(descriptors), labels)


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


# --- The pipeline ------------------------------------------------------------------------

fields = _selected(nets())
images = fields.to_dict("records")
targets = [target(f["rois"]) for f in images]
human_pairs = [
    (target(f["rois2"]), targets[i]) for i, f in enumerate(images) if isinstance(f["rois2"], str)
]
bernsen = [bernsen_fraction(f["protein"], BERNSEN_RADIUS, BERNSEN_CONTRAST) for f in images]

features = {
    "pixel": [pixel_features(f["dna"], f["protein"], f["rois"], PIXEL_STEP) for f in images],
    "regions": [
        region_features(
            f["dna"], f["protein"], f["rois"], REGION_SEEDS, REGION_SIGMA, REGION_MIN_SIZE
        )
        for f in images
    ],
}
for scale in SURF_SCALES:
    features[f"surf({scale})"] = [
        surf_features(f["dna"], f["protein"], f["rois"], scale, SURF_SPACING, SURF_DNA)
        for f in images
    ]

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
