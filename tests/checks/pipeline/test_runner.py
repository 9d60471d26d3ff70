"""checks.pipeline.runner: each property explored over generated cases, a failure shrunk to a minimal case
with a replay that reproduces it, trials shared across properties, and a hanging layer stopping
the run at once."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
from hypothesis import given, reproduce_failure, settings

from checks import strategies as cs
from checks.adapt.guard import Limits
from checks.case import Case
from checks.explain.mistakes import mistaken
from checks.findings import FAIL, INCONCLUSIVE, NOT_JUDGED, PASS
from checks.geometry import DenseGeometry
from checks.kinds import reference_subject
from checks.pipeline.runner import Runner, TrialCache, case_key
from checks.pipeline.trial import Options
from checks.report import Report

FD_ONLY = Options(oracles=("fd",))
RELU_CASES = cs.cases("relu", cs.elementwise_geometries(ndim=2, side=(1, 4)))
DENSE_CASES = cs.cases("dense", cs.dense_geometries(batch=(1, 3), features_ndim=1, side=(1, 3), out_features=(1, 3)))


class Counting:
    """A SubjectFactory around the reference layers that counts constructions and forward calls."""

    def __init__(self) -> None:
        self.built = self.forwards = 0

    def __call__(self, case):
        self.built += 1
        inner, counter = reference_subject(case), self

        class Subject:
            def forward(self, inputs):
                counter.forwards += 1
                return inner.forward(inputs)

            def backward(self, upstream):
                return inner.backward(upstream)

        return Subject()


def test_a_correct_layer_passes_every_property_explored():
    runner = Runner(RELU_CASES, reference_subject, FD_ONLY, max_examples=5, seed=1)
    report = runner.run(["forward", "grad_input", "linearity"], target="relu", kind="relu")
    assert report.passed
    assert [p.property for p in report.properties] == ["forward", "grad_input", "linearity"]
    for p in report.properties:
        assert p.status == PASS and p.examples == 5 and p.replay is None
    assert report.properties[1].oracles == {"fd": 5}
    assert report.settings == {"seed": 1, "max_examples": 5, "oracles": ["fd"]}


def test_a_failure_is_shrunk_to_a_minimal_case():
    runner = Runner(DENSE_CASES, mistaken("dense_bias_over_batch"), FD_ONLY, max_examples=30, seed=3)
    report = runner.explore("grad_bias")
    assert report.status == FAIL
    # dividing by the batch is invisible at batch 1: the smallest case that shows it has batch 2
    assert report.trial.case.geometry == DenseGeometry(batch=2, features=(1,), out_features=1, bias=True)
    failed = [f for f in report.findings if f.failed]
    assert failed and failed[0].oracle == "fd"
    assert "DenseGeometry(batch=2, features=(1,), out_features=1" in failed[0].case


def test_a_relu_mistake_shrinks_to_a_single_entry():
    runner = Runner(RELU_CASES, mistaken("relu_never_masks"), FD_ONLY, max_examples=30, seed=3)
    report = runner.explore("grad_input")
    assert report.status == FAIL
    assert report.trial.case.geometry.shape == (1, 1)


def test_the_replay_names_the_seed_and_carries_a_blob_that_reproduces_the_failure():
    runner = Runner(DENSE_CASES, mistaken("dense_bias_over_batch"), FD_ONLY, max_examples=30, seed=3)
    report = runner.explore("grad_bias")
    first, blob_line = report.replay.splitlines()
    assert first == "replay: rerun with --seed 3 --max-examples 30"
    version, blob = re.search(r"@reproduce_failure\('([^']+)', (b'[^']*')\)", blob_line).groups()

    seen = []

    @reproduce_failure(version, eval(blob))  # noqa: S307 - a bytes literal printed by hypothesis
    @settings(database=None)
    @given(DENSE_CASES)
    def replay(case):
        seen.append(case)
        raise AssertionError("reached the recorded case")

    with pytest.raises(AssertionError, match="reached the recorded case"):
        replay()
    assert case_key(seen[0]) == case_key(report.trial.case)


def test_a_derandomised_run_says_so_in_its_replay():
    runner = Runner(RELU_CASES, mistaken("relu_never_masks"), FD_ONLY, max_examples=30, seed=None)
    report = runner.explore("grad_input")
    assert report.status == FAIL
    assert report.replay.startswith("replay: rerun with derandomized --max-examples 30")


def test_properties_share_their_trials_so_each_case_is_built_and_run_once():
    factory = Counting()
    runner = Runner(DENSE_CASES, factory, FD_ONLY, max_examples=8, seed=5)
    runner.explore("forward")
    built, forwards = factory.built, factory.forwards
    assert built == len(runner.cache.trials) > 1
    assert forwards == built  # one forward per case
    runner.explore("forward")
    runner.explore("oracle_agreement")  # a SKIP-only property (no torch): touches the trials only
    assert (factory.built, factory.forwards) == (built, forwards)
    runner.explore("grad_input")
    assert factory.built == built  # the same cases again: no new subject


def test_the_trial_cache_keys_on_the_case_values_and_evicts_the_oldest():
    cache = TrialCache(reference_subject, FD_ONLY, size=2)
    geometry = DenseGeometry(1, (2,), 2, bias=False)

    def case(scale: float) -> Case:
        return Case("dense", geometry, {"input": np.ones((1, 2)) * scale, "weight": np.ones((2, 2))}, np.ones((1, 2)))

    a, a_again, b, c = case(1.0), case(1.0), case(2.0), case(3.0)
    assert cache.get(a) is cache.get(a_again)
    trial_b = cache.get(b)
    cache.get(c)  # evicts a, the least recently used
    assert len(cache.trials) == 2
    assert cache.get(b) is trial_b
    assert case_key(a) not in cache.trials


def test_a_hanging_layer_stops_the_run_and_leaves_the_rest_unexplored():
    calls = []

    class Hangs:
        def __init__(self, case) -> None:
            pass

        def forward(self, inputs):
            calls.append("forward")
            time.sleep(30)

        def backward(self, upstream):
            return {}

    options = Options(oracles=("fd",), limits=Limits(seconds=0.2))
    runner = Runner(RELU_CASES, Hangs, options, max_examples=5, seed=0)
    report = runner.run(["forward", "grad_input", "determinism"], target="hangs", kind="relu")
    assert calls == ["forward"]  # one time-out, not one per example or property
    first, *rest = report.properties
    assert first.status == FAIL and first.examples == 1
    assert first.findings[0].cause == "timeout"
    assert "did not return within 0.2 s" in first.findings[0].message
    for p in rest:  # never tried: inconclusive, naming the cause, not failures of their own
        assert p.status == INCONCLUSIVE and p.examples == 0
        assert p.findings[0].message.startswith("not explored: an earlier property stopped the check")
        assert "did not return within 0.2 s" in p.findings[0].message
    assert report.failed_properties == ["forward"]
    assert not report.passed


def test_what_stops_the_run_is_the_faults_cause_not_its_wording():
    """A layer whose own exception says "did not return within" or "ran out of memory" is an ordinary
    failure: the run goes on to the next property (only a real time-out or MemoryError stops it)."""

    class Mimic:
        def __init__(self, case) -> None:
            pass

        def forward(self, inputs):
            raise RuntimeError("did not return within 0.2 s; ran out of memory")

        def backward(self, upstream):
            return {}

    runner = Runner(RELU_CASES, Mimic, FD_ONLY, max_examples=3, seed=0)
    report = runner.run(["forward", "determinism"], target="mimic", kind="relu")
    assert [p.status for p in report.properties] == [FAIL, NOT_JUDGED]  # explored, the same fault said once
    assert report.properties[1].examples > 0
    assert report.properties[1].findings[0].message == "not judged: every case met the fault under forward"
    assert {f.cause for p in report.properties for f in p.findings if f.failed} == {"raised"}


def test_a_layer_answering_differently_on_a_replay_is_reported_as_not_reproducible():
    class Flaky:
        calls = 0

        def __init__(self, case) -> None:
            self.inner = reference_subject(case)

        def forward(self, inputs):
            Flaky.calls += 1
            out = self.inner.forward(inputs)
            return out + 1.0 if Flaky.calls == 3 else out

        def backward(self, upstream):
            return self.inner.backward(upstream)

    runner = Runner(RELU_CASES, Flaky, FD_ONLY, max_examples=10, seed=0)
    runner.cache.size = 0  # no sharing: a replay calls the layer again
    report = runner.explore("forward")
    assert report.status == FAIL
    last = report.findings[-1]
    assert last.failed and last.oracle == "structure"
    assert last.message.startswith("the layer is not reproducible (Flaky")
    assert report.replay.startswith("replay: rerun with --seed 0")


def test_progress_is_reported_before_and_after_each_property():
    events = []
    runner = Runner(
        RELU_CASES, reference_subject, FD_ONLY, max_examples=2, seed=0, progress=lambda *e: events.append(e)
    )
    runner.run(["forward", "quiet"], target="t", kind="relu")
    assert [(name, report is None) for name, report in events] == [
        ("forward", True),
        ("forward", False),
        ("quiet", True),
        ("quiet", False),
    ]
    assert events[1][1].property == "forward"


# -- the shrinking budget -----------------------------------------------------------------------------------


class Ticks:
    """A clock that advances one second per reading: time in these tests is counted, never measured."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def shrunk(shrink_seconds, shrinking=None):
    runner = Runner(
        DENSE_CASES,
        mistaken("dense_bias_over_batch"),
        FD_ONLY,
        max_examples=30,
        seed=4,
        shrink_seconds=shrink_seconds,
        shrinking=shrinking,
        clock=Ticks(),
    )
    return runner.run(["grad_bias"], target="t", kind="dense").properties[0]


