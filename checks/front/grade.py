"""Grading mode: check every student's layers, each layer in a sandbox of its own, and write a summary.

cnn-gradcheck grade SUBMISSIONS_DIR [--layer KIND=Class[,Other] | --layer KIND=file.py:Class | --kind KIND]...
                    [--preset seed] --out DIR [--jobs N] [--seed N] [--max-examples N] [--timeout S] [--memory MB]
                    [--format summary|gradescope]... [--rubric FILE] [--shard I/N] [--dask ADDRESS]
cnn-gradcheck grade-merge SHARD_OUT... --out DIR [--format gradescope]
(the command line is checks.front.cli's; this module is what it runs; checks.front.gradescope scores the
rows and writes Gradescope's results.json, checks.front.shards splits a run and merges the parts,
checks.front.cluster runs the checks on a dask.distributed cluster instead of the local process pool)

Submissions: every folder (one per student) and every ``.py`` file (a single-file submission) directly in
SUBMISSIONS_DIR, hidden entries and ``__pycache__`` left out; any other entry (a symlink, a FIFO, a device)
is refused with a row that says so. Before any student code runs, every submission is copied into a
private snapshot (checks.sandbox.snapshot: regular files only, size limits, a sha256 per file, recorded in
the summary): a check reads only its own submission's snapshot, so no submission can change another or
its own after the fact. Classes are looked up in the snapshot by parsing its files (``ast``, with a size
limit; a file that does not parse is searched as text, so that its check then reports the import error);
nothing of a submission runs in the grader's process. ``--kind conv`` uses the usual seed-style names
(DEFAULT_CLASSES); ``--layer conv=ConvLayer,Conv3x3`` takes the first name found; ``--layer
conv=model.py:ConvLayer`` names the file. A class that is not found is that row's status "missing".

Each (submission, layer) check is a checks.job.Job run by checks.api.check_job in a checker process of a
pool (``jobs`` of them): the checker runs the user's layer in a sandboxed worker (checks.sandbox.worker),
with a wall-clock limit per check and a memory limit; whatever a check does (hang, crash, exhaust memory,
fail to import, kill its own process, even a failure of the checker process running it) ends as that
row's status, never as the end of the run. Unless ``seed`` is given, a secret seed is drawn for the run
(and recorded), so that a submission cannot be tuned to a public seed.

Output (``--out DIR``: a new or empty folder outside SUBMISSIONS_DIR; every file is written atomically and
never through a symlink):
- summary.csv and summary.json: one row per (submission, layer), sorted: submission, layer, target,
  status (passed / failed / not_judged / timeout / memory / crashed / error / internal / missing / refused), the verdict
  of each property, the diagnosis of each failing gradient ("grad_bias: bias_grad_wrong_axes"), the reason,
  and ``seconds``; then ``score`` and ``max_score`` (points from the rubric, checks.front.gradescope) and
  ``error`` (the message of the first failing structural finding: the layer raised, exited, hung, printed,
  mutated an array, was not deterministic...). Given the seed, everything but ``seconds`` and the ``run``
  section of summary.json (start time, wall time, jobs, where it ran) is the same from run to run, with
  any number of jobs, on the local pool or on a dask cluster; a shard's summary also has a ``shard`` section;
- reports/SUBMISSION.json (every layer's report) and reports/SUBMISSION.txt (the rendered reports);
- with ``--format gradescope``: results.json (Gradescope's format) when one submission was graded (the
  Gradescope case: one submission per container), else gradescope/SUBMISSION.json for each.

Exit status of ``cnn-gradcheck grade``: 0 the grading ran (whatever the verdicts), 2 the command line or
the submissions folder could not be used, 3 a check ended in an internal error of cnn-gradcheck.
"""

from __future__ import annotations

import ast
import contextlib
import csv
import io
import json
import os
import re
import secrets
import shutil
import stat
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from checks.front import gradescope
from checks.job import CALL_SECONDS, IMPORT_SECONDS, Job
from checks.settings import DEFAULT_MAX_EXAMPLES, ORACLES

