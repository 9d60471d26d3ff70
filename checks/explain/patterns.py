"""Where and how a failing gradient differs from the right one: the pattern summary.

Shape (empty, transposed, wrong size), NaN, all zeros, a constant multiple (least squares
c = <a, r> / <r, r> with a residual within the exact tolerance; 1/N is named "averaged over the
batch"), axes swapped or flipped, and where the mismatches sit (everywhere, or only in a region: the
border, samples n >= 1, channels c >= 1, plus the kind's own regions such as overlapping pool windows or
ReLU zeros), plus what the minimal failing case still needs (hypothesis shrinks towards batch 1,
stride 1, padding 0, kernel 1: whatever it could not remove, the error seems to need).
"""

from __future__ import annotations

import itertools

import numpy as np

from checks import kinds
from checks.explain.evidence import Evidence, Pattern, close, mismatch
from checks.tolerances import Tolerance

__all__ = ["patterns"]


def patterns(e: Evidence) -> list[Pattern]:
    """The pattern summary of ``e`` (see the module docstring); the minimal-case statement last."""
    a, r = e.value, e.right
    out: list[Pattern] = []
    if a is None:
        return _raw_shape_patterns(e)
    if a.shape != r.shape or a.size == 0:
        out += _shape_patterns(e, a, r)
    elif not np.all(np.isfinite(a)):
        bad = int(a.size - np.isfinite(a).sum())
        out.append(Pattern("nan", f"{bad} of {a.size} entries are NaN or infinite", bad))
    elif close(a, r, e.tol):
        out.append(
            Pattern(
                "agrees",
                "the layer's gradient equals the exact one: only the finite-difference comparison disagrees "
                "(the layer's forward, or a finite-difference step at a kink?)",
            )
        )
    else:
        out += _value_patterns(e, a, r)
        out += _location_patterns(e, a, r)
    minimal = _minimal_case(e)
    return out + ([minimal] if minimal else [])


def _raw_shape_patterns(e: Evidence) -> list[Pattern]:
    if e.raw is None:
        return []
    raw = np.asarray(e.raw)
    if raw.size == 0:
        return [Pattern("empty", f"the layer's gradient is empty: shape {raw.shape}", list(raw.shape))]
    return [Pattern("shape", f"the layer's gradient has shape {raw.shape}, expected {e.right.shape}", list(raw.shape))]


def _shape_patterns(e: Evidence, a: np.ndarray, r: np.ndarray) -> list[Pattern]:
    if a.size == 0:
        text = f"the layer's gradient is empty: shape {a.shape}, expected {r.shape}"
        pad = getattr(e.case.geometry, "padding", None)
        if pad is not None and min(pad) == 0:
            text += f"; the case has padding {pad}: a crop like dX~[p:-p] is empty exactly when p == 0"
        return [Pattern("empty", text, list(a.shape))]
    swapped = _permutation(e, a, r)
    if swapped is not None:
        return [swapped]
    return [Pattern("shape", f"the layer's gradient has shape {a.shape}, expected {r.shape}", list(a.shape))]


def _axes_of(e: Evidence, ndim: int) -> str:
    letters = kinds.get(e.case.kind).letters(e.name, ndim)
    return letters if letters is not None else "".join(f"{i}" for i in range(ndim))


def _permutation(e: Evidence, a: np.ndarray, r: np.ndarray) -> Pattern | None:
    """``a`` equals ``r`` with its axes permuted (not the identity, and not equal to ``r`` itself)."""
    if a.ndim != r.ndim or a.ndim < 2 or a.ndim > 5:
        return None
    letters = _axes_of(e, r.ndim)
    for perm in itertools.permutations(range(r.ndim)):
        if perm == tuple(range(r.ndim)):
            continue
        candidate = r.transpose(perm)
        if candidate.shape == a.shape and not close(candidate, r, e.tol) and close(a, candidate, e.tol):
            moved = ", ".join(letters[i] for i, p in enumerate(perm) if p != i)
            text = f"right values with the axes permuted: the right gradient transposed {perm} ({moved} swapped)"
            return Pattern("transposed", text, list(perm))
    return None


def _value_patterns(e: Evidence, a: np.ndarray, r: np.ndarray) -> list[Pattern]:
    if not np.any(a) and np.any(r):
        return [Pattern("zeros", "the layer's gradient is all zeros")]
    scale = _constant_multiple(a, r, e.tol)
    found = [
        None if scale is None else _scale_pattern(scale, e.batch),
        _permutation(e, a, r),
        _flip(e, a, r),
    ]
    return [p for p in found if p is not None]


