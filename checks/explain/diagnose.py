"""Why a gradient is wrong: a pattern summary, and the known mistake it matches (if any).

Two questions about one failing gradient ``actual`` against the right one ``correct``:

- ``patterns``: where and how they differ. Shape (empty, transposed, wrong size), NaN, all zeros, a
  constant multiple (least squares c = <a, r> / <r, r> with a residual within the exact tolerance;
  1/N is named "averaged over the batch"), axes swapped or flipped, and where the mismatches sit
  (everywhere, only at the border, only where pool windows overlap, only at ties, only for samples
  n >= 1), plus what the minimal failing case still needs (hypothesis shrinks towards batch 1,
  stride 1, padding 0, kernel 1: whatever it could not remove, the error seems to need).
- ``diagnose``: the named mistake whose gradient equals the layer's. Every mistake of
  ``checks.explain.mistakes.MISTAKES`` for the kind and gradient is applied to the same case
  (``mistake.wrong(case, correct)``), then the detectors below that need more than (case, correct):
  an SGD step taken before dL/dX (a least-squares learning rate), a bias gradient summed or averaged
  over the wrong axes of dL/dout (read off the raw value, any shape), an empty crop at padding 0, a
  gradient divided by the batch size, a kernel gradient rotated by 180 degrees.

A match must hold within the trial's EXACT tolerance, and a mistake only counts where it changes
the gradient in this case (so a correct layer matches nothing). Nothing within tolerance means
"no known mistake matches"; no guess is ever offered in its place.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

import cnn
from checks.adapt import layouts
from checks.case import Case
from checks.compare import compare
from checks.explain.mistakes import MISTAKES, by_name
from checks.geometry import ConvGeometry, DenseGeometry, PoolGeometry
from checks.tolerances import Tolerance
from checks.windows import coverage, tied_positions
from cnn.ops import pad2d

__all__ = ["Diagnosis", "Evidence", "Match", "Pattern", "detectors", "diagnose", "match_mistakes", "patterns"]

# Canonical axis letters per gradient, as the formulas in gradients.md name them.
CANONICAL_AXES = {
    ("conv", "input"): "nchw",
    ("maxpool", "input"): "nchw",
    ("conv", "weight"): "fcuv",
    ("conv", "bias"): "f",
    ("dense", "weight"): "dm",
    ("dense", "bias"): "m",
}
# Axis letters of an activation layout (dL/dout is read in the layer's output layout).
LAYOUT_AXES = {"NCHW": "nchw", "NHWC": "nhwc", "CHW": "chw", "HWC": "hwc", "HW": "hw", "D": "m", "ND": "nm"}


@dataclass(frozen=True)
class Pattern:
    """name: a stable key (see docs/report-schema.md); text: one line for people; value: the number
    or axes behind it (a ratio, an axis permutation, counts), JSON-ready."""

    name: str
    text: str
    value: object = None

    def to_dict(self) -> dict:
        return {"name": self.name, "text": self.text, "value": self.value}


@dataclass(frozen=True)
class Match:
    """A known mistake whose gradient equals the layer's: its name, what went wrong, the formula that
    should have been used, the evidence (how the match was established), and its source
    ("mistakes" for checks.explain.mistakes.MISTAKES, "detector" for the ones in this module)."""

    mistake: str
    explanation: str
    formula: str
    evidence: str
    source: str

    def to_dict(self) -> dict:
        return {
            "mistake": self.mistake,
            "explanation": self.explanation,
            "formula": self.formula,
            "evidence": self.evidence,
            "source": self.source,
        }


@dataclass
class Diagnosis:
    """gradient: "input", "weight" or "bias"; matches: every known mistake that reproduces the
    layer's gradient exactly (the first is the diagnosis; usually there is one); patterns: the
    pattern summary."""

    gradient: str
    matches: list[Match] = field(default_factory=list)
    patterns: list[Pattern] = field(default_factory=list)

    @property
    def mistake(self) -> str | None:
        """The diagnosed mistake's name, or None: no known mistake matches."""
        return self.matches[0].mistake if self.matches else None

    def summary(self) -> str:
        """One line: the mistake, or "no known mistake matches" and the main patterns."""
        if self.matches:
            return f"{self.mistake}: {self.matches[0].explanation}"
        shown = [p.text for p in self.patterns if p.name != "minimal"][:2]
        return "no known mistake matches" + (f" ({'; '.join(shown)})" if shown else "")

    def to_dict(self) -> dict:
        return {
            "gradient": self.gradient,
            "mistake": self.mistake,
            "matches": [m.to_dict() for m in self.matches],
            "patterns": [p.to_dict() for p in self.patterns],
        }

    def render_lines(self) -> list[str]:
        lines = [f"pattern: {p.text}" for p in self.patterns]
        if not self.matches:
            return [*lines, "diagnosis: no known mistake matches"]
        first, *others = self.matches
        lines += [
            f"diagnosis: {first.mistake}: {first.explanation}",
            f"  right formula: {first.formula}",
            f"  evidence: {first.evidence}",
        ]
        lines += [f"  equally consistent with: {m.mistake}: {m.explanation}" for m in others]
        return lines


