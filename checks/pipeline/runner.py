"""Drive the properties over generated cases with hypothesis and collect a Report.

Each property is explored on its own, so a failure shrinks to the smallest case that breaks THAT
property. The explorations share a cache of trials: with one seed they draw the same cases, and a
case's forward, backward and oracle results are computed once for all properties. A layer that
hangs or exhausts memory stops the exploration at once (no shrinking through repeated time-outs).
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, reject, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.errors import HypothesisException, HypothesisWarning, Unsatisfiable

from checks.adapt.guard import Cause
from checks.case import Case
from checks.findings import FAIL, INCONCLUSIVE, NOT_JUDGED, PASS, SKIP, Finding
from checks.pipeline import faults, properties
from checks.pipeline.trial import Options, Trial, no_gradient_oracle
from checks.report import PropertyReport, Report, aggregate
from checks.settings import DEFAULT_MAX_EXAMPLES
from checks.subject import SubjectFactory

REJECTIONS = 50
"""After this many cases in a row that all met a fault already reported, a property stops trying."""


def case_key(case: Case) -> str:
    """A digest of everything that defines the case."""
    h = hashlib.sha1(repr((case.kind, case.geometry, case.mode)).encode())
    for name in sorted(case.inputs):
        h.update(name.encode())
        h.update(case.inputs[name].tobytes())
        h.update(str(case.inputs[name].dtype).encode())
    h.update(case.upstream.tobytes())
    if case.labels is not None:
        h.update(case.labels.tobytes())
    return h.hexdigest()


@dataclass
class TrialCache:
    """The most recent trials by case digest, so properties explored in turn share the work."""

    factory: SubjectFactory
    options: Options
    size: int = 64
    trials: OrderedDict[str, Trial] = field(default_factory=OrderedDict)

    def get(self, case: Case) -> Trial:
        key = case_key(case)
        if key in self.trials:
            self.trials.move_to_end(key)
            return self.trials[key]
        trial = self.trials[key] = Trial(case, self.factory, self.options)
        if len(self.trials) > self.size:
            self.trials.popitem(last=False)
        return trial


class _GiveUp(BaseException):
    """Ends an exploration at once: hypothesis neither shrinks nor retries what is not an Exception."""


class _PropertyFailed(AssertionError):
    def __init__(self, findings: list[Finding], trial: Trial) -> None:
        self.findings, self.trial = findings, trial
        super().__init__("\n".join(f.line() for f in findings if f.failed))


def _unjudged(findings: list[Finding]) -> bool:
    """An example some oracle was asked about but none gave a verdict on (every oracle skipped it or was
    inconclusive); an example a property does not apply to (no bias) is not unjudged."""
    asked = [f for f in findings if f.oracle is not None]
    return bool(asked) and not any(f.status in (PASS, FAIL) for f in asked)


def _is_fatal(findings: list[Finding]) -> bool:
    return any(f.failed and f.cause is not None and Cause(f.cause).fatal for f in findings)


@dataclass
class Runner:
    """Explores every property of one layer under test. ``progress`` is called with each property
    name before it starts and with its PropertyReport when it ends; ``shrinking`` (prop, failing cases so
    far, entries of the latest) while a failure shrinks. ``shrink_seconds``: how long a failure may shrink
    (None: as long as hypothesis likes; 0: not at all) before the smallest failing case so far is kept."""

    cases: st.SearchStrategy[Case]
    factory: SubjectFactory
    options: Options = field(default_factory=Options)
    max_examples: int = DEFAULT_MAX_EXAMPLES
    seed: int | None = 0
    progress: Callable[[str, PropertyReport | None], None] | None = None
    shrink_seconds: float | None = None
    shrinking: Callable[[str, int, int], None] | None = None
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self.cache = TrialCache(self.factory, self.options)
        self.fatal: list[Finding] | None = None
        self.known: dict[faults.FaultKey, str] = {}
        """Faults already reported -> the property they were reported under: later properties skip the
        cases that meet them (said once), and judge the others (a second bug is not hidden)."""

    def explore(self, prop: str) -> PropertyReport:
        """Run one property over up to ``max_examples`` cases; shrink a failure to a minimal case."""
        if self.fatal is not None:
            # The property that met the hang or the memory blow-up failed; this one was never tried.
            cause = next((f.message for f in self.fatal if f.failed), "")
            note = Finding(prop, INCONCLUSIVE, f"not explored: an earlier property stopped the check ({cause})")
            return PropertyReport(prop, INCONCLUSIVE, 0, {}, [note], None)
        missing = no_gradient_oracle(self.options) if prop.startswith("grad_") else None
        if missing is not None:
            return PropertyReport(prop, NOT_JUDGED, 0, {}, [Finding(prop, SKIP, f"not judged: {missing}")], None)
        check = properties.get(prop)
        statuses: list[str] = []
        oracles: Counter[str] = Counter()
        last: list[list[Finding]] = [[]]
        fatal: list[Finding] = []
        count = [0]
        unjudged = [0]
        rejected: list[str] = []

        failing: dict[str, _PropertyFailed] = {}
        first_failure: list[float] = []
        stopped = [False]

        def body(case: Case) -> None:
            if fatal:
                return
            if len(rejected) >= REJECTIONS and len(rejected) == count[0]:
                raise _GiveUp  # every case so far met a known fault: hypothesis would draw ten times more
            key = case_key(case)  # before the trial: nothing the layer does to the arrays may change it
            if first_failure and self._out_of_time(first_failure[0]):
                # Out of shrinking time: the layer is not called again; the failing cases seen still fail, so
                # the smallest of them is what hypothesis reports.
                stopped[0] = True
                failure = failing.get(key)
            else:
                failure = explore_case(case, key)
            if failure is not None:
                raise _PropertyFailed(failure.findings, failure.trial)  # one raise site: hypothesis tells
                # failures apart by where they were raised, and a replay must fail in the same place

        def explore_case(case: Case, key: str) -> _PropertyFailed | None:
            count[0] += 1
            trial = self.cache.get(case)
            findings = check(trial)
            under = faults.met(findings, self.known)
            if under is not None:  # a fault already reported: this case judges nothing here
                rejected.append(under)
                reject()
            last[0] = findings
            statuses.extend(f.status for f in findings)
            if _unjudged(findings):
                unjudged[0] += 1
            oracles.update(f.oracle or "-" for f in findings if f.status == "pass")
            if _is_fatal(findings):
                fatal.extend(findings)
                return None
            if not any(f.failed for f in findings):
                return None
            failing[key] = _PropertyFailed(findings, trial)
            if not first_failure:
                first_failure.append(self.clock())
            if self.shrinking is not None:
                self.shrinking(prop, len(failing), sum(int(a.size) for a in case.inputs.values()))
            return failing[key]

        test = settings(
            max_examples=self.max_examples,
            derandomize=self.seed is None,
            database=None,
            deadline=None,
            print_blob=True,
            report_multiple_bugs=False,
            suppress_health_check=list(HealthCheck),
        )(given(self.cases)(body))
        if self.seed is not None:
            test = hypothesis_seed(self.seed)(test)
        try:
            with warnings.catch_warnings():
                # hypothesis warns on stderr when the failing case's repr is large (a realistic input): the
                # report says what the case is, so the user's output gets no harness noise
                warnings.filterwarnings("ignore", message="Generating overly large repr", category=HypothesisWarning)
                test()
        except _PropertyFailed as failure:
            notes = "\n".join(getattr(failure, "__notes__", []))
            report = PropertyReport(prop, FAIL, count[0], dict(oracles), failure.findings, self._replay(notes))
            report.trial = failure.trial
            report.shrink_stopped = self.shrink_seconds if stopped[0] else None
            report.unjudged = unjudged[0]
            for f in failure.findings:
                k = faults.key(f)
                if k is not None:
                    self.known.setdefault(k, prop)
            return report
        except (Unsatisfiable, _GiveUp):  # every case met a fault already reported
            under = rejected[0] if rejected else "?"
            note = Finding(prop, SKIP, f"not judged: every case met the fault under {under}")
            return PropertyReport(prop, NOT_JUDGED, count[0], {}, [note], None, unjudged=count[0])
        except HypothesisException as exc:  # e.g. Flaky: the layer answered differently on a replay
            message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            finding = Finding(prop, FAIL, f"the layer is not reproducible ({message})", "structure")
            return PropertyReport(prop, FAIL, count[0], dict(oracles), [*last[0], finding], self._replay(""))
        if fatal:
            self.fatal = fatal
            return PropertyReport(prop, FAIL, count[0], dict(oracles), fatal, None)
        kept = [f for f in last[0] if f.status != "pass"][:1]
        status = aggregate(statuses, must_judge=prop.startswith("grad_"))
        if rejected:
            note = f"{len(rejected)} cases not judged: they met the fault under {rejected[0]}"
            kept = [Finding(prop, SKIP, note), *kept][:1]
            if status == SKIP:
                status = NOT_JUDGED
        report = PropertyReport(prop, status, count[0], dict(oracles), kept, None)
        report.unjudged = unjudged[0] + len(rejected)
        return report

    def _out_of_time(self, since: float) -> bool:
        return self.shrink_seconds is not None and self.clock() - since >= self.shrink_seconds

    def _replay(self, notes: str) -> str:
        seed = "derandomized" if self.seed is None else f"--seed {self.seed}"
        text = f"replay: rerun with {seed} --max-examples {self.max_examples}"
        blob = [line.strip() for line in notes.splitlines() if "reproduce_failure" in line]
        return text + (f"\n{blob[0]}" if blob else "")

    def run(self, props: Sequence[str], *, target: str, kind: str) -> Report:
        reports = []
        for prop in props:
            if self.progress:
                self.progress(prop, None)
            report = self.explore(prop)
            if self.progress:
                self.progress(prop, report)
            reports.append(report)
        config = {"seed": self.seed, "max_examples": self.max_examples, "oracles": list(self.options.oracles)}
        return Report(target, kind, reports, config)