DEFAULT_CLASSES: dict[str, tuple[str, ...]] = {
    "conv": ("ConvLayer", "Conv3x3"),
    "maxpool": ("MaxPoolLayer", "MaxPool2"),
    "relu": ("ReLULayer", "ReLU"),
    "dense": ("FullyConnectedLayer", "DenseLayer"),
}
KINDS = tuple(DEFAULT_CLASSES)
DEFAULT_TIMEOUT = 120.0
DEFAULT_MEMORY = 2 * 1024**3
MAX_SOURCE = 512 * 1024  # bytes of one file parsed to find a class; a larger file is searched as text
SUMMARY_SCHEMA = "cnn-gradcheck-grade/1"
STATUSES = (
    "passed",
    "failed",
    "not_judged",
    "timeout",
    "memory",
    "crashed",
    "error",
    "internal",
    "missing",
    "refused",
)
TIMING_FIELDS = ("seconds",)  # per row; plus the top-level "run" section of summary.json
FORMATS = ("summary", "gradescope")  # summary.csv/json and reports/ are always written
MAX_ERROR = 500  # characters of the error column
RETRIES = 1  # a row whose checker process died is run once more in a fresh one before it is "internal"


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


# -- submissions and their snapshots ---------------------------------------------------------------------


@dataclass
class Submission:
    """One student's work: a folder, or a single .py file. ``snapshot``: the folder the checks read (a copy
    taken before any student code ran, named like the submission: a check shows paths relative to its
    parent); ``problem``: why it cannot be graded at all (refused); ``files`` / ``refused``: what the
    snapshot holds (relative path -> sha256) and what it left out (-> why)."""

    name: str
    path: Path
    is_file: bool = False
    snapshot: Path | None = None
    problem: str = ""
    files: dict[str, str] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)


def discover(submissions_dir: Path) -> list[Submission]:
    """Every folder and .py file directly in ``submissions_dir`` (hidden ones and __pycache__ left out),
    sorted; an entry of any other type (a symlink, a FIFO, a device) is a Submission with a problem."""
    found = []
    try:
        entries = sorted(os.scandir(submissions_dir), key=lambda e: e.name)
    except OSError as exc:
        raise GradeError(f"{submissions_dir}: cannot be listed: {exc.strerror or exc}") from None
    for entry in entries:
        if entry.name.startswith((".", "_")):
            continue
        mode = entry.stat(follow_symlinks=False).st_mode
        if stat.S_ISDIR(mode):
            found.append(Submission(entry.name, Path(entry.path)))
        elif stat.S_ISREG(mode) and entry.name.endswith(".py"):
            found.append(Submission(entry.name[:-3], Path(entry.path), is_file=True))
        elif not stat.S_ISREG(mode):
            kind = "symlink" if stat.S_ISLNK(mode) else "special file"
            found.append(Submission(entry.name, Path(entry.path), problem=f"a {kind}, not a folder or a .py file"))
    names = Counter(s.name for s in found)
    clashes = sorted(n for n, c in names.items() if c > 1)
    if clashes:
        raise GradeError(f"{submissions_dir}: both a folder and a .py file are named {', '.join(clashes)}")
    return found


def take_snapshots(submissions: Sequence[Submission], staging: Path) -> None:
    """Copy every submission into ``staging`` (one folder each, named like it, collision-free) before any
    code of theirs runs; a submission that cannot be copied gets a problem instead."""
    from checks.sandbox import snapshot

    safe = safe_names([s.name for s in submissions])
    for sub in submissions:
        if sub.problem:
            continue
        folder = staging / safe[sub.name]
        try:
            snap = snapshot.take(sub.path, folder)
        except snapshot.SnapshotError as exc:
            sub.problem = f"cannot be copied for grading: {exc}"
            continue
        sub.snapshot = folder
        sub.files = {rel: digest for rel, _, digest in snap.files}
        sub.refused = dict(snap.refused)


def _python_files(root: Path) -> list[Path]:
    """The .py files under ``root``, shallowest first, then by path."""
    files = [p for p in root.rglob("*.py") if p.is_file() and not p.is_symlink()]
    return sorted(files, key=lambda p: (len(p.relative_to(root).parts), p.as_posix()))