@dataclass
class Evidence:
    """Everything known about one failing gradient of one case.

    case: the minimal failing case (canonical arrays); name: the gradient; actual: the layer's
    gradient in canonical layout when it could be mapped there (any shape), else None; correct: the
    right gradient of every input (canonical); tol: the exact tolerance of the case's dtype; raw:
    the gradient exactly as the layer returned it (its own layout and shape), when known;
    out_layout: the layer's output layout (how it reads dL/dout); lr: the layer's learning rate, when
    it has one; minimums: the smallest value each geometry field could take (from the LayerSpec's
    supports), for the "minimal case still needs" statements; mask: True where the gradient is wrong
    (defaults to the entry-wise exact comparison with ``correct``).
    """

    case: Case
    name: str
    actual: np.ndarray | None
    correct: Mapping[str, np.ndarray]
    tol: Tolerance
    raw: np.ndarray | None = None
    out_layout: str | None = None
    lr: float | None = None
    minimums: Mapping[str, int] | None = None
    mask: np.ndarray | None = None

    @property
    def right(self) -> np.ndarray:
        return np.asarray(self.correct[self.name], dtype=np.float64)

    @property
    def value(self) -> np.ndarray | None:
        return None if self.actual is None else np.asarray(self.actual, dtype=np.float64)

    @property
    def batch(self) -> int:
        return int(self.case.inputs["input"].shape[0])


def close(a: np.ndarray | None, b: np.ndarray | None, tol: Tolerance) -> bool:
    """Same shape, finite, and |a - b| <= atol * max|b| + rtol * |b| entry-wise (empty arrays agree)."""
    if a is None or b is None:
        return False
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return False
    return a.size == 0 or compare(a, b, tol).ok


def _mismatch(actual: np.ndarray, right: np.ndarray, tol: Tolerance) -> np.ndarray:
    """Entry-wise: True where ``actual`` is outside the exact tolerance of ``right``."""
    scale = float(np.abs(right).max(initial=0.0))
    bound = tol.atol * scale + tol.rtol * np.abs(right)
    with np.errstate(invalid="ignore"):
        return ~(np.abs(actual - right) <= bound)


# -- patterns --------------------------------------------------------------------------------------


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
    letters = CANONICAL_AXES.get((e.case.kind, e.name), "")
    return letters if len(letters) == ndim else "".join(f"{i}" for i in range(ndim))


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
    mask = e.mask if e.mask is not None and e.mask.shape == r.shape else _mismatch(a, r, e.tol)
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
    """(pattern name, region mask, text) for the regions a mismatch can be confined to."""
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
    g = e.case.geometry
    if e.case.kind == "maxpool" and isinstance(g, PoolGeometry):
        out.append(("overlap", coverage(g) >= 2, "only where pool windows overlap"))
        out.append(("ties", tied_positions(e.case.inputs["input"], g), "only in windows with tied maxima"))
    if e.case.kind == "relu":
        out.append(("ties", np.asarray(e.case.inputs["input"]) == 0, "only where the ReLU input is exactly 0"))
        out.append(("negative", np.asarray(e.case.inputs["input"]) < 0, "only where the ReLU input is negative"))
    return out


