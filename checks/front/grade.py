"""Grading mode: check every student's layers, each check isolated, and write a summary.

cnn-gradcheck grade SUBMISSIONS_DIR [--layer KIND=Class[,Other] | --layer KIND=file.py:Class | --kind KIND]...
                    [--preset seed] --out DIR [--jobs N] [--seed N] [--max-examples N] [--timeout S] [--memory MB]
(the command line is checks.front.cli's; this module is what it runs)

Submissions: every folder (one per student) and every ``.py`` file (a single-file submission) directly in
SUBMISSIONS_DIR, hidden entries and ``__pycache__`` left out. For each layer to grade, the class is looked
up in the submission's ``.py`` files by parsing them (``ast``; a file that does not compile is searched
as text, so that its check then reports the import error); nothing of the submission runs in the
grader's process. ``--kind conv`` uses the usual seed-style names (DEFAULT_CLASSES); ``--layer
conv=ConvLayer,Conv3x3`` takes the first name found; ``--layer conv=model.py:ConvLayer`` names the file.
A class that is not found is that submission's failure (status "missing": "no class ConvLayer
found"), not an error of the run.

Each (submission, layer) check is a checks.job.Job run by ``checks.sandbox.isolate.run_isolated`` on a
COPY of the submission in a fresh temporary folder of its own, with a wall-clock timeout and a memory
limit; a submission that
hangs, crashes, exhausts memory or writes into other folders only affects its own row. The checks run
in parallel: a thread pool of ``jobs`` threads, each waiting on one child process.

Output (``--out DIR``, which must not be inside SUBMISSIONS_DIR):
- summary.csv and summary.json: one row per (submission, layer), sorted: submission, layer, target,
  status (passed / failed / timeout / memory / crashed / error / internal, see checks.sandbox.isolate; missing:
  no such class in the submission, nothing was run), the verdict of each
  property, the diagnosis of each failing gradient ("grad_bias: bias_grad_wrong_axes"), the reason,
  and ``seconds``. Given the seed, everything but ``seconds`` and the ``run`` section of summary.json
  (start time, wall time, jobs) is the same from run to run;
- reports/SUBMISSION.json (every layer's isolated result with its full report) and
  reports/SUBMISSION.txt (the rendered reports).

Exit status of ``cnn-gradcheck grade``: 0 the grading ran (whatever the verdicts), 2 the command line or
the submissions folder could not be used, 3 a check ended in an internal error of cnn-gradcheck.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import os
import re
import shutil
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from checks.job import CALL_SECONDS, Job
from checks.sandbox import isolate
from checks.settings import DEFAULT_MAX_EXAMPLES, ORACLES

DEFAULT_CLASSES: dict[str, tuple[str, ...]] = {
    "conv": ("ConvLayer", "Conv3x3"),
    "maxpool": ("MaxPoolLayer", "MaxPool2"),
    "relu": ("ReLULayer", "ReLU"),
    "dense": ("FullyConnectedLayer", "DenseLayer"),
}
KINDS = tuple(DEFAULT_CLASSES)
DEFAULT_TIMEOUT = 60.0
DEFAULT_MEMORY = 2 * isolate.GiB
SUMMARY_SCHEMA = "cnn-gradcheck-grade/1"
STATUSES = (*isolate.STATUSES, "missing")  # missing: the submission has no such class (nothing was run)
TIMING_FIELDS = ("seconds",)  # per row; plus the top-level "run" section of summary.json


class GradeError(Exception):
    """The submissions folder, the layers or the output folder cannot be used; ``str()`` is one line."""


@dataclass(frozen=True)
class LayerChoice:
    """Which class to check as ``kind``: the first of ``classes`` found, in ``file`` if one is given."""

    kind: str
    classes: tuple[str, ...]
    file: str | None = None

    @property
    def shown(self) -> str:
        names = ",".join(self.classes)
        return f"{self.kind}={self.file}:{names}" if self.file else f"{self.kind}={names}"


def parse_layer(text: str) -> LayerChoice:
    """'conv=ConvLayer', 'conv=ConvLayer,Conv3x3', 'conv=model.py:ConvLayer' or just 'conv'."""
    kind, sep, rest = text.partition("=")
    kind = kind.strip()
    if kind not in KINDS:
        raise GradeError(f"--layer {text}: the kind must be one of {', '.join(KINDS)}")
    if not sep:
        return LayerChoice(kind, DEFAULT_CLASSES[kind])
    file = None
    if ":" in rest:
        file, _, rest = rest.rpartition(":")
        file = file.strip() or None
        if file is not None and (Path(file).is_absolute() or ".." in Path(file).parts or not file.endswith(".py")):
            raise GradeError(f"--layer {text}: the file must be a .py path inside the submission")
    names = tuple(n.strip() for n in rest.split(",") if n.strip())
    if not names or not all(n.isidentifier() for n in names):
        raise GradeError(f"--layer {text}: expected KIND=ClassName[,OtherName] or KIND=file.py:ClassName")
    return LayerChoice(kind, names, file)


def layer_choices(layers: Mapping[str, str | Sequence[str]] | Sequence[str | LayerChoice]) -> list[LayerChoice]:
    """Normalise the ``layers`` argument of ``grade`` (see there) to LayerChoices, one per kind."""
    if isinstance(layers, Mapping):
        choices = []
        for kind, names in layers.items():
            spec = names if isinstance(names, str) else ",".join(names)
            choices.append(parse_layer(f"{kind}={spec}"))
    else:
        choices = [c if isinstance(c, LayerChoice) else parse_layer(c) for c in layers]
    kinds = [c.kind for c in choices]
    if not choices:
        raise GradeError("no layers to grade: give --layer KIND=Class or --kind KIND")
    if len(set(kinds)) != len(kinds):
        raise GradeError(f"a kind is given twice: {', '.join(kinds)}")
    return choices


@dataclass(frozen=True)
class Submission:
    """One student's work: a folder, or a single .py file (``is_file``)."""

    name: str
    path: Path

    @property
    def is_file(self) -> bool:
        return self.path.is_file()


