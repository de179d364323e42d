"""The images of the NETs study (Coelho et al. 2015), found on disk or downloaded.

Coelho, L. P., Pato, C., Friães, A., Neumann, A., von Köckritz-Blickwede, M., Ramirez,
M. and Carriço, J. A. "Automatic determination of NET (neutrophil extracellular traps)
coverage in fluorescent microscopy images", Bioinformatics 31(14):2364-2370, 2015,
doi:10.1093/bioinformatics/btv156. Cite it when you use these images. They were published
with the study's code (github.com/luispedro/Coelho2015_NetsDetermination, MIT licence).

88 fields of 512 x 512 pixels, ``image_SS_FF_{dna,protein,rois}.png``: SS is the sample
(the experiment, 30 of them), FF the field in it, ``protein`` the histone channel and
``rois`` a labelled image of the NET regions one person drew (0: background); 37 fields
also have ``rois2``, drawn by a second person. ``nets-sha256.txt`` beside this file has the
SHA-256 of every file (made from the published copy), which every download is checked
against.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas

#: Where downloads come from, unless the Dask config key ``daskbio.data-url`` says
#: otherwise: the published repository, at the commit that added the images.
URL = (
    "https://raw.githubusercontent.com/luispedro/Coelho2015_NetsDetermination/"
    "8988277c1d8f370c6c203f5ca3df52e9ecf0fe31/data/"
)
CHANNELS = ("dna", "protein", "rois", "rois2")
_NAME = re.compile(r"image_(\d\d)_(\d\d)_(dna|protein|rois2?)\.png")


def registry() -> dict[str, str]:
    """Every file of the dataset and its SHA-256.

    Examples
    --------
    >>> files = registry()
    >>> len(files), sum(name.endswith("_rois2.png") for name in files)
    (301, 37)
    """
    text = Path(__file__).with_name("nets-sha256.txt").read_text()
    return dict(line.split() for line in text.splitlines() if line.strip())


class DatasetNotFound(FileNotFoundError):
    """A folder said to hold the NETs images lacks some of them."""


def nets(path: str | os.PathLike[str] | None = None) -> pandas.DataFrame:
    """The NETs study's fields: one row per field, with its sample, field number and the
    paths of its channels and labellings.

    Parameters
    ----------
    path : path, optional
        The folder of the images. By default: ``nets/`` in the folder the Dask config
        key ``daskbio.data`` or the environment variable ``DASKBIO_DATA`` names; else
        the images are downloaded (26 MB, once, each file checked against its SHA-256)
        into the user's cache folder (``pooch.os_cache("daskbio")``, or the folder the
        environment variable ``DASKBIO_DOWNLOADS`` names) from :data:`URL` (or the Dask
        config key ``daskbio.data-url``).

    Returns
    -------
    pandas.DataFrame
        Columns ``sample`` and ``field`` (integers; a sample is one experiment), ``dna``,
        ``protein``, ``rois`` and ``rois2`` (paths; ``rois2`` missing, NaN, for the 51
        fields a second person did not label), sorted by sample and field.

    Raises
    ------
    DatasetNotFound
        When the folder lacks some of the images (the message names them).

    Examples
    --------
    >>> fields = nets()  # doctest: +SKIP
    >>> len(fields), fields["sample"].nunique(), fields["rois2"].notna().sum()  # doctest: +SKIP
    (88, 30, 37)
    """
    import pandas as pd

    folder = _folder(path) if path is not None else _configured()
    folder = folder if folder is not None else _download()
    names = registry()
    missing = sorted(name for name in names if not (folder / name).is_file())
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        shown = ", ".join(missing[:3]) + more
        raise DatasetNotFound(
            f"{folder} lacks {len(missing)} of the {len(names)} NETs images ({shown}): give the "
            "folder that holds them all, or no path to download them"
        )
    fields: dict[tuple[int, int], dict[str, str | None]] = {}
    for name in names:
        sample, field, channel = _NAME.fullmatch(name).groups()
        row = fields.setdefault((int(sample), int(field)), dict.fromkeys(CHANNELS))
        row[channel] = str(folder / name)
    rows = [{"sample": s, "field": f, **paths} for (s, f), paths in sorted(fields.items())]
    return pd.DataFrame(rows, columns=["sample", "field", *CHANNELS])


def _folder(path: str | os.PathLike[str]) -> Path:
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DatasetNotFound(f"path must be a folder holding the NETs images, got {path!r}")
    return folder


def _configured() -> Path | None:
    """``nets/`` in the folder ``daskbio.data`` or ``DASKBIO_DATA`` names, if either does."""
    from daskbio import config

    base = config.get("daskbio.data") or os.environ.get("DASKBIO_DATA")
    return _folder(Path(base) / "nets") if base else None


def _download() -> Path:
    """The images in the user's cache, downloaded first if they are not there."""
    import pooch

    from daskbio import config

    fetcher = pooch.create(
        path=pooch.os_cache("daskbio") / "nets",
        base_url=config.get("daskbio.data-url") or URL,
        registry={name: f"sha256:{digest}" for name, digest in registry().items()},
        env="DASKBIO_DOWNLOADS",
    )
    for name in fetcher.registry:
        try:
            fetcher.fetch(name)
        except ValueError as e:  # pooch's word for a SHA-256 that differs
            raise ValueError(
                f"{name} downloaded from {fetcher.base_url} is not the published file (its "
                "SHA-256 differs), so it was not kept"
            ) from e
    return Path(fetcher.abspath)
