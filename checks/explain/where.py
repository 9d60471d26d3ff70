"""Where a failing gradient is wrong, in the layer's own layout: the worst entries (or, at a max-pool tie,
the worst windows) with their index as the layer holds the array.

``Details`` is what a report shows under a failing gradient: the worst k entries with their index in the
layer's own layout (NHWC (n, h, w, c), seed conv input (h, w), filters FHW (f, u, v), ...), the layer's
value, the finite-difference value (where element-wise and trusted), the torch value, the relative error,
and the count of wrong entries out of the total. At a kink (a tied max-pool window, a ReLU input of exactly
0) the verdict is subgradient membership, so the worst WINDOWS (max-pool: where the gradient went, and
the allowed shares) or entries with their allowed range (ReLU) are given instead, read off what the
verdict measured (``Trial.memberships``): the layer is never run again to explain it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from checks import kinds
from checks.adapt import layouts
from checks.adapt.guard import LayerFault
from checks.case import Case
from checks.explain.evidence import Diagnosis, close
from checks.oracles.fd import FDGradient
from checks.pipeline.properties import fd_allowance
from checks.pipeline.trial import Trial

__all__ = ["DEFAULT_K", "Details", "Entry", "GradientLayout", "Window", "expected_grads", "fill", "layout_of"]

DEFAULT_K = 5
ONLY_FD = "fd_only"
"""``Details.expected_source`` of a kind with no reference (``function``): the kink-guarded differences of the
layer's own forward are the right values, shown only where they judged."""
NO_ENTRIES = "judged along random directions (an array too large to difference entry by entry): no entries to show"


@dataclass(frozen=True)
class Entry:
    """One wrong entry. index: in the layer's own layout; canonical: in NCHW / (F, C, kh, kw) / (D, M);
    layer: its value; expected: the exact value it was compared with; fd: central difference (None
    where not element-wise or not trusted); torch: PyTorch's value (None without torch); abs_err,
    rel_err (None where the expected value is 0); allowed: [lo, hi] for a ReLU entry at a kink."""

    index: tuple[int, ...]
    canonical: tuple[int, ...]
    layer: float
    expected: float
    fd: float | None
    torch: float | None
    abs_err: float
    rel_err: float | None
    allowed: tuple[float, float] | None = None

    def to_dict(self) -> dict:
        return {
            "index": list(self.index),
            "canonical_index": list(self.canonical),
            "layer": self.layer,
            "expected": self.expected,
            "fd": self.fd,
            "torch": self.torch,
            "abs_err": self.abs_err,
            "rel_err": self.rel_err,
            "allowed": None if self.allowed is None else list(self.allowed),
        }


@dataclass(frozen=True)
class Window:
    """A max-pool window that breaks the routing rule. window: its output index (the layer's output
    layout); upstream: its G; maxima: input indices (the layer's input layout) of its maximum
    position(s); sent: the gradient it put on them (must equal G); elsewhere: what it put on the
    window's other positions (must be 0); share_range: each maximum's share must lie in it (and the
    shares must sum to G)."""

    window: tuple[int, ...]
    upstream: float
    maxima: list[tuple[int, ...]]
    sent: float
    elsewhere: float
    share_range: tuple[float, float]

    def to_dict(self) -> dict:
        return {
            "window": list(self.window),
            "upstream": self.upstream,
            "maxima": [list(m) for m in self.maxima],
            "sent": self.sent,
            "elsewhere": self.elsewhere,
            "share_range": list(self.share_range),
        }

    def line(self) -> str:
        maxima = ", ".join(str(m) for m in self.maxima)
        lo, hi = self.share_range
        return (
            f"window {self.window}: G = {self.upstream:.6g}; maximum at {maxima}; sent {self.sent:.6g} there "
            f"(must total {self.upstream:.6g}, each share in [{lo:.6g}, {hi:.6g}]) and {self.elsewhere:.6g} "
            "elsewhere in the window (must be 0)"
        )


