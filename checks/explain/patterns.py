"""Where and how a failing gradient differs from the right one: the pattern summary.

Shape (empty, transposed, wrong size), NaN, all zeros, a constant multiple (least squares
c = <a, r> / <r, r> with a residual within the exact tolerance; 1/N is named "averaged over the
batch"), axes swapped or flipped, an input gradient shifted over its spatial axes, a bias gradient
summed over too few axes, and where the mismatches sit (everywhere, or only in a region: the border,
samples n >= 1, channels c >= 1, plus the kind's own regions such as overlapping windows or ReLU zeros;
where windows overlap, whether the layer wrote each window over the others instead of adding it), plus
what the minimal failing case still needs (hypothesis shrinks towards batch 1, stride 1, padding 0,
kernel 1: whatever it could not remove, the error seems to need).

Every pattern is a claim about the layer: each holds within the EXACT tolerance or is not said.

The newer patterns, with what must hold (a: the layer's gradient, r: the right one, G: dL/dout):

    shifted       a[..., y, x] = E[..., y + dy, x + dx] for every (y, x), with E = r on the padded grid (the
                  padding's own gradient around it, 0 beyond), for the smallest 0 < |dy| + |dx|
    unsummed      db = G summed over only some of the axes dL/dB sums over, in the layer's output layout
    first_sample  db = G of sample 0 alone, summed over the other axes dL/dB sums over
    assigned      dL/dX is wrong only where windows overlap and equals the scatter with `=`: window after
                  window, each one's own contribution written over what the earlier ones left
"""

from __future__ import annotations

import itertools

import numpy as np

from checks import kinds
from checks.adapt import layouts
from checks.case import Case
from checks.explain.evidence import Evidence, Pattern, close, mismatch
from checks.tolerances import Tolerance
from checks.windows import window_masks
from cnn.ops import pad2d

__all__ = ["patterns"]


def patterns(e: Evidence) -> list[Pattern]:
    """The pattern summary of ``e`` (see the module docstring); the minimal-case statement last."""
    a, r = e.value, e.right
    out: list[Pattern] = []
    if a is None:
        return _raw_shape_patterns(e) + _bias_patterns(e)
    if a.shape != r.shape or a.size == 0:
        out += _shape_patterns(e, a, r) + _bias_patterns(e)
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
        _shift(e, a, r),
    ]
    return [p for p in found if p is not None] + _bias_patterns(e)


def _constant_multiple(a: np.ndarray, r: np.ndarray, tol: Tolerance) -> float | None:
    """c with a == c * r within the exact tolerance (least squares), if c is not 0 or 1."""
    rr = float(np.sum(r * r))
    if rr == 0.0:
        return None
    c = float(np.sum(a * r) / rr)
    if abs(c) < 1e-12 or abs(c) > MAX_MULTIPLE or abs(c - 1.0) <= 10 * tol.rtol or not close(a, c * r, tol):
        return None
    return c


MAX_MULTIPLE = 1e6
"""Beyond this, "a = c r" says only that r is rounding noise next to a (r ~ 1e-17 where a is 0.04): no claim."""


def _scale_pattern(c: float, batch: int) -> Pattern:
    def near(x: float) -> bool:
        return abs(c - x) <= 1e-6 * max(1.0, abs(x))

    if batch > 1 and near(1.0 / batch):
        text = f"the layer's gradient is exactly 1/N = 1/{batch} times the right one: averaged over the batch"
    elif batch > 1 and near(float(batch)):
        text = f"the layer's gradient is exactly N = {batch} times the right one: multiplied by the batch size"
    elif near(-1.0):
        text = "the layer's gradient is the right one with its sign flipped (-1 times)"
    elif near(round(c)) or (round(1.0 / c) != 0 and near(1.0 / round(1.0 / c))):  # 1/c rounds to 0 for |c| > 2
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


# -- a shifted input gradient ------------------------------------------------------------------------


def _windowed(e: Evidence) -> bool:
    """An image input gradient of a layer with windows (kernel, stride, padding over H and W)."""
    g = e.case.geometry
    return e.name == "input" and e.right.ndim == 4 and all(hasattr(g, f) for f in ("kernel", "padding", "height"))


