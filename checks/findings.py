"""Findings: what one property concluded about one case."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from checks.compare import Comparison

PASS, FAIL, SKIP, INCONCLUSIVE = "pass", "fail", "skip", "inconclusive"
NOT_JUDGED = "not_judged"
"""A property's status (never a finding's) when no oracle judged any of its cases: never a pass."""


@dataclass(frozen=True)
class Finding:
    """property: e.g. "forward", "grad_input", "linearity"; status: pass/fail/skip/inconclusive;
    oracle: what judged ("torch", "fd", "subgradient", "reference", "structure"); message: one line
    a person can act on; case: the case in one line; comparison: the numbers, when there are any;
    cause: why the layer failed when a LayerFault ended the property (a checks.adapt.guard.Cause value:
    "raised", "timeout", "memory", ...), else None."""

    property: str
    status: str
    message: str
    oracle: str | None = None
    case: str = ""
    comparison: Comparison | None = None
    cause: str | None = None
    origin: dict | None = None

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        via = f" [{self.oracle}]" if self.oracle else ""
        return f"{self.status.upper():<12} {self.property}{via}: {self.message}"