def _border(shape: tuple[int, ...]) -> np.ndarray | None:
    h, w = shape[-2:]
    if h < 3 and w < 3:
        return None  # no interior: "border only" would say nothing
    region = np.zeros(shape, dtype=bool)
    region[..., [0, h - 1], :] = True
    region[..., :, [0, w - 1]] = True
    return region


# The smallest value hypothesis shrinks each geometry field towards (checks.strategies).
FLOORS: dict[type, dict[str, int]] = {
    ConvGeometry: {"batch": 1, "in_channels": 1, "filters": 1, "kernel": 1, "stride": 1, "padding": 0, "dilation": 1},
    PoolGeometry: {"batch": 1, "channels": 1, "kernel": 1, "stride": 1, "padding": 0},
    DenseGeometry: {"batch": 1, "out_features": 1},
}


def _minimal_case(e: Evidence) -> Pattern | None:
    """What the shrunk case kept above the smallest geometry the layer supports. ``e.minimums`` may
    raise a floor, or set it to None: fixed by the layer, so its value says nothing."""
    g, raised = e.case.geometry, dict(e.minimums or {})
    kept: list[str] = []
    for name, floor in FLOORS.get(type(g), {}).items():
        if name in raised and raised[name] is None:
            continue
        floor = max(floor, raised.get(name) or floor)
        value = getattr(g, name)
        biggest = max(value) if isinstance(value, tuple) else value
        if biggest > floor:
            kept.append(f"{name} {value} (needs {name} > {floor})")
    if not kept:
        return None
    return Pattern(
        "minimal",
        "the minimal failing case still has " + "; ".join(kept) + ": shrinking could not remove it, "
        "so the error seems to need it",
        kept,
    )


# -- named mistakes ----------------------------------------------------------------------------------


def match_mistakes(e: Evidence) -> list[Match]:
    """Every mistake of checks.explain.mistakes for the case's kind that corrupts this gradient, changes it in
    this case, and reproduces the layer's exactly. (A mistake may corrupt more than the gradient it
    is filed under: stride ignored in backward breaks dL/dX and dL/dK alike.)"""
    out = []
    for m in MISTAKES:
        if m.kind != e.case.kind:
            continue
        try:
            wrong = m.wrong(e.case.copy(), {k: np.array(v, copy=True) for k, v in e.correct.items()}).get(e.name)
        except Exception:  # a mistake that cannot even be formed for this geometry is not it
            continue
        if wrong is None or close(wrong, e.right, e.tol):
            continue  # not this gradient, or invisible in this case: a correct layer would match it
        if close(e.value, wrong, e.tol):
            evidence = f"the layer's gradient equals this mistake's on the minimal case (shape {np.shape(wrong)})"
            out.append(Match(m.name, m.explanation, m.formula, evidence, "mistakes"))
    return out


Detector = Callable[[Evidence], "Match | None"]


def _sgd_before_input(e: Evidence) -> Match | None:
    """dX computed with the parameters AFTER the step: dX(W - lr dW) = dX - lr * dX_W(dW) (linear in W)."""
    if e.name != "input" or e.case.kind not in ("conv", "dense") or "weight" not in e.correct:
        return None
    a, r = e.value, e.right
    if a is None or a.shape != r.shape or close(a, r, e.tol):
        return None
    g, up = e.case.geometry, np.asarray(e.case.upstream, dtype=np.float64)
    dk = np.asarray(e.correct["weight"], dtype=np.float64)
    if isinstance(g, ConvGeometry):
        b = cnn.conv2d_grad_input(up, dk, r.shape, g.stride, g.padding, g.dilation)
    else:
        b = cnn.dense_grad_input(up, dk, r.shape)
    bb = float(np.sum(b * b))
    if bb == 0.0:
        return None
    lr = -float(np.sum((a - r) * b)) / bb
    if not lr > 0 or not close(a, r - lr * b, e.tol):
        return None
    own = "" if e.lr is None else f" (the layer's own lr is {e.lr:.6g})"
    return Match(
        "sgd_before_input_grad",
        "the SGD step was applied to the weights BEFORE the input gradient was computed from them",
        "dL/dX uses the weights of the forward pass: compute dX (and every gradient) first, then step",
        f"dX equals the input gradient computed with W - lr*dW, least-squares lr = {lr:.6g}{own}",
        "detector",
    )


