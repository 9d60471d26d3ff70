"""Reports: per property (and so per gradient) what was checked, how often, and what failed where.

``Report.render()`` is the console text; ``Report.to_dict()`` is the JSON form (schema version in
``SCHEMA_VERSION``; fields documented on the dataclasses).
"""

from __future__ import annotations

import json
import math
import re
import textwrap
from dataclasses import dataclass, field

from checks.findings import FAIL, INCONCLUSIVE, NOT_JUDGED, PASS, SKIP, Finding

SCHEMA_VERSION = 2

ENDED = {"timeout": "timeout", "memory": "memory", "crash": "crashed", "garbled": "crashed"}
"""Causes that end a check early -> how the check ended."""


def aggregate(statuses: list[str], *, must_judge: bool = False) -> str:
    """fail beats pass beats inconclusive beats skip; with ``must_judge`` (a gradient: an oracle must have
    compared something), a property no oracle judged is not_judged, never a pass or a quiet skip."""
    for status in (FAIL, PASS):
        if status in statuses:
            return status
    if must_judge:
        return NOT_JUDGED
    return INCONCLUSIVE if INCONCLUSIVE in statuses else SKIP


@dataclass
class PropertyReport:
    """property: its name ("grad_weight", ...); status: aggregate over examples; examples: cases
    tried; oracles: oracle -> how many findings it passed; findings: for a failure, the minimal
    failing case's findings (after shrinking), else a few representative ones; replay: how to
    reproduce the failure (hypothesis blob / seed); details: for a failing gradient, where it is
    wrong, the minimal case and a reproduction snippet (checks.explain.where.Details); diagnosis: its
    pattern summary and the known mistake it matches (checks.explain.evidence.Diagnosis). Both are set by
    checks.explain.annotate and documented in docs/report-schema.md."""

    property: str
    status: str
    examples: int = 0
    oracles: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    replay: str | None = None
    trial: object | None = field(default=None, repr=False, compare=False)  # the minimal failing Trial
    needs: list = field(default_factory=list, compare=False)  # checks.pipeline.needs.Need: shown, not guessed
    details: object | None = field(default=None, repr=False, compare=False)
    diagnosis: object | None = field(default=None, repr=False, compare=False)
    unjudged: int = 0  # examples an oracle was asked about and none judged (all skipped or inconclusive)
    behind: object | None = field(default=None, repr=False, compare=False)  # checks.pipeline.faults.Behind
    shrink_stopped: float | None = None  # the shrinking budget (s) that ran out: the case is the smallest so far

    def to_dict(self) -> dict:
        return {
            "property": self.property,
            "status": self.status,
            "examples": self.examples,
            "unjudged": self.unjudged,
            "oracles": self.oracles,
            "findings": [f.to_dict() for f in self.findings],
            "replay": self.replay,
            "needs": [n.to_dict() for n in self.needs],
            "details": None if self.details is None else self.details.to_dict(),
            "diagnosis": None if self.diagnosis is None else self.diagnosis.to_dict(),
            "behind": None if self.behind is None else self.behind.to_dict(),
            "shrink_stopped": self.shrink_stopped,
        }

    def _repr_html_(self) -> str:
        """Jupyter shows one property as HTML (checks.front.html), imported on first display."""
        from checks.front.html import property_html

        return property_html(self)