def discover(submissions_dir: Path) -> list[Submission]:
    """Every folder and .py file directly in ``submissions_dir`` (hidden ones and __pycache__ left out), sorted."""
    found = []
    for entry in sorted(submissions_dir.iterdir(), key=lambda p: p.name):
        if entry.name.startswith((".", "_")):
            continue
        if entry.is_dir() and not entry.is_symlink():
            found.append(Submission(entry.name, entry))
        elif entry.is_file() and entry.suffix == ".py":
            found.append(Submission(entry.stem, entry))
    names = Counter(s.name for s in found)
    clashes = sorted(n for n, c in names.items() if c > 1)
    if clashes:
        raise GradeError(f"{submissions_dir}: both a folder and a .py file are named {', '.join(clashes)}")
    return found


# -- finding the class -------------------------------------------------------------------------------


def _python_files(submission: Submission) -> list[Path]:
    """The submission's .py files, shallowest first, then by path."""
    if submission.is_file:
        return [submission.path]
    files = []
    for path in submission.path.rglob("*.py"):
        rel = path.relative_to(submission.path)
        if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
            continue
        files.append(path)
    return sorted(files, key=lambda p: (len(p.relative_to(submission.path).parts), p.as_posix()))


def _defined_names(path: Path) -> tuple[set[str], str | None]:
    """Top-level classes (and names assigned at top level) of a file, without running it. For a file
    that does not compile: the names found by a textual search, and the compile error."""
    try:
        source = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return set(), f"cannot be read: {exc.strerror or exc}"
    try:
        tree = ast.parse(source, filename=str(path))
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None)
        error = f"line {line}: {type(exc).__name__}: {getattr(exc, 'msg', exc)}" if line else str(exc)
        return set(re.findall(r"^class\s+([A-Za-z_]\w*)", source, flags=re.MULTILINE)), error
    names = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.ImportFrom):
            names.update(a.asname or a.name for a in node.names)
    return names, None


@dataclass(frozen=True)
class Located:
    """Where a layer's class is: ``target`` is relative to the job's work dir ("alice/cnn.py:ConvLayer")."""

    target: str | None
    problem: str = ""