def _defined_names(path: Path) -> tuple[set[str], str | None]:
    """Top-level classes (and names assigned at top level) of a file, without running it. For a file that
    does not parse (or is too large to parse): the names a textual search finds, and why. Nothing a file
    holds can crash or hang this: its size is bounded first and every failure of the parser is caught."""
    try:
        raw = path.read_bytes()[: MAX_SOURCE + 1]
    except OSError as exc:
        return set(), f"cannot be read: {exc.strerror or exc}"
    source = raw.decode("utf-8", errors="replace")
    textual = set(re.findall(r"^class\s+([A-Za-z_]\w*)", source, flags=re.MULTILINE))
    if len(raw) > MAX_SOURCE:
        return textual, f"larger than {MAX_SOURCE // 1024} KiB: searched as text"
    try:
        tree = ast.parse(source, filename=str(path))
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None)
        error = f"line {line}: {type(exc).__name__}: {getattr(exc, 'msg', exc)}" if line else str(exc)
        return textual, error
    except (MemoryError, RecursionError) as exc:
        return textual, f"too deeply nested to parse ({type(exc).__name__})"
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
    """Where a layer's class is: ``target`` is relative to the submission ("cnn.py:ConvLayer")."""

    target: str | None
    problem: str = ""


def locate(submission: Submission, choice: LayerChoice) -> Located:
    """The check target for ``choice`` in the submission's snapshot (or, before one is taken, the
    submission itself), or the problem ("no class ConvLayer found")."""
    root = submission.snapshot or (submission.path.parent if submission.is_file else submission.path)
    if submission.is_file:
        single = root / submission.path.name
        files = [single] if choice.file in (None, single.name) and single.is_file() else []
        if not files:
            return Located(None, f"no file {choice.file} in the submission")
    elif choice.file is not None:
        candidate = root / choice.file
        files = [candidate] if candidate.is_file() and not candidate.is_symlink() else []
        if not files:
            return Located(None, f"no file {choice.file} in the submission")
    else:
        files = _python_files(root)
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
                return Located(f"{path.relative_to(root).as_posix()}:{name}")
    wanted = " or ".join(f"class {n}" for n in choice.classes)
    where = f" in {choice.file}" if choice.file else f" in {len(files)} .py file{'s' if len(files) != 1 else ''}"
    problem = f"no {wanted} found{where}"
    if broken:
        path, error = broken[0]
        problem += f" ({path.relative_to(root).as_posix()} does not compile: {error})"
    return Located(None, problem)


# -- rows ------------------------------------------------------------------------------------------------


@dataclass
class Row:
    """One (submission, layer) check. properties: property -> its status (pass / fail / skip /
    inconclusive); diagnosis: "prop: mistake" for each failing gradient with a named mistake; score and
    max_score: its points (the rubric's); error: the first failing structural finding's message."""

    submission: str
    layer: str
    target: str
    status: str
    reason: str
    properties: dict[str, str] = field(default_factory=dict)
    diagnosis: str = ""
    seconds: float = 0.0
    score: float = 0.0
    max_score: float = 0.0
    error: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["seconds"] = round(self.seconds, 3)
        return d


@dataclass
class Result:
    """What checking one row gave: its status and reason, where in the submission it hung or crashed, the
    report (as a dict) and its rendering, and the wall time."""

    status: str
    reason: str
    where: str = ""
    report: dict | None = None
    rendered: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "seconds": round(self.seconds, 3)}


def check_row(job: dict, readonly: list[str], wall: float) -> dict:
    """Run one row's check (in a checker process of the pool) and say how it ended, as a Result dict."""
    start = time.perf_counter()
    from checks import api
    from checks.adapt import targets
    from checks.sandbox import jail

    try:
        report = api.check_job(Job.from_dict(job), wall_seconds=wall, readonly=readonly)
    except targets.TargetError as exc:
        cause = getattr(exc.cause, "value", None)
        status = {"timeout": "timeout", "memory": "memory", "crash": "crashed"}.get(cause or "", "error")
        prefix = {"error": "import failed"}.get(status, status)
        origin = exc.origin
        where = f"{origin['file']} line {origin['line']} in {origin['function']}" if origin else ""
        return Result(status, f"{prefix}: {exc}", where, seconds=time.perf_counter() - start).to_dict()
    except jail.JailError as exc:  # the machine could not set this row's sandbox up
        return Result("error", f"sandbox set-up failed: {exc}", seconds=time.perf_counter() - start).to_dict()
    except Exception as exc:  # noqa: BLE001 - a bug of the checker is this row's, not the run's
        reason = f"internal error in cnn-gradcheck: {type(exc).__name__}: {exc}"
        return Result("internal", reason, seconds=time.perf_counter() - start).to_dict()
    status, reason, where = report.outcome()
    return Result(status, reason, where, report.to_dict(), report.render(), time.perf_counter() - start).to_dict()