# Where the channel axis sits in each output layout (None: a single channel, the bias sums everything).
CHANNEL_AXIS = {"NCHW": 1, "NHWC": 3, "CHW": 0, "HWC": 2, "HW": None, "D": 0, "ND": -1}


def _bias_axes(e: Evidence) -> Match | None:
    """db = sum (or mean) of dL/dout over some set of axes other than 'all but the channel axis',
    matched on the raw value in any shape (a scalar broadcast by an SGD step counts)."""
    if e.name != "bias":
        return None
    raw = e.raw if e.raw is not None else e.actual
    if raw is None:
        return None
    raw, r = np.asarray(raw, dtype=np.float64), e.right
    if raw.size == r.size and close(raw.reshape(r.shape), r, e.tol):
        return None
    layout = e.out_layout or ("NCHW" if e.case.kind == "conv" else "ND")
    g = layouts.to_user(np.asarray(e.case.upstream, dtype=np.float64), layout)
    for size in range(1, g.ndim + 1):
        for axes in itertools.combinations(range(g.ndim), size):
            for how, reduce in (("summed", np.sum), ("averaged", np.mean)):
                candidate = np.asarray(reduce(g, axis=axes))
                if candidate.size == r.size and close(candidate.reshape(r.shape), r, e.tol):
                    continue  # this reduction is (equivalent to) the right one
                if _same_values(raw, candidate, r.size, e.tol):
                    return _bias_match(how, axes, g.ndim, layout, raw)
    return None


def _same_values(raw: np.ndarray, candidate: np.ndarray, size: int, tol: Tolerance) -> bool:
    if raw.size == candidate.size:
        return close(raw.reshape(-1), candidate.reshape(-1), tol)
    if candidate.size == 1 and raw.size == size:  # a scalar that an SGD step broadcast over the bias
        return close(raw.reshape(-1), np.full(size, float(candidate.reshape(-1)[0])), tol)
    return False


def _bias_match(how: str, axes: tuple[int, ...], ndim: int, layout: str, raw: np.ndarray) -> Match:
    letters = LAYOUT_AXES.get(layout, "")
    letters = letters if len(letters) == ndim else ("n" + "d" * (ndim - 2) + "m")[-ndim:]
    channel = CHANNEL_AXIS.get(layout, -1)
    right = tuple(i for i in range(ndim) if channel is None or i != channel % ndim)
    named = ", ".join(letters[i] for i in axes)
    where = "over every axis (to a scalar)" if len(axes) == ndim else f"over axes {axes} ({named})"
    reduce = "sum" if how == "summed" else "mean"
    return Match(
        "bias_grad_wrong_axes",
        f"bias gradient {how} {where} of dL/dout instead of summed over every axis but the channel axis",
        f"dL/dB = dL/dout summed over all axes except the channel axis (layout {layout}: axis={right})",
        f"the layer's bias gradient (shape {raw.shape}) equals dL/dout.{reduce}(axis={axes}) in its output "
        f"layout {layout}",
        "detector",
    )


def _empty_crop(e: Evidence) -> Match | None:
    """An empty input gradient at padding 0, whatever the exact shape the layer returned."""
    g = e.case.geometry
    if e.name != "input" or not isinstance(g, ConvGeometry) or min(g.padding) != 0:
        return None
    shape = np.shape(e.actual) if e.actual is not None else np.shape(e.raw) if e.raw is not None else None
    if shape is None or 0 not in shape:
        return None
    m = by_name("empty_crop_at_pad0")
    evidence = f"the layer's input gradient is empty (shape {shape}) and the case has padding {g.padding}"
    return Match(m.name, m.explanation, m.formula, evidence, "detector")


