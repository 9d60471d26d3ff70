"""One fault, said once: the layer raising (or returning a wrong shape, a NaN, ...) at the same place is one
fault however many properties meet it, and the properties explored after it judge only the cases that do
not meet it, so that a second, independent bug is still found.

And a fault raised on a line that writes sizes down (``x.reshape(1352, 1)``) is looked behind: the layer is
run at those sizes, where it may get past the line, and what the other properties then say is reported.
"""

from __future__ import annotations

import io
import itertools
import re
import tokenize
from collections.abc import Mapping
from dataclasses import dataclass, field

from checks.adapt.guard import Cause
from checks.findings import Finding
from checks.geometry import ConvGeometry, DenseGeometry, Geometry, PoolGeometry
from checks.pipeline.trial import Options, Trial
from checks.subject import SubjectFactory

FaultKey = tuple[str, ...]

MAX_SIZED = 12
"""How many geometries built from a line's sizes are tried (the line may write many numbers)."""
MAX_ENTRIES = 2_000_000
"""The largest input or parameter a geometry built from a line's sizes may have."""

SIZED_FIELDS: dict[type, tuple[str, ...]] = {
    DenseGeometry: ("features", "out_features"),
    ConvGeometry: ("in_channels", "filters", "height", "width", "kernel"),
    PoolGeometry: ("channels", "height", "width", "kernel"),
}
"""The geometry fields a hard-coded size may stand for, per geometry type (batch stays as it is)."""


def key(finding: Finding) -> FaultKey | None:
    """What makes two failed findings the same fault: its cause, its stage and where in the user's code it
    was raised (or, without a place, its message with the numbers taken out: sizes differ between cases).
    None for a finding that is not a fault of the layer or that ends the check (a hang, memory)."""
    if not finding.failed or finding.cause is None or Cause(finding.cause).fatal:
        return None
    stage = finding.message.split(":", 1)[0]
    origin = finding.origin or {}
    if origin.get("file") and origin.get("line"):
        return (finding.cause, stage, str(origin["file"]), str(origin["line"]))
    text = finding.message.split(" (inputs:", 1)[0]
    return (finding.cause, stage, re.sub(r"\d+", "#", text))


def met(findings: list[Finding], known: Mapping[FaultKey, str]) -> str | None:
    """The property under which a fault in ``findings`` was first reported, when one is already known."""
    for f in findings:
        k = key(f)
        if k is not None and k in known:
            return known[k]
    return None


def headline(finding: Finding) -> str:
    """The fault in a few words: "backward raised ValueError"."""
    stage, _, rest = finding.message.partition(": ")
    words = rest.split(":", 1)[0] if rest.startswith("raised ") else (finding.cause or "failed")
    return f"{stage} {words}"


# -- the sizes a line writes down -----------------------------------------------------------------------------


def sizes_in(line: str) -> list[int]:
    """The integer literals of at least 2 in a line of Python, in order, once each (comments and strings
    are not code: a "# for 28x28 images" names no size)."""
    found: list[int] = []
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(line.strip() + "\n").readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return found
    for tok in tokens:
        if tok.type == tokenize.NUMBER and re.fullmatch(r"\d+", tok.string):
            value = int(tok.string)
            if value >= 2 and value not in found:
                found.append(value)
    return found


def _entries(g: Geometry) -> int:
    shapes = [g.input_shape, g.output_shape, *g.param_shapes.values()]
    total = 0
    for shape in shapes:
        n = 1
        for d in shape:
            n *= int(d)
        total = max(total, n)
    return total


