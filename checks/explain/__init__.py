"""Explain a failing gradient: where it is wrong, in the user's own layout, and how to reproduce it.

``annotate(report, spec)`` runs after a check. For every failing gradient property (grad_input,
grad_weight, grad_bias) whose minimal failing Trial the runner kept, it sets

- ``PropertyReport.details`` (a ``Details``): the worst k entries with their index in the layer's own
  layout (NHWC (n, h, w, c), seed conv input (h, w), filters FHW (f, u, v), ...), the layer's value,
  the finite-difference value (where element-wise and trusted), the torch value, the relative error,
  and the count of wrong entries out of the total. At a kink (a tied max-pool window, a ReLU input
  of exactly 0) the verdict is subgradient membership, so the worst WINDOWS (max-pool: where the
  gradient went, and the allowed shares) or entries with their allowed range (ReLU) are given
  instead. Plus the minimal case itself and a copy-pasteable reproduction snippet.
- ``PropertyReport.diagnosis`` (a ``checks.explain.diagnose.Diagnosis``): pattern summary and named mistake.

``reproduce(target, case, ...)`` is what the snippet calls: it runs the user's layer on the case
through the same adapters and prints its gradient next to the expected one, in the user's layout.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import numpy as np

from checks.adapt import layouts, paths
from checks.adapt.adapters import ClassSubject, LayerSpec
from checks.adapt.guard import LayerFault
from checks.case import Case
from checks.explain import diagnose
from checks.findings import FAIL
from checks.geometry import PoolGeometry
from checks.oracles.fd import FDGradient
from checks.pipeline import properties
from checks.pipeline.trial import Options, Trial
from checks.report import Report
from checks.windows import argmax_sets, pool_taps, probe_groups

__all__ = ["DEFAULT_K", "Details", "Entry", "Window", "annotate", "explain", "load_spec", "reproduce", "snippet"]

DEFAULT_K = 5

# Axis letters of each layout (user side). Outputs name their spatial axes i, j (window positions).
INPUT_AXES = {"NCHW": "nchw", "NHWC": "nhwc", "CHW": "chw", "HWC": "hwc", "HW": "hw", "D": "d"}
OUTPUT_AXES = {"NCHW": "ncij", "NHWC": "nijc", "CHW": "cij", "HWC": "ijc", "HW": "ij", "D": "m"}
WEIGHT_AXES = {"FCHW": "fcuv", "HWCF": "uvcf", "FHW": "fuv", "DM": "dm", "MD": "md"}


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
            "case": None if self.case is None else case_to_dict(self.case),
            "reproduction": self.reproduction,
            "error": self.error,
        }

    def render_lines(self, diagnosis: diagnose.Diagnosis | None = None) -> list[str]:
        """Console lines: where, then the diagnosis (patterns, named mistake), then the snippet."""
        if self.error:
            return [f"(could not explain this failure: {self.error})"]
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
        return [head, *_table(self.worst)] if self.worst else [head]


_SOURCES = {
    "torch": "torch",
    "reference": "the NumPy reference",
    "fd": "finite differences (torch agrees with the layer)",
}


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def _table(entries: list[Entry]) -> list[str]:
    if entries and entries[0].allowed is not None:
        rows = [("index", "layer", "allowed", "torch")]
        rows += [
            (str(e.index), _fmt(e.layer), f"[{_fmt(e.allowed[0])}, {_fmt(e.allowed[1])}]", _fmt(e.torch))
            for e in entries
            if e.allowed is not None
        ]
    else:
        rows = [("index", "layer", "fd", "torch", "rel err")]
        rows += [
            (
                str(e.index),
                _fmt(e.layer),
                _fmt(e.fd),
                _fmt(e.torch if e.torch is not None else e.expected),
                "inf" if e.rel_err is None else f"{e.rel_err:.3g}",
            )
            for e in entries
        ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]


# -- layouts ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """How one gradient is laid out for the user: its layout name (None: the layer's own shape, for
    biases) and whether it is a weight layout."""

    name: str | None
    weight: bool

    def axes(self, ndim: int) -> str | None:
        table = WEIGHT_AXES if self.weight else INPUT_AXES
        if self.name == "ND":
            return ("n" + "ijk")[:ndim] if ndim <= 4 else None
        letters = table.get(self.name or "", "")
        return letters if len(letters) == ndim else None

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


def _layout_of(spec: LayerSpec | None, kind: str, name: str) -> _Layout:
    """The layout the layer holds gradient ``name`` in (canonical when there is no spec)."""
    if spec is None:  # a canonical Subject: our reference layers, checks.explain.mistakes.mistaken(...)
        if name == "input":
            return _Layout("NCHW" if kind in ("conv", "maxpool") else "ND", False)
        weight = {"conv": "FCHW", "dense": "DM"}.get(kind) if name == "weight" else None
        return _Layout(weight, weight is not None)
    if name == "input":
        return _Layout(spec.input_layout, False)
    param = spec.params.get(name)
    return _Layout(param.layout if param else None, param is not None and param.layout is not None)


def _out_layout(spec: LayerSpec | None, kind: str) -> str:
    if spec is not None:
        return spec.out_layout
    return "NCHW" if kind in ("conv", "maxpool") else "ND"


# -- the layer's value -------------------------------------------------------------------------------


class _Capturing(ClassSubject):
    """A ClassSubject that also keeps each gradient exactly as the layer returned it, so a gradient of
    the wrong shape (an empty crop, a scalar bias) can still be shown and diagnosed."""

    def __init__(self, spec: LayerSpec, case: Case) -> None:
        super().__init__(spec, case)
        self.raw: dict[str, object] = {}

    def _canonical(self, y, layout, canonical_shape, stage, what):
        if stage == "backward":
            self.raw["input"] = y
        return super()._canonical(y, layout, canonical_shape, stage, what)

    def _to_canonical_grad(self, name, grad):
        self.raw[name] = grad
        return super()._to_canonical_grad(name, grad)


def _captured(trial: Trial, spec: LayerSpec, name: str) -> np.ndarray | None:
    try:
        subject = _Capturing(spec, trial.pristine.copy())
        trial.guarded("forward", subject.forward, trial.pristine.copy().inputs)
        trial.guarded("backward", subject.backward, trial.pristine.upstream.copy())
        value = subject.raw.get(name)
        return None if value is None else np.asarray(value)
    except Exception:  # the layer fails differently on a rerun: the finding's message stands
        return None


@dataclass
class _Value:
    """The layer's gradient: canonical (None if it cannot be mapped), raw (its own layout and shape),
    and the fault message (with the shape the layer returned, when that was the fault) when reading it failed."""

    canonical: np.ndarray | None
    raw: np.ndarray | None
    fault: str | None
    fault_shape: tuple[int, ...] | None = None


def layer_value(trial: Trial, name: str, spec: LayerSpec | None) -> _Value:
    """The layer's gradient for ``name`` at the trial's case, as far as it can be read."""
    try:
        value = trial.grads.get(name)
    except LayerFault as fault:
        return _Value(None, None, str(fault), fault.actual_shape)
    layout = _layout_of(spec, trial.case.kind, name)
    shape = trial.case.inputs[name].shape
    if isinstance(value, np.ndarray):
        raw = value
        if value.shape == shape:
            try:
                raw = layout.to_user(value)
            except ValueError:
                pass
        return _Value(value, raw, None)
    fault = str(value) if value is not None else f"no gradient for {name!r}"
    fault_shape = value.actual_shape if isinstance(value, LayerFault) else None
    raw = _captured(trial, spec, name) if spec is not None and isinstance(_subject(trial), ClassSubject) else None
    if raw is None:
        return _Value(None, None, fault, fault_shape)
    return _Value(layout.to_canonical(raw, shape), raw, fault, fault_shape)


# -- expected values -------------------------------------------------------------------------------


def expected_grads(trial: Trial) -> tuple[dict[str, np.ndarray], str]:
    """The exact gradients: torch's when available, else our NumPy reference layers'."""
    torch = trial.torch
    if torch is not None:
        return {k: np.asarray(v, dtype=np.float64) for k, v in torch.grads.items()}, "torch"
    from checks.subject import reference_subject

    case = trial.pristine.copy()
    subject = reference_subject(case)
    subject.forward(case.inputs)
    grads = subject.backward(case.upstream.copy())
    return {k: np.asarray(v, dtype=np.float64) for k, v in grads.items() if k in case.inputs}, "reference"


def _fd_value(trial: Trial, name: str) -> FDGradient | None:
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


def pool_windows(trial: Trial) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per window: (gradient sent to its maxima, |gradient| sent elsewhere in it, worst negative share),
    each window probed alone with its group of non-overlapping windows (as checks.subgradient does)."""
    g = trial.case.geometry
    assert isinstance(g, PoolGeometry)
    up = np.asarray(trial.pristine.upstream, dtype=np.float64)
    argmax = argmax_sets(trial.pristine.inputs["input"], g)
    sent, elsewhere, negative = (np.zeros(g.output_shape) for _ in range(3))
    for group in probe_groups(g):
        probe = np.where(group, up, 0.0).astype(trial.pristine.upstream.dtype)
        taps = pool_taps(np.asarray(trial.grad_at(probe, "input"), dtype=np.float64), g, fill=0.0)
        on = np.where(argmax, taps, 0.0)
        signed = np.where(argmax, taps * np.sign(up)[..., None, None], 0.0)
        sent = np.where(group, on.sum(axis=(-2, -1)), sent)
        elsewhere = np.where(group, np.abs(np.where(argmax, 0.0, taps)).sum(axis=(-2, -1)), elsewhere)
        negative = np.where(group, np.minimum(signed.min(axis=(-2, -1)), 0.0), negative)
    return sent, elsewhere, negative