@dataclass
class Report:
    """target: what was checked; kind: layer kind; properties: one entry per property; passed: no
    property failed; settings: seed, examples and the rest needed to rerun the same check."""

    target: str
    kind: str
    properties: list[PropertyReport]
    settings: dict[str, object] = field(default_factory=dict)
    error: str | None = None
    at_fault_report: Report | None = field(default=None, repr=False, compare=False)
    """A network's layer at fault checked on its own (checks.sandbox.network.check_at_fault); its JSON is under
    settings["network"]["at_fault"]["report"]."""

    @property
    def passed(self) -> bool:
        """Nothing failed and every gradient was judged by some oracle."""
        return self.error is None and all(p.status not in (FAIL, NOT_JUDGED) for p in self.properties)

    @property
    def unjudged(self) -> list[str]:
        return [p.property for p in self.properties if p.status == NOT_JUDGED]

    @property
    def judged_by(self) -> list[str]:
        """The oracles that actually compared something (passed or failed a finding), sorted."""
        return sorted(
            {f.oracle for p in self.properties for f in p.findings if f.oracle and f.status in (PASS, FAIL)}
            | {o for p in self.properties for o in p.oracles if o != "-"}
        )

    @property
    def failed_properties(self) -> list[str]:
        return [p.property for p in self.properties if p.status == FAIL]

    def outcome(self) -> tuple[str, str, str]:
        """(status, reason, where): how the check ended, in one word (passed, failed, timeout, memory,
        crashed, error), one line, and where in the user's code when the layer hung or crashed there."""
        if self.error:
            return "error", self.error, ""
        for p in self.properties:
            for f in p.findings:
                if f.failed and f.cause in ENDED:
                    where = (
                        "" if not f.origin else f"{f.origin['file']} line {f.origin['line']} in {f.origin['function']}"
                    )
                    return ENDED[f.cause], f"{ENDED[f.cause]}: {f.message} (in property {p.property})", where
        if not self.failed_properties and self.unjudged:
            return "not_judged", f"not judged: {', '.join(self.unjudged)} (no oracle could compare them)", ""
        if self.passed:
            return "passed", "", ""
        parts = []
        for p in self.properties:
            if p.status == FAIL:
                mistake = getattr(p.diagnosis, "mistake", None) if p.diagnosis is not None else None
                if p.behind is not None:
                    mistake = p.behind.MISTAKE
                parts.append(f"{p.property} [{mistake}]" if mistake else p.property)
        return "failed", "failed: " + ", ".join(parts), ""

    def to_dict(self) -> dict:
        return {
            "schema_version": SCHEMA_VERSION,
            "target": self.target,
            "kind": self.kind,
            "passed": self.passed,
            "outcome": self.outcome()[0],
            "judged_by": self.judged_by,
            "error": self.error,
            "settings": self.settings,
            "properties": [p.to_dict() for p in self.properties],
        }

    def to_json(self, indent: int = 2) -> str:
        """Strict JSON: non-finite numbers (an infinite relative error) are written as null."""
        return json.dumps(_finite(self.to_dict()), indent=indent, default=_json_default, allow_nan=False)

    def render(self, front: str = "api", *, colour: bool = False) -> str:
        """The report as text for ``front``: "cli" (replay as command-line flags), "pytest" (no replay: the
        plugin prints its own) or "api" (replay as ``check()`` arguments). Hypothesis's
        ``@reproduce_failure`` line is for a test function, which none of them has: it stays in the JSON."""
        verdict = "PASS" if self.passed else "NOT JUDGED" if self.outcome()[0] == "not_judged" else "FAIL"
        head = f"{self.target} ({self.kind}): {paint(verdict, verdict.lower().replace(' ', '_'), colour)}"
        if self.error:
            return f"{head}\n  error: {self.error}"
        lines = [head]
        for p in self.properties:
            via = ", ".join(f"{k} {v}" for k, v in sorted(p.oracles.items()))
            if p.unjudged and p.status != NOT_JUDGED:
                via += f"{', ' if via else ''}{p.unjudged} not judged"
            said = p.status == NOT_JUDGED and p.findings and p.findings[0].message.startswith("not judged: ")
            if said:  # the reason fits on the row
                via = p.findings[0].message[len("not judged: ") :]
            status = p.status.upper().replace("_", " ")
            row = f"  {paint(f'{status:<12}', p.status, colour)} {p.property:<18} {p.examples:>4} examples"
            lines.append(row + (f"  ({via})" if via else ""))
            if p.status == FAIL:
                failed = [f for f in p.findings if f.failed]
                for f in failed:
                    lines.append(f"      [{f.oracle or '-'}] {f.message}")
                    if f.origin:
                        o = f.origin
                        lines.append(f"      at {o['file']} line {o['line']} in {o['function']}: {o.get('text', '')}")
                if p.behind is not None:
                    lines.extend(f"      {line}" for line in p.behind.render_lines())
                if failed and failed[0].case:
                    lines.append(f"      case: {failed[0].case}")
                if p.shrink_stopped is not None:
                    option = {"cli": "--shrink-time S", "api": "check(..., shrink_seconds=S)"}.get(front, "")
                    lines.append(
                        f"      shrinking stopped after {p.shrink_stopped:g} s at the smallest failing case so far"
                        + (f" (more time: {option})" if option else "")
                    )
                replay = replay_for(p.replay, front)
                if replay:
                    lines.append(f"      {replay}")
                if p.details is not None:
                    lines.extend(f"      {line}" for line in p.details.render_lines(p.diagnosis))
            elif p.status in (SKIP, INCONCLUSIVE, NOT_JUDGED) and p.findings and not said:
                lines.append(f"      {p.findings[0].message}")
        if not self.error:
            lines.append(f"  judged by: {', '.join(self.judged_by) or 'no oracle'}")
        return "\n".join(_fit(lines, WIDTH))

    def _repr_html_(self) -> str:
        """Jupyter shows the report as HTML (checks.front.html), imported on first display."""
        from checks.front.html import report_html

        return report_html(self)

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        """IPython's plain-text display is ``render()``; ``repr()`` stays the dataclass's, for debugging."""
        printer.text(self.render())


