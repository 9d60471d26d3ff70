"""Self-test: run every example of a manifest (examples/expected.json) and compare with its verdict.

A manifest is a JSON list of entries with ``target``, ``convention``, ``kind``, ``expected`` ("pass" or
"fail") and ``fails_on`` (property names), and optionally ``spec`` ("path.py:name" of a LayerSpec),
``bug`` and ``notes``. Paths are relative to the root: by default the parent of the manifest's
folder (examples/expected.json -> the repository), i.e. the directory that contains examples/.

How an entry becomes a LayerSpec: its ``spec`` when it has one; else its convention's preset
(``seed`` -> presets.seed, ``function_pair`` -> presets.function_pair); else it is SKIPPED.

An example is OK when a correct one passes, and a buggy one fails on (at least) every property in
its ``fails_on``. Other failing properties are listed ("also") but make a mismatch only with
``strict`` (the README's "it should report nothing outside the list")
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from checks.job import Job
from checks.settings import SELFTEST_MAX_EXAMPLES

PRESET_FOR_CONVENTION = {"seed": "seed", "function_pair": "function_pair"}
# README categories that are one property each; the others (fault, structural, nonfinite) are not
# property names, and an entry that lists them cannot be verified by property (it is a MISMATCH).
ALIASES = {"mutation": "no_mutation", "nondeterminism": "determinism"}
VERDICTS = ("pass", "fail")
OK, MISMATCH, SKIPPED = "OK", "MISMATCH", "SKIPPED"
_REQUIRED = ("target", "kind", "expected")


class ManifestError(Exception):
    """The manifest cannot be read; ``str()`` is one line."""


@dataclass(frozen=True)
class Example:
    """One manifest entry (see the module docstring); ``index`` is its position in the manifest."""

    index: int
    target: str
    kind: str
    expected: str
    convention: str = ""
    fails_on: tuple[str, ...] = ()
    spec: str | None = None
    bug: str | None = None
    options: tuple[tuple[str, object], ...] = ()

    @property
    def expected_failures(self) -> list[str]:
        return [ALIASES.get(name, name) for name in self.fails_on]

    @property
    def shown(self) -> str:
        """The target, with the kind for function-pair files (they appear once per kind)."""
        if self.target.endswith(":") or ":" not in self.target:
            return f"{self.target.rstrip(':')} [{self.kind}]"
        return self.target


@dataclass(frozen=True)
class Manifest:
    path: Path
    root: Path
    examples: list[Example]


@dataclass
class Outcome:
    """What running one example gave. got: "pass", "fail", "error" (not loadable), "crash" (a bug in
    cnn-gradcheck) or "skipped"."""

    example: Example
    status: str
    got: str
    caught: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    reason: str = ""
    seconds: float = 0.0
    report: Any = None  # the Report (its dict once the run is over or it came from another process)

    @property
    def extra(self) -> list[str]:
        expected = set(self.example.expected_failures)
        return [p for p in self.caught if p not in expected]

    def to_dict(self) -> dict:
        e = self.example
        return {
            "target": e.target,
            "spec": e.spec,
            "convention": e.convention,
            "kind": e.kind,
            "expected": e.expected,
            "fails_on": list(e.fails_on),
            "status": self.status,
            "got": self.got,
            "caught": self.caught,
            "missing": self.missing,
            "reason": self.reason,
            "seconds": round(self.seconds, 3),
            "report": _portable(self.report),
        }


def default_root(manifest: Path) -> Path:
    """examples/expected.json -> the directory that contains examples/."""
    return manifest.resolve().parent.parent


def _example(index: int, entry: object, where: str) -> Example:
    if not isinstance(entry, dict):
        raise ManifestError(f"{where}: entry {index} is a {type(entry).__name__}, expected an object")
    missing = [k for k in _REQUIRED if not entry.get(k)]
    if missing:
        raise ManifestError(f"{where}: entry {index} has no {', '.join(missing)}")
    if entry["expected"] not in VERDICTS:
        raise ManifestError(f"{where}: entry {index} ({entry['target']}): expected must be pass or fail")
    fails_on = entry.get("fails_on") or []
    if not isinstance(fails_on, list) or not all(isinstance(x, str) for x in fails_on):
        raise ManifestError(f"{where}: entry {index} ({entry['target']}): fails_on must be a list of names")
    return Example(
        index=index,
        target=str(entry["target"]),
        kind=str(entry["kind"]),
        expected=str(entry["expected"]),
        convention=str(entry.get("convention") or ""),
        fails_on=tuple(fails_on),
        spec=entry.get("spec") or None,
        bug=entry.get("bug"),
        options=tuple(sorted(_options(entry, index, where).items())),
    )


def _options(entry: dict, index: int, where: str) -> dict:
    """LayerSpec fields the entry overrides on the preset's spec, e.g. {"returns_input_grad": false}."""
    options = entry.get("options") or {}
    if not isinstance(options, dict):
        raise ManifestError(f"{where}: entry {index} ({entry['target']}): options must be an object")
    return options


