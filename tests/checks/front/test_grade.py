"""checks.front.grade: grading the fixture submissions gives each (submission, layer) its expected verdict with the
cause named, whatever the other submissions do; the summary files are deterministic given the seed and do
not depend on the number of jobs; the command line's exit codes."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
from pathlib import Path

import pytest

from checks.front import cli
from checks.front import grade as grading
from checks.front.grade import GradeError, LayerChoice, Submission, discover, grade, locate, parse_layer

pytest.importorskip("resource")
SUBMISSIONS = Path(__file__).resolve().parents[2] / "fixtures" / "submissions"
LAYERS = ["conv", "maxpool", "relu", "dense"]
MiB = 1024**2
ENOUGH = 600.0  # s per check: never reached, only a bound on a stuck test
CALL = 10.0  # s per call into a layer: ~1000x what a call takes, so only a hang reaches it
IMPORT = 10.0  # s to import a submission: ~100x what it takes, so only a hang reaches it
MEMORY = 256 * MiB  # what one call may allocate: erin's hog reaches it after four of her 64 MiB blocks

# (submission, layer) -> (status, the reason, or how it starts when it ends with "...")
EXPECTED = {
    ("alice_correct", "conv"): ("passed", ""),
    ("alice_correct", "maxpool"): ("passed", ""),
    ("alice_correct", "relu"): ("passed", ""),
    ("alice_correct", "dense"): ("passed", ""),
    ("bob_buggy", "conv"): ("passed", ""),
    ("bob_buggy", "maxpool"): ("failed", "failed: grad_input [route_to_all_ties]"),
    ("bob_buggy", "relu"): ("passed", ""),
    ("bob_buggy", "dense"): ("failed", "failed: grad_bias [bias_grad_wrong_axes]"),
    ("carol_hangs", "conv"): ("timeout", "timeout: backward: did not return within 10 s (hang or infinite loop?)..."),
    ("carol_hangs", "maxpool"): ("missing", "no class MaxPoolLayer or class MaxPool2 found in 1 .py file"),
    ("carol_hangs", "relu"): ("timeout", "timeout: backward: did not return within 15 s (a hang?)..."),
    ("carol_hangs", "dense"): ("passed", ""),
    ("dave_sleeps_at_import", "conv"): ("missing", "no class ConvLayer or class Conv3x3 found in 1 .py file"),
    ("dave_sleeps_at_import", "maxpool"): ("missing", "no class MaxPoolLayer or class MaxPool2 found in 1 .py file"),
    ("dave_sleeps_at_import", "relu"): (
        "timeout",
        "timeout: dave_sleeps_at_import/relu.py: line 7: importing it did not return within 10 s...",
    ),
    ("dave_sleeps_at_import", "dense"): (
        "missing",
        "no class FullyConnectedLayer or class DenseLayer found in 1 .py file",
    ),
    ("erin_memory_hog", "relu"): ("passed", ""),
    ("erin_memory_hog", "dense"): ("memory", "memory: backward: ran out of memory (budget 0.2 GiB)..."),
    ("frank_exits", "relu"): ("crashed", "crashed: backward: the layer's process exited with status 7..."),
    ("grace_segfault", "conv"): (
        "crashed",
        "crashed: forward: the layer's process crashed with a segmentation fault (SIGSEGV)...",
    ),
    ("grace_segfault", "relu"): ("passed", ""),
    ("heidi_syntax_error", "conv"): (
        "missing",
        "no class ConvLayer or class Conv3x3 found in 1 .py file "
        "(layers.py does not compile: line 7: SyntaxError: expected ':')",
    ),
    ("heidi_syntax_error", "relu"): (
        "error",
        "import failed: heidi_syntax_error/layers.py: line 7: SyntaxError: expected ':'",
    ),
    ("heidi_syntax_error", "dense"): (
        "error",
        "import failed: heidi_syntax_error/layers.py: line 7: SyntaxError: expected ':'",
    ),
    ("ivan_missing_dependency", "conv"): (
        "error",
        "import failed: ivan_missing_dependency/layers.py: line 4: ModuleNotFoundError: No module named 'ivan_helpers'",
    ),
    ("judy", "relu"): ("passed", ""),
    ("judy", "dense"): ("passed", ""),
    ("mallory_vandal", "relu"): ("passed", ""),
}
STUDENTS = sorted({s for s, _ in EXPECTED})


def expected(submission: str, layer: str) -> tuple[str, str]:
    """Not listed: the class does not exist in that submission."""
    if (submission, layer) in EXPECTED:
        return EXPECTED[(submission, layer)]
    return "missing", "..."


def digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            h.update(path.relative_to(root).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def test_grading_the_fixture_folder(tmp_path):
    """The whole fixture folder graded once with 2 jobs, from a copy, into an (empty) output folder that
    exists where mallory guesses it (next to the submissions, named out/). Every limit is either never
    reached by a check that finishes (the wall, ~1000x) or the only way a hang can end (a call or an
    import that never returns): no outcome depends on how loaded the machine is. One test, so that
    pytest-xdist never runs this grading on two workers; each aspect is checked by a function of its own."""
    subs, out = tmp_path / "subs", tmp_path / "out"
    shutil.copytree(SUBMISSIONS, subs, ignore=shutil.ignore_patterns("__pycache__"))
    out.mkdir()
    before = digest(subs)
    summary = grade(
        subs,
        LAYERS,
        out_dir=out,
        jobs=2,
        seed=0,
        max_examples=5,
        timeout=ENOUGH,
        memory_bytes=MEMORY,
        call_seconds=CALL,
        import_seconds=IMPORT,
    )
    graded = (summary, subs, out, before)
    every_submission_and_layer_gets_its_expected_verdict_and_cause(graded)
    a_hang_or_a_crash_is_located_in_the_submission(graded)
    failing_rows_carry_the_property_verdicts_and_the_diagnosis(graded)
    the_summary_files_and_reports_are_written(graded)
    no_submission_could_touch_the_others_or_the_output(graded)
    every_row_is_scored_and_a_structural_failure_names_its_error(graded)


def every_submission_and_layer_gets_its_expected_verdict_and_cause(graded: tuple) -> None:
    summary = graded[0]
    assert [(r.submission, r.layer) for r in summary.rows] == [(s, k) for s in STUDENTS for k in LAYERS]
    wrong = []
    for row in summary.rows:
        status, reason = expected(row.submission, row.layer)
        ok_reason = row.reason.startswith(reason[:-3]) if reason.endswith("...") else row.reason == reason
        if row.status != status or not ok_reason:
            wrong.append(f"{row.submission} {row.layer}: got {row.status} {row.reason!r}, expected {status} {reason!r}")
    assert not wrong, "\n".join(wrong)


def a_hang_or_a_crash_is_located_in_the_submission(graded: tuple) -> None:
    results = graded[0].results
    assert results[("carol_hangs", "relu")].where == "carol_hangs/layers.py line 41 in backward"  # inside C
    python_loop = results[("carol_hangs", "conv")].where
    assert python_loop.startswith("carol_hangs/layers.py line ") and python_loop.endswith(" in backward")
    assert results[("dave_sleeps_at_import", "relu")].where == "dave_sleeps_at_import/relu.py line 7 in <module>"
    assert results[("grace_segfault", "conv")].where == "grace_segfault/layers.py line 15 in forward"
    assert "Unable to allocate" in results[("erin_memory_hog", "dense")].reason


def failing_rows_carry_the_property_verdicts_and_the_diagnosis(graded: tuple) -> None:
    summary = graded[0]
    pool = summary.row("bob_buggy", "maxpool")
    assert pool.properties["grad_input"] == "fail" and pool.properties["forward"] == "pass"
    assert pool.diagnosis == "grad_input: route_to_all_ties"
    assert summary.row("bob_buggy", "dense").diagnosis == "grad_bias: bias_grad_wrong_axes"
    assert summary.row("alice_correct", "conv").properties["grad_weight"] == "pass"
    hung = summary.row("carol_hangs", "conv").properties  # the check ended at the hang: the rest not explored
    assert hung["grad_input"] == "fail" and hung["linearity"] == "inconclusive"


def the_summary_files_and_reports_are_written(graded: tuple) -> None:
    summary, _, out, _ = graded
    assert sorted(p.name for p in out.iterdir()) == ["reports", "summary.csv", "summary.json"]
    data = json.loads((out / "summary.json").read_text())
    assert data["schema"] == grading.SUMMARY_SCHEMA and data["run"]["jobs"] == 2
    assert len(data["rows"]) == len(STUDENTS) * len(LAYERS)
    rows = list(csv.DictReader(io.StringIO((out / "summary.csv").read_text())))
    assert [(r["submission"], r["layer"], r["status"]) for r in rows] == [
        (r.submission, r.layer, r.status) for r in summary.rows
    ]
    assert rows[0]["grad_input"] == "pass" and "diagnosis" in rows[0] and "seconds" in rows[0]
    reports = sorted(p.name for p in (out / "reports").iterdir())
    assert reports == sorted([f"{s}.json" for s in STUDENTS] + [f"{s}.txt" for s in STUDENTS])
    bob = json.loads((out / "reports" / "bob_buggy.json").read_text())
    assert bob["layers"]["dense"]["report"]["properties"]
    text = (out / "reports" / "carol_hangs.txt").read_text()
    assert "== relu: TIMEOUT" in text and "where: carol_hangs/layers.py line 41 in backward" in text
    assert (
        data["submissions"]["alice_correct"]["files"]["cnn.py"]
        == hashlib.sha256((SUBMISSIONS / "alice_correct" / "cnn.py").read_bytes()).hexdigest()
    )
    assert data["settings"]["sandbox"].startswith("sandbox: ")


def no_submission_could_touch_the_others_or_the_output(graded: tuple) -> None:
    summary, subs, out, before = graded
    assert digest(subs) == before  # mallory could not write anywhere: her snapshot is read-only
    assert not (out / "hacked.txt").exists()
    assert summary.row("alice_correct", "relu").status == "passed"
    data = json.loads((out / "summary.json").read_text())
    assert {r["submission"] for r in data["rows"]} == set(STUDENTS)


def every_row_is_scored_and_a_structural_failure_names_its_error(graded: tuple) -> None:
    summary, _, out, _ = graded
    for row in summary.rows:  # the default rubric: 10 points a layer, all of them for a passed check
        assert row.max_score == 10 and (row.score == 10) == (row.status == "passed"), (row.submission, row.layer)
        if row.status not in ("passed", "failed"):  # hung, crashed, out of memory, not importable, missing
            assert row.score == 0, (row.submission, row.layer)
    assert 0 < summary.row("bob_buggy", "maxpool").score < 10  # a wrong gradient loses that property's points
    assert summary.row("bob_buggy", "maxpool").error == ""  # a value bug is not a structural failure
    assert "did not return within 10 s" in summary.row("carol_hangs", "conv").error
    assert "segmentation fault" in summary.row("grace_segfault", "conv").error
    assert "exited with status 7" in summary.row("frank_exits", "relu").error
    assert "ran out of memory" in summary.row("erin_memory_hog", "dense").error
    assert summary.row("alice_correct", "conv").error == ""
    header = (out / "summary.csv").read_text().splitlines()[0].split(",")
    assert header[-6:] == ["diagnosis", "reason", "seconds", "score", "max_score", "error"]
    data = json.loads((out / "summary.json").read_text())
    assert {"score", "max_score", "error"} <= set(data["rows"][0]) and data["settings"]["rubric"]["per"] == "property"


def _comparable(out: Path) -> tuple[dict, list[list[str]]]:
    data = json.loads((out / "summary.json").read_text())
    data.pop("run")
    for row in data["rows"]:
        for name in grading.TIMING_FIELDS:
            row.pop(name)
    rows = list(csv.reader(io.StringIO((out / "summary.csv").read_text())))
    keep = [i for i, name in enumerate(rows[0]) if name not in grading.TIMING_FIELDS]
    return data, [[r[i] for i in keep] for r in rows]


def test_the_summary_is_deterministic_and_the_same_with_one_or_two_jobs(tmp_path):
    subs = tmp_path / "subs"
    for name in ("alice_correct", "bob_buggy", "frank_exits", "heidi_syntax_error"):
        shutil.copytree(SUBMISSIONS / name, subs / name)
    runs = []
    for jobs in (1, 2):
        out = tmp_path / f"out{jobs}"
        grade(
            subs, ["relu", "dense"], out_dir=out, jobs=jobs, seed=3, max_examples=5, timeout=ENOUGH, memory_bytes=MEMORY
        )
        runs.append(_comparable(out))
    assert runs[0] == runs[1]
    statuses = {(r["submission"], r["layer"]): r["status"] for r in runs[0][0]["rows"]}
    assert statuses == {
        ("alice_correct", "relu"): "passed",
        ("alice_correct", "dense"): "passed",
        ("bob_buggy", "relu"): "passed",
        ("bob_buggy", "dense"): "failed",
        ("frank_exits", "relu"): "crashed",
        ("frank_exits", "dense"): "missing",
        ("heidi_syntax_error", "relu"): "error",
        ("heidi_syntax_error", "dense"): "error",
    }


# -- finding submissions and classes -------------------------------------------------------------------


def test_parse_layer():
    assert parse_layer("conv") == LayerChoice("conv", ("ConvLayer", "Conv3x3"))
    assert parse_layer("conv=MyConv") == LayerChoice("conv", ("MyConv",))
    assert parse_layer("dense=FC,Dense") == LayerChoice("dense", ("FC", "Dense"))
    assert parse_layer("relu=nets/act.py:ReLU") == LayerChoice("relu", ("ReLU",), "nets/act.py")
    for bad in ("softmax=Soft", "conv=", "conv=1Conv", "conv=../x.py:Conv", "conv=/abs.py:Conv"):
        with pytest.raises(GradeError):
            parse_layer(bad)
    with pytest.raises(GradeError, match="twice"):
        grading.layer_choices(["conv", "conv=Other"])


def test_discover_skips_hidden_entries_and_non_python_files(tmp_path):
    for name in ("b_student", "a_student", ".git", "__pycache__"):
        (tmp_path / name).mkdir()
    (tmp_path / "c.py").write_text("")
    (tmp_path / "notes.txt").write_text("")
    assert [s.name for s in discover(tmp_path)] == ["a_student", "b_student", "c"]


def test_locate_searches_every_file_without_running_them(tmp_path):
    sub = tmp_path / "sam"
    (sub / "deep").mkdir(parents=True)
    (sub / "main.py").write_text("raise SystemExit('must not run')\nfrom .layers import Other\n")
    (sub / "deep" / "layers.py").write_text("class ConvLayer:\n    pass\n")
    (sub / "alias.py").write_text("class _Impl:\n    pass\nReLULayer = _Impl\n")
    s = Submission("sam", sub)
    assert locate(s, parse_layer("conv")).target == "deep/layers.py:ConvLayer"
    assert locate(s, parse_layer("relu")).target == "alias.py:ReLULayer"
    assert locate(s, parse_layer("conv=main.py:ConvLayer")).problem == "no class ConvLayer found in main.py"
    assert locate(s, parse_layer("conv=none.py:ConvLayer")).problem == "no file none.py in the submission"
    assert locate(s, parse_layer("dense")).problem == (
        "no class FullyConnectedLayer or class DenseLayer found in 3 .py files"
    )


# -- the command line ---------------------------------------------------------------------------------


def grade_main(argv: list[str]) -> int:
    return cli.main(["grade", *argv])


def test_grade_command_grades_and_prints_the_table(tmp_path, capsys):
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(SUBMISSIONS / "judy.py", subs / "judy.py")
    out = tmp_path / "out"
    argv = [str(subs), "--layer", "relu=ReLULayer", "--kind", "conv", "--out", str(out), "--max-examples", "5"]
    assert grade_main([*argv, "--jobs", "1", "--timeout", "600", "--memory", "1024", "-q"]) == 0
    printed = capsys.readouterr().out
    assert "judy" in printed and "passed" in printed and "missing" in printed
    assert (out / "summary.csv").exists()


def test_grade_command_refuses_unusable_folders(tmp_path, capsys):
    subs = tmp_path / "subs"
    subs.mkdir()
    assert grade_main([str(subs), "--kind", "relu", "--out", str(subs / "out")]) == 2
    assert "inside the submissions folder" in capsys.readouterr().err
    assert grade_main([str(tmp_path / "nowhere"), "--kind", "relu", "--out", str(tmp_path / "o")]) == 2
    assert grade_main([str(subs), "--kind", "relu", "--out", str(tmp_path / "o")]) == 2
    assert "no submissions" in capsys.readouterr().err
    assert grade_main([str(subs), "--layer", "softmax=S", "--out", str(tmp_path / "o")]) == 2
