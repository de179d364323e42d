"""How values become bytes in a cache entry: numpy arrays as ``.npy``, the rest pickled.

Arrays are stored as arrays (readable without pickle, and without running any code);
other values are pickled with protocol 5, falling back to cloudpickle for values plain
pickle refuses (lambdas, classes defined in a pipeline file run on another machine).
"""

from __future__ import annotations

import io
import pickle
import sys
from typing import Any

PICKLE = "pickle"
NPY = "npy"


def _is_plain_array(value: Any) -> bool:
    np = sys.modules.get("numpy")
    return np is not None and type(value) is np.ndarray and not value.dtype.hasobject


def dumps(value: Any) -> tuple[str, bytes]:
    """Encode ``value``; returns ``(format, payload)``."""
    if _is_plain_array(value):
        import numpy as np

        buf = io.BytesIO()
        np.lib.format.write_array(buf, value, allow_pickle=False)
        return NPY, buf.getvalue()
    try:
        return PICKLE, pickle.dumps(value, protocol=5)
    except (pickle.PicklingError, TypeError, AttributeError):
        import cloudpickle

        try:
            return PICKLE, cloudpickle.dumps(value, protocol=5)
        except (pickle.PicklingError, TypeError, AttributeError) as e:
            raise TypeError(
                f"a {type(value).__module__}.{type(value).__qualname__} cannot be pickled ({e}): "
                "return plain data (numbers, strings, lists, dicts, numpy arrays)"
            ) from e


def loads(fmt: str, payload: bytes) -> Any:
    """Decode a payload written by :func:`dumps`."""
    if fmt == NPY:
        import numpy as np

        return np.lib.format.read_array(io.BytesIO(payload), allow_pickle=False)
    if fmt == PICKLE:
        return pickle.loads(payload)
    raise ValueError(f"unknown cache entry format {fmt!r}; written by a newer daskbio?")
