"""benchmarks.user_bench: the pure parts of the student-wait block (its commands, ratios, verdicts, table);
nothing here is timed."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from benchmarks import user_bench as ub
from checks.adapt import targets
from checks.front import cli
from checks.job import Job

REPO = Path(__file__).resolve().parents[2]
PYTHON = "/venv/bin/python"
PREFIX = ["/venv/bin/cnn-gradcheck"]
CORRECT = ub.Case("seed ReLU", "examples/seed_style/layers.py:ReLULayer", "relu", "seed")
BUGGY = ub.Case("seed ReLU", "examples/seed_style/relu_output_below_zero.py:ReLUOutputBelowZero", "relu", "seed", "x")


def _row(case: ub.Case, seconds: float, exit_status: int, baseline: float = 2.0) -> ub.Row:
    return ub.Row(case, ub.shown(ub.command(case, PREFIX), PREFIX), (seconds,), (exit_status,), baseline, "why")


# -- ratios and verdicts ---------------------------------------------------------------------------


def test_the_ratio_is_the_commands_time_in_units_of_the_baseline():
    assert ub.ratio(6.0, 2.0) == 3.0
    assert ub.ratio(1.0, 4.0) == 0.25
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="positive"):
            ub.ratio(1.0, bad)


def test_the_verdict_passes_up_to_the_target_and_misses_above_it():
    assert ub.verdict(3.0, 3.0) == "PASS"
    assert ub.verdict(0.5, 3.0) == "PASS"
    assert ub.verdict(3.01, 3.0) == "MISS"
    assert ub.verdict(0.5, 3.0, correct=False) == "WRONG"


def test_a_correct_layer_is_held_to_3x_and_exit_0_a_buggy_one_to_10x_and_exit_1():
    assert (ub.target_for(CORRECT), ub.expected_exit(CORRECT), CORRECT.expected) == (3.0, 0, "pass")
    assert (ub.target_for(BUGGY), ub.expected_exit(BUGGY), BUGGY.expected) == (10.0, 1, "fail")


def test_the_cpu_ratio_is_the_median_cpu_time_over_the_baselines_and_is_absent_when_not_measured():
    row = ub.Row(CORRECT, "c", (9.0,), (0,), 2.0, cpu=(3.0, 1.0, 2.0), baseline_cpu=0.5)
    assert row.cpu_ratio == 4.0
    assert row.met == "MISS"  # judged by wall time alone: the CPU ratio is shown, never a target
    assert _row(CORRECT, 1.0, 0).cpu_ratio is None


def test_a_row_is_judged_by_its_median_over_the_baseline_against_its_own_target():
    assert _row(CORRECT, 6.0, 0).met == "PASS"  # 3.0x
    assert _row(CORRECT, 6.2, 0).met == "MISS"  # 3.1x
    assert _row(BUGGY, 6.2, 1).met == "PASS"  # 3.1x against 10x
    assert _row(BUGGY, 20.2, 1).met == "MISS"  # 10.1x
    row = ub.Row(CORRECT, "c", (9.0, 2.0, 4.0), (0, 0, 0), 2.0)
    assert (row.median, row.ratio, row.met) == (4.0, 2.0, "PASS")


def test_a_command_that_ends_with_the_wrong_exit_status_is_wrong_however_fast():
    # a checker that stops catching the bug, rejects a correct layer or cannot load it posts no figure
    assert _row(BUGGY, 0.1, 0).met == "WRONG"
    assert _row(CORRECT, 0.1, 1).met == "WRONG"
    assert _row(CORRECT, 0.1, 2).met == "WRONG"
    assert ub.Row(CORRECT, "c", (1.0, 1.0), (0, 4), 2.0).met == "WRONG"  # one run of several was enough


def test_the_worst_case_is_the_largest_ratio_and_is_held_to_30x():
    rows = [_row(CORRECT, 2.0, 0), _row(BUGGY, 19.0, 1), _row(CORRECT, 4.0, 0)]
    assert ub.worst(rows) is rows[1]
    assert "9.50x (target <=30x): PASS" in ub.summary(rows)[0]
    slow = [_row(CORRECT, 2.0, 0), _row(BUGGY, 61.0, 1)]
    assert "30.50x (target <=30x): MISS" in ub.summary(slow)[0]
    assert ub.worst([]) is None


def test_a_wrong_commands_time_is_never_the_worst_case():
    # a checker that crashes at once must not post a fast worst case, nor a slow one
    rows = [_row(CORRECT, 3.0, 0), _row(BUGGY, 0.5, 3), _row(CORRECT, 99.0, 2)]
    assert ub.worst(rows) is rows[0]
    assert ub.worst(rows[1:]) is None
    assert ub.summary(rows[1:])[0] == "worst case: none (no command got its expected verdict)"


def test_the_block_exits_1_on_a_wrong_verdict_always_and_on_a_missed_target_only_when_strict():
    met = [_row(CORRECT, 2.0, 0), _row(BUGGY, 8.0, 1)]
    missed = [_row(CORRECT, 8.0, 0), _row(BUGGY, 8.0, 1)]
    wrong = [_row(CORRECT, 2.0, 0), _row(BUGGY, 2.0, 0)]
    assert [ub.exit_status(met, strict) for strict in (False, True)] == [0, 0]
    assert [ub.exit_status(missed, strict) for strict in (False, True)] == [0, 1]
    assert [ub.exit_status(wrong, strict) for strict in (False, True)] == [1, 1]


# -- the table ---------------------------------------------------------------------------------------


def test_the_table_has_a_numbered_aligned_line_per_row_with_its_figures_and_verdict():
    rows = [
        _row(CORRECT, 5.0, 0),
        _row(BUGGY, 25.0, 1),
        ub.Row(CORRECT, "c", (1.0,), (1,), 2.0, cpu=(0.75,), baseline_cpu=0.5),
    ]
    lines = ub.table(rows)
    header = ["#", "layer", "check", "exit", "seconds", "x", "import", "torch", "cpu", "x", "target", "met"]
    assert lines[0].split() == header
    assert set(lines[1]) <= {"-", " "}
    assert len(lines) == 2 + len(rows)
    assert len({len(line) for line in lines}) == 1  # the last column is right-aligned: every line ends with it
    first, second, third = lines[2:]
    assert first.split()[0] == "1" and "correct" in first and "2.50x" in first and "<=3x" in first
    assert first.endswith("PASS")
    assert second.split()[0] == "2" and "bug: x" in second and "12.50x" in second and "<=10x" in second
    assert second.endswith("MISS")
    assert first.split()[-3] == second.split()[-3] == "-"  # no CPU time measured
    assert "1 (want 0)" in third and "1.50x" in third and third.endswith("WRONG")


def test_the_listing_numbers_the_commands_as_the_table_does_and_says_why_a_wrong_one_failed():
    rows = [_row(CORRECT, 5.0, 0), ub.Row(CORRECT, "c", (1.0,), (3,), 2.0, "ValueError: boom\nreplay hint")]
    listing = ub.listing(rows)
    assert listing[0].split()[:2] == ["1.", "cnn-gradcheck"] and listing[0].endswith(rows[0].shown)
    assert listing[1].split() == ["2.", "c"]
    assert [line.strip() for line in listing[2:]] == ["exit 3:", "ValueError: boom", "replay hint"]


def test_the_summary_counts_each_verdict():
    rows = [_row(CORRECT, 5.0, 0), _row(BUGGY, 25.0, 1), _row(CORRECT, 1.0, 1), _row(CORRECT, 7.0, 0)]
    assert ub.summary(rows)[1].startswith("4 commands: 1 PASS, 2 MISS, 1 WRONG")
    assert ub.summary([]) == ["no commands were run"]


# -- the commands ------------------------------------------------------------------------------------


def test_the_baseline_is_a_fresh_interpreter_importing_torch():
    assert ub.baseline_command(PYTHON) == [PYTHON, "-c", "import torch"]


def test_the_checker_is_the_console_script_beside_the_interpreter_else_python_m_checks(tmp_path):
    python = tmp_path / "python"
    assert ub.cli_prefix(str(python)) == [str(python), "-m", "checks"]
    (tmp_path / "cnn-gradcheck").write_text("")
    assert ub.cli_prefix(str(python)) == [str(tmp_path / "cnn-gradcheck")]


@pytest.mark.parametrize("case", ub.CASES, ids=lambda c: c.label)
def test_each_command_is_check_target_kind_and_preset_and_otherwise_the_default_settings(case):
    cmd = ub.command(case, PREFIX)
    args = cmd[len(PREFIX) :]
    assert cmd[: len(PREFIX)] == PREFIX and args[:2] == ["check", case.target]
    assert ("--preset" in args) == (case.preset is not None)
    job = cli.job_from_args(cli.build_parser().parse_args(args))
    assert job == Job(case.target, kind=case.kind, preset=case.preset)
    assert ub.shown(cmd, PREFIX) == " ".join(["cnn-gradcheck", *args])


def test_the_command_of_a_class_without_a_preset_is_one_the_checker_refuses():
    # the reason the preset is written: a seed-style class given without it is an adaptation error (exit 2)
    case = ub.Case("seed ReLU", "examples/seed_style/layers.py:ReLULayer", "relu", None)
    with pytest.raises(targets.TargetError, match="--preset"):
        targets.load(case.target, kind=case.kind, preset=case.preset, root=REPO)


@pytest.mark.parametrize("case", ub.CASES, ids=lambda c: c.label)
def test_each_target_loads_as_its_kind_from_the_repository_root(case):
    spec = targets.load(case.target, kind=case.kind, preset=case.preset, root=REPO)
    assert spec.kind == case.kind


def test_the_order_spreads_the_baseline_runs_first_middle_and_last_around_every_job_once():
    order = ub.schedule(12, 3)
    assert order == [None, *range(6), None, *range(6, 12), None]
    assert ub.schedule(5, 3) == [None, 0, 1, None, 2, 3, 4, None]  # 5 // 2 == 2
    assert ub.schedule(4, 1) == [None, 0, 1, 2, 3]
    assert ub.schedule(0, 3) == [None, None, None]
    assert [step for step in ub.schedule(7, 4) if step is not None] == list(range(7))
    assert ub.schedule(7, 4).count(None) == 4
    with pytest.raises(ValueError):
        ub.schedule(3, 0)


# -- the set -----------------------------------------------------------------------------------------

LAYERS = {"seed conv 3x3", "seed max-pool 2", "seed ReLU", "seed dense", "CS231n conv pair", "NCHW vectorised conv"}


def test_the_set_holds_each_layer_once_correct_and_once_with_one_bug():
    assert {c.layer for c in ub.CASES} == LAYERS
    for layer in LAYERS:
        cases = [c for c in ub.CASES if c.layer == layer]
        assert sorted(c.expected for c in cases) == ["fail", "pass"], layer


def _entry(case: ub.Case, entries: list[dict]) -> dict:
    """The expected.json entry a command checks: by its spec (a LayerSpec target), else by its target (a
    function-pair file is listed with a trailing colon), with the same kind."""
    found = [
        e
        for e in entries
        if e["kind"] == case.kind
        and (e.get("spec") == case.target or e["target"] in (case.target, case.target + ":"))
        and not e.get("options")
    ]
    assert len(found) == 1, (case.label, found)
    return found[0]


@pytest.mark.parametrize("case", ub.CASES, ids=lambda c: c.label)
def test_each_command_is_a_bundled_example_with_the_verdict_it_must_get(case):
    entry = _entry(case, json.loads((REPO / "examples" / "expected.json").read_text()))
    assert entry["expected"] == case.expected
    assert bool(entry["bug"]) == bool(case.bug)
    convention = {"seed": "seed", "function_pair": "function_pair", None: "nchw_class"}[case.preset]
    assert entry["convention"] == convention
    assert (REPO / case.target.split(":")[0]).is_file()


def test_the_bench_refuses_options_it_cannot_use_before_running_anything(capsys):
    for argv in (["--only", "no such layer"], ["--repeat", "0"], ["--timeout", "0"]):
        with pytest.raises(SystemExit) as stop:
            ub.main(argv)
        assert stop.value.code == 2
    assert "matches no command" in capsys.readouterr().err


def test_a_run_keeps_the_exit_status_and_the_last_lines_of_stderr_else_stdout():
    lines = "; ".join(f"print('e{i}', file=sys.stderr)" for i in range(6))
    done = ub.run([sys.executable, "-c", f"import sys; print('out'); {lines}; sys.exit(3)"], timeout=60)
    assert done.status == 3
    assert done.tail.splitlines() == [f"e{i}" for i in range(6 - ub.TAIL_LINES, 6)]
    quiet = ub.run([sys.executable, "-c", "print('only'); print('stdout')"], timeout=60)
    assert (quiet.status, quiet.tail) == (0, "only\nstdout")


def _dead(pid: int) -> bool:
    """No such process, or a zombie (killed, not yet reaped by its new parent)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_a_command_past_its_timeout_is_killed_with_its_group_and_reported_as_no_answer(tmp_path):
    # the grandchild (as the sandboxed worker is) shares the command's process group: it must go too
    pid_file = tmp_path / "pid"
    code = (
        "import pathlib, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        f"pathlib.Path({str(pid_file)!r}).write_text(str(child.pid))\n"
        "time.sleep(120)\n"
    )
    done = ub.run([sys.executable, "-c", code], timeout=10)
    assert (done.status, done.tail) == (-1, "no answer within 10 s")
    grandchild = int(pid_file.read_text())
    # SIGKILL is delivered asynchronously: give the kernel a moment, then the grandchild must be gone
    for _ in range(100):
        if _dead(grandchild):
            break
        time.sleep(0.1)
    assert _dead(grandchild)