def _pool_details(trial: Trial, d: Details, k: int, out_layout: _Layout, in_map: np.ndarray) -> np.ndarray:
    """Fill the windows of a max-pool subgradient failure; return the input positions they cover."""
    g = trial.case.geometry
    assert isinstance(g, PoolGeometry)
    tol = trial.tol.exact
    up = np.asarray(trial.pristine.upstream, dtype=np.float64)
    sent, elsewhere, negative = pool_windows(trial)
    scale = float(np.abs(up).max(initial=0.0))
    bound = tol.atol * scale + tol.rtol * np.abs(up)
    badness = np.abs(sent - up) + elsewhere + np.abs(negative)
    bad = (np.abs(sent - up) > bound) | (elsewhere > tol.atol * scale) | (-negative > bound)
    d.mismatched, d.total, d.unit = int(bad.sum()), int(bad.size), "windows"
    argmax = argmax_sets(trial.pristine.inputs["input"], g)
    out_map = out_layout.index_map(g.output_shape)
    n, c, h, w = g.input_shape
    covered = np.zeros(g.input_shape, dtype=bool)
    order = np.argsort(-np.where(bad, badness, -1.0), axis=None, kind="stable")
    for rank, flat in enumerate(order[: int(bad.sum())]):
        win = tuple(int(v) for v in np.unravel_index(int(flat), g.output_shape))
        maxima = []
        for u, v in zip(*np.nonzero(argmax[win]), strict=True):
            y, x = win[2] * g.stride[0] + int(u) - g.padding[0], win[3] * g.stride[1] + int(v) - g.padding[1]
            if 0 <= y < h and 0 <= x < w:
                maxima.append(tuple(int(i) for i in in_map[np.ravel_multi_index((win[0], win[1], y, x), (n, c, h, w))]))
                covered[win[0], win[1], y, x] = True
        if rank < k:
            gv = float(up[win])
            d.windows.append(
                Window(
                    tuple(int(i) for i in out_map[int(flat)]),
                    gv,
                    maxima,
                    float(sent[win]),
                    float(elsewhere[win]),
                    (min(0.0, gv), max(0.0, gv)),
                )
            )
    return covered


