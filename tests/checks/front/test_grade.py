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
from checks.sandbox.isolate import GiB

pytest.importorskip("resource")
SUBMISSIONS = Path(__file__).resolve().parents[2] / "fixtures" / "submissions"
LAYERS = ["conv", "maxpool", "relu", "dense"]
ENOUGH = 600.0  # s per check that finishes: never reached, only a bound on a stuck test
HANG_WALL = 20.0  # s per check that never finishes: the only clock (the per-call limit is off), about 8x what
# reaching the hang takes on a loaded 2-core machine (2.5 s measured under 19 CPU burners), 60x unloaded
HANGS = {("carol_hangs", "conv"), ("carol_hangs", "relu"), ("dave_sleeps_at_import", "relu")}
HANGING = ("carol_hangs", "dave_sleeps_at_import")

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
    ("carol_hangs", "conv"): ("timeout", "timed out after 20 s (in property grad_input)"),
    ("carol_hangs", "maxpool"): ("missing", "no class MaxPoolLayer or class MaxPool2 found in 1 .py file"),
    ("carol_hangs", "relu"): ("timeout", "timed out after 20 s (in property grad_input)"),
    ("carol_hangs", "dense"): ("passed", ""),
    ("dave_sleeps_at_import", "conv"): ("missing", "no class ConvLayer or class Conv3x3 found in 1 .py file"),
    ("dave_sleeps_at_import", "maxpool"): ("missing", "no class MaxPoolLayer or class MaxPool2 found in 1 .py file"),
    ("dave_sleeps_at_import", "relu"): ("timeout", "timed out after 20 s (while importing the submission)"),
    ("dave_sleeps_at_import", "dense"): (
        "missing",
        "no class FullyConnectedLayer or class DenseLayer found in 1 .py file",
    ),
    ("erin_memory_hog", "relu"): ("passed", ""),
    ("erin_memory_hog", "dense"): ("memory", "killed: memory limit 1 GiB exceeded (in property grad_input, ..."),
    ("frank_exits", "relu"): ("crashed", "interpreter exited with code 7 before finishing (in property grad_input)"),
    ("grace_segfault", "conv"): (
        "crashed",
        "crashed: segmentation fault (SIGSEGV) (in property forward, at grace_segfault/layers.py line 15 in forward)",
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
    """The whole fixture folder graded with 2 jobs, from a copy, with an output folder that already exists
    where mallory guesses it (next to the submissions, named out/). The layers that hang are graded in a run
    of their own whose only clock is the wall (no per-call limit), so that no other row can run out of time
    on a loaded machine and a hang has one way to end; the other layers of their submissions in a third.
    One test, so that pytest-xdist never runs this grading on two workers; each aspect is checked by a
    function of its own below."""
    subs, out = tmp_path / "subs", tmp_path / "out"
    shutil.copytree(SUBMISSIONS, subs, ignore=shutil.ignore_patterns("__pycache__", *HANGING))
    out.mkdir()
    rest, hung = tmp_path / "rest", tmp_path / "hung"
    for name in HANGING:
        shutil.copytree(SUBMISSIONS / name, hung / name)
        shutil.copytree(SUBMISSIONS / name, rest / name)
    folders = (subs, rest, hung)
    before = [digest(folder) for folder in folders]
    finishing = grade(subs, LAYERS, out_dir=out, jobs=2, max_examples=5, timeout=ENOUGH, memory_bytes=GiB)
    others = [k for k in LAYERS if all((s, k) not in HANGS for s in HANGING)]
    rest_run = grade(rest, others, out_dir=tmp_path / "out_rest", jobs=2, max_examples=5, timeout=ENOUGH)
    hang_layers = sorted({k for _, k in HANGS}, key=LAYERS.index)
    hang_run = grade(
        hung,
        hang_layers,
        out_dir=tmp_path / "out_hangs",
        jobs=2,
        timeout=HANG_WALL,
        memory_bytes=GiB,
        call_seconds=None,
    )
    summary = finishing
    summary.rows = [*finishing.rows, *rest_run.rows, *hang_run.rows]
    summary.rows.sort(key=lambda r: (r.submission, LAYERS.index(r.layer)))
    summary.results.update({**rest_run.results, **hang_run.results})
    graded = (summary, folders, out, before)
    every_submission_and_layer_gets_its_expected_verdict_and_cause(graded)
    a_hang_or_a_crash_is_located_in_the_submission(graded)
    failing_rows_carry_the_property_verdicts_and_the_diagnosis(graded)
    the_summary_files_and_reports_are_written(graded)
    no_submission_could_touch_the_others_or_the_output(graded)


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
    assert summary.row("carol_hangs", "conv").properties == {}  # no report from a killed check


def the_summary_files_and_reports_are_written(graded: tuple) -> None:
    summary, _, out, _ = graded
    assert sorted(p.name for p in out.iterdir()) == ["reports", "summary.csv", "summary.json"]
    data = json.loads((out / "summary.json").read_text())
    assert data["schema"] == grading.SUMMARY_SCHEMA and data["run"]["jobs"] == 2
    graded_here = [s for s in STUDENTS if s not in HANGING]
    assert len(data["rows"]) == len(graded_here) * len(LAYERS)
    rows = list(csv.DictReader(io.StringIO((out / "summary.csv").read_text())))
    assert [(r["submission"], r["layer"], r["status"]) for r in rows] == [
        (r.submission, r.layer, r.status) for r in summary.rows if r.submission not in HANGING
    ]
    assert rows[0]["grad_input"] == "pass" and "diagnosis" in rows[0] and "seconds" in rows[0]
    reports = sorted(p.name for p in (out / "reports").iterdir())
    assert reports == sorted([f"{s}.json" for s in graded_here] + [f"{s}.txt" for s in graded_here])
    bob = json.loads((out / "reports" / "bob_buggy.json").read_text())
    assert bob["layers"]["dense"]["report"]["properties"]
    text = (out.parent / "out_hangs" / "reports" / "carol_hangs.txt").read_text()
    assert "== conv: TIMEOUT" in text and "where: carol_hangs/layers.py line" in text


def no_submission_could_touch_the_others_or_the_output(graded: tuple) -> None:
    summary, folders, out, before = graded
    assert [digest(folder) for folder in folders] == before  # mallory's overwrites went to her own copy
    assert not (out / "hacked.txt").exists()
    assert summary.row("alice_correct", "relu").status == "passed"
    data = json.loads((out / "summary.json").read_text())
    assert {r["submission"] for r in data["rows"]} == set(STUDENTS) - set(HANGING)


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
        grade(subs, ["relu", "dense"], out_dir=out, jobs=jobs, seed=3, max_examples=5, timeout=ENOUGH, memory_bytes=GiB)
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
    assert locate(s, parse_layer("conv")).target == "sam/deep/layers.py:ConvLayer"
    assert locate(s, parse_layer("relu")).target == "sam/alias.py:ReLULayer"
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
