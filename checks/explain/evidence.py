"""What is known about one failing gradient (Evidence), and what the explanation concludes from it: the
patterns it shows and the known mistakes that reproduce it (Pattern, Match, Diagnosis).

A match or a pattern is a claim about the layer; each is only made where the checker has shown it (a
wrong gradient equal to the layer's within the EXACT tolerance, a region that holds every mismatch).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from checks.case import Case
from checks.compare import compare
from checks.tolerances import Tolerance


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
    ("mistakes" for a kind's catalogue entry, "detector" for a fitted family in checks.explain.mistakes)."""

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
    supports); mask: True where the gradient is wrong (defaults to the entry-wise exact comparison with
    ``correct``); needs: what the failure was shown to need (checks.pipeline.needs.Need).
    """

    case: Case
    name: str
    actual: np.ndarray | None
    correct: Mapping[str, np.ndarray]
    tol: Tolerance
    raw: np.ndarray | None = None
    out_layout: str | None = None
    lr: float | None = None
    minimums: Mapping[str, int | None] | None = None
    mask: np.ndarray | None = None
    needs: list = field(default_factory=list)

    @property
    def right(self) -> np.ndarray:
        return np.asarray(self.correct[self.name], dtype=np.float64)

    @property
    def value(self) -> np.ndarray | None:
        return None if self.actual is None else np.asarray(self.actual, dtype=np.float64)

    @property
    def batch(self) -> int:
        # a function layer of several inputs has no one batch axis: 1 claims no batch-size multiple
        return int(self.case.inputs["input"].shape[0]) if "input" in self.case.inputs else 1

    @property
    def agrees(self) -> bool:
        """The layer's gradient is right (within the exact tolerance): nothing to diagnose."""
        return self.value is not None and close(self.value, self.right, self.tol)


def close(a: np.ndarray | None, b: np.ndarray | None, tol: Tolerance) -> bool:
    """Same shape, finite, and |a - b| <= atol * max|b| + rtol * |b| entry-wise (empty arrays agree)."""
    if a is None or b is None:
        return False
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return False
    return a.size == 0 or compare(a, b, tol).ok


def mismatch(actual: np.ndarray, right: np.ndarray, tol: Tolerance) -> np.ndarray:
    """Entry-wise: True where ``actual`` is outside the exact tolerance of ``right`` (NaN included)."""
    with np.errstate(invalid="ignore"):
        return ~(np.abs(actual - right) <= tol.bound(right))