# -- the block, with fake runs -------------------------------------------------------------------------


def _fake_runs(monkeypatch, seconds: dict[str, float], status: dict[str, int] | None = None) -> list[list[str]]:
    """Replace ``run`` by one that answers at once: the baseline in 2 s, a command whose target contains a key
    of ``seconds`` in that many (1 s otherwise), with the exit status it must get unless ``status`` says other."""
    calls: list[list[str]] = []

    def fake(cmd, timeout):
        calls.append(list(cmd))
        if cmd[1:] == ["-c", ub.BASELINE_CODE]:
            return ub.Run(2.0, (status or {}).get("baseline", 0), "", 1.0)
        case = next(c for c in ub.CASES if c.target in cmd)
        took = next((s for key, s in seconds.items() if key in case.target), 1.0)
        exit_status = next((e for key, e in (status or {}).items() if key in case.target), ub.expected_exit(case))
        return ub.Run(took, exit_status, "tail", took / 2)

    monkeypatch.setattr(ub, "run", fake)
    return calls


def test_the_block_times_the_baseline_three_times_around_every_command_and_prints_the_table(monkeypatch, capsys):
    calls = _fake_runs(monkeypatch, {"layers.py:ReLULayer": 5.0})
    assert ub.main(["--only", "relu", "--warmup", "0"]) == 0
    baseline = [i for i, cmd in enumerate(calls) if cmd[1:] == ["-c", ub.BASELINE_CODE]]
    assert len(calls) == 5 and baseline == [0, 2, 4]
    out = capsys.readouterr().out
    assert "median 2.00 s" in out
    rows = [line for line in out.splitlines() if line.startswith(("1 ", "2 "))]
    assert "2.50x" in rows[0] and rows[0].endswith("PASS")  # 5 s / 2 s against 3x
    assert "0.50x" in rows[1] and rows[1].endswith("PASS")
    assert "worst case: seed ReLU: correct 2.50x" in out