def locate(submission: Submission, choice: LayerChoice) -> Located:
    """The check target for ``choice`` in ``submission``, or the problem ("no class ConvLayer found")."""
    if choice.file is not None:
        if submission.is_file:
            files = [submission.path] if submission.path.name == choice.file else []
        else:
            candidate = submission.path / choice.file
            files = [candidate] if candidate.is_file() else []
        if not files:
            return Located(None, f"no file {choice.file} in the submission")
    else:
        files = _python_files(submission)
        if not files:
            return Located(None, "no .py files in the submission")
    broken = []
    scanned = {path: _defined_names(path) for path in files}
    for name in choice.classes:
        for path in files:
            names, error = scanned[path]
            if error:
                broken.append((path, error))
            if name in names:
                rel = (
                    path.name
                    if submission.is_file
                    else f"{submission.name}/{path.relative_to(submission.path).as_posix()}"
                )
                return Located(f"{rel}:{name}")
    wanted = " or ".join(f"class {n}" for n in choice.classes)
    where = f" in {choice.file}" if choice.file else f" in {len(files)} .py file{'s' if len(files) != 1 else ''}"
    problem = f"no {wanted} found{where}"
    if broken:
        path, error = broken[0]
        shown = path.name if submission.is_file else path.relative_to(submission.path).as_posix()
        problem += f" ({shown} does not compile: {error})"
    return Located(None, problem)


# -- results -------------------------------------------------------------------------------------------


@dataclass
class Row:
    """One (submission, layer) check. properties: property -> its status (pass / fail / skip /
    inconclusive); diagnosis: "prop: mistake" for each failing gradient with a named mistake."""

    submission: str
    layer: str
    target: str
    status: str
    reason: str
    properties: dict[str, str] = field(default_factory=dict)
    diagnosis: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["seconds"] = round(self.seconds, 3)
        return d


def _diagnosis(report: dict | None) -> str:
    """'grad_bias: bias_grad_wrong_axes; ...' from a report dict (the field may be absent)."""
    if not report:
        return ""
    parts = []
    for prop in report.get("properties") or []:
        diagnosis = prop.get("diagnosis") if isinstance(prop, dict) else None
        mistake = diagnosis.get("mistake") if isinstance(diagnosis, dict) else None
        if prop.get("status") == "fail" and mistake:
            parts.append(f"{prop.get('property')}: {mistake}")
    return "; ".join(parts)


def _row(submission: Submission, choice: LayerChoice, target: str, result: isolate.IsolatedResult) -> Row:
    report = result.report or {}
    props = {
        str(p.get("property")): str(p.get("status"))
        for p in report.get("properties") or []
        if isinstance(p, dict) and p.get("property")
    }
    return Row(
        submission.name,
        choice.kind,
        target,
        result.status,
        result.reason,
        props,
        _diagnosis(result.report),
        result.seconds,
    )