def _over_batch(e: Evidence) -> Match | None:
    """Any gradient divided by the batch size (the kinds MISTAKES does not cover)."""
    n = e.batch
    a = e.value
    if n < 2 or a is None or a.shape != e.right.shape or close(a, e.right, e.tol):
        return None
    if not close(a, e.right / n, e.tol):
        return None
    return Match(
        f"{e.name}_grad_over_batch",
        f"{e.name} gradient divided by the batch size N = {n} (averaged); L = sum(Z * G) is already the batch sum",
        f"dL/d{e.name}: sum the contributions of every sample, no 1/N",
        f"the layer's gradient is exactly 1/{n} times the right one",
        "detector",
    )


def _weight_rotated(e: Evidence) -> Match | None:
    """Kernel gradient rotated by 180 degrees (dK correlated with the rotated kernel's orientation)."""
    if e.name != "weight" or e.case.kind != "conv" or e.value is None:
        return None
    r = e.right
    rotated = r[..., ::-1, ::-1]
    if close(rotated, r, e.tol) or not close(e.value, rotated, e.tol):
        return None
    return Match(
        "weight_grad_rotated",
        "kernel gradient rotated by 180 degrees: dK is a plain valid cross-correlation of X~ with G, never rotated",
        "dL/dK[f,c,u,v] = sum_{n,i,j} G[n,f,i,j] X~[n, c, i*s+u*d, j*s+v*d]",
        "the layer's kernel gradient equals the right one with (u, v) reversed",
        "detector",
    )


def _window_overwrite(e: Evidence) -> Match | None:
    """`dx[window] = mask * G` for the WHOLE window (first maximum): a later overlapping window also
    writes zeros over what an earlier one routed (checks.explain.mistakes' overwrite_overlaps writes only the
    maximum position)."""
    g = e.case.geometry
    if e.name != "input" or not isinstance(g, PoolGeometry) or not g.overlapping or e.value is None:
        return None
    x, up = np.asarray(e.case.inputs["input"], dtype=np.float64), np.asarray(e.case.upstream, dtype=np.float64)
    xp = pad2d(x, g.padding, value=-np.inf)
    dxp = np.zeros(xp.shape)
    n, c, ho, wo = g.output_shape
    (kh, kw), (sh, sw) = g.kernel, g.stride
    nn, cc = np.meshgrid(np.arange(n), np.arange(c), indexing="ij")
    for i in range(ho):
        for j in range(wo):
            window = xp[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw].reshape(n, c, -1)
            mask = np.zeros(window.shape)
            mask[nn, cc, window.argmax(axis=-1)] = 1.0
            dxp[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw] = (mask * up[:, :, i, j, None]).reshape(n, c, kh, kw)
    ph, pw = g.padding
    wrong = dxp[:, :, ph : ph + x.shape[2], pw : pw + x.shape[3]]
    if close(wrong, e.right, e.tol) or not close(e.value, wrong, e.tol):
        return None
    m = by_name("overwrite_overlaps")
    evidence = (
        "the layer's gradient equals dX[window] = mask * G assigned window by window (the whole window, "
        "so a later window also wipes an earlier one's gradient with zeros)"
    )
    return Match(m.name, m.explanation, m.formula, evidence, "detector")


def detectors() -> list[Detector]:
    """The detectors beyond checks.explain.mistakes, in the order they are tried."""
    return [_sgd_before_input, _bias_axes, _empty_crop, _over_batch, _weight_rotated, _window_overwrite]


def diagnose(e: Evidence) -> Diagnosis:
    """Patterns and named-mistake matches for one failing gradient (see the module docstring)."""
    found = [] if _agrees(e) else match_mistakes(e)
    if not found and not _agrees(e):
        for detect in detectors():
            try:
                match = detect(e)
            except Exception:  # a detector that cannot run on this case simply does not match
                match = None
            if match is not None:
                found.append(match)
    return Diagnosis(e.name, found, patterns(e))


def _agrees(e: Evidence) -> bool:
    """The layer's gradient is right (within the exact tolerance): nothing to diagnose."""
    return e.value is not None and close(e.value, e.right, e.tol)