def _diagnosis(report: dict | None) -> str:
    """'grad_bias: bias_grad_wrong_axes; ...' from a report dict (the field may be absent)."""
    parts = []
    for prop in (report or {}).get("properties") or []:
        diagnosis = prop.get("diagnosis") if isinstance(prop, dict) else None
        mistake = diagnosis.get("mistake") if isinstance(diagnosis, dict) else None
        if prop.get("status") == "fail" and mistake:
            parts.append(f"{prop.get('property')}: {mistake}")
    return "; ".join(parts)


def _error(report: dict | None) -> str:
    """The message of the first failing structural finding in report order: a finding of a structural
    property (linearity, determinism, no_mutation, quiet), or one that says the layer itself failed (it
    raised, exited, hung, ran out of memory, returned None or a wrong shape: a ``cause``); "" if none."""
    from checks.pipeline.properties import STRUCTURAL  # numpy: not at import (--help stays fast)

    for prop in (report or {}).get("properties") or []:
        if not isinstance(prop, dict):
            continue
        for finding in prop.get("findings") or []:
            if not isinstance(finding, dict) or finding.get("status") != "fail":
                continue
            if finding.get("cause") or prop.get("property") in STRUCTURAL:
                message = " ".join(str(finding.get("message") or "").split())
                return message if len(message) <= MAX_ERROR else message[: MAX_ERROR - 3] + "..."
    return ""


def _row(submission: Submission, choice: LayerChoice, target: str, result: Result) -> Row:
    props = {
        str(p.get("property")): str(p.get("status"))
        for p in (result.report or {}).get("properties") or []
        if isinstance(p, dict) and p.get("property")
    }
    shown = target if submission.is_file else f"{submission.name}/{target}"
    return Row(
        submission.name,
        choice.kind,
        shown,
        result.status,
        result.reason,
        props,
        _diagnosis(result.report),
        result.seconds,
        error=_error(result.report),
    )


# -- the summary -----------------------------------------------------------------------------------------


