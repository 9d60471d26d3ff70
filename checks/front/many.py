"""``cnn-gradcheck check`` on several targets, or on a file without a Name: every layer checked in turn, the
layers of a bare file found and their kinds inferred first (checks.infer), one line each saying what was
inferred, then the reports, and one summary table at the end (layer, kind, convention, verdict, mistake).

Exit status: the worst of the checked layers' (internal error 3, then a failure 1, then a gradient no oracle
judged 4, then 0); 2 only when nothing at all could be checked. ``--json FILE`` then holds every report:
``{"schema_version", "reports": [...], "not_checked": [{"target", "reason"}]}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Any

from checks.adapt.targets import parse
from checks.settings import Exit

PROG = "cnn-gradcheck"
SEVERITY = (Exit.INTERNAL, Exit.FAILED, Exit.UNJUDGED, Exit.OK)
"""The order in which the statuses of several checks make the run's status (the first present wins)."""


def surveys(target: str, args: argparse.Namespace) -> bool:
    """True for a file TARGET without a Name and without --kind/--preset: find its layers and infer them."""
    parsed = parse(target)
    return parsed.is_file and not parsed.name and args.kind is None and args.preset is None


@dataclass
class Row:
    """One line of the summary table."""

    layer: str
    kind: str
    convention: str
    verdict: str
    mistake: str = ""


def worst(statuses: list[int]) -> int:
    """The run's exit status from the checked layers' (see the module docstring)."""
    for status in SEVERITY:
        if status in statuses:
            return int(status)
    return int(Exit.UNUSABLE)


def table(rows: list[Row]) -> str:
    """The summary table, columns padded to their widest cell."""
    cells = [("layer", "kind", "convention", "verdict", "mistake")]
    cells += [(r.layer, r.kind, r.convention, r.verdict, r.mistake) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(5)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells)


def _mistake(report: Any) -> str:
    status, reason, _ = report.outcome()
    if status != "failed":
        return ""
    named = [part[part.index("[") + 1 : part.index("]")] for part in reason.split(", ") if "[" in part]
    return ", ".join(named)


def run(args: argparse.Namespace) -> int:
    from checks import api, infer
    from checks.front import cli
    from checks.sandbox.worker import LoadRefused

    rows: list[Row] = []
    statuses: list[int] = []
    reports: list[Any] = []
    not_checked: list[dict[str, str]] = []
    for target in args.targets:
        template = cli.job_from_args(args, target)
        if not surveys(target, args):
            status, report = cli.check_one(args, template, json=False)
            _collect(rows, statuses, reports, not_checked, target, template.kind, template.preset, status, report)
            continue
        try:
            layers = infer.infer(template, api.check_job)
        except LoadRefused as exc:
            print(f"{PROG}: cannot load {target}: {exc}", file=sys.stderr)
            not_checked.append({"target": target, "reason": str(exc)})
            rows.append(Row(target, "-", "-", "NOT LOADED", ""))
            continue
        if not layers:
            print(
                f"{PROG}: {target}: defines no layer (a class with a forward and a backward, function pairs or a "
                "LayerSpec)",
                file=sys.stderr,
            )
            not_checked.append({"target": target, "reason": "no layer found"})
            continue
        print(f"{PROG}: {target}: {len(layers)} layer{'s' if len(layers) != 1 else ''}", file=sys.stderr)
        for layer in layers:
            print(f"  {layer.name}: {layer.why}", file=sys.stderr)
        for layer in layers:
            if not layer.checkable:
                not_checked.append({"target": layer.target, "reason": layer.why})
                rows.append(Row(layer.name, "?", "?", "NOT CHECKED", ""))
                continue
            status, report = cli.check_one(args, layer.job(template), json=False, note=layer.why)
            _collect(rows, statuses, reports, not_checked, layer.name, layer.kind, layer.preset, status, report)
    if len(rows) > 1 or not_checked:
        print("\n" + table(rows))
    if args.json:
        data = {"schema_version": 2, "reports": [json.loads(r.to_json()) for r in reports], "not_checked": not_checked}
        cli.write_json(args.json, json.dumps(data, indent=2, default=str))
    return worst(statuses)


def _collect(
    rows: list[Row],
    statuses: list[int],
    reports: list[Any],
    not_checked: list[dict[str, str]],
    name: str,
    kind: str | None,
    preset: str | None,
    status: int,
    report: Any,
) -> None:
    """Record one checked layer (``report`` None: it could not be loaded; the reason is already printed)."""
    if report is None:
        rows.append(Row(name, kind or "?", preset or "-", "NOT LOADED"))
        not_checked.append({"target": name, "reason": "could not be loaded (see above)"})
        return
    statuses.append(status)
    reports.append(report)
    verdict = report.outcome()[0].upper().replace("_", " ")
    rows.append(Row(name, report.kind, preset or "-", verdict, _mistake(report)))