def size(p) -> int:
    return sum(int(a.size) for a in p.trial.case.inputs.values())


def test_with_no_shrinking_time_the_first_failing_case_is_reported_and_the_report_says_it_stopped_early():
    full, none = shrunk(None), shrunk(0.0)
    assert full.status == none.status == FAIL
    assert full.shrink_stopped is None and none.shrink_stopped == 0.0
    assert size(none) > size(full)  # the first failing case is bigger than the minimal one
    assert none.examples < full.examples  # the layer was not called again once time was up
    text = Report("t", "dense", [none]).render(front="cli")
    assert "shrinking stopped after 0 s at the smallest failing case so far (more time: --shrink-time S)" in text


def test_a_budget_keeps_the_smallest_failing_case_found_in_time_and_it_still_fails():
    full, some = shrunk(None), shrunk(40.0)
    assert some.status == FAIL and some.trial is not None
    assert size(full) <= size(some) <= size(shrunk(0.0))
    assert any(f.failed for f in some.findings)


def test_the_shrinking_is_reported_as_it_goes():
    seen = []
    shrunk(None, lambda prop, failures, entries: seen.append((prop, failures, entries)))
    assert seen and all(prop == "grad_bias" for prop, _, _ in seen)
    assert [n for _, n, _ in seen] == sorted(n for _, n, _ in seen)  # failing cases counted up
    assert seen[-1][2] <= seen[0][2]
