"""checks.front.gradescope: the rubric (TOML or JSON, validated), the default split, scores exact in hundredths,
results.json in the documented Gradescope format (checked by a small validator of its keys and types), the
summary's score / max_score / error columns, and the run_autograder script on a fake /autograder."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from checks.front import cli, grade, gradescope
from checks.front.gradescope import Rubric, RubricError, load_rubric, validate

pytest.importorskip("resource")
REPO = Path(__file__).resolve().parents[3]
SUBMISSIONS = REPO / "tests" / "fixtures" / "submissions"
RUN_AUTOGRADER = REPO / "examples" / "gradescope" / "run_autograder"
ENOUGH = 600.0  # s per check: never reached, only a bound on a stuck test
CONV = {p: "pass" for p in gradescope.PROPERTIES}
RELU = {p: "pass" for p in gradescope.PROPERTIES if p not in ("grad_weight", "grad_bias")}


def test_the_property_names_are_the_checkers():
    from checks.pipeline.properties import STRUCTURAL, property_names

    assert list(gradescope.PROPERTIES) == property_names(["input", "weight", "bias"])
    assert set(STRUCTURAL) < set(gradescope.PROPERTIES)


# -- the rubric -------------------------------------------------------------------------------------------


def test_a_rubric_reads_from_toml_and_json_alike(tmp_path):
    toml = tmp_path / "rubric.toml"
    toml.write_text(
        'per = "property"\nvisibility = "after_published"\n[layers]\nconv = 10\nrelu = 5\n'
        "[properties]\ngrad_input = 3\ngrad_weight = 3\ngrad_bias = 2\nforward = 1\n"
    )
    as_json = tmp_path / "rubric.json"
    as_json.write_text(
        json.dumps(
            {
                "per": "property",
                "visibility": "after_published",
                "layers": {"conv": 10, "relu": 5},
                "properties": {"grad_input": 3, "grad_weight": 3, "grad_bias": 2, "forward": 1},
            }
        )
    )
    assert load_rubric(toml) == load_rubric(as_json)
    rubric = load_rubric(toml)
    assert rubric.layers == {"conv": 10.0, "relu": 5.0} and rubric.visibility == "after_published"
    assert Rubric.from_dict(rubric.to_dict()) == rubric  # what summary.json records reads back


def test_the_example_rubric_is_valid():
    rubric = load_rubric(REPO / "examples" / "gradescope" / "rubric.toml")
    assert set(rubric.layers) == set(grade.KINDS)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"points": 3}, "unknown key"),
        ({"per": "student"}, "per must be one of"),
        ({"layers": {"conv": -1}}, "must be >= 0"),
        ({"layers": {"conv": True}}, "must be a number"),
        ({"layers": ["conv"]}, "layers must be a table"),
        ({"properties": {"grad_everything": 1}}, "unknown propert"),
        ({"properties": {"grad_input": 1}, "structural_share": 0.1}, "not both"),
        ({"structural_share": 1.5}, "between 0 and 1"),
        ({"visibility": "sometimes"}, "visibility must be one of"),
        ({"stdout_visibility": "always"}, "stdout_visibility must be one of"),
    ],
)
def test_a_bad_rubric_is_refused_with_the_key_named(document, message):
    with pytest.raises(RubricError, match=message):
        Rubric.from_dict(document)


def test_unreadable_or_unparsable_rubric_files_are_refused(tmp_path):
    with pytest.raises(RubricError, match="No such file"):
        load_rubric(tmp_path / "none.toml")
    (tmp_path / "bad.toml").write_text("per = \n")
    with pytest.raises(RubricError, match="invalid TOML"):
        load_rubric(tmp_path / "bad.toml")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(RubricError, match="invalid JSON"):
        load_rubric(tmp_path / "bad.json")
    (tmp_path / "rubric.yaml").write_text("per: layer\n")
    with pytest.raises(RubricError, match=".toml or .json"):
        load_rubric(tmp_path / "rubric.yaml")


def test_points_for_every_graded_layer():
    assert Rubric().for_layers(["conv", "relu"]).layers == {"conv": 10.0, "relu": 10.0}
    given = Rubric.from_dict({"layers": {"conv": 4, "relu": 2, "dense": 1}})
    assert given.for_layers(["relu", "conv"]).layers == {"relu": 2.0, "conv": 4.0}
    with pytest.raises(RubricError, match="no points for the graded layer.* maxpool"):
        given.for_layers(["conv", "maxpool"])


# -- scores -----------------------------------------------------------------------------------------------


def test_the_default_split_gives_the_gradients_most_of_a_layer_and_adds_up_exactly():
    rubric = Rubric().for_layers(["conv", "relu"])
    conv = rubric.split("conv", CONV)
    assert sum(conv.values()) == 1000  # hundredths: exactly the layer's 10 points
    assert sum(conv[p] for p in gradescope.GRADIENTS) == 800  # 1 - structural_share of them
    assert max(conv[p] for p in gradescope.GRADIENTS) - min(conv[p] for p in gradescope.GRADIENTS) <= 1
    relu = rubric.split("relu", RELU)
    assert relu["grad_input"] == 800 and sum(relu.values()) == 1000
    skipped = rubric.split("relu", {**RELU, "oracle_agreement": "skip"})  # not applicable: left out of the split
    assert "oracle_agreement" not in skipped and sum(skipped.values()) == 1000


def test_weights_split_a_layer_in_proportion_over_the_properties_it_has():
    rubric = Rubric.from_dict(
        {"layers": {"conv": 10, "relu": 5}, "properties": {"grad_input": 3, "grad_weight": 3, "grad_bias": 2}}
    )
    assert rubric.split("conv", CONV) == {
        p: (375 if p in ("grad_input", "grad_weight") else 250 if p == "grad_bias" else 0) for p in CONV
    }
    assert rubric.split("relu", RELU)["grad_input"] == 500  # the weights of what relu has: all on grad_input
    nothing = Rubric.from_dict({"properties": {"grad_weight": 1}})
    assert nothing.split("relu", RELU) == {}  # no weight at all: the layer is scored as a whole


def test_scores_of_each_status():
    rubric = Rubric().for_layers(["conv"])
    failed = {**CONV, "grad_bias": "fail", "linearity": "inconclusive"}
    bias = rubric.split("conv", CONV)["grad_bias"]
    assert rubric.score("conv", "passed", CONV) == (1000, 1000)
    assert rubric.score("conv", "failed", failed) == (1000 - bias, 1000)  # inconclusive is not a failure
    for status in ("timeout", "memory", "crashed", "error", "internal", "missing", "refused"):
        assert rubric.score("conv", status, failed) == (0, 1000), status
    unjudged = {**CONV, "grad_weight": "not_judged"}  # nothing failed, but no oracle compared grad_weight
    weight = rubric.split("conv", CONV)["grad_weight"]
    assert rubric.score("conv", "not_judged", unjudged) == (1000 - weight, 1000)  # never a pass: not earned
    per_layer = Rubric.from_dict({"per": "layer"}).for_layers(["conv"])
    assert per_layer.score("conv", "failed", failed) == (0, 1000)
    assert per_layer.score("conv", "passed", CONV) == (1000, 1000)


def test_largest_remainder_keeps_the_parts_exact():
    weights = [(str(i), gradescope.Fraction(1)) for i in range(3)]
    assert gradescope._apportion(1000, weights) == {"0": 334, "1": 333, "2": 333}
    assert sum(gradescope._apportion(7, weights).values()) == 7


# -- results.json -----------------------------------------------------------------------------------------


def _row(layer: str, status: str, props: dict, rubric: Rubric, target: str = "") -> SimpleNamespace:
    score, most = rubric.score(layer, status, props)
    return SimpleNamespace(
        layer=layer,
        status=status,
        properties=props,
        target=target,
        reason="" if status == "passed" else f"{status}: why",
        score=score / 100,
        max_score=most / 100,
    )


def test_results_follow_the_documented_format_and_add_up():
    rubric = Rubric.from_dict({"visibility": "after_due_date", "stdout_visibility": "hidden"}).for_layers(
        ["conv", "relu", "dense"]
    )
    failing = {
        "properties": [
            {
                "property": "grad_bias",
                "status": "fail",
                "examples": 3,
                "findings": [{"status": "fail", "message": "grad_bias off by 2x", "case": "conv 1x1"}],
                "diagnosis": {"mistake": "bias_grad_over_batch", "matches": [{"explanation": "summed"}]},
                "replay": "cnn-gradcheck check ... --seed 1234",
            }
        ]
    }
    rows = [
        _row("conv", "failed", {**CONV, "grad_bias": "fail"}, rubric, "s/layers.py:Conv"),
        _row("relu", "timeout", {**RELU, "grad_input": "fail"}, rubric, "s/layers.py:ReLU"),
        _row("dense", "missing", {}, rubric),
    ]
    entries = {"conv": {"report": failing}, "relu": {"report": None, "where": "s/layers.py line 4 in backward"}}
    document = gradescope.results("s", rows, entries, rubric, extra={"seed": 1234})
    assert validate(document) == []
    assert json.loads(json.dumps(document)) == document  # plain JSON
    assert document["visibility"] == "after_due_date" and document["stdout_visibility"] == "hidden"
    tests = document["tests"]
    assert all({"name", "score", "max_score", "output", "visibility"} <= set(t) for t in tests)
    assert document["score"] == pytest.approx(sum(t["score"] for t in tests))
    assert sum(t["max_score"] for t in tests) == pytest.approx(30)
    by_name = {t["name"]: t for t in tests}
    bias = by_name["conv: grad_bias"]
    assert bias["score"] == 0 and bias["status"] == "failed" and "grad_bias off by 2x" in bias["output"]
    assert "bias_grad_over_batch: summed" in bias["output"] and "1234" not in bias["output"]  # no seed shown
    assert by_name["relu"]["score"] == 0 and by_name["relu"]["max_score"] == 10  # a hang scores 0 for the layer
    assert "timeout: why" in by_name["relu"]["output"] and "line 4 in backward" in by_name["relu"]["output"]
    assert by_name["dense"]["output"] == "dense: missing\nmissing: why"
    assert {t["visibility"] for t in tests} == {"after_due_date"}


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ([], "not an object"),
        ({"tests": [{"name": "a"}]}, "no top-level score"),
        ({"score": "10"}, "score is not a number"),
        ({"score": 1, "visibility": "public"}, "visibility 'public'"),
        ({"score": 1, "tests": {}}, "tests is not a list"),
        ({"score": 1, "tests": [{"score": True}]}, "tests[0].score is not a number"),
        ({"score": 1, "tests": [{"name": 3}]}, "tests[0].name is not a string"),
        ({"score": 1, "tests": [{"output": ["x"]}]}, "tests[0].output is not a string"),
        ({"score": 1, "tests": [{"status": "ok"}]}, "tests[0].status"),
        ({"score": 1, "tests": [{"visibility": "later"}]}, "tests[0].visibility"),
        ({"score": 1, "extra_data": []}, "extra_data is not an object"),
    ],
)
def test_the_validator_catches_what_gradescope_would_not_read(document, problem):
    assert any(problem in p for p in validate(document)), validate(document)


# -- through grading --------------------------------------------------------------------------------------


def _grade_cli(subs: Path, out: Path, *extra: str) -> int:
    argv = ["grade", str(subs), "--kind", "relu", "--kind", "dense", "--out", str(out), "--seed", "3"]
    return cli.main([*argv, "--max-examples", "5", "--jobs", "2", "--timeout", str(ENOUGH), "-q", *extra])


def test_grading_with_the_gradescope_format(tmp_path, capsys):
    """One grading of three submissions (a correct one, a wrong bias gradient, a layer that kills its own
    process): the new summary columns, then results.json for one submission and gradescope/ for several."""
    subs = tmp_path / "subs"
    for name in ("alice_correct", "bob_buggy", "frank_exits"):
        shutil.copytree(SUBMISSIONS / name, subs / name)
    rubric = tmp_path / "rubric.json"
    rubric.write_text(json.dumps({"layers": {"relu": 5, "dense": 10}, "visibility": "after_published"}))
    out = tmp_path / "out"
    assert _grade_cli(subs, out, "--format", "gradescope", "--rubric", str(rubric)) == 0
    assert "of 45.00 points" in capsys.readouterr().out

    rows = list(csv.DictReader(io.StringIO((out / "summary.csv").read_text())))
    header = next(csv.reader(io.StringIO((out / "summary.csv").read_text())))
    assert header[-6:] == ["diagnosis", "reason", "seconds", "score", "max_score", "error"]  # appended, in order
    got = {(r["submission"], r["layer"]): (r["status"], r["score"], r["max_score"], r["error"]) for r in rows}
    assert got[("alice_correct", "relu")] == ("passed", "5.00", "5.00", "")
    status, score, most, error = got[("bob_buggy", "dense")]
    assert (status, most, error) == ("failed", "10.00", "") and 0 < float(score) < 10  # a value bug: no error text
    status, score, most, error = got[("frank_exits", "relu")]
    assert (status, score, most) == ("crashed", "0.00", "5.00") and "exited with status 7" in error
    assert got[("frank_exits", "dense")][:3] == ("missing", "0.00", "10.00")

    data = json.loads((out / "summary.json").read_text())
    assert data["settings"]["rubric"]["layers"] == {"relu": 5.0, "dense": 10.0}
    frank = next(r for r in data["rows"] if r["submission"] == "frank_exits" and r["layer"] == "relu")
    assert frank["score"] == 0 and frank["max_score"] == 5 and "status 7" in frank["error"]

    documents = sorted((out / "gradescope").iterdir())
    assert [p.name for p in documents] == ["alice_correct.json", "bob_buggy.json", "frank_exits.json"]
    assert not (out / "results.json").exists()
    for path in documents:
        document = json.loads(path.read_text())
        assert validate(document) == [], path.name
        name = path.stem
        assert document["score"] == pytest.approx(sum(r["score"] for r in data["rows"] if r["submission"] == name))
        assert {t["visibility"] for t in document["tests"]} == {"after_published"}

    one = tmp_path / "one"
    shutil.copytree(SUBMISSIONS / "bob_buggy", one / "bob_buggy")
    assert _grade_cli(one, tmp_path / "out1", "--format", "gradescope", "--format", "summary") == 0
    single = json.loads((tmp_path / "out1" / "results.json").read_text())
    assert validate(single) == [] and not (tmp_path / "out1" / "gradescope").exists()
    bob = json.loads((out / "gradescope" / "bob_buggy.json").read_text())
    assert single["tests"][0]["max_score"] > bob["tests"][0]["max_score"]  # the default rubric: 10 points for relu


def test_a_bad_rubric_exits_2(tmp_path, capsys):
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(SUBMISSIONS / "judy.py", subs / "judy.py")
    rubric = tmp_path / "rubric.toml"
    rubric.write_text("[layers]\nconv = 10\n")
    assert _grade_cli(subs, tmp_path / "out", "--rubric", str(rubric)) == 2
    assert "no points for the graded layer(s) relu, dense" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(shutil.which("bash") is None, reason="run_autograder is a bash script")
def test_run_autograder_grades_the_one_submission_of_a_fake_autograder_folder(tmp_path):
    root = tmp_path / "autograder"
    (root / "source").mkdir(parents=True)
    (root / "results").mkdir()
    (root / "results" / "stdout").write_text("")  # Gradescope's capture may already be there
    shutil.copytree(SUBMISSIONS / "bob_buggy", root / "submission", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "examples" / "gradescope" / "rubric.toml", root / "source" / "rubric.toml")
    env = {
        **os.environ,
        "AUTOGRADER_ROOT": str(root),
        "CNN_GRADCHECK": f"{sys.executable} -m checks",
        "CNN_GRADCHECK_LAYERS": "--kind relu --kind dense --kind conv --kind maxpool",
        "CNN_GRADCHECK_ARGS": f"--seed 0 --max-examples 5 --jobs 2 --timeout {ENOUGH:g}",
    }
    done = subprocess.run(
        ["bash", str(RUN_AUTOGRADER)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=ENOUGH
    )
    assert done.returncode == 0, done.stderr
    document = json.loads((root / "results" / "results.json").read_text())
    assert validate(document) == []
    assert document["visibility"] == "after_published"
    names = {t["name"] for t in document["tests"]}
    assert {"dense: grad_bias", "relu: grad_input", "conv: grad_input"} <= names
    assert document["score"] < sum(t["max_score"] for t in document["tests"])  # bob's dense bias is wrong
    assert (root / "results" / "cnn-gradcheck-summary.csv").exists()
    submitted = sorted(p.name for p in (SUBMISSIONS / "bob_buggy").iterdir() if p.name != "__pycache__")
    assert sorted(p.name for p in (root / "submission").iterdir()) == submitted  # left as it was


@pytest.mark.skipif(shutil.which("bash") is None, reason="run_autograder is a bash script")
def test_run_autograder_makes_up_no_score_when_the_grader_cannot_run(tmp_path):
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    (root / "source").mkdir()
    (root / "source" / "rubric.json").write_text('{"per": "everything"}')  # the instructor's mistake
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "CNN_GRADCHECK": f"{sys.executable} -m checks"}
    done = subprocess.run(["bash", str(RUN_AUTOGRADER)], env=env, capture_output=True, text=True, timeout=ENOUGH)
    assert done.returncode == 1
    assert "per must be one of" in done.stderr and "wrote no results.json" in done.stderr
    assert not (root / "results" / "results.json").exists()
