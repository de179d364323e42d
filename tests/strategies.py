"""Hypothesis strategies the kernel exactness tests share: shapes and chunkings."""

from __future__ import annotations

import itertools

from hypothesis import strategies as st


def chunkings(shape: tuple[int, ...]) -> st.SearchStrategy[tuple[tuple[int, ...], ...]]:
    """Chunks per axis: 1-pixel thin, one chunk, a size with a ragged end, or any partition."""

    def axis(side: int) -> st.SearchStrategy[tuple[int, ...]]:
        def split(cuts: list[int]) -> tuple[int, ...]:
            edges = [0, *sorted(set(cuts)), side]
            return tuple(b - a for a, b in itertools.pairwise(edges) if b > a)

        regular = st.integers(1, side).map(
            lambda k: (k,) * (side // k) + ((side % k,) if side % k else ())
        )
        partition = st.lists(st.integers(1, max(side - 1, 1)), max_size=6).map(split)
        return st.one_of(st.just((1,) * side), st.just((side,)), regular, partition)

    return st.tuples(*(axis(s) for s in shape))


def shapes(max2d: int = 40, max3d: int = 12) -> st.SearchStrategy[tuple[int, ...]]:
    return st.one_of(
        st.tuples(st.integers(2, max2d), st.integers(2, max2d)),
        st.tuples(st.integers(2, max3d), st.integers(2, max3d), st.integers(2, max3d)),
    )