def load_manifest(path: Path, root: Path | None = None) -> Manifest:
    """Read and validate a manifest; ``root`` defaults to ``default_root(path)``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such manifest") from None
    except OSError as exc:
        raise ManifestError(f"{path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}: line {exc.lineno}: invalid JSON: {exc.msg}") from None
    if not isinstance(data, list):
        raise ManifestError(f"{path}: expected a JSON list of examples, got a {type(data).__name__}")
    examples = [_example(i, entry, str(path)) for i, entry in enumerate(data)]
    return Manifest(path, Path(root) if root is not None else default_root(path), examples)


def select(examples: Sequence[Example], keyword: str | None) -> list[Example]:
    """The examples whose target, spec, kind or convention contain ``keyword`` (case-insensitive)."""
    if not keyword:
        return list(examples)
    key = keyword.lower()
    return [e for e in examples if key in " ".join([e.target, e.spec or "", e.kind, e.convention]).lower()]


def job_for(example: Example, root: Path, *, max_examples: int, seed: int) -> Job | None:
    """The Job that checks an example, or None when the manifest says no way to load it."""
    preset = None
    if not example.spec:
        preset = PRESET_FOR_CONVENTION.get(example.convention)
        if preset is None:
            return None
    return Job(
        example.spec or example.target,
        kind=example.kind,
        preset=preset,
        overrides=example.options,
        root=str(root),
        seed=seed,
        max_examples=max_examples,
        label=example.shown,
    )


def judge(example: Example, report: Any, *, strict: bool = False) -> Outcome:
    """Compare a Report with the example's expectation; ``strict``: a buggy example must fail on
    nothing outside its ``fails_on`` either."""
    caught = list(report.failed_properties)
    got = "pass" if report.passed else "fail"
    if example.expected == "pass":
        status = OK if report.passed else MISMATCH
        return Outcome(example, status, got, caught, reason="" if report.passed else "expected to pass")
    missing = [p for p in example.expected_failures if p not in caught]
    if report.passed:
        return Outcome(example, MISMATCH, got, caught, missing, "the bug was not caught")
    if missing:
        return Outcome(example, MISMATCH, got, caught, missing, f"did not fail on {', '.join(missing)}")
    outcome = Outcome(example, OK, got, caught)
    if strict and example.fails_on and outcome.extra:
        outcome.status, outcome.reason = MISMATCH, f"also failed on {', '.join(outcome.extra)}"
    return outcome


def run_one(example: Example, root: Path, *, max_examples: int, seed: int, strict: bool = False) -> Outcome:
    """Load, check and judge one example (a target that cannot be loaded is a MISMATCH)."""
    from checks.adapt import targets
    from checks.api import check_job

    start = time.perf_counter()
    job = job_for(example, root, max_examples=max_examples, seed=seed)
    if job is None:
        reason = f"no spec: convention {example.convention!r} needs a 'spec' field (path.py:name of a LayerSpec)"
        return Outcome(example, SKIPPED, "skipped", reason=reason)
    try:
        report = check_job(job)
    except targets.TargetError as exc:
        return Outcome(example, MISMATCH, "error", reason=str(exc), seconds=time.perf_counter() - start)
    except Exception as exc:  # a harness bug must not end the self-test: report it on this example
        return Outcome(example, MISMATCH, "crash", reason=internal_error(exc), seconds=time.perf_counter() - start)
    outcome = judge(example, report, strict=strict)
    outcome.report, outcome.seconds = report, time.perf_counter() - start
    return outcome


def internal_error(exc: BaseException) -> str:
    """One line for a crash inside cnn-gradcheck: the exception and the innermost frame in checks/."""
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/checks/" in f.filename.replace("\\", "/")]
    where = f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"internal error in cnn-gradcheck: {type(exc).__name__}: {text}{where}"


def run(
    examples: Sequence[Example],
    root: Path,
    *,
    max_examples: int = SELFTEST_MAX_EXAMPLES,
    seed: int = 0,
    jobs: int = 1,
    strict: bool = False,
    progress: Callable[[int, Example, Outcome | None], None] | None = None,
) -> list[Outcome]:
    """Every example, in manifest order. With ``jobs`` > 1 they run in that many fresh (spawned)
    processes, each with its own time and memory limits. ``progress(i, example, None)`` is called
    before an example starts (sequential runs only) and ``progress(i, example, outcome)`` after."""
    if jobs <= 1 or len(examples) <= 1:
        outcomes = []
        for i, example in enumerate(examples):
            if progress:
                progress(i, example, None)
            outcome = run_one(example, root, max_examples=max_examples, seed=seed, strict=strict)
            outcome.report = _portable(outcome.report)
            if progress:
                progress(i, example, outcome)
            outcomes.append(outcome)
        return outcomes
    return _run_parallel(
        examples, root, max_examples=max_examples, seed=seed, jobs=jobs, strict=strict, progress=progress
    )


def _portable(report: Any) -> dict | None:
    """A report as its JSON-ready dict: picklable across processes, free of the user's objects."""
    if report is None or isinstance(report, dict):
        return report
    return report.to_dict()


