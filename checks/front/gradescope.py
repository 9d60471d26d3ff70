"""Points for grading: the rubric (how many points a layer and each of its properties is worth) and the
``results.json`` that Gradescope's autograder reads.

A rubric is a small TOML or JSON file (``cnn-gradcheck grade ... --rubric FILE``); every key is optional::

    per = "property"             # "property" (default): a layer's points split over its properties;
                                 # "layer": all or nothing, the points for a layer whose check passed
    visibility = "after_published"   # Gradescope: each test's visibility (and the results' own, when given)
    stdout_visibility = "hidden"     # Gradescope: when students see the autograder's stdout (not written if absent)
    structural_share = 0.2       # default split only: the share of a layer's points for its non-gradient properties

    [layers]                     # points per layer kind; default 10 for every graded layer. A graded layer
    conv = 10                    # missing from a [layers] table that is given is an error.
    maxpool = 10
    relu = 5
    dense = 10

    [properties]                 # relative weights within a layer (replaces the default split): a layer's
    grad_input = 3               # points are split over the properties it has, in proportion; a property
    grad_weight = 3              # not listed weighs 0. Cannot be combined with structural_share.
    grad_bias = 2
    forward = 1
    no_mutation = 1

The default split gives a layer's gradient properties (grad_input, grad_weight, grad_bias: those it has)
``1 - structural_share`` of its points in equal parts, and its other properties (forward, oracle_agreement,
linearity, determinism, no_mutation, quiet) the remaining ``structural_share`` in equal parts. A property
that was skipped (it does not apply to the layer) is left out of the split. Points are kept in hundredths
and apportioned by largest remainder, so a layer's properties always add up to exactly its points.

Scoring a (submission, layer) row: ``passed`` scores the layer's points; ``failed`` and ``not_judged``
(nothing failed, but no oracle could compare some gradient) score the points of every property that
neither failed nor went unjudged (pass, inconclusive) with ``per = "property"``, 0 with ``per = "layer"``;
any other status (timeout, memory, crashed, error, internal, missing, refused: the layer hung, crashed, did
not import or is not there) scores 0 for the whole layer. ``max_score`` is always the layer's points.

Gradescope (facts from its autograder specification): ``/autograder/results/results.json`` holds a top-level
``score`` (a number; it overrides the sum of the tests), optional ``output``, ``visibility``,
``stdout_visibility`` and ``extra_data``, and ``tests``, each with ``name``, ``score``, ``max_score``,
``output``, ``visibility`` (and the optional ``status``: ``passed`` or ``failed``, and ``number``).
Visibility is one of ``hidden``, ``after_due_date``, ``after_published`` and ``visible`` (the default).

Standard library only (the command line imports this module before anything heavy).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

# the checker's property names in report order (checks.pipeline.properties.property_names for a layer with
# input, weight and bias; a test keeps the two in step)
PROPERTIES = (
    "forward",
    "grad_input",
    "grad_weight",
    "grad_bias",
    "oracle_agreement",
    "linearity",
    "determinism",
    "no_mutation",
    "quiet",
)
GRADIENTS = tuple(p for p in PROPERTIES if p.startswith("grad_"))
VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")
PER = ("property", "layer")
DEFAULT_POINTS = 10
DEFAULT_STRUCTURAL_SHARE = 0.2
RUBRIC_KEYS = ("per", "layers", "properties", "structural_share", "visibility", "stdout_visibility")
SCORED = ("passed", "failed", "not_judged")  # every other status scores 0 for the layer
UNEARNED = ("fail", "not_judged")  # property statuses that earn nothing (not_judged: no oracle could compare it)
MAX_OUTPUT = 4000  # characters of one test's output (a student's exception text can be long)


class RubricError(ValueError):
    """The rubric cannot be used; ``str()`` is one line."""


def _number(value: Any, where: str, *, low: float = 0.0, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise RubricError(f"{where} must be a number, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"between {low:g} and {high:g}" if high is not None else f">= {low:g}"
        raise RubricError(f"{where} must be {bound}, got {value!r}")
    return float(value)


def cents(points: float) -> int:
    """Points in hundredths (scores are exact in hundredths)."""
    return int(round(points * 100))


def shown(hundredths: int) -> float:
    """Hundredths as the number JSON and Gradescope show (7.5, 10.0, 3.33)."""
    return hundredths / 100


def _exact(value: float) -> Fraction:
    """A weight as the decimal it was written as (0.2, not the binary double nearest to it)."""
    return Fraction(str(value))


def _apportion(total: int, weights: Sequence[tuple[str, Fraction]]) -> dict[str, int]:
    """Split ``total`` hundredths over the names in proportion to their weights, by largest remainder (ties:
    the earlier name), so that the parts add up to ``total`` exactly."""
    whole = sum((w for _, w in weights), Fraction(0))
    if whole <= 0:
        return {name: 0 for name, _ in weights}
    exact = [(name, total * w / whole) for name, w in weights]
    parts = {name: int(value) for name, value in exact}  # floor: every value is >= 0
    left = total - sum(parts.values())
    by_remainder = sorted(range(len(exact)), key=lambda i: (-(exact[i][1] - int(exact[i][1])), i))
    for i in by_remainder[:left]:
        parts[exact[i][0]] += 1
    return parts


@dataclass(frozen=True)
class Rubric:
    """How many points each layer and property is worth (see the module docstring)."""

    layers: dict[str, float] = field(default_factory=dict)
    per: str = "property"
    properties: dict[str, float] | None = None
    structural_share: float = DEFAULT_STRUCTURAL_SHARE
    visibility: str | None = None
    stdout_visibility: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "rubric") -> Rubric:
        """A validated Rubric from a parsed TOML or JSON document (RubricError names the bad key)."""
        if not isinstance(data, Mapping):
            raise RubricError(f"{where}: expected a table/object at the top level")
        unknown = sorted(set(data) - set(RUBRIC_KEYS))
        if unknown:
            raise RubricError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(RUBRIC_KEYS)}")
        per = data.get("per", "property")
        if per not in PER:
            raise RubricError(f"{where}: per must be one of {', '.join(PER)}, got {per!r}")
        layers = data.get("layers", {})
        if not isinstance(layers, Mapping):
            raise RubricError(f"{where}: layers must be a table of kind = points")
        points = {str(k): _number(v, f"{where}: layers.{k}") for k, v in layers.items()}
        properties = data.get("properties")
        weights = None
        if properties is not None:
            if not isinstance(properties, Mapping):
                raise RubricError(f"{where}: properties must be a table of property = weight")
            bad = sorted(set(properties) - set(PROPERTIES))
            if bad:
                raise RubricError(f"{where}: unknown propert(ies) {', '.join(bad)}; known: {', '.join(PROPERTIES)}")
            weights = {p: _number(properties[p], f"{where}: properties.{p}") for p in PROPERTIES if p in properties}
            if "structural_share" in data:
                raise RubricError(f"{where}: give either properties (weights) or structural_share, not both")
        share = _number(data.get("structural_share", DEFAULT_STRUCTURAL_SHARE), f"{where}: structural_share", high=1)
        visibility = {}
        for key in ("visibility", "stdout_visibility"):
            value = data.get(key)
            if value is not None and value not in VISIBILITIES:
                raise RubricError(f"{where}: {key} must be one of {', '.join(VISIBILITIES)}, got {value!r}")
            visibility[key] = value
        return cls(points, per, weights, share, visibility["visibility"], visibility["stdout_visibility"])

    def to_dict(self) -> dict[str, Any]:
        """The rubric as summary.json records it (``from_dict`` reads it back)."""
        data: dict[str, Any] = {"per": self.per, "layers": dict(self.layers)}
        if self.properties is not None:
            data["properties"] = dict(self.properties)
        else:
            data["structural_share"] = self.structural_share
        for key in ("visibility", "stdout_visibility"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        return data

    def for_layers(self, kinds: Sequence[str]) -> Rubric:
        """This rubric with points for exactly ``kinds`` (the graded layers): DEFAULT_POINTS each when it
        gives no [layers] table; RubricError when a table is given but leaves a graded layer out."""
        if not self.layers:
            return Rubric({k: float(DEFAULT_POINTS) for k in kinds}, *self._rest())
        missing = [k for k in kinds if k not in self.layers]
        if missing:
            raise RubricError(
                f"rubric: no points for the graded layer(s) {', '.join(missing)} "
                f"(its [layers] table lists {', '.join(self.layers) or 'nothing'})"
            )
        return Rubric({k: self.layers[k] for k in kinds}, *self._rest())

    def _rest(self) -> tuple[Any, ...]:
        return self.per, self.properties, self.structural_share, self.visibility, self.stdout_visibility

    def points(self, layer: str) -> float:
        return self.layers.get(layer, float(DEFAULT_POINTS))

    def split(self, layer: str, properties: Mapping[str, str]) -> dict[str, int]:
        """Each property's share of the layer's points, in hundredths (skipped properties left out); empty
        when the layer is scored as a whole (per = "layer", or no property carries any weight)."""
        if self.per == "layer":
            return {}
        present = [p for p in PROPERTIES if properties.get(p) not in (None, "skip")]
        present += [p for p in properties if p not in PROPERTIES and properties[p] != "skip"]  # future names
        total = cents(self.points(layer))
        if self.properties is not None:
            weights = [(p, _exact(self.properties.get(p, 0.0))) for p in present]
            if sum((w for _, w in weights), Fraction(0)) <= 0:
                return {}
            return _apportion(total, weights)
        grads = [p for p in present if p in GRADIENTS]
        others = [p for p in present if p not in GRADIENTS]
        if not present:
            return {}
        share = _exact(self.structural_share) if grads and others else Fraction(0 if grads else 1)
        groups = _apportion(total, [("grads", 1 - share), ("others", share)])  # the groups first, exactly
        parts = {**_apportion(groups["grads"], [(p, Fraction(1)) for p in grads])}
        parts.update(_apportion(groups["others"], [(p, Fraction(1)) for p in others]))
        return {p: parts[p] for p in present}

    def score(self, layer: str, status: str, properties: Mapping[str, str]) -> tuple[int, int]:
        """(score, max_score) of one row, in hundredths."""
        top = cents(self.points(layer))
        if status == "passed":
            return top, top
        if status not in SCORED:
            return 0, top
        parts = self.split(layer, properties)
        if not parts:  # scored as a whole
            return 0, top
        return sum(v for p, v in parts.items() if properties.get(p) not in UNEARNED), top


def load_rubric(path: str | Path) -> Rubric:
    """A Rubric from a .toml or .json file (RubricError: unreadable, unparsable or invalid)."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise RubricError(f"--rubric {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise RubricError(f"--rubric {path}: not UTF-8 text") from None
    suffix = source.suffix.lower()
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RubricError(f"--rubric {path}: invalid JSON: {exc}") from None
    elif suffix == ".toml":
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - exercised on 3.10 only
            try:
                import tomli as tomllib
            except ImportError:
                raise RubricError(f"--rubric {path}: TOML needs Python 3.11+ or tomli; or use a .json rubric") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise RubricError(f"--rubric {path}: invalid TOML: {exc}") from None
    else:
        raise RubricError(f"--rubric {path}: expected a .toml or .json file")
    return Rubric.from_dict(data, where=f"--rubric {path}")


# -- results.json ----------------------------------------------------------------------------------------


def _clip(text: str) -> str:
    return text if len(text) <= MAX_OUTPUT else text[: MAX_OUTPUT - 20] + "\n... (cut)"


def property_output(report: Mapping[str, Any] | None, prop: str, status: str) -> str:
    """What a student sees for one property: its verdict, and for a failure the failing findings, the case
    and the named mistake (never the seed or a replay line: the seed may be the course's secret)."""
    entry = next(
        (p for p in (report or {}).get("properties") or [] if isinstance(p, dict) and p.get("property") == prop),
        {},
    )
    findings = [f for f in entry.get("findings") or [] if isinstance(f, dict)]
    examples = entry.get("examples")
    head = f"{prop}: {status}" + (f" ({examples} examples)" if isinstance(examples, int) else "")
    lines = [head]
    if status == "fail":
        failed = [f for f in findings if f.get("status") == "fail"]
        lines += [f"  {f.get('message', '')}" for f in failed[:5]]
        if len(failed) > 5:
            lines.append(f"  ... and {len(failed) - 5} more")
        if failed and failed[0].get("case"):
            lines.append(f"  case: {failed[0]['case']}")
        diagnosis = entry.get("diagnosis") if isinstance(entry.get("diagnosis"), dict) else {}
        matches = [m for m in diagnosis.get("matches") or [] if isinstance(m, dict)]
        if diagnosis.get("mistake"):
            explanation = matches[0].get("explanation", "") if matches else ""
            lines.append(f"  likely mistake: {diagnosis['mistake']}" + (f": {explanation}" if explanation else ""))
    elif status in ("skip", "inconclusive", "not_judged") and findings:
        lines.append(f"  {findings[0].get('message', '')}")
    return _clip("\n".join(lines))


def results(
    submission: str,
    rows: Sequence[Any],
    entries: Mapping[str, Mapping[str, Any] | None],
    rubric: Rubric,
    *,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The results.json document of one submission: ``rows`` are its grade.Rows (scored), ``entries`` the
    layers' entries of its reports/SUBMISSION.json (``report``: the check's report as a dict, ``where``:
    where it hung or crashed), for the layers that have one."""
    reports = {layer: (entry or {}).get("report") for layer, entry in entries.items()}
    visibility = rubric.visibility or "visible"
    tests: list[dict[str, Any]] = []
    lines = []
    total = top = 0
    for number, row in enumerate(rows, start=1):
        score, most = cents(row.score), cents(row.max_score)
        total, top = total + score, top + most
        where = f" ({row.target})" if row.target else ""
        lines.append(f"{row.layer}: {row.status}, {shown(score):g} / {shown(most):g} points{where}")
        parts = rubric.split(row.layer, row.properties) if row.status in SCORED else {}
        if not parts:  # the layer as one test: per = "layer", or it hung, crashed, failed to import, is missing
            text = [f"{row.layer}: {row.status}" + where]
            if row.reason:
                text.append(row.reason)
            located = (entries.get(row.layer) or {}).get("where")
            if located:
                text.append(f"where: {located}")
            if row.status in SCORED:
                text += [property_output(reports.get(row.layer), p, s) for p, s in row.properties.items()]
            tests.append(_test(f"{row.layer}", f"{number}", score, most, "\n".join(text), visibility))
            continue
        for sub, (prop, share) in enumerate(parts.items(), start=1):
            status = row.properties.get(prop, "")
            got = share if row.status == "passed" or status not in UNEARNED else 0
            text = property_output(reports.get(row.layer), prop, status)
            tests.append(_test(f"{row.layer}: {prop}", f"{number}.{sub}", got, share, text, visibility))
    head = f"cnn-gradcheck: {shown(total):g} / {shown(top):g} points for {submission}"
    document: dict[str, Any] = {
        "score": shown(total),
        "output": "\n".join([head, *lines]),
        "tests": tests,
        "extra_data": {"cnn_gradcheck": dict(extra or {})},
    }
    if rubric.visibility is not None:
        document["visibility"] = rubric.visibility
    if rubric.stdout_visibility is not None:
        document["stdout_visibility"] = rubric.stdout_visibility
    return document


def _test(name: str, number: str, score: int, most: int, output: str, visibility: str) -> dict[str, Any]:
    return {
        "name": name,
        "number": number,
        "score": shown(score),
        "max_score": shown(most),
        "status": "passed" if score >= most else "failed",
        "output": _clip(output),
        "visibility": visibility,
    }


def validate(document: Any) -> list[str]:
    """The ways ``document`` breaks the results.json format (empty: none): the keys and types Gradescope's
    specification gives, top level and per test."""
    problems: list[str] = []

    def number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    if not isinstance(document, dict):
        return ["the top level is not an object"]
    tests = document.get("tests")
    if "score" not in document and not (isinstance(tests, list) and all("score" in t for t in tests if t)):
        problems.append("no top-level score and not every test has one")
    if "score" in document and not number(document["score"]):
        problems.append(f"score is not a number: {document['score']!r}")
    for key in ("output", "output_format", "test_output_format", "test_name_format"):
        if key in document and not isinstance(document[key], str):
            problems.append(f"{key} is not a string")
    if "execution_time" in document and not number(document["execution_time"]):
        problems.append("execution_time is not a number")
    for key in ("visibility", "stdout_visibility"):
        if key in document and document[key] not in VISIBILITIES:
            problems.append(f"{key} {document[key]!r} is not one of {', '.join(VISIBILITIES)}")
    if "extra_data" in document and not isinstance(document["extra_data"], dict):
        problems.append("extra_data is not an object")
    if tests is not None and not isinstance(tests, list):
        problems.append("tests is not a list")
    for i, test in enumerate(tests if isinstance(tests, list) else []):
        where = f"tests[{i}]"
        if not isinstance(test, dict):
            problems.append(f"{where} is not an object")
            continue
        for key in ("score", "max_score"):
            if key in test and not number(test[key]):
                problems.append(f"{where}.{key} is not a number")
        for key in ("name", "number", "output", "name_format", "output_format"):
            if key in test and not isinstance(test[key], str):
                problems.append(f"{where}.{key} is not a string")
        if "status" in test and test["status"] not in ("passed", "failed"):
            problems.append(f"{where}.status {test['status']!r} is not passed or failed")
        if "visibility" in test and test["visibility"] not in VISIBILITIES:
            problems.append(f"{where}.visibility {test['visibility']!r} is not one of {', '.join(VISIBILITIES)}")
        if "tags" in test and not (isinstance(test["tags"], list) and all(isinstance(t, str) for t in test["tags"])):
            problems.append(f"{where}.tags is not a list of strings")
        if "extra_data" in test and not isinstance(test["extra_data"], dict):
            problems.append(f"{where}.extra_data is not an object")
    return problems
