"""Functions for tests/test_hashing.py whose identity does not depend on how pytest
imports the test file: they are always ``hash_fixture_functions.<name>``.

``stability_hashes()`` is run both in the test process and in subprocesses with
different ``PYTHONHASHSEED`` values, which must all print the same hashes.
"""

from __future__ import annotations

import dataclasses
import enum

#: Strings whose order in a ``set`` changes with ``PYTHONHASHSEED``.
WORDS = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa")


def add(a, b):
    return a + b


class JugRoi:
    """A type written for Jug: ``__jug_hash__`` returns Jug's hash string."""

    def __init__(self, x):
        self.x = x

    def __jug_hash__(self):
        return f"roi-{self.x}"


class Colour(enum.Enum):
    RED = 1
    GREEN = 2


@dataclasses.dataclass
class Spot:
    x: int
    y: float
    tags: tuple = ()


class Plain:
    """A plain class: its state is its ``__dict__``."""

    def __init__(self, sigma, names):
        self.sigma = sigma
        self.names = names


class Slotted:
    __slots__ = ("a", "b")

    def __init__(self, a, b):
        self.a, self.b = a, b


class WithState:
    """A class that says what its state is, as pickle would take it."""

    def __init__(self, path, cache):
        self.path, self.cache = path, cache

    def __getstate__(self):
        return {"path": self.path}


def combine(*args, **kwargs):
    return args, kwargs


def stability_hashes() -> dict[str, str]:
    """Hashes of a fixed set of Tasks, built with Python's salted iteration order where
    it could leak in (sets of strings, dicts filled from such sets)."""
    import numpy as np

    from daskbio import Task, TaskGenerator

    words = set(WORDS)  # iteration order depends on the hash seed
    by_set_order = {w: len(w) for w in words}  # so does this dict's insertion order
    first = Task(add, 1, 2)
    tasks = {
        "scalars": Task(combine, 1, -2.5, "text", b"bytes", None, True, 2**80),
        "set_of_str": Task(combine, words),
        "frozenset_of_str": Task(combine, frozenset(words)),
        "dict_from_set": Task(combine, by_set_order),
        "kwargs_from_set": Task(combine, **by_set_order),
        "nested": Task(combine, [words, {"k": (1, 2.0)}, {w: {w} for w in words}]),
        "array": Task(combine, np.arange(12, dtype="<f8").reshape(3, 4)),
        "large_array": Task(combine, np.arange(5000, dtype="<i8")),
        "chained": Task(add, first, Task(add, first, 3)),
        "tasklet": Task(combine, first[0], first["x"]),
        "generator": TaskGenerator(version="2")(add)(1, 2),
    }
    return {name: t.hash() for name, t in tasks.items()}
