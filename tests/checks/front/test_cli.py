"""The cnn-gradcheck command: exit codes 0/1/2/3, progress on stderr, the report on stdout, --json, a fast --help."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from checks.adapt import targets
from checks.front import cli

LAYERS = (Path(__file__).resolve().parents[2] / "fixtures" / "relu_layers.py").read_text()
FAST = ["--kind", "relu", "--preset", "seed", "--max-examples", "5"]
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def layers(tmp_path: Path) -> Path:
    path = tmp_path / "layers.py"
    path.write_text(textwrap.dedent(LAYERS))
    return path


def test_a_correct_layer_exits_0_with_progress_on_stderr_and_the_report_on_stdout(layers, capsys):
    assert cli.main(["check", f"{layers}:GoodReLU", *FAST]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"{layers}:GoodReLU (relu): PASS")
    assert "grad_input         ... PASS (5 examples)" in err
    assert "Traceback" not in out + err


def test_a_buggy_layer_exits_1_and_says_how_to_replay(layers, capsys):
    assert cli.main(["check", f"{layers}:BadReLU", *FAST, "--seed", "7"]) == 1
    out, err = capsys.readouterr()
    assert "FAIL         grad_input" in out
    assert "grad_input         ... FAIL" in err
    replay = f"replay: cnn-gradcheck check {layers}:BadReLU --kind relu --preset seed --seed 7 --max-examples 5"
    assert replay in err


def test_an_unloadable_target_exits_2_with_one_line(layers, capsys):
    assert cli.main(["check", f"{layers}:Nope", *FAST]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"cnn-gradcheck: cannot load {layers}:Nope: no name 'Nope' in {layers} (found: GoodReLU, BadReLU)\n"


def test_a_syntax_error_in_the_users_file_exits_2_without_a_traceback(tmp_path, capsys):
    broken = tmp_path / "broken.py"
    broken.write_text("def f(:\n")
    assert cli.main(["check", f"{broken}:F", *FAST]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "line 1: SyntaxError" in err and "Traceback" not in err


def test_bad_arguments_exit_2(layers, capsys):
    assert cli.main(["check", f"{layers}:GoodReLU", "--kind", "convolution"]) == 2
    assert cli.main(["check", f"{layers}:GoodReLU", "--max-examples", "0"]) == 2
    assert cli.main(["check", f"{layers}:GoodReLU", "--oracles", "torch,magic"]) == 2
    assert cli.main([]) == 2
    assert "invalid choice: 'convolution'" in capsys.readouterr().err


def test_json_holds_the_report_schema(layers, tmp_path, capsys):
    out_file = tmp_path / "report.json"
    assert cli.main(["check", f"{layers}:BadReLU", *FAST, "--json", str(out_file), "--quiet"]) == 1
    assert capsys.readouterr().err.startswith("cnn-gradcheck: FAILED (")  # --quiet: no progress lines
    data = json.loads(out_file.read_text())
    assert {"schema_version", "target", "kind", "passed", "error", "settings", "properties"} <= set(data)
    assert (data["target"], data["kind"], data["passed"]) == (f"{layers}:BadReLU", "relu", False)
    assert data["settings"]["max_examples"] == 5
    props = {p["property"]: p for p in data["properties"]}
    assert props["grad_input"]["status"] == "fail"
    assert {"property", "status", "examples", "oracles", "findings", "replay"} <= set(props["grad_input"])
    assert props["grad_input"]["findings"] and props["forward"]["status"] == "pass"


def test_plot_writes_a_heatmap_per_failing_gradient(layers, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out_dir = tmp_path / "plots"
    assert cli.main(["check", f"{layers}:BadReLU", *FAST, "--plot", str(out_dir), "-q"]) == 1
    pngs = list(out_dir.glob("*.png"))
    assert [p.name.endswith("grad_input.png") for p in pngs] == [True]
    assert pngs[0].stat().st_size > 1000


def test_json_to_stdout_replaces_the_text_report(layers, capsys):
    assert cli.main(["check", f"{layers}:GoodReLU", *FAST, "--json", "-", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["passed"] is True


def test_json_of_an_unloadable_target_carries_the_error(layers, tmp_path):
    out_file = tmp_path / "report.json"
    assert cli.main(["check", f"{layers}:Nope", *FAST, "--json", str(out_file)]) == 2
    data = json.loads(out_file.read_text())
    assert data["passed"] is False and "no name 'Nope'" in data["error"]


def test_the_profile_sets_the_examples_unless_max_examples_is_given(layers, capsys):
    base = ["check", f"{layers}:GoodReLU", "--kind", "relu", "--preset", "seed", "--json", "-", "-q"]
    assert cli.main([*base, "--profile", "dev"]) == 0
    assert json.loads(capsys.readouterr().out)["settings"]["max_examples"] == cli.PROFILES["dev"].examples == 10
    assert cli.main([*base, "--profile", "thorough", "--max-examples", "3"]) == 0
    assert json.loads(capsys.readouterr().out)["settings"]["max_examples"] == 3


def test_an_internal_error_says_so_before_its_traceback(layers, capsys, monkeypatch):
    import checks.api

    def broken(*args, **kwargs):
        raise RuntimeError("bug in the harness")

    monkeypatch.setattr(checks.api, "_run", broken)
    assert cli.main(["check", f"{layers}:GoodReLU", *FAST, "-q"]) == cli.Exit.INTERNAL == 3
    err = capsys.readouterr().err
    assert "internal error in cnn-gradcheck" in err.splitlines()[0]
    assert err.index("internal error") < err.index("Traceback") and "bug in the harness" in err


def test_an_interrupt_exits_130_quietly(layers, capsys, monkeypatch):
    import checks.api

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(checks.api, "_run", interrupted)
    assert cli.main(["check", f"{layers}:GoodReLU", *FAST]) == 130
    assert "Traceback" not in capsys.readouterr().err


def test_the_choices_are_the_loaders():
    assert cli.KINDS == targets.KINDS and cli.PRESETS == targets.PRESETS


def test_importing_the_command_line_and_the_plugin_loads_no_numpy_hypothesis_or_torch():
    code = (
        "import sys, checks.front.cli, checks.front.pytest_plugin, checks.adapt.targets; "
        "print(sorted(m for m in ('numpy', 'hypothesis', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True).stdout
    assert out.strip() == "[]"


def test_help_answers_without_importing_numpy_hypothesis_or_torch():
    """--help stays fast by what it imports (timed by `make bench`, never here: a loaded machine would
    make a timed test flaky)."""
    code = (
        "import sys; from checks.front.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('numpy', 'hypothesis', 'torch') if m in sys.modules), file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0 and "selftest" in done.stdout
    assert done.stderr.strip().splitlines()[-1] == "[]"


def test_python_dash_m_checks_returns_the_exit_status(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "checks", "check", f"{tmp_path}/missing.py:X"], capture_output=True, text=True, cwd=REPO
    )
    assert done.returncode == 2
    assert done.stderr == f"cnn-gradcheck: cannot load {tmp_path}/missing.py:X: {tmp_path}/missing.py: no such file\n"


# -- where the output goes ------------------------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Report:
    def __init__(self, status: str, examples: int) -> None:
        self.status, self.examples = status, examples


def test_on_a_terminal_a_shrinking_failure_shows_in_place_and_statuses_are_in_colour(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    stream = Terminal()
    progress = cli.Progress(stream)
    progress("grad_input", None)
    progress.shrinking("grad_input", 3, 40)
    progress("grad_input", Report("fail", 31))
    text = stream.getvalue()
    assert "\r\x1b[K  grad_input         ... shrinking: case 3, 40 entries" in text
    assert text.endswith("\r\x1b[K  grad_input         ... \x1b[31mFAIL\x1b[0m (31 examples)\n")


def test_without_a_terminal_or_with_no_color_there_is_no_live_line_and_no_colour(monkeypatch):
    piped = io.StringIO()
    progress = cli.Progress(piped)
    progress("grad_input", None)
    progress.shrinking("grad_input", 3, 40)
    progress("grad_input", Report("not_judged", 5))
    assert piped.getvalue() == "  grad_input         ... NOT JUDGED (5 examples)\n"
    monkeypatch.setenv("NO_COLOR", "1")
    assert not cli.wants_colour(Terminal())
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("TERM", "xterm")
    assert cli.wants_colour(Terminal()) and not cli.wants_colour(io.StringIO())


class ClosedPipe(io.StringIO):
    """stdout whose reader has gone (`| head` after its lines): every write is a broken pipe."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_piping_the_report_into_head_ends_cleanly_with_the_checks_own_status(layers, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert cli.main(["check", f"{layers}:BadReLU", *FAST, "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err


def test_a_broken_pipe_anywhere_else_exits_141_quietly(layers, capsys, monkeypatch):
    def closed(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(cli, "run_selftest", closed)  # the parser is built in main(): it picks this up
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert cli.main(["selftest"]) == 141
    assert "Traceback" not in capsys.readouterr().err


def test_the_shrinking_time_is_a_flag_carried_into_the_replay(layers):
    args = cli.build_parser().parse_args(["check", f"{layers}:BadReLU", *FAST, "--shrink-time", "none"])
    job = cli.job_from_args(args)
    assert job.shrink_seconds is None and "--shrink-time none" in cli.replay_command(job)
    default = cli.job_from_args(cli.build_parser().parse_args(["check", f"{layers}:BadReLU", *FAST]))
    assert default.shrink_seconds == 20.0 and "--shrink-time" not in cli.replay_command(default)
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["check", "x.py:L", "--shrink-time", "-1"])