def _run_in_worker(example: Example, root: Path, max_examples: int, seed: int, strict: bool) -> Outcome:
    outcome = run_one(example, root, max_examples=max_examples, seed=seed, strict=strict)
    outcome.report = _portable(outcome.report)
    return outcome


def _run_parallel(
    examples: Sequence[Example],
    root: Path,
    *,
    max_examples: int,
    seed: int,
    jobs: int,
    strict: bool,
    progress: Callable[[int, Example, Outcome | None], None] | None,
) -> list[Outcome]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawn, not fork: the parent may hold torch's thread pools, which do not survive a fork
    context = multiprocessing.get_context("spawn")
    results: dict[int, Outcome] = {}
    with ProcessPoolExecutor(max_workers=min(jobs, len(examples)), mp_context=context) as pool:
        futures = {pool.submit(_run_in_worker, e, root, max_examples, seed, strict): i for i, e in enumerate(examples)}
        try:
            for future in as_completed(futures):
                i = futures[future]
                try:
                    outcome = future.result()
                except Exception as exc:  # the worker died (e.g. killed): a mismatch, not a crash of the run
                    outcome = Outcome(examples[i], MISMATCH, "crash", reason=f"worker process failed: {exc!r}")
                results[i] = outcome
                if progress:
                    progress(i, examples[i], outcome)
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return [results[i] for i in range(len(examples))]


class ProgressLine:
    """'[ 3/67] examples/...:Name ... OK (1.2 s)' per example, on ``stream`` (a whole line at the end
    when examples run in parallel; the name first, then the verdict, when they run one by one)."""

    def __init__(self, stream: TextIO, total: int) -> None:
        self.stream, self.total = stream, total
        self.done = 0
        self.open = False

    def __call__(self, i: int, example: Example, outcome: Outcome | None) -> None:
        width = len(str(self.total))
        if outcome is None:
            self.stream.write(f"[{self.done + 1:>{width}}/{self.total}] {example.shown} ... ")
            self.open = True
        else:
            self.done += 1
            if not self.open:
                self.stream.write(f"[{self.done:>{width}}/{self.total}] {example.shown} ... ")
            self.stream.write(f"{outcome.status} ({outcome.seconds:.1f} s)\n")
            self.open = False
        self.stream.flush()


def _caught_text(outcome: Outcome) -> str:
    if outcome.got in ("skipped", "error", "crash"):
        return outcome.reason
    text = ", ".join(outcome.caught) or "-"
    if outcome.example.expected == "fail" and outcome.extra and not outcome.missing:
        expected = set(outcome.example.expected_failures)
        listed = [p for p in outcome.caught if p in expected] or ["-"]
        text = ", ".join(listed) + f" (also: {', '.join(outcome.extra)})"
    if outcome.missing:
        text += f"; missing: {', '.join(outcome.missing)}"
    return text


def render_table(outcomes: Sequence[Outcome]) -> str:
    """target | expected | got | caught properties | status, one row per example."""
    rows = [("target", "expected", "got", "caught", "status")]
    for o in outcomes:
        rows.append((o.example.shown, o.example.expected, o.got, _caught_text(o), o.status))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = []
    for r in rows:
        cells = [r[i].ljust(widths[i]) for i in range(4)] + [r[4]]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths) + "  ------")
    return "\n".join(lines)


def succeeded(outcomes: Sequence[Outcome], *, allow_missing: bool = False) -> bool:
    """Every example OK (SKIPPED ones too, with ``allow_missing``)."""
    allowed = {OK, SKIPPED} if allow_missing else {OK}
    return all(o.status in allowed for o in outcomes)


def summary(outcomes: Sequence[Outcome], *, allow_missing: bool = False) -> str:
    counts = {s: sum(o.status == s for o in outcomes) for s in (OK, MISMATCH, SKIPPED)}
    seconds = sum(o.seconds for o in outcomes)
    verdict = "PASS" if succeeded(outcomes, allow_missing=allow_missing) else "FAIL"
    text = (
        f"selftest {verdict}: {counts[OK]} OK, {counts[MISMATCH]} mismatch, {counts[SKIPPED]} skipped "
        f"of {len(outcomes)} examples in {seconds:.1f} s"
    )
    if counts[SKIPPED] and not allow_missing:
        text += " (skipped examples fail the self-test; --allow-missing to accept them)"
    return text


def to_json(outcomes: Sequence[Outcome], settings: dict | None = None) -> str:
    """Per-example results (each with its full report) as JSON."""
    return json.dumps(
        {"settings": settings or {}, "examples": [o.to_dict() for o in outcomes]},
        indent=2,
        default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v),
    )