def _constant_multiple(a: np.ndarray, r: np.ndarray, tol: Tolerance) -> float | None:
    """c with a == c * r within the exact tolerance (least squares), if c is not 0 or 1."""
    rr = float(np.sum(r * r))
    if rr == 0.0:
        return None
    c = float(np.sum(a * r) / rr)
    if abs(c) < 1e-12 or abs(c - 1.0) <= 10 * tol.rtol or not close(a, c * r, tol):
        return None
    return c


def _scale_pattern(c: float, batch: int) -> Pattern:
    def near(x: float) -> bool:
        return abs(c - x) <= 1e-6 * max(1.0, abs(x))

    if batch > 1 and near(1.0 / batch):
        text = f"the layer's gradient is exactly 1/N = 1/{batch} times the right one: averaged over the batch"
    elif batch > 1 and near(float(batch)):
        text = f"the layer's gradient is exactly N = {batch} times the right one: multiplied by the batch size"
    elif near(-1.0):
        text = "the layer's gradient is the right one with its sign flipped (-1 times)"
    elif near(round(c)) or near(1.0 / round(1.0 / c)):
        whole = round(c) if near(round(c)) else f"1/{round(1.0 / c)}"
        text = f"the layer's gradient is exactly {whole} times the right one"
    else:
        text = f"the layer's gradient is a constant multiple, {c:.6g} times the right one"
    return Pattern("scale", text, c)


def _flip(e: Evidence, a: np.ndarray, r: np.ndarray) -> Pattern | None:
    """``a`` equals ``r`` flipped along its last two axes (rot180) or along one of them."""
    if r.ndim < 2:
        return None
    letters = _axes_of(e, r.ndim)
    for axes, what in (((-2, -1), "rotated 180 degrees"), ((-2,), "flipped upside down"), ((-1,), "mirrored")):
        candidate = np.flip(r, axis=axes)
        if not close(candidate, r, e.tol) and close(a, candidate, e.tol):
            named = ", ".join(letters[i] for i in axes)
            return Pattern("flipped", f"right values, {what} in ({named})", [r.ndim + i for i in axes])
    return None


def _location_patterns(e: Evidence, a: np.ndarray, r: np.ndarray) -> list[Pattern]:
    """Where the mismatches are: everywhere, or a region (border, overlaps, ties, samples n >= 1)."""
    mask = e.mask if e.mask is not None and e.mask.shape == r.shape else mismatch(a, r, e.tol)
    bad, total = int(mask.sum()), int(mask.size)
    if bad == 0:
        return []
    if bad == total:
        return [Pattern("everywhere", f"wrong everywhere: {bad} of {total} entries", [bad, total])]
    out = [Pattern("count", f"wrong in {bad} of {total} entries", [bad, total])]
    for name, region, text in _regions(e):
        if region is not None and region.shape == mask.shape and region.any() and not region.all():
            if not mask[~region].any():
                out.append(Pattern(name, text, int(region.sum())))
    return out


def _regions(e: Evidence) -> list[tuple[str, np.ndarray | None, str]]:
    """(pattern name, region mask, text) for the regions a mismatch can be confined to: the generic
    ones of an image-shaped input gradient, then the kind's own."""
    shape = e.right.shape
    out: list[tuple[str, np.ndarray | None, str]] = []
    if e.name == "input" and len(shape) == 4:
        out.append(("border", _border(shape), "only at the border (first or last row or column)"))
        n = np.zeros(shape, dtype=bool)
        n[1:] = True
        out.append(("batch", n, "only for samples n >= 1 (sample 0 is right): state carried over between samples?"))
        ch = np.zeros(shape, dtype=bool)
        ch[:, 1:] = True
        out.append(("channels", ch, "only in channels c >= 1 (channel 0 is right): channels mixed up?"))
    kind = kinds.get(e.case.kind)
    if kind.regions is not None:
        out += kind.regions(e.case, e.name)
    return out


def _border(shape: tuple[int, ...]) -> np.ndarray | None:
    h, w = shape[-2:]
    if h < 3 and w < 3:
        return None  # no interior: "border only" would say nothing
    region = np.zeros(shape, dtype=bool)
    region[..., [0, h - 1], :] = True
    region[..., :, [0, w - 1]] = True
    return region


def _minimal_case(e: Evidence) -> Pattern | None:
    """What the failure was SHOWN to need (checks.pipeline.needs: the minimal case with that feature reduced
    passes); nothing when nothing was shown."""
    if not e.needs:
        return None
    return Pattern("minimal", "; ".join(n.text for n in e.needs), [n.to_dict() for n in e.needs])