# -- the explanation -------------------------------------------------------------------------------


def explain(
    trial: Trial,
    name: str,
    spec: LayerSpec | None = None,
    *,
    k: int = DEFAULT_K,
    findings: list | None = None,
    target: str = "",
) -> tuple[Details, diagnose.Diagnosis]:
    """Details and Diagnosis for the gradient ``name`` of the (failing) trial; ``findings`` are the
    property's findings (a failed "subgradient" one means the verdict was taken at a kink)."""
    case = trial.pristine
    layout = _layout_of(spec, case.kind, name)
    shape = tuple(case.inputs[name].shape)
    value = layer_value(trial, name, spec)
    correct, source = expected_grads(trial)
    expected = correct[name]
    raw_shape = None if value.raw is None else tuple(np.shape(value.raw))
    user_shape = tuple(layout.to_user(np.empty(shape), raw_shape).shape)
    details = Details(
        gradient=name,
        verdict="values",
        layout=layout.name,
        axes=layout.axes(len(user_shape)),
        shape=user_shape,
        actual_shape=raw_shape if raw_shape is not None else value.fault_shape,
        expected_source=source,
        case=case,
        expected_value=expected,
    )
    mask = _fill(trial, details, value, expected, layout, raw_shape, spec, k, findings or [])
    details.mask = mask
    evidence = diagnose.Evidence(
        case=case,
        name=name,
        actual=value.canonical,
        correct=correct,
        tol=trial.tol.exact,
        raw=value.raw,
        out_layout=_out_layout(spec, case.kind),
        lr=_learning_rate(trial, spec),
        minimums=minimums(spec),
        mask=mask,
    )
    details.reproduction = snippet(target, spec, case, name)
    return details, diagnose.diagnose(evidence)


