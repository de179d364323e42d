"""Nuclear segmentation: compare two methods against ground truth.

A daskbio port of Luis Pedro Coelho's Jug + mahotas demo.  Eight synthetic
fluorescence images of nuclei (with ground-truth masks) are generated
deterministically into ``data/`` the first time this file is loaded, so the
example runs offline.  Each image is segmented by two methods, each result is
scored against the reference, and the scores are summarised.

Run it from the repository root with::

    daskbio run examples/segmentation/pipeline.py

and check progress (or what is already cached) with::

    daskbio status examples/segmentation/pipeline.py

Every task is cached on disk under a hash of its function and arguments, so a
second ``run`` does nothing, and editing e.g. ``method2`` only recomputes the
tasks that depend on it.  Image paths are passed as strings relative to this
folder, so the hashes do not depend on where the repository is checked out.
"""

from pathlib import Path

import mahotas as mh
import numpy as np
import tifffile

from daskbio import TaskGenerator
from daskbio.datasets import write_nuclei

HERE = Path(__file__).resolve().parent

# Generated once, deterministically; later calls leave the files untouched.
images = [path.relative_to(HERE).as_posix() for path in write_nuclei(HERE / "data", n_images=8)]


def _read(path):
    return tifffile.imread(HERE / path)


@TaskGenerator
def method1(path, sigma):
    """Smooth, threshold at the mean intensity and label connected components."""
    image = _read(path)
    smooth = mh.gaussian_filter(image.astype(float), sigma)
    labeled, _ = mh.label(smooth > smooth.mean())
    return labeled


@TaskGenerator
def method2(path, sigma):
    """Smooth, Otsu threshold, then split touching nuclei by seeded watershed.

    Seeds are the regional maxima of a more strongly smoothed image (nuclei
    are brightest in their centre); the watershed runs on the distance
    transform of the foreground.
    """
    image = _read(path).astype(float)
    smooth = mh.stretch(mh.gaussian_filter(image, sigma))
    binary = smooth > mh.otsu(smooth)
    peaks = mh.regmax(mh.gaussian_filter(image, 2 * sigma)) & binary
    seeds, _ = mh.label(peaks)
    dist = mh.distance(binary)
    labeled = mh.cwatershed(dist.max() - dist, seeds)
    labeled *= binary
    labeled, _ = mh.labeled.relabel(labeled)
    return labeled


@TaskGenerator
def reference(path):
    """Label the ground-truth mask that goes with image ``path``."""
    path = Path(path)
    mask = _read(path.with_name(path.name.replace("image-", "mask-", 1)))
    labeled, _ = mh.label(mask)
    return labeled


@TaskGenerator
def compare(labeled, ref):
    """Pixel-wise Dice coefficient of the foregrounds, and object counts."""
    found = labeled > 0
    true = ref > 0
    total = int(found.sum()) + int(true.sum())
    dice = 2.0 * int((found & true).sum()) / total if total else 1.0
    return {
        "dice": dice,
        "n_found": len(np.unique(labeled[found])),
        "n_true": len(np.unique(ref[true])),
    }


@TaskGenerator
def summarize(scores):
    """Mean and worst Dice, and total object counts, for each method."""
    return {
        method: {
            "mean_dice": float(np.mean([r["dice"] for r in results])),
            "min_dice": float(np.min([r["dice"] for r in results])),
            "n_found": sum(r["n_found"] for r in results),
            "n_true": sum(r["n_true"] for r in results),
        }
        for method, results in scores.items()
    }


results1 = [compare(method1(p, 2), reference(p)) for p in images]
results2 = [compare(method2(p, 2), reference(p)) for p in images]
summary = summarize({"method1": results1, "method2": results2})