@dataclass
class Summary:
    """The outcome of a grading run: rows sorted by (submission, layer order), the isolated results
    behind them, where the files went and how long it took."""

    rows: list[Row]
    results: dict[tuple[str, str], isolate.IsolatedResult]
    settings: dict[str, Any]
    out_dir: Path
    wall_seconds: float = 0.0
    jobs: int = 1
    started: str = ""

    @property
    def counts(self) -> dict[str, int]:
        counts = Counter(r.status for r in self.rows)
        return {s: counts[s] for s in STATUSES if counts[s]}

    @property
    def properties(self) -> list[str]:
        from checks.pipeline.properties import property_names  # numpy: not at import (--help stays fast)

        seen = {p for r in self.rows for p in r.properties}
        known = [p for p in property_names(["input", "weight", "bias"]) if p in seen]
        return known + sorted(seen - set(known))

    def row(self, submission: str, layer: str) -> Row:
        for r in self.rows:
            if r.submission == submission and r.layer == layer:
                return r
        raise KeyError((submission, layer))

    def median_seconds_per_submission(self) -> float:
        per: dict[str, float] = {}
        for r in self.rows:
            per[r.submission] = per.get(r.submission, 0.0) + r.seconds
        values = sorted(per.values())
        if not values:
            return 0.0
        mid = len(values) // 2
        return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2

    def to_dict(self) -> dict:
        return {
            "schema": SUMMARY_SCHEMA,
            "settings": self.settings,
            "properties": self.properties,
            "counts": self.counts,
            "rows": [r.to_dict() for r in self.rows],
            "run": {"started": self.started, "wall_seconds": round(self.wall_seconds, 3), "jobs": self.jobs},
        }

    def to_csv(self) -> str:
        props = self.properties
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["submission", "layer", "target", "status", *props, "diagnosis", "reason", "seconds"])
        for r in self.rows:
            writer.writerow(
                [
                    r.submission,
                    r.layer,
                    r.target,
                    r.status,
                    *(r.properties.get(p, "") for p in props),
                    r.diagnosis,
                    r.reason,
                    f"{r.seconds:.2f}",
                ]
            )
        return buffer.getvalue()

    def render_table(self) -> str:
        """One line per submission: each layer's status, then the first problem."""
        kinds = list(dict.fromkeys(r.layer for r in self.rows))
        width = max([len("submission"), *(len(r.submission) for r in self.rows)])
        lines = [f"{'submission':<{width}}  " + "  ".join(f"{k:<8}" for k in kinds) + "  first problem"]
        for name in dict.fromkeys(r.submission for r in self.rows):
            mine = {r.layer: r for r in self.rows if r.submission == name}
            cells = "  ".join(f"{mine[k].status if k in mine else '-':<8}" for k in kinds)
            problem = next((f"{r.layer}: {r.reason}" for r in mine.values() if r.status != "passed"), "")
            lines.append(f"{name:<{width}}  {cells}  {problem[:100]}")
        return "\n".join(lines)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) or "_"


def _check_folders(submissions_dir: Path, out_dir: Path) -> None:
    subs, out = submissions_dir.resolve(), out_dir.resolve()
    if not subs.is_dir():
        raise GradeError(f"{submissions_dir}: not a folder")
    if out == subs or subs in out.parents:
        raise GradeError(
            f"--out {out_dir} is inside the submissions folder {submissions_dir}: choose a folder outside it"
        )
    if out in subs.parents:
        raise GradeError(f"--out {out_dir} contains the submissions folder {submissions_dir}: choose another folder")