@dataclass
class Details:
    """Where one failing gradient is wrong (see the module docstring); ``to_dict`` is its JSON form."""

    gradient: str
    verdict: str  # "values", "subgradient", "shape", "nonfinite" or "fault"
    layout: str | None
    axes: str | None
    shape: tuple[int, ...]
    actual_shape: tuple[int, ...] | None
    expected_source: str
    mismatched: int = 0
    total: int = 0
    unit: str = "entries"
    worst: list[Entry] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    window_axes: str | None = None
    message: str | None = None
    case: Case | None = field(default=None, repr=False)
    reproduction: str | None = None
    error: str | None = None
    layer_value: np.ndarray | None = field(default=None, repr=False)  # canonical, for plots
    expected_value: np.ndarray | None = field(default=None, repr=False)  # canonical, for plots
    mask: np.ndarray | None = field(default=None, repr=False)  # canonical, True where wrong
    unjudged: int = 0  # entries the guarded differences of a no-reference kind did not judge (a kink near)

    def to_dict(self) -> dict:
        return {
            "gradient": self.gradient,
            "verdict": self.verdict,
            "layout": self.layout,
            "axes": None if self.axes is None else list(self.axes),
            "shape": list(self.shape),
            "actual_shape": None if self.actual_shape is None else list(self.actual_shape),
            "expected_source": self.expected_source,
            "mismatched": self.mismatched,
            "total": self.total,
            "unit": self.unit,
            "worst": [e.to_dict() for e in self.worst],
            "windows": [w.to_dict() for w in self.windows],
            "window_axes": None if self.window_axes is None else list(self.window_axes),
            "message": self.message,
            "case": None if self.case is None else self.case.to_dict(),
            "reproduction": self.reproduction,
            "error": self.error,
            "unjudged": self.unjudged,
        }

    def render_lines(self, diagnosis: Diagnosis | None = None) -> list[str]:
        """Console lines: where, then the diagnosis (patterns, named mistake), then the snippet."""
        if self.error:
            return [f"(could not explain this failure: {self.error})"]
        if self.verdict == "fault" and self.actual_shape is None:
            # the fault itself is the finding above; "could not be read" and "no mistake matches" add nothing
            lines = [] if diagnosis is None or not diagnosis.mistake else diagnosis.render_lines()
        else:
            lines = self._where() + ([] if diagnosis is None else diagnosis.render_lines())
        if self.reproduction:
            lines.append("reproduce (Python):")
            lines += [f"  {line}" for line in self.reproduction.splitlines()]
        return lines

    def _where(self) -> list[str]:
        where = f"your layout {self.layout}" if self.layout else "as the layer stores it"
        axes = f", index ({', '.join(self.axes)})" if self.axes else ""
        d = f"dL/d{self.gradient}"
        if self.verdict in ("shape", "fault"):
            if self.actual_shape is None:
                return [f"where: {d} could not be read: {self.message}"]
            return [f"where: {d} has shape {self.actual_shape} ({where}); expected shape {self.shape}"]
        if self.verdict == "nonfinite":
            return [f"where: {self.mismatched} of {self.total} entries of {d} are NaN or infinite ({where}{axes})"]
        if self.windows:
            out_axes = f"window ({', '.join(self.window_axes)}), " if self.window_axes else ""
            head = (
                f"where: {self.mismatched} of {self.total} pool windows break the max-pool rule "
                f"({where}; {out_axes}input index ({', '.join(self.axes or '')}))"
            )
            return [head, *(f"  {w.line()}" for w in self.windows)]
        versus = {"subgradient": "the allowed range"}.get(self.verdict, _SOURCES.get(self.expected_source, ""))
        head = f"where: {self.mismatched} of {self.total} entries of {d} are wrong against {versus} ({where}{axes})"
        if self.unjudged:
            head += f"; {self.unjudged} more not judged (a kink within a step)"
        return [head, *_table(self.worst, self.expected_source)] if self.worst else [head]


_SOURCES = {
    "torch": "torch",
    "reference": "the NumPy reference",
    "fd": "finite differences (torch agrees with the layer)",
    ONLY_FD: "finite differences of your own forward",
}


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def _rel(e: Entry) -> str:
    return "inf" if e.rel_err is None else f"{e.rel_err:.3g}"