_COLOURS = {"pass": "32", "fail": "31", "not_judged": "33", "inconclusive": "33", "skip": "2"}
"""ANSI colours of the statuses (and of the verdicts PASS/FAIL/NOT JUDGED): green, red, yellow, dim."""


def paint(text: str, status: str, on: bool) -> str:
    """``text`` in the colour of ``status`` when ``on`` (a terminal that wants colour), else as it is."""
    code = _COLOURS.get(status.lower())
    return f"\x1b[{code}m{text}\x1b[0m" if on and code else text


WIDTH = 100
"""Report lines are wrapped to this many columns, except a reproduction snippet's (it must run as printed)."""


def _fit(lines: list[str], width: int) -> list[str]:
    """Wrap each detail line longer than ``width`` under its own indentation (plus two), leaving the header,
    the property rows and the code of a "reproduce (Python):" block as they are."""
    out: list[str] = []
    code_indent: int | None = None
    for line in lines:
        indent = len(line) - len(line.lstrip(" "))
        if code_indent is not None and (indent >= code_indent or not line.strip()):
            out.append(line)
            continue
        code_indent = indent + 2 if line.rstrip().endswith("reproduce (Python):") else None
        if len(line) <= width or indent < 4:  # the header and the property rows stay one line each
            out.append(line)
            continue
        pad = " " * (indent + 2)
        out.extend(textwrap.wrap(line, width, subsequent_indent=pad, break_on_hyphens=False, break_long_words=False))
    return out


_FLAGS = re.compile(r"rerun with (?:--seed (\S+)|derandomized) --max-examples (\d+)")


def replay_for(replay: str | None, front: str) -> str:
    """The replay line in the words of ``front`` (see Report.render)."""
    first = (replay or "").splitlines()[0] if replay else ""
    if not first or front == "pytest":
        return ""
    m = _FLAGS.search(first)
    if front == "api" and m is not None:
        seed = "None" if m.group(1) is None else m.group(1)
        return f"replay: check(spec, seed={seed}, max_examples={m.group(2)})"
    return first


def _json_default(value: object) -> object:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    return str(value)


def _finite(value: object) -> object:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if hasattr(value, "tolist"):
        return _finite(value.tolist())
    return value
