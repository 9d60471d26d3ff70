"""Finite-difference steps and comparison tolerances, as one small table keyed by dtype.

A comparison passes entry-wise when |actual - expected| <= atol * scale + rtol * |expected|, where
scale = max |expected| over the array (so atol is relative to the gradient's magnitude, never to
its size). Three tolerances per dtype:

- exact: against an exact oracle (PyTorch autograd in float64, or our reference). The only error
  is the layer's own rounding, so float64 is tight enough that a 1e-5 relative error in one entry
  fails.
- fd: against central differences. Every layer here is piecewise linear in each input (softmax-CE
  is smooth), so away from kinks the error is rounding, about u * sum|terms| / eps, plus an
  O(eps^2) truncation term for smooth losses; eps = 1e-4 balances the two in float64.
- forward: the layer's output against the oracle's.

float32 rows are for layers that compute in float32: their rounding (u = 6e-8) dominates, so the
step is larger and the tolerances looser. The oracles themselves always run in float64.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    """|actual - expected| <= atol * max|expected| + rtol * |expected|, entry-wise."""

    atol: float
    rtol: float

    def bound(self, expected: np.ndarray, scale: float | None = None) -> np.ndarray:
        """The allowed |actual - expected| per entry: atol * scale + rtol * |expected|, where scale
        defaults to max |expected| (so atol is relative to the gradient's magnitude, never its size)."""
        e = np.abs(np.asarray(expected, dtype=np.float64))
        if scale is None:
            scale = float(e.max(initial=0.0))
        return self.atol * scale + self.rtol * e


@dataclass(frozen=True)
class DtypeTolerances:
    """eps: relative finite-difference step (h = eps * max(1, |x|)); directions: random signed
    directions per gradient for arrays too large for element-wise differences; max_elementwise:
    the largest array differenced entry by entry."""

    eps: float
    exact: Tolerance
    fd: Tolerance
    forward: Tolerance
    directions: int = 3
    max_elementwise: int = 10_000


TOLERANCES: dict[np.dtype, DtypeTolerances] = {
    np.dtype(np.float64): DtypeTolerances(
        eps=1e-4,
        exact=Tolerance(atol=1e-9, rtol=1e-7),
        fd=Tolerance(atol=1e-8, rtol=2e-6),
        forward=Tolerance(atol=1e-10, rtol=1e-8),
    ),
    np.dtype(np.float32): DtypeTolerances(
        eps=1e-2,
        exact=Tolerance(atol=1e-4, rtol=1e-3),
        fd=Tolerance(atol=2e-3, rtol=1e-2),
        forward=Tolerance(atol=1e-5, rtol=1e-4),
    ),
}


def tolerances_for(dtype: np.dtype | type, overrides: Mapping[str, object] | None = None) -> DtypeTolerances:
    """The table row for ``dtype`` with ``overrides`` (field name -> value) laid over it."""
    key = np.dtype(dtype)
    if key not in TOLERANCES:
        raise ValueError(f"no tolerances for dtype {key}; supported: {', '.join(map(str, TOLERANCES))}")
    row = TOLERANCES[key]
    if overrides:
        unknown = set(overrides) - set(row.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown tolerance fields {sorted(unknown)}; known: {sorted(row.__dataclass_fields__)}")
        merged = {}
        for name, value in overrides.items():
            current = getattr(row, name)
            if isinstance(current, Tolerance):
                merged[name] = _merge_tolerance(name, current, value)
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                merged[name] = type(current)(value)
            else:
                raise ValueError(f"tolerance field {name!r} takes a number, got {value!r}")
        row = replace(row, **merged)
    return row


def _merge_tolerance(name: str, current: Tolerance, value: object) -> Tolerance:
    """A Tolerance, a number (both atol and rtol), or a partial dict {"atol": .., "rtol": ..}."""
    if isinstance(value, Tolerance):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Tolerance(float(value), float(value))
    if isinstance(value, Mapping) and set(value) <= {"atol", "rtol"}:
        return replace(current, **{k: float(v) for k, v in value.items()})
    raise ValueError(f"tolerance {name!r} takes a Tolerance, a number or a dict with atol/rtol, got {value!r}")
