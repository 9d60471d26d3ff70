"""checks.report: the console text lists every property with its status and examples (and, for a
failure, what failed, where, and how to replay it); the JSON form carries the schema version and
the documented fields, and survives json.loads."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from checks import strategies as cs
from checks.compare import Comparison, compare
from checks.explain.mistakes import mistaken
from checks.findings import FAIL, INCONCLUSIVE, NOT_JUDGED, PASS, SKIP, Finding
from checks.pipeline.runner import Runner
from checks.pipeline.trial import Options
from checks.report import SCHEMA_VERSION, PropertyReport, Report, aggregate
from checks.tolerances import Tolerance

TOP_FIELDS = {"schema_version", "target", "kind", "passed", "outcome", "judged_by", "error", "settings", "properties"}
PROPERTY_FIELDS = {"property", "status", "examples", "unjudged", "oracles", "findings", "replay"}
FINDING_FIELDS = {"property", "status", "message", "oracle", "case", "comparison"}
COMPARISON_FIELDS = {"ok", "max_abs", "max_rel", "worst_index", "worst_actual", "worst_expected", "mismatched", "total"}
CASE = "dense DenseGeometry(batch=2, features=(1,), out_features=1, bias=True); input (2, 1)"


def sample_report() -> Report:
    comparison = compare(np.array([[1.0, 2.5]]), np.array([[1.0, 2.0]]), Tolerance(1e-8, 1e-6))
    failing = Finding("grad_bias", FAIL, "1/2 entries differ; worst at (0, 1)", "fd", CASE, comparison)
    return Report(
        "examples/dense.py:Dense",
        "dense",
        [
            PropertyReport("forward", PASS, 25, {"torch": 25}, [], None),
            PropertyReport(
                "grad_bias",
                FAIL,
                7,
                {"torch": 3},
                [Finding("grad_bias", SKIP, "torch skipped", "torch", CASE), failing],
                "replay: rerun with --seed 3 --max-examples 25\n@reproduce_failure('6.0', b'AA==')",
            ),
            PropertyReport("oracle_agreement", SKIP, 25, {}, [Finding("oracle_agreement", SKIP, "needs both oracles")]),
            PropertyReport(
                "grad_input", INCONCLUSIVE, 4, {}, [Finding("grad_input", INCONCLUSIVE, "every step crosses")]
            ),
        ],
        {"seed": 3, "max_examples": 25, "oracles": ["torch", "fd"]},
    )


def test_render_lists_every_property_with_its_status_and_examples():
    lines = sample_report().render().splitlines()
    assert lines[0] == "examples/dense.py:Dense (dense): FAIL"
    rows = {
        line.split()[1]: line.split() for line in lines[1:] if line.startswith("  ") and not line.startswith("    ")
    }
    assert rows["forward"][:4] == ["PASS", "forward", "25", "examples"]
    assert rows["grad_bias"][:4] == ["FAIL", "grad_bias", "7", "examples"]
    assert rows["oracle_agreement"][:4] == ["SKIP", "oracle_agreement", "25", "examples"]
    assert rows["grad_input"][:4] == ["INCONCLUSIVE", "grad_input", "4", "examples"]
    assert "(torch 25)" in " ".join(rows["forward"])


def test_render_shows_a_failure_with_its_oracle_case_and_replay_but_not_its_passing_findings():
    text = sample_report().render(front="cli")
    assert "[fd] 1/2 entries differ; worst at (0, 1)" in text
    assert "case: " + CASE.split(";")[0] in text
    assert "replay: rerun with --seed 3 --max-examples 25" in text
    assert "torch skipped" not in text  # a skip inside a failing property is not the failure


def test_the_replay_is_said_in_the_words_of_the_front_end_and_the_hypothesis_blob_stays_in_the_json():
    report = sample_report()
    assert "replay: check(spec, seed=3, max_examples=25)" in report.render()
    assert "--seed" not in report.render() and "--seed" not in report.render(front="pytest")
    assert "replay:" not in report.render(front="pytest")  # the plugin prints its own pytest flags
    for front in ("cli", "api", "pytest"):
        assert "reproduce_failure" not in report.render(front=front)  # no test function to decorate
    assert "@reproduce_failure('6.0', b'AA==')" in json.loads(report.to_json())["properties"][1]["replay"]


def test_detail_lines_fit_100_columns_and_the_header_rows_and_snippet_code_are_not_wrapped():
    from checks.report import WIDTH, _fit

    long = "x" * 30 + " word" * 30
    code = "        " + "np.array([" + "1.0, " * 30 + "])"
    lines = _fit(
        ["t" * 120 + ": FAIL", "  FAIL  grad_input" + " " * 90, f"      {long}", "      reproduce (Python):", code],
        WIDTH,
    )
    assert lines[0] == "t" * 120 + ": FAIL" and lines[-1] == code
    wrapped = lines[2:-2]
    assert len(wrapped) > 1 and all(len(line) <= WIDTH for line in wrapped)
    assert all(line.startswith("        ") for line in wrapped[1:])
    assert " ".join(w.strip() for w in wrapped) == long


def test_render_gives_the_reason_for_a_skipped_or_inconclusive_property():
    text = sample_report().render()
    assert "needs both oracles" in text
    assert "every step crosses" in text


def test_a_report_with_an_error_renders_the_error_and_fails():
    report = Report("broken.py:Layer", "conv", [], error="cannot import broken.py: SyntaxError")
    assert not report.passed
    assert report.render() == "broken.py:Layer (conv): FAIL\n  error: cannot import broken.py: SyntaxError"


def test_passed_and_failed_properties_follow_the_statuses():
    report = sample_report()
    assert not report.passed
    assert report.failed_properties == ["grad_bias"]
    report.properties[1].status = PASS
    assert report.passed and report.failed_properties == []
    assert Report("t", "relu", []).passed


@pytest.mark.parametrize(
    "statuses, expected",
    [
        ([PASS, FAIL, SKIP], FAIL),
        ([SKIP, PASS, INCONCLUSIVE], PASS),
        ([SKIP, INCONCLUSIVE], INCONCLUSIVE),
        ([SKIP, SKIP], SKIP),
        ([], SKIP),
    ],
)
def test_fail_beats_pass_beats_inconclusive_beats_skip(statuses, expected):
    assert aggregate(statuses) == expected


def test_the_json_form_round_trips_with_the_schema_version_and_documented_fields():
    report = sample_report()
    data = json.loads(report.to_json())
    assert data["schema_version"] == SCHEMA_VERSION >= 1
    assert TOP_FIELDS <= set(data)
    assert (data["target"], data["kind"], data["passed"], data["error"]) == (
        "examples/dense.py:Dense",
        "dense",
        False,
        None,
    )
    assert data["settings"] == {"seed": 3, "max_examples": 25, "oracles": ["torch", "fd"]}
    assert [p["property"] for p in data["properties"]] == ["forward", "grad_bias", "oracle_agreement", "grad_input"]
    for p in data["properties"]:
        assert PROPERTY_FIELDS <= set(p)
        for f in p["findings"]:
            assert FINDING_FIELDS <= set(f)
    bias = data["properties"][1]
    assert (bias["status"], bias["examples"], bias["oracles"]) == ("fail", 7, {"torch": 3})
    assert bias["replay"].splitlines()[0] == "replay: rerun with --seed 3 --max-examples 25"
    comparison = bias["findings"][1]["comparison"]
    assert COMPARISON_FIELDS <= set(comparison)
    assert comparison["worst_index"] == [0, 1]
    assert (comparison["worst_actual"], comparison["worst_expected"], comparison["ok"]) == (2.5, 2.0, False)
    assert bias["findings"][0]["comparison"] is None


def test_to_dict_is_what_to_json_writes():
    report = sample_report()
    assert json.loads(report.to_json()) == json.loads(json.dumps(report.to_dict(), default=list))
    assert json.loads(report.to_json(indent=None)) == json.loads(report.to_json())


def test_a_report_from_a_real_run_serialises():
    cases = cs.cases("relu", cs.elementwise_geometries(ndim=2, side=(1, 3)))
    runner = Runner(cases, mistaken("relu_never_masks"), Options(oracles=("fd",)), max_examples=10, seed=2)
    report = runner.run(["forward", "grad_input", "quiet"], target="relu_never_masks", kind="relu")
    data = json.loads(report.to_json())
    assert data["passed"] is False
    assert [(p["property"], p["status"]) for p in data["properties"]] == [
        ("forward", "pass"),
        ("grad_input", "fail"),
        ("quiet", "pass"),
    ]
    assert report.failed_properties == ["grad_input"]
    assert "@reproduce_failure" in data["properties"][1]["replay"]
    assert "grad_input" in report.render() and "FAIL" in report.render()


def strict_loads(text: str):
    def refuse(constant: str):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_the_json_is_strict_even_when_a_comparison_holds_a_non_finite_number():
    # what compare_directional(5.0, 0.0, ...) returns today: max_rel = 5 / tiny = inf
    comparison = Comparison(False, 5.0, math.inf, None, 5.0, 0.0, 1, 1)
    finding = Finding("grad_input", FAIL, "direction 0 disagrees", "fd", CASE, comparison)
    report = Report("t", "relu", [PropertyReport("grad_input", FAIL, 1, {}, [finding])])
    strict_loads(report.to_json())


@pytest.mark.parametrize(
    "statuses, expected",
    [
        ([SKIP, INCONCLUSIVE], NOT_JUDGED),
        ([SKIP], NOT_JUDGED),
        ([], NOT_JUDGED),
        ([SKIP, PASS], PASS),
        ([INCONCLUSIVE, FAIL], FAIL),
    ],
)
def test_a_gradient_no_oracle_judged_is_not_judged_never_a_pass_or_a_skip(statuses, expected):
    assert aggregate(statuses, must_judge=True) == expected


def test_a_not_judged_gradient_fails_the_report_with_its_own_outcome_unless_something_failed():
    report = sample_report()
    report.properties[3].status = NOT_JUDGED
    assert report.outcome()[0] == "failed"  # grad_bias failed: that is the headline
    report.properties[1].status = PASS
    assert not report.passed and report.unjudged == ["grad_input"]
    assert report.outcome()[:2] == ("not_judged", "not judged: grad_input (no oracle could compare them)")
    assert report.render().splitlines()[0].endswith(": NOT JUDGED")
    assert json.loads(report.to_json())["outcome"] == "not_judged"


def test_examples_no_oracle_judged_are_counted_in_the_row():
    report = sample_report()
    report.properties[0].unjudged = 2
    row = next(line for line in report.render().splitlines() if " forward " in line)
    assert row.endswith("(torch 25, 2 not judged)")
    assert json.loads(report.to_json())["properties"][0]["unjudged"] == 2