def write_outputs(summary: Summary) -> None:
    """summary.csv, summary.json and reports/ in ``summary.out_dir`` (stale reports of earlier runs removed)."""
    out = summary.out_dir
    out.mkdir(parents=True, exist_ok=True)
    reports = out / "reports"
    if reports.is_dir():
        shutil.rmtree(reports)
    reports.mkdir()
    (out / "summary.json").write_text(json.dumps(summary.to_dict(), indent=2) + "\n", encoding="utf-8")
    (out / "summary.csv").write_text(summary.to_csv(), encoding="utf-8")
    by_submission: dict[str, list[Row]] = {}
    for r in summary.rows:
        by_submission.setdefault(r.submission, []).append(r)
    for name, rows in by_submission.items():
        layers = {}
        texts = [f"{name}"]
        for r in rows:
            result = summary.results.get((r.submission, r.layer))
            entry = {"target": r.target, "status": r.status, "reason": r.reason, "diagnosis": r.diagnosis}
            if result is not None:
                entry.update({k: v for k, v in result.to_dict().items() if k not in entry and k not in ("kind",)})
            layers[r.layer] = entry
            texts.append(f"\n== {r.layer}: {r.status.upper()}" + (f": {r.reason}" if r.reason else ""))
            if result is not None and result.rendered:
                texts.append(result.rendered)
            if result is not None and result.where:
                texts.append(f"  where: {result.where}")
            if result is not None and result.stdout_tail and r.status not in ("passed", "failed"):
                texts.append(
                    "  output (tail):\n" + "\n".join(f"    {line}" for line in result.stdout_tail.splitlines())
                )
        document = {"submission": name, "settings": summary.settings, "layers": layers}
        (reports / f"{_safe_name(name)}.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        (reports / f"{_safe_name(name)}.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")


def grade(
    submissions_dir: str | os.PathLike[str],
    layers: Mapping[str, str | Sequence[str]] | Sequence[str | LayerChoice],
    *,
    out_dir: str | os.PathLike[str],
    preset: str = "seed",
    jobs: int | None = None,
    seed: int = 0,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
    timeout: float = DEFAULT_TIMEOUT,
    memory_bytes: int | None = DEFAULT_MEMORY,
    oracles: Sequence[str] = ORACLES,
    call_seconds: float | None = CALL_SECONDS,
    progress: Callable[[int, int, Row], None] | None = None,
) -> Summary:
    """Grade every submission in ``submissions_dir`` and write the summary and reports to ``out_dir``.

    layers: ``{"conv": "ConvLayer", "dense": ["FullyConnectedLayer", "DenseLayer"]}`` (kind -> class
    name(s), or "file.py:Class"), or a list of kinds (``["conv", "relu"]``: DEFAULT_CLASSES) or of
    "kind=Class" strings. jobs: checks run at once (default: the machine's cores). timeout and
    memory_bytes: per check (see ``checks.sandbox.isolate.run_isolated``); oracles and call_seconds (the
    limit of each call into the layer): as for ``cnn-gradcheck check``.
    progress(done, total, row): called as each check ends (from the calling thread).
    """
    subs = Path(submissions_dir)
    out = Path(out_dir)
    _check_folders(subs, out)
    choices = layer_choices(layers)
    submissions = discover(subs)
    if not submissions:
        raise GradeError(f"{submissions_dir}: no submissions (folders or .py files) found")
    jobs = max(1, jobs or os.cpu_count() or 1)
    settings = {
        "preset": preset,
        "layers": {c.kind: c.shown.partition("=")[2] for c in choices},
        "seed": seed,
        "max_examples": max_examples,
        "timeout": timeout,
        "memory_bytes": memory_bytes,
        "extra": _extra(oracles, call_seconds),
    }
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    order = {c.kind: i for i, c in enumerate(choices)}
    rows: list[Row] = []
    results: dict[tuple[str, str], isolate.IsolatedResult] = {}
    work = []
    for submission in submissions:
        for choice in choices:
            located = locate(submission, choice)
            if located.target is None:
                rows.append(Row(submission.name, choice.kind, "", "missing", located.problem))
            else:
                work.append((submission, choice, located.target))
    total = len(rows) + len(work)
    done = 0
    if progress:
        for r in rows:
            done += 1
            progress(done, total, r)

    def run(item: tuple[Submission, LayerChoice, str]) -> tuple[Submission, LayerChoice, str, isolate.IsolatedResult]:
        submission, choice, target = item
        job = Job(
            target,
            choice.kind,
            preset,
            seed=seed,
            max_examples=max_examples,
            oracles=tuple(oracles),
            call_seconds=call_seconds,
            memory_bytes=memory_bytes,
        )
        result = isolate.run_isolated(job, timeout=timeout, copy=submission.path)
        return submission, choice, target, result

    if work:
        isolate.warm_up()  # the forkserver's imports, once, before any check's clock starts
        executor = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="grade")
        try:
            futures = [executor.submit(run, item) for item in work]
            for future in as_completed(futures):
                submission, choice, target, result = future.result()
                row = _row(submission, choice, target, result)
                rows.append(row)
                results[(submission.name, choice.kind)] = result
                done += 1
                if progress:
                    progress(done, total, row)
        except BaseException:
            executor.shutdown(wait=False, cancel_futures=True)
            isolate.kill_all()
            raise
        executor.shutdown(wait=True)
    rows.sort(key=lambda r: (r.submission, order[r.layer]))
    summary = Summary(rows, results, settings, out, time.perf_counter() - t0, jobs, started)
    write_outputs(summary)
    return summary


def _extra(oracles: Sequence[str], call_seconds: float | None) -> dict[str, Any]:
    """The settings that differ from a default check, as the summary records them."""
    extra: dict[str, Any] = {}
    if tuple(oracles) != ORACLES:
        extra["oracles"] = list(oracles)
    if call_seconds != CALL_SECONDS:
        extra["call_timeout"] = call_seconds
    return extra