def _shift(e: Evidence, a: np.ndarray, r: np.ndarray) -> Pattern | None:
    """The smallest (dy, dx) != (0, 0) (by abs(dy) + abs(dx)) with a[..., y, x] = E[..., y + dy, x + dx] for
    every (y, x), where E is r on the padded grid (``_padded_right``) and 0 beyond it; abs(dy) is at most
    max(ph, dh*(kh - 1) + 1) and below H (likewise dx), and r is non-zero somewhere on the rows and
    columns the shift keeps, so the claim rests on the right gradient and not on padding or zeros alone.

    Only for windowed input gradients: a crop of the padded gradient or a window start is what can be off.
    A dense layer's feature axis has neither, so a shift there would name a cause it cannot have."""
    if not _windowed(e):
        return None
    g = e.case.geometry
    (ph, pw), (h, w) = g.padding, r.shape[-2:]
    dilation = getattr(g, "dilation", (1, 1))
    by, bx = (
        min(max(p, d * (k - 1) + 1), n - 1) for p, d, k, n in zip(g.padding, dilation, g.kernel, (h, w), strict=True)
    )
    if by + bx == 0:
        return None
    extended = np.pad(_padded_right(e), ((0, 0), (0, 0), (by, by), (bx, bx)))
    floor = e.tol.atol * float(np.abs(r).max(initial=0.0))
    shifts = [(dy, dx) for dy in range(-by, by + 1) for dx in range(-bx, bx + 1) if (dy, dx) != (0, 0)]
    for dy, dx in sorted(shifts, key=lambda s: (abs(s[0]) + abs(s[1]), abs(s[0]), s)):
        kept = r[..., max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)]
        if float(np.abs(kept).max(initial=0.0)) <= floor:
            continue
        top, left = by + ph + dy, bx + pw + dx
        candidate = extended[..., top : top + h, left : left + w]
        if close(a, candidate, e.tol) and not close(candidate, r, e.tol):
            text = (
                f"equals the right gradient shifted by ({dy}, {dx}) (rows, columns): entry (y, x) holds the right "
                f"value at (y{dy:+d}, x{dx:+d}) (past the edge: the padding's gradient, then 0), so a crop or a window "
                "start is off by that much"
            )
            return Pattern("shifted", text, [dy, dx])
    return None


def _padded_right(e: Evidence) -> np.ndarray:
    """dL/dX~, the right input gradient on the padded grid (N, C, H + 2ph, W + 2pw): the reference layer run with
    its padding moved into a zero-filled input, where the crop [ph : ph + H, pw : pw + W] of that gradient is
    the right one (zero padding: conv, average pool). Otherwise the right gradient with zeros around it: a
    max-pool pads with -inf, which is never a maximum, so its padding's gradient is 0."""
    g, r = e.case.geometry, e.right
    around = pad2d(r, g.padding)
    if not any(g.padding):
        return around
    (ph, pw), (h, w) = g.padding, r.shape[-2:]
    inputs = {k: np.array(v, dtype=np.float64) for k, v in e.case.inputs.items()}
    inputs["input"] = pad2d(inputs["input"], g.padding)
    moved = g._replace(height=h + 2 * ph, width=w + 2 * pw, padding=(0, 0))
    case = Case(e.case.kind, moved, inputs, np.asarray(e.case.upstream, np.float64), e.case.labels, e.case.mode)
    try:
        subject = kinds.reference_subject(case)
        subject.forward(case.inputs)
        padded = np.asarray(subject.backward(case.upstream)["input"], dtype=np.float64)
    except Exception:  # a geometry the reference refuses with the padding moved: fall back to zeros around r
        return around
    if padded.shape == around.shape and close(padded[..., ph : ph + h, pw : pw + w], r, e.tol):
        return padded
    return around


# -- a bias gradient summed over too few axes ---------------------------------------------------------

_AXIS_NAMES = {"n": "the batch axis (n)", "i": "the rows (H)", "j": "the columns (W)"}
"""Output axis letter -> how a pattern names it; rows and columns together are "the spatial axes (H, W)"."""


def _bias_patterns(e: Evidence) -> list[Pattern]:
    found = _bias_unsummed(e)
    return [] if found is None else [found]


def _bias_unsummed(e: Evidence) -> Pattern | None:
    """db (the layer's raw value, any shape, compared entry by entry in its own order) equal to

    - G.sum(axis=S), S a proper subset of R, the axes dL/dB = G.sum(axis=R) sums over (every axis of dL/dout
      but the channel axis, in the layer's output layout); the kept axes R - S of size 1 are ignored, since
      summing over them changes nothing: "unsummed", value: the letters of the kept axes;
    - G[n = 0].sum(axis=R - {n}), the first sample alone: "first_sample", value: 0.

    A candidate that equals the right gradient in this case (batch 1 and one output position) is no claim."""
    if e.name != "bias":
        return None
    raw = e.raw if e.raw is not None else e.actual
    if raw is None or np.size(raw) == 0:
        return None
    raw, r = np.asarray(raw, dtype=np.float64).reshape(-1), e.right
    kind = kinds.get(e.case.kind)
    layout = e.out_layout or kind.layouts.get("output") or "ND"
    upstream = np.asarray(e.case.upstream, dtype=np.float64)
    try:
        g = layouts.to_user(upstream, layout)
    except ValueError:
        return None
    letters = layouts.user_letters(layout, kind.letters("output", upstream.ndim))
    if letters is None or len(letters) != g.ndim:
        return None
    summed = [i for i, letter in enumerate(letters) if letter not in kind.axes.get("bias", "") and g.shape[i] > 1]
    for size in range(1, len(summed) + 1):
        for kept in itertools.combinations(summed, size):
            candidate = g.sum(axis=tuple(i for i in summed if i not in kept)).reshape(-1)
            if candidate.size == raw.size and close(raw, candidate, e.tol):
                named = [letters[i] for i in kept]
                return Pattern("unsummed", _unsummed_text(named, letters, summed, raw.size), named)
    n = letters.find("n")
    if n in summed:
        first = np.take(g, 0, axis=n).sum(axis=tuple(i - (i > n) for i in summed if i != n)).reshape(-1)
        if (
            first.size == raw.size == r.size
            and close(raw, first, e.tol)
            and not close(first.reshape(r.shape), r, e.tol)
        ):
            rest = [letters[i] for i in summed if i != n]
            over = f" summed over ({', '.join(rest)})" if rest else ""
            text = (
                f"the bias gradient is G of the first sample alone{over}: the other {g.shape[n] - 1} sample(s) "
                "are left out, where dL/dB sums G over the batch axis (n) too"
            )
            return Pattern("first_sample", text, 0)
    return None


