"""The one catalogue of known backward-pass mistakes, and the diagnosis that names the one a layer made.

Each kind keeps its own mistakes (``Kind.mistakes``, checks.kinds): a mistake is the wrong gradient it
produces, ``wrong(case, correct) -> {name: wrong gradient}``. Used twice: the meta tests turn each into a
broken layer the checker must catch (``mistaken``), and the diagnosis applies each one of the case's kind
to the minimal failing case and names the one whose gradient equals the layer's.

Three more mistakes are families with a free parameter, so they are fitted to the layer's gradient
instead of computed (the detectors): an SGD step taken before dL/dX (a least-squares learning rate),
a bias gradient summed or averaged over the wrong axes of dL/dout (read off the raw value, any shape),
and any gradient divided by the batch size.

A match must hold within the trial's EXACT tolerance, and a mistake only counts where it changes the
gradient in this case (so a correct layer matches nothing). Nothing within tolerance means "no known
mistake matches"; no guess is ever offered in its place.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from checks import kinds
from checks.adapt import layouts
from checks.case import Case
from checks.explain.evidence import Diagnosis, Evidence, Match, close
from checks.explain.patterns import patterns
from checks.kinds import Mistake
from checks.tolerances import Tolerance

__all__ = ["MISTAKES", "Mistake", "MistakenSubject", "by_name", "detectors", "diagnose", "for_kind", "mistaken"]

MISTAKES: tuple[Mistake, ...] = tuple(kinds.mistakes())


def for_kind(kind: str) -> list[Mistake]:
    return [m for m in MISTAKES if m.kind == kind]


def by_name(name: str) -> Mistake:
    return kinds.by_name(name)


# -- the catalogue's entries ---------------------------------------------------------------------------


def match_mistakes(e: Evidence) -> list[Match]:
    """Every mistake of the case's kind that corrupts this gradient, changes it in this case, and
    reproduces the layer's exactly. (A mistake may corrupt more than the gradient it is filed under:
    stride ignored in backward breaks dL/dX and dL/dK alike.)"""
    out = []
    for m in for_kind(e.case.kind):
        for form in m.forms:
            evidence = _reproduces(m, form, e)
            if evidence is not None:
                out.append(Match(m.name, m.explanation, m.formula, evidence, "mistakes"))
                break
    return out


def _reproduces(m: Mistake, form, e: Evidence) -> str | None:
    try:
        wrong = form(e.case.copy(), {k: np.array(v, copy=True) for k, v in e.correct.items()}).get(e.name)
    except Exception:  # a mistake that cannot even be formed for this geometry is not it
        return None
    if wrong is None:
        return None  # not this gradient
    if m.same is not None:
        layer = e.raw if e.raw is not None else e.actual
        if m.same(wrong, layer):
            return f"the layer's gradient has the shape this mistake gives (shape {np.shape(layer)})"
        return None
    if close(wrong, e.right, e.tol):
        return None  # invisible in this case: a correct layer would match it
    if close(e.value, wrong, e.tol):
        return f"the layer's gradient equals this mistake's on the minimal case (shape {np.shape(wrong)})"
    return None


# -- fitted families (detectors) -------------------------------------------------------------------------

Detector = Callable[[Evidence], "Match | None"]


def _input_grad_with_weight(case: Case, weight: np.ndarray) -> np.ndarray:
    """dL/dX of the reference layer with its weight replaced by ``weight`` (dL/dX is linear in W)."""
    inputs = {k: np.array(v, dtype=np.float64) for k, v in case.inputs.items()}
    inputs["weight"] = np.asarray(weight, dtype=np.float64)
    shadow = Case(case.kind, case.geometry, inputs, np.asarray(case.upstream, np.float64), case.labels, case.mode)
    subject = kinds.reference_subject(shadow)
    subject.forward(shadow.inputs)
    return np.asarray(subject.backward(shadow.upstream)["input"], dtype=np.float64)


def _sgd_before_input(e: Evidence) -> Match | None:
    """dX computed with the parameters AFTER the step: dX(W - lr dW) = dX - lr * dX_W(dW) (linear in W)."""
    if e.name != "input" or "weight" not in e.correct:
        return None
    a, r = e.value, e.right
    if a is None or a.shape != r.shape or close(a, r, e.tol):
        return None
    b = _input_grad_with_weight(e.case, e.correct["weight"])
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
    kind = kinds.get(e.case.kind)
    layout = e.out_layout or kind.layouts.get("output") or "ND"
    g = layouts.to_user(np.asarray(e.case.upstream, dtype=np.float64), layout)
    letters = layouts.user_letters(layout, kind.letters("output", np.ndim(e.case.upstream)))
    letters = letters if letters is not None and len(letters) == g.ndim else "".join(str(i) for i in range(g.ndim))
    for size in range(1, g.ndim + 1):
        for axes in itertools.combinations(range(g.ndim), size):
            for how, reduce in (("summed", np.sum), ("averaged", np.mean)):
                candidate = np.asarray(reduce(g, axis=axes))
                if candidate.size == r.size and close(candidate.reshape(r.shape), r, e.tol):
                    continue  # this reduction is (equivalent to) the right one
                if _same_values(raw, candidate, r.size, e.tol):
                    return _bias_match(how, axes, letters, kind.axes.get("bias", ""), layout, raw)
    return None


def _same_values(raw: np.ndarray, candidate: np.ndarray, size: int, tol: Tolerance) -> bool:
    if raw.size == candidate.size:
        return close(raw.reshape(-1), candidate.reshape(-1), tol)
    if candidate.size == 1 and raw.size == size:  # a scalar that an SGD step broadcast over the bias
        return close(raw.reshape(-1), np.full(size, float(candidate.reshape(-1)[0])), tol)
    return False


def _bias_match(how: str, axes: tuple[int, ...], letters: str, bias: str, layout: str, raw: np.ndarray) -> Match:
    ndim = len(letters)
    right = tuple(i for i in range(ndim) if letters[i] not in bias)
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


def _over_batch(e: Evidence) -> Match | None:
    """Any gradient divided by the batch size (the gradients no catalogue entry covers)."""
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


def detectors() -> list[Detector]:
    """The fitted families, in the order they are tried (only when no catalogue entry matches)."""
    return [_sgd_before_input, _bias_axes, _over_batch]


def diagnose(e: Evidence) -> Diagnosis:
    """Patterns and named-mistake matches for one failing gradient (see the module docstring)."""
    found = [] if e.agrees else match_mistakes(e)
    if not found and not e.agrees:
        for detect in detectors():
            try:
                match = detect(e)
            except Exception:  # a detector that cannot run on this case simply does not match
                match = None
            if match is not None:
                found.append(match)
    return Diagnosis(e.name, found, patterns(e))


# -- broken layers for the meta tests --------------------------------------------------------------------


class MistakenSubject:
    """Our reference layer with one mistake applied to its backward: a layer the checker must catch."""

    def __init__(self, mistake: Mistake, case: Case, form=None) -> None:
        self.mistake, self.case, self.form = mistake, case, form or mistake.wrong
        self.inner = kinds.reference_subject(case)

    def forward(self, inputs):
        self._inputs = {k: np.array(v, copy=True) for k, v in inputs.items()}
        return self.inner.forward(inputs)

    def backward(self, upstream):
        correct = dict(self.inner.backward(upstream))
        shadow = Case(
            self.case.kind, self.case.geometry, self._inputs, np.asarray(upstream), self.case.labels, self.case.mode
        )
        correct.update(self.form(shadow, correct))
        return correct


def mistaken(mistake: Mistake | str, form: int = 0) -> Callable[[Case], MistakenSubject]:
    """A SubjectFactory for the reference layer with ``mistake`` applied (its ``form``-th form)."""
    m = by_name(mistake) if isinstance(mistake, str) else mistake
    return lambda case: MistakenSubject(m, case, m.forms[form])