def _valid(g: Geometry) -> bool:
    try:
        shapes = [g.input_shape, g.output_shape, *g.param_shapes.values()]
    except Exception:  # noqa: BLE001 - a combination the geometry cannot describe is not a candidate
        return False
    if any(d < 1 for shape in shapes for d in shape):
        return False
    if isinstance(g, PoolGeometry) and any(p > k // 2 for p, k in zip(g.padding, g.kernel, strict=True)):
        return False
    return _entries(g) <= MAX_ENTRIES


def _set(g: Geometry, name: str, value: int) -> Geometry:
    current = getattr(g, name)
    if isinstance(current, tuple):
        return g._replace(**{name: (value,) * len(current)})
    return g._replace(**{name: value})


def sized(g: Geometry, sizes: list[int], fixed: Mapping[str, int | None] | None = None) -> list[Geometry]:
    """Geometries like ``g`` with some of its size fields set to sizes the raising line writes down, the
    fields that use more of the sizes first (a line that reshapes to (1352, 1) and (1, 10) is about a
    1352-feature, 10-class layer), at most MAX_SIZED, each valid and of bounded size. ``fixed``: fields the
    layer fixes (None) stay as they are."""
    fields = [f for f in SIZED_FIELDS.get(type(g), ()) if (fixed or {}).get(f, 0) is not None]
    if not sizes or not fields:
        return []
    out: list[Geometry] = []
    for count in range(min(len(fields), len(sizes)), 0, -1):
        for names in itertools.combinations(fields, count):
            for values in itertools.permutations(sizes, count):
                candidate = g
                for name, value in zip(names, values, strict=True):
                    candidate = _set(candidate, name, value)
                if candidate != g and candidate not in out and _valid(candidate):
                    out.append(candidate)
                if len(out) >= MAX_SIZED:
                    return out
    return out


def describe(g: Geometry, base: Geometry) -> str:
    """The fields where ``g`` differs from ``base``: "features=1352, out_features=10"."""
    parts = []
    for name in g._fields:
        value = getattr(g, name)
        if value != getattr(base, name):
            shown = value[0] if isinstance(value, tuple) and len(set(value)) == 1 else value
            parts.append(f"{name}={shown}")
    return ", ".join(parts)


# -- looking behind a line that writes sizes down -------------------------------------------------------------


@dataclass
class Behind:
    """What the layer does at the sizes the raising line writes down. ``where``: "features=1352,
    out_features=10"; ``line``: the raising line's number and text; ``failed``: the properties that fail
    there (each with its finding and trial, for the explanation); ``passed``: those that pass there. The
    fault itself is then shown to be the mistake "hard_coded_sizes": the layer runs at the written sizes
    and raises at the others."""

    where: str
    line: int
    text: str
    failed: list[tuple[str, Finding, Trial]] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)
    mistakes: dict[str, str] = field(default_factory=dict)  # property -> named mistake, set by checks.explain

    MISTAKE = "hard_coded_sizes"

    def to_dict(self) -> dict:
        return {
            "mistake": self.MISTAKE,
            "where": self.where,
            "line": self.line,
            "text": self.text,
            "failed": [
                {"property": p, "message": f.message, "mistake": self.mistakes.get(p)} for p, f, _ in self.failed
            ],
            "passed": list(self.passed),
        }

    def render_lines(self) -> list[str]:
        lines = [
            f"mistake: {self.MISTAKE}: line {self.line} writes sizes down: the layer runs at {self.where}"
            " and raises at the other sizes tried",
        ]
        for prop, f, _ in self.failed:
            named = f" [{self.mistakes[prop]}]" if prop in self.mistakes else ""
            lines.append(f"behind it, at {self.where}: {prop} FAILS{named}: {f.message}")
        if self.passed:
            lines.append(f"behind it, at {self.where}: {', '.join(self.passed)} pass")
        return lines


def behind(
    trial: Trial,
    prop: str,
    finding: Finding,
    others: list[str],
    factory: SubjectFactory,
    options: Options,
    fixed: Mapping[str, int | None] | None = None,
) -> Behind | None:
    """Run the layer at the sizes ``finding``'s raising line writes down (see ``sized``); at the first
    geometry where ``prop`` no longer meets the fault, judge ``prop`` and ``others`` there. None when the
    line writes no sizes or the layer meets the same fault at every geometry tried."""
    from checks.pipeline import properties
    from checks.pipeline.needs import case_like

    origin = finding.origin or {}
    fault = key(finding)
    if fault is None or finding.cause != Cause.RAISED.value or not origin.get("text"):
        return None
    base = trial.case.geometry
    for geometry in sized(base, sizes_in(str(origin["text"])), fixed):
        case = case_like(trial.pristine, geometry)
        if case is None:
            continue
        there = Trial(case, factory, options)
        if any(f.failed and f.cause is not None for f in properties.get(prop)(there)):
            continue  # the same fault, or another: the layer did not get past the line
        found = Behind(describe(geometry, base), int(origin.get("line") or 0), str(origin["text"]).strip())
        for name in [prop, *others]:
            findings = properties.get(name)(there)
            failed = [f for f in findings if f.failed]
            if failed:
                found.failed.append((name, failed[0], there))
            elif any(f.status == "pass" for f in findings):
                found.passed.append(name)
        return found
    return None