def _unsummed_text(kept: list[str], letters: str, summed: list[int], size: int) -> str:
    if len(kept) == len(summed):
        what = "any axis: it is G itself, reshaped"
    elif set(kept) == {"i", "j"}:
        what = "the spatial axes (H, W)"
    else:
        what = " and ".join(_AXIS_NAMES.get(letter, f"axis {letter}") for letter in kept)
    right = ", ".join(letters[i] for i in summed)
    return f"the bias gradient is G not summed over {what} ({size} entries; dL/dB sums G over ({right}))"


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
    if _assigned(e, a, mask):
        text = (
            "an assignment where an accumulation belongs: the gradient equals the scatter with `=` instead of "
            "`+=`, each window's contribution written over what the earlier windows left"
        )
        out.append(Pattern("assigned", text))
    return out


_ASSIGNED_BUDGET = 4_000_000
"""At most this many float64 entries (32 MB) of per-window contributions (Ho * Wo * size of dL/dX) are built to
test for `assigned`; minimal cases are far below it."""


def _assigned(e: Evidence, a: np.ndarray, wrong: np.ndarray) -> bool:
    """``a`` is what a scatter with `=` gives: windows (i, j) visited rows then columns (or columns then rows),
    each writing its own contribution c_ij (the right backward with G kept on window (i, j) alone) over what the
    earlier ones left, on every position it reaches (a whole window written) or only where c_ij is non-zero (a
    max-pool writing its maximum only). Tried only for a windowed input gradient whose wrong entries all lie
    where two or more windows reach: elsewhere `=` and `+=` agree. (Whole windows: the windows reaching a
    position are a product of rows and columns, so both orders end on the same one.)"""
    if not _windowed(e):
        return False
    g = e.case.geometry
    reach = window_masks(g)
    if (wrong & ~(reach.sum(axis=(0, 1)) >= 2)).any():
        return False
    ho, wo = reach.shape[:2]
    if ho * wo * a.size > _ASSIGNED_BUDGET:
        return False  # a case shrinking left large: no claim rather than gigabytes of window contributions
    parts = _window_contributions(e, ho, wo)
    if parts is None:
        return False
    rows_first = [(i, j) for i in range(ho) for j in range(wo)]
    for windows in (rows_first, sorted(rows_first, key=lambda ij: (ij[1], ij[0]))):
        for writes in ("reach", "sent"):
            written = np.zeros_like(a)
            for i, j in windows:
                # exact zeros: the positions a window sends nothing to (a max-pool's non-maxima)
                where = reach[i, j] if writes == "reach" else parts[i, j] != 0
                written = np.where(where, parts[i, j], written)
            if close(a, written, e.tol):
                return True
    return False


def _window_contributions(e: Evidence, ho: int, wo: int) -> np.ndarray | None:
    """(Ho, Wo, N, C, H, W) float64: c_ij = dL/dX of the reference layer with G kept on window (i, j) alone
    (every sample and channel); dL/dX = sum_ij c_ij, since the backward is linear in G."""
    upstream = np.asarray(e.case.upstream, dtype=np.float64)
    inputs = {k: np.array(v, dtype=np.float64) for k, v in e.case.inputs.items()}
    case = Case(e.case.kind, e.case.geometry, inputs, upstream, e.case.labels, e.case.mode)
    parts = np.zeros((ho, wo, *e.right.shape))
    try:
        for i in range(ho):
            for j in range(wo):
                one = np.zeros_like(upstream)
                one[..., i, j] = upstream[..., i, j]
                subject = kinds.reference_subject(case)
                subject.forward({k: v.copy() for k, v in inputs.items()})
                parts[i, j] = np.asarray(subject.backward(one)["input"], dtype=np.float64)
    except Exception:  # the reference cannot split this case by windows: no claim
        return None
    return parts


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