def _table(entries: list[Entry], source: str) -> list[str]:
    """The worst entries; the exact column is named for the oracle that gave it (torch, or the NumPy
    reference when torch is missing), never "torch" for a value torch did not compute."""
    exact = "torch" if any(e.torch is not None for e in entries) else {"reference": "reference"}.get(source, "exact")
    if source == ONLY_FD:  # the differences are the right column: no second one repeating them
        rows = [("index", "layer", "fd", "rel err")]
        rows += [(str(e.index), _fmt(e.layer), _fmt(e.fd), _rel(e)) for e in entries]
    elif entries and entries[0].allowed is not None:
        rows = [("index", "layer", "allowed", exact)]
        rows += [
            (str(e.index), _fmt(e.layer), f"[{_fmt(e.allowed[0])}, {_fmt(e.allowed[1])}]", _fmt(e.torch))
            for e in entries
            if e.allowed is not None
        ]
        if exact != "torch":
            rows = [r[:3] for r in rows]
    else:
        rows = [("index", "layer", "fd", exact, "rel err")]
        rows += [
            (
                str(e.index),
                _fmt(e.layer),
                _fmt(e.fd),
                _fmt(e.torch if e.torch is not None else e.expected),
                _rel(e),
            )
            for e in entries
        ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]


# -- layouts ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GradientLayout:
    """How one array is laid out for the user: its layout name (None: the layer's own shape, for
    biases), whether it is a weight layout, and its canonical axis letters (from its kind)."""

    name: str | None
    weight: bool
    letters: str | None = None

    def axes(self) -> str | None:
        """The axis letters in the user's layout ("hwc" for a seed pool input), or None."""
        return layouts.user_letters(self.name, self.letters)

    def to_user(self, a: np.ndarray, raw_shape: tuple[int, ...] | None = None) -> np.ndarray:
        if self.name is None:
            return a.reshape(raw_shape) if raw_shape is not None and int(np.prod(raw_shape)) == a.size else a
        return layouts.weight_to_user(a, self.name) if self.weight else layouts.to_user(a, self.name)

    def to_canonical(self, a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
        try:
            if self.name is None:
                return a.reshape(shape) if a.size == int(np.prod(shape)) else None
            return layouts.weight_to_canonical(a, self.name) if self.weight else layouts.to_canonical(a, self.name)
        except ValueError:
            return None

    def index_map(self, shape: tuple[int, ...], raw_shape: tuple[int, ...] | None = None) -> np.ndarray:
        """map[flat canonical index] = the index in the user's array."""
        flat = np.arange(int(np.prod(shape))).reshape(shape)
        user = self.to_user(flat, raw_shape)
        out = np.empty((flat.size, user.ndim), dtype=np.int64)
        out[user.reshape(-1)] = np.stack(np.unravel_index(np.arange(user.size), user.shape), axis=-1)
        return out


def layout_of(spec, kind: str, name: str, ndim: int) -> GradientLayout:
    """The layout the layer holds array ``name`` in ("input", "output" or a parameter), canonical when
    there is no spec (our reference layers, checks.explain.mistakes.mistaken); ``ndim`` is the
    canonical rank."""
    record = kinds.get(kind)
    letters = record.letters(name, ndim)
    if spec is None:
        layout = record.layouts.get(name)
        return GradientLayout(layout, name not in ("input", "output") and layout is not None, letters)
    if name == "input":
        return GradientLayout(spec.input_layout, False, letters)
    if name == "output":
        return GradientLayout(spec.out_layout, False, letters)
    param = spec.params.get(name)
    layout = param.layout if param else None
    return GradientLayout(layout, layout is not None, letters)


# -- the layer's value -------------------------------------------------------------------------------


@dataclass
class LayerValue:
    """The layer's gradient: canonical (None if it cannot be mapped), raw (its own layout and shape),
    and the fault message (with the shape the layer returned, when that was the fault) when reading it
    failed."""

    canonical: np.ndarray | None
    raw: np.ndarray | None
    fault: str | None
    fault_shape: tuple[int, ...] | None = None


def layer_value(trial: Trial, name: str, layout: GradientLayout) -> LayerValue:
    """The layer's gradient for ``name`` at the trial's case, as far as it can be read: what the
    backward at the case's own G returned, as the pipeline kept it (``Trial.raw_grads``)."""
    try:
        value = trial.grads.get(name)
    except LayerFault as fault:
        return LayerValue(None, None, str(fault), fault.actual_shape)
    shape = trial.case.inputs[name].shape
    if isinstance(value, np.ndarray):
        raw = value
        if value.shape == shape:
            try:
                raw = layout.to_user(value)
            except ValueError:
                pass
        return LayerValue(value, raw, None)
    fault = str(value) if value is not None else f"no gradient for {name!r}"
    fault_shape = value.actual_shape if isinstance(value, LayerFault) else None
    raw = trial.raw_grads.get(name)
    if raw is None:
        return LayerValue(None, None, fault, fault_shape)
    return LayerValue(layout.to_canonical(raw, shape), raw, fault, fault_shape)


# -- expected values -------------------------------------------------------------------------------


def expected_grads(trial: Trial) -> tuple[dict[str, np.ndarray], str]:
    """The exact gradients: torch's when available, else our NumPy reference layers'; for a kind with no reference
    (``function``) the entry-wise guarded differences of the layer's own forward (``blind_grads``)."""
    if trial.kind.blind_fd is not None:
        return blind_grads(trial), ONLY_FD
    torch = trial.torch
    if torch is not None:
        return {k: np.asarray(v, dtype=np.float64) for k, v in torch.grads.items()}, "torch"
    case = trial.pristine.copy()
    subject = kinds.reference_subject(case)
    subject.forward(case.inputs)
    grads = subject.backward(case.upstream.copy())
    return {k: np.asarray(v, dtype=np.float64) for k, v in grads.items() if k in case.inputs}, "reference"


def blind_grads(trial: Trial) -> dict[str, np.ndarray]:
    """dL/d(name) ~ D(h/2) of every gradient differenced entry by entry (checks.kinds.function.elementwise); an
    array differenced along random directions has no entries and is left out. Which entries the differences
    judged is ``trial.fd(name).trusted``: ``fill`` compares only those."""
    estimates = {name: fd_value(trial, name) for name in trial.pristine.inputs}
    return {name: e.value for name, e in estimates.items() if e is not None}


def _fd_value(trial: Trial, name: str) -> FDGradient | None:
    if "fd" not in trial.options.oracles:
        return None
    try:
        estimate = trial.fd(name)
    except LayerFault:
        return None
    return estimate if isinstance(estimate, FDGradient) else None


def fd_value(trial: Trial, name: str) -> FDGradient | None:
    """The element-wise finite-difference estimate of ``name``, when the trial has one."""
    if "fd" not in trial.options.oracles:
        return None
    try:
        estimate = trial.fd(name)
    except LayerFault:
        return None
    return estimate if isinstance(estimate, FDGradient) else None


# -- entries and windows -----------------------------------------------------------------------------


def _worst_entries(
    actual: np.ndarray,
    expected: np.ndarray,
    bound: np.ndarray,
    bad: np.ndarray,
    where: np.ndarray,
    k: int,
    *,
    fd: FDGradient | None,
    torch: np.ndarray | None,
    allowed: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[Entry]:
    err = np.abs(actual - expected)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(bad, np.where(np.isfinite(err), err / np.maximum(bound, 1e-300), np.inf), -1.0)
    order = np.argsort(-ratio, axis=None, kind="stable")[: min(k, int(bad.sum()))]
    out = []
    for flat in order:
        i = tuple(int(v) for v in np.unravel_index(int(flat), actual.shape))
        e = float(expected[i])
        trusted = fd is not None and bool(fd.trusted[i])
        out.append(
            Entry(
                index=tuple(int(v) for v in where[int(flat)]),
                canonical=i,
                layer=float(actual[i]),
                expected=e,
                fd=float(fd.value[i]) if trusted else None,
                torch=None if torch is None else float(torch[i]),
                abs_err=float(err[i]),
                rel_err=float(err[i] / abs(e)) if e != 0 and np.isfinite(err[i]) else None,
                allowed=None if allowed is None else (float(allowed[0][i]), float(allowed[1][i])),
            )
        )
    return out


def _pool_details(trial: Trial, d: Details, k: int, out_layout: GradientLayout, in_map: np.ndarray) -> np.ndarray:
    """Fill the windows of a max-pool subgradient failure from the routing the verdict measured;
    return the input positions they cover."""
    g = trial.case.geometry
    routing = trial.memberships["input"].evidence
    bad = routing.bad(trial.tol.exact)
    d.mismatched, d.total, d.unit = int(bad.sum()), int(bad.size), "windows"
    out_map = out_layout.index_map(g.output_shape)
    n, c, h, w = g.input_shape
    covered = np.zeros(g.input_shape, dtype=bool)
    order = np.argsort(-np.where(bad, routing.badness(), -1.0), axis=None, kind="stable")
    for rank, flat in enumerate(order[: int(bad.sum())]):
        win = tuple(int(v) for v in np.unravel_index(int(flat), g.output_shape))
        maxima = []
        for u, v in zip(*np.nonzero(routing.argmax[win]), strict=True):
            y, x = win[2] * g.stride[0] + int(u) - g.padding[0], win[3] * g.stride[1] + int(v) - g.padding[1]
            if 0 <= y < h and 0 <= x < w:
                maxima.append(tuple(int(i) for i in in_map[np.ravel_multi_index((win[0], win[1], y, x), (n, c, h, w))]))
                covered[win[0], win[1], y, x] = True
        if rank < k:
            gv = float(routing.upstream[win])
            d.windows.append(
                Window(
                    tuple(int(i) for i in out_map[int(flat)]),
                    gv,
                    maxima,
                    float(routing.sent[win]),
                    float(routing.elsewhere[win]),
                    (min(0.0, gv), max(0.0, gv)),
                )
            )
    return covered


# -- filling the details -----------------------------------------------------------------------------


def fill(
    trial: Trial,
    d: Details,
    value: LayerValue,
    expected: np.ndarray,
    layout: GradientLayout,
    raw_shape: tuple[int, ...] | None,
    out_layout: GradientLayout,
    k: int,
    findings: list,
) -> np.ndarray | None:
    """Set the verdict, counts and worst entries / windows; return the mismatch mask (canonical)."""
    actual = value.canonical
    if actual is None or actual.shape != expected.shape:
        d.verdict = "fault" if value.raw is None and actual is None and value.fault else "shape"
        d.message = value.fault
        return None
    actual = np.asarray(actual, dtype=np.float64)
    d.layer_value = actual
    if not np.all(np.isfinite(actual)):
        d.verdict, d.mismatched, d.total = "nonfinite", int(actual.size - np.isfinite(actual).sum()), actual.size
        return ~np.isfinite(actual)
    in_map = layout.index_map(expected.shape, raw_shape)
    kink = any(getattr(f, "oracle", None) == "subgradient" and f.failed for f in findings)
    membership = trial.memberships.get(d.gradient) if kink else None
    torch = None if trial.torch is None else np.asarray(trial.torch.grads[d.gradient], dtype=np.float64)
    if membership is not None and membership.evidence is not None:
        d.verdict = "subgradient"
        d.window_axes = out_layout.axes()
        return _pool_details(trial, d, k, out_layout, in_map)
    tol, keep, allowed, floor = trial.tol.exact, np.ones(actual.shape, dtype=bool), None, 0.0
    fd = None if kink else fd_value(trial, d.gradient)
    target = expected
    if d.expected_source == ONLY_FD and fd is not None:
        # no reference: judged as grad_<name> judged it, only where the differences are trusted, with their allowance
        keep, tol, floor = fd.trusted, trial.tol.fd, fd_allowance(trial, d.gradient, fd)
        d.unjudged = int(keep.size - keep.sum())
    elif membership is not None and membership.allowed is not None:
        d.verdict = "subgradient"
        allowed = membership.allowed
        target = np.clip(actual, *allowed)
    elif fd is not None and _only_fd_failed(findings) and close(actual, expected, tol):
        # the layer agrees with the exact oracle: show where finite differences disagree instead
        d.expected_source, target, keep, tol = "fd", fd.value, fd.trusted, trial.tol.fd
    bound = tol.bound(target, scale=float(np.abs(np.where(keep, target, 0.0)).max(initial=0.0))) + floor
    bad = (np.abs(actual - target) > bound) & keep
    d.mismatched, d.total = int(bad.sum()), int(keep.sum())
    d.worst = _worst_entries(actual, target, bound, bad, in_map, k, fd=fd, torch=torch, allowed=allowed)
    return bad


def _only_fd_failed(findings: list) -> bool:
    failed = {getattr(f, "oracle", None) for f in findings if getattr(f, "failed", False)}
    return failed == {"fd"}
