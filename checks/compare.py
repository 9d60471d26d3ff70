"""Entry-wise and directional comparisons that say where and by how much two gradients differ."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from checks.tolerances import Tolerance


@dataclass(frozen=True)
class Comparison:
    """Outcome of comparing ``actual`` with ``expected``: counts, worst entry and error sizes."""

    ok: bool
    max_abs: float
    max_rel: float
    worst_index: tuple[int, ...] | None
    worst_actual: float
    worst_expected: float
    mismatched: int
    total: int

    def summary(self) -> str:
        if self.total == 0:
            return "nothing compared"
        where = "" if self.worst_index is None else f" worst at {self.worst_index}:"
        return (
            f"{self.mismatched}/{self.total} entries differ;{where} got {self.worst_actual:.6g}, "
            f"expected {self.worst_expected:.6g}; max abs err {self.max_abs:.3g}, max rel err {self.max_rel:.3g}"
        )


def compare(
    actual: np.ndarray,
    expected: np.ndarray,
    tol: Tolerance,
    *,
    mask: np.ndarray | None = None,
    floor: np.ndarray | None = None,
) -> Comparison:
    """Pass where |a - e| <= atol * max|e| + rtol * |e|; ``mask`` (True = compare) skips untrusted entries.

    ``floor`` adds a per-entry absolute allowance: the known rounding noise of an estimate (finite
    differences), so an exactly-zero gradient is not failed for the oracle's own rounding.
    Non-finite actual entries always fail. The worst entry is the one with the largest
    error-to-bound ratio, so it is the most clearly wrong one, not merely the largest.
    """
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape:
        raise ValueError(f"cannot compare shapes {a.shape} and {e.shape}")
    keep = np.ones(e.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    total = int(keep.sum())
    if total == 0:
        return Comparison(True, 0.0, 0.0, None, 0.0, 0.0, 0, 0)
    extra = np.zeros(e.shape) if floor is None else np.broadcast_to(np.asarray(floor, dtype=np.float64), e.shape)
    with np.errstate(all="ignore"):
        return _compare(a, e, keep, total, tol, extra)


def _compare(
    a: np.ndarray, e: np.ndarray, keep: np.ndarray, total: int, tol: Tolerance, extra: np.ndarray
) -> Comparison:
    err = np.abs(a - e)
    bound = tol.bound(e, scale=float(np.abs(e[keep]).max())) + extra
    bad = ((err > bound) | ~np.isfinite(a)) & keep
    ratio = np.where(keep, np.where(np.isfinite(err), err / np.maximum(bound, np.finfo(float).tiny), np.inf), -1)
    # relative error only where the expected value is non-zero: elsewhere it is meaningless
    rel = np.where(keep & (e != 0), err / np.where(e != 0, np.abs(e), 1.0), 0.0)
    flat = int(np.argmax(ratio))
    index = tuple(int(i) for i in np.unravel_index(flat, e.shape)) if e.ndim else ()
    return Comparison(
        ok=not bad.any(),
        max_abs=float(np.max(np.where(keep, err, 0.0))),
        max_rel=float(np.max(np.where(keep & np.isfinite(rel), rel, 0.0))),
        worst_index=index,
        worst_actual=float(a[index]) if e.ndim else float(a),
        worst_expected=float(e[index]) if e.ndim else float(e),
        mismatched=int(bad.sum()),
        total=total,
    )


def compare_directional(actual: float, expected: float, scale: float, tol: Tolerance) -> Comparison:
    """One projected value <grad, u> against its finite difference; ``scale`` = sum |grad_i u_i|.

    The scale is the sum of absolute terms because <grad, u> may cancel to near zero while each
    term's rounding does not.
    """
    with np.errstate(all="ignore"):
        err = float(abs(np.float64(actual) - np.float64(expected)))
    bound = tol.atol * max(scale, abs(expected)) + tol.rtol * abs(expected)
    ok = bool(np.isfinite(actual)) and err <= bound
    rel = err / abs(expected) if expected != 0 else 0.0
    return Comparison(ok, err, rel, None, float(actual), float(expected), 0 if ok else 1, 1)


@dataclass(frozen=True)
class Membership:
    """The verdict at a kink: is the layer's gradient in the set of valid (Clarke) subgradients?

    ok; reason: the first violated condition in words (or why it holds); comparison: its numbers;
    allowed: per entry, the interval [lo, hi] every valid gradient lies in, when the set is a box
    (ReLU); evidence: what the verdict measured on the layer, kind-specific (max-pool: the routing of
    every window), kept so that a report explains the verdict without rerunning the layer."""

    ok: bool
    reason: str
    comparison: Comparison | None
    allowed: tuple[np.ndarray, np.ndarray] | None = None
    evidence: object | None = None


def compare_interval(actual: np.ndarray, lo: np.ndarray, hi: np.ndarray, tol: Tolerance) -> Comparison:
    """Entry-wise lo <= actual <= hi (with tolerance); the 'expected' value is the nearest valid one."""
    return compare(actual, np.clip(actual, lo, hi), tol)