@dataclass
class Summary:
    """The outcome of a grading run: rows sorted by (submission, layer order), the results behind them, the
    submissions' snapshots, where the files went and how long it took."""

    rows: list[Row]
    results: dict[tuple[str, str], Result]
    settings: dict[str, Any]
    out_dir: Path
    wall_seconds: float = 0.0
    jobs: int = 1
    started: str = ""
    submissions: dict[str, dict] = field(default_factory=dict)
    shard: dict[str, Any] | None = None
    formats: tuple[str, ...] = ("summary",)
    runner: dict[str, Any] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        counts = Counter(r.status for r in self.rows)
        return {s: counts[s] for s in STATUSES if counts[s]}

    @property
    def properties(self) -> list[str]:
        """The property columns: only the checker's own property names, in report order."""
        from checks.pipeline.properties import property_names  # numpy: not at import (--help stays fast)

        seen = {p for r in self.rows for p in r.properties}
        return [p for p in property_names(["input", "weight", "bias"]) if p in seen]

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
        data = {
            "schema": SUMMARY_SCHEMA,
            "settings": self.settings,
            "properties": self.properties,
            "counts": self.counts,
            "rows": [r.to_dict() for r in self.rows],
            "submissions": self.submissions,
        }
        if self.shard is not None:
            data["shard"] = self.shard
        run = {"started": self.started, "wall_seconds": round(self.wall_seconds, 3), "jobs": self.jobs}
        data["run"] = {**run, **self.runner}
        return data

    def to_csv(self) -> str:
        props = self.properties
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        head = ["submission", "layer", "target", "status", *props, "diagnosis", "reason", "seconds"]
        writer.writerow([*head, "score", "max_score", "error"])
        for r in self.rows:
            cells = [r.submission, r.layer, r.target, r.status, *(r.properties.get(p, "") for p in props)]
            points = [f"{r.score:.2f}", f"{r.max_score:.2f}"]
            writer.writerow(
                [_cell(c) for c in [*cells, r.diagnosis, r.reason]] + [f"{r.seconds:.2f}", *points, _cell(r.error)]
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


def _cell(text: str) -> str:
    """A CSV cell a spreadsheet shows as text: student-chosen text that starts like a formula is quoted."""
    text = str(text).replace("\r", " ")
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t") else text


def safe_names(names: Sequence[str]) -> dict[str, str]:
    """A distinct file-name-safe name for each submission name (a hash suffix where two would collide)."""
    import hashlib

    out: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")[:100] or "_"
        if safe.lower() in taken:
            safe = f"{safe}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
        taken.add(safe.lower())
        out[name] = safe
    return out


def _check_folders(submissions_dir: Path, out_dir: Path) -> None:
    subs = submissions_dir.resolve()
    if not subs.is_dir():
        raise GradeError(f"{submissions_dir}: not a folder")
    if out_dir.is_symlink():
        raise GradeError(f"--out {out_dir} is a symlink: give a real folder")
    out = out_dir.resolve()
    if out == subs or subs in out.parents:
        raise GradeError(
            f"--out {out_dir} is inside the submissions folder {submissions_dir}: choose a folder outside it"
        )
    if out in subs.parents:
        raise GradeError(f"--out {out_dir} contains the submissions folder {submissions_dir}: choose another folder")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise GradeError(f"--out {out_dir} is not a new or empty folder: choose another one")


def write_atomic(folder: Path, name: str, text: str) -> None:
    """``folder/name`` written whole (a temporary file renamed into place), never through a symlink."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.rename(tmp, folder / name)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_outputs(summary: Summary) -> None:
    """summary.csv, summary.json and reports/ in ``summary.out_dir`` (a new or empty folder)."""
    out = summary.out_dir
    out.mkdir(parents=True, exist_ok=True)
    if out.is_symlink() or not out.is_dir():
        raise GradeError(f"--out {out} is not a folder")
    reports = out / "reports"
    reports.mkdir()
    write_atomic(out, "summary.json", json.dumps(summary.to_dict(), indent=2) + "\n")
    write_atomic(out, "summary.csv", summary.to_csv())
    by_submission: dict[str, list[Row]] = {}
    for r in summary.rows:
        by_submission.setdefault(r.submission, []).append(r)
    safe = safe_names(list(by_submission))
    for name, rows in by_submission.items():
        layers = {}
        texts = [f"{name}"]
        for r in rows:
            result = summary.results.get((r.submission, r.layer))
            entry = {"target": r.target, "status": r.status, "reason": r.reason, "diagnosis": r.diagnosis}
            if result is not None:
                entry.update({k: v for k, v in result.to_dict().items() if k not in entry and k != "rendered"})
            layers[r.layer] = entry
            texts.append(f"\n== {r.layer}: {r.status.upper()}" + (f": {r.reason}" if r.reason else ""))
            if result is not None and result.rendered:
                texts.append(result.rendered)
            if result is not None and result.where:
                texts.append(f"  where: {result.where}")
        document = {"submission": name, "settings": summary.settings, "layers": layers}
        write_atomic(reports, f"{safe[name]}.json", json.dumps(document, indent=2) + "\n")
        write_atomic(reports, f"{safe[name]}.txt", "\n".join(texts) + "\n")
    if "gradescope" in summary.formats:
        found = {key: {"report": result.report, "where": result.where} for key, result in summary.results.items()}
        write_gradescope(out, summary.rows, found, summary.settings)


def write_gradescope(
    out: Path, rows: Sequence[Row], entries: Mapping[tuple[str, str], dict | None], settings: Mapping[str, Any]
) -> None:
    """Gradescope's results.json in ``out`` when ``rows`` are one submission's (a Gradescope run), else
    gradescope/SUBMISSION.json for each submission; ``entries``: (submission, layer) -> {"report": its
    report dict, "where": where it hung or crashed}, as reports/SUBMISSION.json holds them."""
    rubric = gradescope.Rubric.from_dict(settings["rubric"])
    by_submission: dict[str, list[Row]] = {}
    for r in rows:
        by_submission.setdefault(r.submission, []).append(r)
    documents = {}
    for name, mine in by_submission.items():
        extra = {"schema": SUMMARY_SCHEMA, "submission": name, "seed": settings.get("seed")}
        found = {r.layer: entries.get((name, r.layer)) for r in mine}
        documents[name] = gradescope.results(name, mine, found, rubric, extra=extra)
    if len(documents) == 1:
        (document,) = documents.values()
        write_atomic(out, "results.json", json.dumps(document, indent=2) + "\n")
        return
    folder = out / "gradescope"
    folder.mkdir()
    safe = safe_names(list(documents))
    for name, document in documents.items():
        write_atomic(folder, f"{safe[name]}.json", json.dumps(document, indent=2) + "\n")


# -- the run ---------------------------------------------------------------------------------------------


def grade(
    submissions_dir: str | os.PathLike[str],
    layers: Mapping[str, str | Sequence[str]] | Sequence[str | LayerChoice],
    *,
    out_dir: str | os.PathLike[str],
    preset: str = "seed",
    jobs: int | None = None,
    seed: int | None = None,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
    timeout: float = DEFAULT_TIMEOUT,
    memory_bytes: int | None = DEFAULT_MEMORY,
    oracles: Sequence[str] = ORACLES,
    call_seconds: float | None = CALL_SECONDS,
    import_seconds: float | None = IMPORT_SECONDS,
    progress: Callable[[int, int, Row], None] | None = None,
    rubric: gradescope.Rubric | None = None,
    formats: Sequence[str] = ("summary",),
    shard: tuple[int, int] | None = None,
    dask: str | None = None,
) -> Summary:
    """Grade every submission in ``submissions_dir`` and write the summary and reports to ``out_dir``.

    layers: ``{"conv": "ConvLayer", "dense": ["FullyConnectedLayer", "DenseLayer"]}`` (kind -> class
    name(s), or "file.py:Class"), or a list of kinds (``["conv", "relu"]``: DEFAULT_CLASSES) or of
    "kind=Class" strings. jobs: checks run at once (default: the machine's cores). seed: the search's seed
    (default: a secret one drawn for this run, recorded in the summary). timeout: wall-clock seconds per
    check; memory_bytes: what one call into a layer may allocate; oracles, call_seconds (the limit of each
    call into the layer) and import_seconds (of importing a submission's module): as for a check's Job.
    progress(done, total, row): called as each check ends (from the calling thread). rubric: the points
    (default: checks.front.gradescope's default split, 10 points a layer). formats: "summary" (always
    written) and "gradescope" (results.json). shard (i, n): grade only the i-th of n parts of the
    submissions (checks.front.shards; needs ``seed``). dask: a dask.distributed scheduler's address: the
    checks run on its workers instead of ``jobs`` local processes (checks.front.cluster).
    """
    subs, out = Path(submissions_dir), Path(out_dir)
    _check_folders(subs, out)
    choices = layer_choices(layers)
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise GradeError(f"--format {', '.join(unknown)}: expected {' or '.join(FORMATS)}")
    try:
        rubric = (rubric or gradescope.Rubric()).for_layers([c.kind for c in choices])
    except gradescope.RubricError as exc:
        raise GradeError(str(exc)) from None
    if shard is not None and seed is None:
        raise GradeError("--shard needs --seed: every shard must check with the same seed for the parts to merge")
    submissions = discover(subs)
    if not submissions:
        raise GradeError(f"{submissions_dir}: no submissions (folders or .py files) found")
    shard_record = None
    if shard is not None:
        from checks.front import shards

        submissions, shard_record = shards.select(submissions, *shard)
    jobs = max(1, jobs or os.cpu_count() or 1)
    seed = secrets.randbelow(2**31) if seed is None else seed
    from checks.sandbox.worker import sandbox

    settings = {
        "preset": preset,
        "layers": {c.kind: c.shown.partition("=")[2] for c in choices},
        "seed": seed,
        "max_examples": max_examples,
        "timeout": timeout,
        "memory_bytes": memory_bytes,
        "extra": _extra(oracles, call_seconds, import_seconds),
        "sandbox": sandbox().reason,
        "rubric": rubric.to_dict(),
    }
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    order = {c.kind: i for i, c in enumerate(choices)}
    rows: list[Row] = []
    results: dict[tuple[str, str], Result] = {}
    staging = Path(tempfile.mkdtemp(prefix="cnn-gradcheck-grade-"))
    connection = None
    runner: dict[str, Any] = {}
    try:
        if dask is not None:
            from checks.front import cluster

            connection = cluster.connect(dask)  # GradeError: no dask.distributed, or no scheduler there
            jobs, runner = connection.workers, {"dask": connection.address}
        take_snapshots(submissions, staging)
        work: list[tuple[Submission, LayerChoice, str, dict]] = []
        for submission in submissions:
            for choice in choices:
                if submission.problem:
                    rows.append(Row(submission.name, choice.kind, "", "refused", submission.problem))
                    continue
                located = locate(submission, choice)
                if located.target is None:
                    rows.append(Row(submission.name, choice.kind, "", "missing", located.problem))
                    continue
                assert submission.snapshot is not None
                job = Job(
                    f"{submission.snapshot.name}/{located.target}",
                    choice.kind,
                    preset,
                    root=str(submission.snapshot.parent),
                    seed=seed,
                    max_examples=max_examples,
                    oracles=tuple(oracles),
                    call_seconds=call_seconds,
                    memory_bytes=memory_bytes,
                    import_seconds=import_seconds,
                    label=located.target if submission.is_file else f"{submission.name}/{located.target}",
                )
                work.append((submission, choice, located.target, job.to_dict()))
        total = len(rows) + len(work)
        if progress:
            for i, r in enumerate(rows):
                progress(i + 1, total, r)
        done = len(rows)
        checks = _run_pool(work, jobs, timeout) if connection is None else connection.run(work, timeout)
        for (submission, choice, target, _), result in checks:
            row = _row(submission, choice, target, result)
            rows.append(row)
            results[(submission.name, choice.kind)] = result
            done += 1
            if progress:
                progress(done, total, row)
    finally:
        if connection is not None:
            connection.close()
        shutil.rmtree(staging, ignore_errors=True)
    rows.sort(key=lambda r: (r.submission, order[r.layer]))
    score_rows(rows, rubric)
    record = {s.name: {"files": s.files, "refused": s.refused, "problem": s.problem} for s in submissions}
    summary = Summary(rows, results, settings, out, time.perf_counter() - t0, jobs, started, record)
    summary.shard, summary.formats, summary.runner = shard_record, tuple(dict.fromkeys(formats)), runner
    write_outputs(summary)
    return summary


def score_rows(rows: Sequence[Row], rubric: gradescope.Rubric) -> None:
    """Set each row's score and max_score from the rubric."""
    for r in rows:
        score, most = rubric.score(r.layer, r.status, r.properties)
        r.score, r.max_score = gradescope.shown(score), gradescope.shown(most)


def _run_pool(work: list[tuple[Any, Any, str, dict]], jobs: int, timeout: float):
    """Yield (item, Result) for every item of ``work`` as its check ends, run by ``jobs`` checker processes.
    A checker process that dies takes the rows it was running with it: those are run once more in a fresh
    pool, and a row that breaks a pool again is "internal"."""
    import multiprocessing

    pending = {i: 0 for i in range(len(work))}  # index -> attempts so far
    context = multiprocessing.get_context("spawn")  # never fork a process that holds threads or torch
    while pending:
        with ProcessPoolExecutor(max_workers=min(jobs, len(pending)), mp_context=context) as pool:
            futures: dict[Future, int] = {}
            for i in sorted(pending):
                _, _, _, job = work[i]
                own = str(Path(job["root"]) / job["target"].split("/")[0])  # its own snapshot only
                futures[pool.submit(check_row, job, [own], timeout)] = i
            broken: list[int] = []
            for future in _as_done(futures):
                i = futures[future]
                try:
                    result = Result(**future.result())
                except BrokenProcessPool:
                    broken.append(i)
                    continue
                except Exception as exc:  # noqa: BLE001 - the row's own failure
                    result = Result("internal", f"internal error in cnn-gradcheck: {type(exc).__name__}: {exc}")
                del pending[i]
                yield work[i], result
            for i in broken:
                pending[i] += 1
                if pending[i] > RETRIES:
                    del pending[i]
                    yield work[i], Result("internal", "internal error in cnn-gradcheck: its checker process died")


def _as_done(futures: Mapping[Future, int]):
    left = set(futures)
    while left:
        finished, left = wait(left, return_when="FIRST_COMPLETED")
        yield from sorted(finished, key=lambda f: futures[f])


def _extra(oracles: Sequence[str], call_seconds: float | None, import_seconds: float | None) -> dict[str, Any]:
    """The settings that differ from a default check, as the summary records them."""
    extra: dict[str, Any] = {}
    if tuple(oracles) != ORACLES:
        extra["oracles"] = list(oracles)
    if call_seconds != CALL_SECONDS:
        extra["call_timeout"] = call_seconds
    if import_seconds != IMPORT_SECONDS:
        extra["import_timeout"] = import_seconds
    return extra
