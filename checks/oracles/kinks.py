"""Where a layer is not differentiable, and whether a perturbation crossed such a place.

Every layer here is piecewise linear; its pieces are fixed by an activation pattern: the sign of
each ReLU input and the argmax of each pool window. Along a segment on which the pattern is the
same at both ends, every pattern-defining quantity is linear in the step (by induction through the
layers), so it cannot change sign in between: the function is linear on the segment and a central
difference over it is exact up to rounding. So finite differences are trusted exactly where
``signature`` agrees at x - h*u, x and x + h*u, and never judge across a kink.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from checks.geometry import PoolGeometry
from checks.windows import argmax_sets as pool_argmax_sets
from checks.windows import pool_taps


class KinkSite(NamedTuple):
    """A place a layer can be non-differentiable: ReLU inputs, or a max-pool input with its geometry."""

    op: str  # "relu" or "pool"
    values: np.ndarray
    geometry: PoolGeometry | None = None


def signature(sites: list[KinkSite]) -> list[np.ndarray]:
    """The activation pattern: sign of every ReLU input (0 marks an exact zero), and every pool
    window's argmax set."""
    out = []
    for site in sites:
        if site.op == "relu":
            out.append(np.sign(site.values))
        else:
            out.append(pool_argmax_sets(site.values, site.geometry))
    return out


def same_signature(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def at_kink(sites: list[KinkSite]) -> bool:
    """True if some ReLU input is exactly 0 or some pool window's maximum is tied."""
    for site in sites:
        if site.op == "relu" and np.any(site.values == 0):
            return True
        if site.op == "pool" and np.any(pool_argmax_sets(site.values, site.geometry).sum(axis=(-2, -1)) > 1):
            return True
    return False


def near_kink(sites: list[KinkSite], scale: float, rel: float = 1e-9) -> bool:
    """True if some ReLU input or some pool window's top-two gap is within ``rel * scale`` of 0: there
    the activation pattern (and so which valid gradient an implementation picks) depends on rounding."""
    for site in sites:
        if site.op == "relu" and np.any(np.abs(site.values) <= rel * scale):
            return True
        if site.op == "pool":
            taps = pool_taps(site.values, site.geometry).reshape(*site.geometry.output_shape, -1)
            if taps.shape[-1] > 1:
                top2 = np.sort(taps, axis=-1)[..., -2:]
                if np.any(top2[..., 1] - top2[..., 0] <= rel * scale):
                    return True
    return False