def test_the_block_exits_1_on_a_missed_target_only_when_strict(monkeypatch, capsys):
    _fake_runs(monkeypatch, {"layers.py:ReLULayer": 7.0})  # 3.5x: above the 3x of a correct layer
    assert ub.main(["--only", "relu", "--warmup", "0"]) == 0
    assert ub.main(["--only", "relu", "--warmup", "0", "--strict"]) == 1
    assert "MISS" in capsys.readouterr().out


def test_the_block_exits_1_when_the_worst_case_alone_misses_30x_and_strict(monkeypatch, capsys):
    # a buggy layer at 31x misses both its own 10x and the worst case's 30x; at 9x it meets both
    _fake_runs(monkeypatch, {"relu_output_below_zero": 62.0})
    assert ub.main(["--only", "relu", "--warmup", "0", "--strict"]) == 1
    assert "(target <=30x): MISS" in capsys.readouterr().out
    _fake_runs(monkeypatch, {"relu_output_below_zero": 18.0})
    assert ub.main(["--only", "relu", "--warmup", "0", "--strict"]) == 0


def test_the_block_exits_1_on_a_wrong_verdict_and_says_why(monkeypatch, capsys):
    _fake_runs(monkeypatch, {}, {"relu_output_below_zero": 0})  # the checker stopped catching the bug
    assert ub.main(["--only", "relu", "--warmup", "0"]) == 1
    out = capsys.readouterr().out
    assert "0 (want 1)" in out and "WRONG" in out and "exit 0:" in out


def test_the_block_stops_when_the_baseline_fails(monkeypatch, capsys):
    _fake_runs(monkeypatch, {}, {"baseline": 1})
    assert ub.main(["--only", "relu", "--warmup", "0"]) == int(ub.Exit.UNUSABLE)
    assert "the baseline failed (exit 1)" in capsys.readouterr().err


def test_the_warm_up_runs_the_baseline_and_the_first_command_untimed(monkeypatch):
    calls = _fake_runs(monkeypatch, {})
    ub.main(["--only", "relu", "--warmup", "2"])
    first = ub.command(next(c for c in ub.CASES if "relu" in c.label.lower()), ub.cli_prefix(sys.executable))
    assert calls[:4] == [ub.baseline_command(sys.executable), first] * 2
    assert len(calls) == 4 + 5


def test_repeats_come_in_rounds_of_every_command_and_the_row_takes_their_median(monkeypatch, capsys):
    calls = _fake_runs(monkeypatch, {})
    ub.main(["--only", "relu", "--warmup", "0", "--repeat", "3"])
    checks = [cmd for cmd in calls if cmd[1:] != ["-c", ub.BASELINE_CODE]]
    assert len(checks) == 6 and checks[0] != checks[1] and checks[0] == checks[2]