def _fill(
    trial: Trial,
    d: Details,
    value: _Value,
    expected: np.ndarray,
    layout: _Layout,
    raw_shape: tuple[int, ...] | None,
    spec: LayerSpec | None,
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
    torch = None if trial.torch is None else np.asarray(trial.torch.grads[d.gradient], dtype=np.float64)
    if kink and trial.case.kind == "maxpool" and d.gradient == "input":
        d.verdict = "subgradient"
        out = _Layout(_out_layout(spec, trial.case.kind), False)
        d.window_axes = OUTPUT_AXES.get(out.name or "")
        try:
            return _pool_details(trial, d, k, out, in_map)
        except LayerFault as fault:
            d.message = str(fault)
            return None
    tol, keep, allowed = trial.tol.exact, np.ones(actual.shape, dtype=bool), None
    fd = None if kink else _fd_value(trial, d.gradient)
    target = expected
    if kink and trial.case.kind == "relu":
        d.verdict = "subgradient"
        x, up = trial.pristine.inputs["input"], np.asarray(trial.pristine.upstream, dtype=np.float64)
        lo = np.where(x > 0, up, np.where(x < 0, 0.0, np.minimum(up, 0.0)))
        hi = np.where(x > 0, up, np.where(x < 0, 0.0, np.maximum(up, 0.0)))
        allowed, target = (lo, hi), np.clip(actual, lo, hi)
    elif fd is not None and _only_fd_failed(findings) and diagnose.close(actual, expected, tol):
        # the layer agrees with the exact oracle: show where finite differences disagree instead
        d.expected_source, target, keep, tol = "fd", fd.value, fd.trusted, trial.tol.fd
    scale = float(np.abs(np.where(keep, target, 0.0)).max(initial=0.0))
    bound = tol.atol * scale + tol.rtol * np.abs(target)
    bad = (np.abs(actual - target) > bound) & keep
    d.mismatched, d.total = int(bad.sum()), int(keep.sum())
    d.worst = _worst_entries(actual, target, bound, bad, in_map, k, fd=fd, torch=torch, allowed=allowed)
    return bad


def _subject(trial: Trial) -> object | None:
    try:
        return trial.subject
    except LayerFault:
        return None


def _only_fd_failed(findings: list) -> bool:
    failed = {getattr(f, "oracle", None) for f in findings if getattr(f, "failed", False)}
    return failed == {"fd"}


def _learning_rate(trial: Trial, spec: LayerSpec | None) -> float | None:
    """The layer's own learning rate (spec.lr_attr), when it has one."""
    subject = _subject(trial)
    if spec is None or not isinstance(subject, ClassSubject):
        return None
    try:
        return float(paths.resolve(subject.layer, spec.lr_attr))  # type: ignore[arg-type]
    except Exception:  # no such attribute, or not a number: no lr to quote
        return None


def minimums(spec: LayerSpec | None) -> dict[str, int | None] | None:
    """The smallest geometry the spec allows, per geometry field (None: fixed, says nothing)."""
    if spec is None:
        return None
    s = spec.supports

    def low(bound: object) -> int | None:
        return bound[0] if isinstance(bound, tuple) and bound[0] != bound[1] else None

    return {
        "batch": low(s.batch),
        "in_channels": low(s.channels),
        "channels": low(s.channels),
        "filters": low(s.filters),
        "kernel": low(s.kernel),
        "stride": low(s.stride),
        "padding": low(s.padding),
        "dilation": low(s.dilation),
        "out_features": low(s.out_features),
    }


def annotate(report: Report, spec: LayerSpec | None = None, *, k: int = DEFAULT_K) -> None:
    """Set ``details`` and ``diagnosis`` on every failing gradient property of ``report`` that kept
    its minimal failing trial. Never raises: a failure to explain is recorded in ``details.error``."""
    for p in report.properties:
        if p.status != FAIL or not p.property.startswith("grad_") or getattr(p, "trial", None) is None:
            continue
        name = p.property[len("grad_") :]
        try:
            p.details, p.diagnosis = explain(p.trial, name, spec, k=k, findings=p.findings, target=report.target)
        except Exception as exc:  # the report must survive whatever the layer or the explanation does
            p.details = Details(name, "fault", None, None, (), None, "", error=f"{type(exc).__name__}: {exc}")


# -- reproduction ----------------------------------------------------------------------------------


def case_to_dict(case: Case) -> dict:
    """The case as plain data: kind, geometry (type and fields), arrays as nested lists (exact)."""
    return {
        "kind": case.kind,
        "geometry": {"type": type(case.geometry).__name__, **case.geometry._asdict()},
        "dtype": str(case.dtype),
        "mode": case.mode,
        "inputs": {k: v.tolist() for k, v in case.inputs.items()},
        "upstream": case.upstream.tolist(),
        "labels": None if case.labels is None else case.labels.tolist(),
    }


def _literal(a: np.ndarray, indent: str) -> str:
    """``np.array(...)`` that rebuilds ``a`` exactly (shortest round-trip digits), continuation lines aligned."""
    prefix = f"{indent}np.array("
    body = np.array2string(
        a, separator=", ", floatmode="unique", threshold=sys.maxsize, max_line_width=110, prefix=prefix
    )
    dtype = "" if a.dtype == np.float64 else f", dtype=np.{a.dtype}"
    return f"np.array({body}{dtype})"


def _preset_of(spec: LayerSpec | None) -> str | None:
    """Which checks.adapt.presets function built ``spec`` (None: the spec was written by hand)."""
    build = getattr(spec, "build", None)
    if getattr(build, "__module__", None) != "checks.adapt.presets":
        return None
    qualname = getattr(build, "__qualname__", "")
    for prefix, preset in (("_seed_", "seed"), ("function_pair", "function_pair"), ("nchw", "nchw")):
        if qualname.startswith(prefix):
            return preset
    return None


def _file_target(spec: LayerSpec | None) -> str | None:
    """'path.py:Name' of the class (or module, for function pairs) a preset spec wraps, if findable."""
    try:
        names = inspect.getclosurevars(spec.build).nonlocals  # type: ignore[union-attr]
    except (TypeError, AttributeError):
        return None
    obj = names.get("cls") or names.get("forward")
    if obj is None:
        return None
    try:
        path = inspect.getsourcefile(obj)
    except TypeError:
        return None
    if not path:
        return None
    relative = os.path.relpath(path)
    path = relative if not relative.startswith("..") else path
    return f"{path}:{'' if 'forward' in names and 'cls' not in names else obj.__name__}"


def snippet(target: str, spec: LayerSpec | None, case: Case, name: str) -> str:
    """A short Python snippet that rebuilds ``case`` and reruns the layer on it via ``reproduce``."""
    preset = _preset_of(spec)
    file_target = target if ".py:" in (target or "") else _file_target(spec) if preset else None
    geometry = type(case.geometry).__name__
    lines = [
        f"# grad_{name} of {target or 'your layer'} on the minimal failing case (arrays in canonical layout:",
        "# NCHW, weights (F, C, kh, kw) / (D, M); reproduce() hands them to your layer in its own layout)",
        "import numpy as np",
        "from checks.explain import reproduce",
        f"from checks.geometry import {geometry}",
        "",
        "case = {",
        f'    "kind": {json.dumps(case.kind)},',
        f'    "geometry": {case.geometry!r},',
        '    "inputs": {',
        *(f'        "{k}": {_literal(v, " " * (len(k) + 12))},' for k, v in case.inputs.items()),
        "    },",
        f'    "upstream": {_literal(case.upstream, " " * 16)},',
    ]
    if case.labels is not None:
        lines.append(f'    "labels": np.array({case.labels.tolist()!r}),')
    lines.append("}")
    if file_target is not None:
        options = f", kind={json.dumps(case.kind)}" + (f", preset={json.dumps(preset)}" if preset else "")
        lines.append(f"reproduce({json.dumps(file_target)}, case{options}, gradient={json.dumps(name)})")
    else:
        lines.append("spec = ...  # the LayerSpec you passed to checks.check()")
        lines.append(f"reproduce(spec, case, gradient={json.dumps(name)})")
    return "\n".join(lines)


def _load_module(path: str) -> ModuleType:
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"no file {path!r}")
    module_name = f"_gradcheck_target_{abs(hash(str(file.resolve())))}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, file)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[module_name] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def load_spec(target: str, kind: str | None = None, preset: str | None = None) -> LayerSpec:
    """The LayerSpec that 'path.py:Name' names: through checks.adapt.targets (the CLI's loader) when it is
    there, else directly: Name a LayerSpec, or a class / module (empty Name) that ``preset``
    ("seed", "function_pair", "nchw") turns into one."""
    try:
        from checks.adapt import targets
    except ImportError:
        targets = None
    if targets is not None:
        return targets.load(target, kind=kind, preset=preset)
    from checks.adapt import presets

    path, _, name = target.rpartition(":")
    module = _load_module(path or target)
    obj = getattr(module, name) if name else module
    if isinstance(obj, LayerSpec):
        return obj
    if preset in ("seed", "nchw") or (preset == "function_pair" or not name):
        builder = {"seed": presets.seed, "nchw": presets.nchw}.get(preset or "", presets.function_pair)
        return builder(kind, obj)  # type: ignore[arg-type]
    raise ValueError(f"{target!r} is not a LayerSpec; say how to adapt it: preset='seed', 'function_pair' or 'nchw'")


