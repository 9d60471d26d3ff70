"""Bounds of the geometry strategies: an int (fixed) or an inclusive ``(min, max)`` pair, validated first."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from hypothesis import strategies as st

Bound = int | tuple[int, int]
"""An inclusive ``(min, max)`` range of ints, or a single int meaning "fixed at this value"."""


class Span(NamedTuple):
    """A validated bound: lo <= hi, both ints."""

    lo: int
    hi: int

    def ints(self) -> st.SearchStrategy[int]:
        """Integers in [lo, hi]; they shrink towards lo."""
        return st.integers(self.lo, self.hi)


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def span(name: str, value: object, *, minimum: int) -> Span:
    """Validate one bound; ValueError names ``name=value`` and what is wrong with it."""
    if _is_int(value):
        lo = hi = int(value)  # type: ignore[arg-type]
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_int(v) for v in value):
        lo, hi = int(value[0]), int(value[1])
    else:
        raise ValueError(f"{name}={value!r}: expected an int (fixed) or an inclusive (min, max) pair of ints")
    if lo > hi:
        raise ValueError(f"{name}={value!r}: min {lo} is larger than max {hi}")
    if lo < minimum:
        raise ValueError(f"{name}={value!r}: min {lo} is below {minimum}, the smallest {name} there is")
    return Span(lo, hi)


def flag(name: str, value: object) -> bool | None:
    """A tri-state switch: None (draw it) or a bool (fix it)."""
    if value is None or isinstance(value, bool):
        return value
    raise ValueError(f"{name}={value!r}: expected None (draw it) or a bool (fix it)")


def switch(name: str, value: object) -> bool:
    """A plain bool option."""
    if isinstance(value, bool):
        return value
    raise ValueError(f"{name}={value!r}: expected a bool")


def at_least(bound: object, low: int) -> object:
    """A ``(min, max)`` bound narrowed to values >= low (as far as max allows); an int or a non-bound
    (e.g. stride "kernel") unchanged."""
    if isinstance(bound, int) or not isinstance(bound, tuple):
        return bound
    lo, hi = bound
    return (min(max(lo, low), hi), hi)


def lowest(bound: object) -> object:
    """The bound's min (an int bound and non-bounds unchanged)."""
    return bound if not isinstance(bound, tuple) else bound[0]


def highest(bound: object) -> object:
    """The bound's max (an int bound and non-bounds unchanged)."""
    return bound if not isinstance(bound, tuple) else bound[1]
