"""daskbio's settings, read through Dask's configuration system (``daskbio.*`` keys).

Importing ``dask`` costs ~0.15 s, more than the whole of a fully cached run of a small
pipeline, so the configuration is only consulted through Dask when it may hold a
``daskbio`` key (a Dask config file that mentions one, or a ``DASK_DASKBIO__*`` environment
variable); otherwise the defaults hold.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

DEFAULTS: dict[str, Any] = {
    "daskbio.cache": None,
    # A folder holding datasets (daskbio/datasets/: nets/ for the NETs images), and where
    # the NETs images are downloaded from when none is (None: the published repository).
    "daskbio.data": None,
    "daskbio.data-url": None,
    # Cached arrays larger than this come back as lazy dask arrays (daskbio/cache/arrays.py).
    "daskbio.lazy-above": "256 MiB",
    # The file holding the key that signs entries (daskbio/cache/signing.py); None: the
    # user's config folder.
    "daskbio.key-file": None,
    # Seconds a Task's lock lasts unless its holder renews it (daskbio/cache/leases.py).
    "daskbio.lease": None,
    # Seconds between progress lines where output is not a terminal (daskbio/monitor/).
    "daskbio.progress-interval": 10.0,
    # Whether a run alone on its cache may skip taking locks (daskbio/graph/solo.py).
    "daskbio.solo": True,
    # Who may read and write new cache folders and files: "owner" or "group".
    "daskbio.cache-access": "owner",
    # daskbio submit's defaults (daskbio/cli/submit.py); jobs' own settings are jobqueue.*.
    "daskbio.submit.cluster": None,
    "daskbio.submit.jobs": None,
    "daskbio.submit.adapt": None,
    # Where submit's scheduler and dashboard listen (daskbio/clusters.py: default 127.0.0.1).
    "daskbio.submit.listen": None,
}


def _config_dirs() -> list[Path]:
    """The folders Dask reads config files from (as ``dask.config._get_paths`` lists them)."""
    import site

    dirs = [
        os.environ.get("DASK_ROOT_CONFIG", "/etc/dask"),
        os.path.join(sys.prefix, "etc", "dask"),
        *(os.path.join(prefix, "etc", "dask") for prefix in site.PREFIXES),
        os.path.join(os.path.expanduser("~"), ".config", "dask"),
    ]
    if "DASK_CONFIG" in os.environ:
        dirs.append(os.environ["DASK_CONFIG"])
    return [Path(d) for d in dict.fromkeys(dirs)]


def _has_daskbio_config() -> bool:
    """Whether Dask's configuration may hold a ``daskbio`` key: an environment variable
    for one, or a config file that mentions one (not just any file: dask-jobqueue writes
    ``~/.config/dask/jobqueue.yaml`` on every machine it is imported on)."""
    if "dask.config" in sys.modules or any(
        k.startswith("DASK_") and k[5:].upper().startswith("DASKBIO__") for k in os.environ
    ):
        return True
    for folder in _config_dirs():
        try:
            names = [n for n in os.listdir(folder) if n.endswith((".yaml", ".yml", ".json"))]
        except OSError:
            continue
        for name in names:
            try:
                if b"daskbio" in (folder / name).read_bytes():
                    return True
            except OSError:
                continue
    return False


def get(key: str) -> Any:
    """The value of setting ``key`` (e.g. ``"daskbio.cache"``) from Dask's configuration.

    Examples
    --------
    >>> import dask
    >>> with dask.config.set({"daskbio.cache": "/data/cache"}):
    ...     get("daskbio.cache")
    '/data/cache'
    """
    default = DEFAULTS[key]
    if not _has_daskbio_config():
        return default
    import dask.config

    return dask.config.get(key, default)
