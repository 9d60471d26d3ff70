"""Verdicts at kinks: is the layer's gradient a member of the set of valid (Clarke) subgradients?

ReLU:      dX = G where X > 0, 0 where X < 0, and any value between 0 and G where X == 0.
Max-pool:  each window's G is split into non-negative shares that sum to G and sit only on that
           window's maximum positions; overlapping windows' contributions add up.
First-max, last-max and even splits are all members; sending the full G to every tied maximum is not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from checks.compare import Comparison, compare
from checks.geometry import PoolGeometry
from checks.tolerances import Tolerance
from checks.windows import argmax_sets, covered, pool_taps, probe_groups


@dataclass(frozen=True)
class Membership:
    """ok, plus the first violated condition in words and its comparison."""

    ok: bool
    reason: str
    comparison: Comparison | None


def compare_interval(actual: np.ndarray, lo: np.ndarray, hi: np.ndarray, tol: Tolerance) -> Comparison:
    """Entry-wise lo <= actual <= hi (with tolerance); the 'expected' value is the nearest valid one."""
    return compare(actual, np.clip(actual, lo, hi), tol)


def relu_membership(x: np.ndarray, upstream: np.ndarray, grad: np.ndarray, tol: Tolerance) -> Membership:
    """dX within [min(0, G m), max(0, G m)] with m = 1 (X > 0), 0 (X < 0), any in [0, 1] (X == 0)."""
    g = np.asarray(upstream, dtype=np.float64)
    lo = np.where(x > 0, g, np.where(x < 0, 0.0, np.minimum(g, 0.0)))
    hi = np.where(x > 0, g, np.where(x < 0, 0.0, np.maximum(g, 0.0)))
    comparison = compare_interval(np.asarray(grad, dtype=np.float64), lo, hi, tol)
    if comparison.ok:
        return Membership(True, "every entry is a valid ReLU subgradient", comparison)
    i = comparison.worst_index
    region = (
        "X > 0 (must pass G)" if x[i] > 0 else "X < 0 (must be 0)" if x[i] < 0 else "X == 0 (must lie between 0 and G)"
    )
    return Membership(False, f"not a ReLU subgradient at {i}, where {region}", comparison)


def pool_membership(
    x: np.ndarray,
    geometry: PoolGeometry,
    upstream: np.ndarray,
    grad: np.ndarray,
    backward: Callable[[np.ndarray], np.ndarray],
    tol: Tolerance,
) -> Membership:
    """Max-pool routing checked window by window through probes.

    A probe runs ``backward`` with G kept only on a group of mutually non-overlapping windows; its
    result inside each window is then that window's routing alone. Each window must put all of its
    gradient (mass = G) on its maximum positions with the sign of G, nothing may land elsewhere,
    and the probes must add up to the full backward (overlaps accumulate, `+=` not `=`).
    """
    g = np.asarray(upstream, dtype=np.float64)
    argmax = argmax_sets(x, geometry)
    total = np.zeros(geometry.input_shape, dtype=np.float64)
    for group in probe_groups(geometry):
        probe_g = np.where(group, g, 0.0)
        dx = np.asarray(backward(probe_g.astype(upstream.dtype)), dtype=np.float64)
        total += dx
        dx_taps = pool_taps(dx, geometry, fill=0.0)
        on_max = argmax & group[..., None, None]
        mass = np.where(on_max, dx_taps, 0.0).sum(axis=(-2, -1))
        check = compare(np.where(group, mass, 0.0), probe_g, tol)
        if not check.ok:
            i = check.worst_index
            ratio = mass[i] / g[i] if g[i] else float("nan")
            return Membership(
                False,
                f"window {i} sends {mass[i]:.6g} to its maximum position(s) but its upstream gradient is "
                f"{g[i]:.6g} (ratio {ratio:.3g}; {int(argmax[i].sum())} tied maximum(s))",
                check,
            )
        signed = np.where(on_max, dx_taps * np.sign(g)[..., None, None], 0.0)
        negative = compare(np.minimum(signed, 0.0), np.zeros_like(signed), tol)
        if not negative.ok:
            return Membership(False, "a window routes a share with the wrong sign to one of its maxima", negative)
        stray = _stray(dx, covered(on_max, geometry), g, tol)
        if not stray.ok:
            return Membership(False, f"gradient lands on {stray.worst_index}, which is no window's maximum", stray)
    full = compare(np.asarray(grad, dtype=np.float64), total, tol)
    if not full.ok:
        return Membership(
            False,
            "the full backward differs from the sum of its per-window parts: "
            "overlapping windows must add up (+=), not overwrite",
            full,
        )
    return Membership(True, "every window routes its gradient to its maximum position(s)", full)


def _stray(dx: np.ndarray, covered: np.ndarray, g: np.ndarray, tol: Tolerance) -> Comparison:
    """Gradient outside every maximum position must be 0 (scale: the largest |G|)."""
    scale = float(np.abs(g).max(initial=0.0)) or 1.0
    outside = np.where(covered, 0.0, dx)
    bad = np.abs(outside) > tol.atol * scale
    index = tuple(int(i) for i in np.unravel_index(int(np.argmax(np.abs(outside))), dx.shape))
    return Comparison(
        ok=not bad.any(),
        max_abs=float(np.abs(outside).max(initial=0.0)),
        max_rel=float(np.abs(outside).max(initial=0.0) / scale),
        worst_index=index,
        worst_actual=float(outside[index]),
        worst_expected=0.0,
        mismatched=int(bad.sum()),
        total=int(dx.size),
    )