def _as_case(case: Case | Mapping) -> Case:
    if isinstance(case, Case):
        return case
    inputs = {k: np.asarray(v) for k, v in case["inputs"].items()}
    labels = case.get("labels")
    return Case(
        case["kind"],
        case["geometry"],
        inputs,
        np.asarray(case["upstream"], dtype=inputs["input"].dtype),
        None if labels is None else np.asarray(labels),
        case.get("mode", "separated"),
    )


def reproduce(
    target: str | LayerSpec,
    case: Case | Mapping,
    *,
    kind: str | None = None,
    preset: str | None = None,
    gradient: str | None = None,
    out: Callable[[str], None] = print,
) -> dict[str, dict[str, object]]:
    """Run the layer ``target`` (a LayerSpec or 'path.py:Name', see ``load_spec``) on ``case`` and
    print each gradient (or only ``gradient``) next to the expected one, in the layer's own layout.

    Returns {name: {"layer": array or None, "expected": array, "ok": bool}} (user layout)."""
    case = _as_case(case)
    spec = target if isinstance(target, LayerSpec) else load_spec(target, kind, preset)
    trial = Trial(case, spec.subject, Options(oracles=("torch",)))
    in_layout = _layout_of(spec, case.kind, "input")
    out(f"input as your layer receives it (layout {in_layout.name}):\n{in_layout.to_user(case.inputs['input'])}")
    out(f"dL/dout given to backward (layout {spec.out_layout}):\n{layouts.to_user(case.upstream, spec.out_layout)}")
    correct, source = expected_grads(trial)
    results: dict[str, dict[str, object]] = {}
    for name in [gradient] if gradient else list(case.inputs):
        layout = _layout_of(spec, case.kind, name)
        value = layer_value(trial, name, spec)
        raw_shape = None if value.raw is None else tuple(np.shape(value.raw))
        expected = layout.to_user(correct[name].astype(case.dtype), raw_shape)
        shown = value.raw if value.raw is not None else f"(nothing readable: {value.fault})"
        out(f"dL/d{name} from your layer (layout {layout.name or 'as stored'}):\n{shown}")
        out(f"expected ({source}):\n{expected}")
        findings = properties.get(f"grad_{name}")(trial)  # the harness's own verdict (subgradient at a kink)
        for finding in findings:
            out(finding.line())
        ok = not any(f.failed for f in findings)
        if trial.at_kink and case.kind in ("maxpool", "relu") and name == "input":
            out("note: the case is at a kink (tied maximum / ReLU input 0): other splits of G are valid too")
        results[name] = {"layer": value.raw, "expected": expected, "ok": ok}
    return results
