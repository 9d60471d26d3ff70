"""checks.sandbox.isolate: one check in a child process; every way the child can go wrong is a clean result naming
the cause (time-out, memory, exit code, signal, import failure), and nothing it does reaches the caller.
The other fixture submissions (a Python loop, a sleep at import, memory in backward) are covered by
test_grade, which grades the whole folder."""

from __future__ import annotations

import hashlib
import json
import os
import textwrap
import time
from pathlib import Path

import pytest

from checks.front import cli
from checks.job import CALL_SECONDS, Job
from checks.sandbox import isolate
from checks.sandbox.isolate import GiB, run_isolated

pytest.importorskip("resource")
SUBMISSIONS = Path(__file__).resolve().parents[2] / "fixtures" / "submissions"
HANG = 20.0  # the only clock of a check that never finishes (no per-call limit): ~8x reaching the hang under load
ENOUGH = 600.0  # for the checks that do finish: never reached, only a bound on a stuck test

RELU = """
import numpy as np

class ReLULayer:
    def forward(self, x):
        self.x = x
        return np.maximum(x, 0)

    def backward(self, grad):
        return grad * (self.x > 0)
"""


def fixture(student: str, file: str, cls: str, kind: str, timeout: float = ENOUGH) -> isolate.IsolatedResult:
    """Check class ``cls`` of the fixture submission ``student`` from a copy of it; a check that is
    meant to hang has no per-call limit, so the wall clock is the only way it ends."""
    job = Job(
        f"{student}/{file}:{cls}",
        kind,
        "seed",
        seed=0,
        max_examples=5,
        memory_bytes=GiB,
        call_seconds=None if timeout == HANG else CALL_SECONDS,
    )
    return run_isolated(job, timeout=timeout, copy=SUBMISSIONS / student)


def own(tmp_path: Path, source: str, cls: str = "ReLULayer", timeout: float = ENOUGH) -> isolate.IsolatedResult:
    """Check a layer written for the test, from its own folder."""
    folder = tmp_path / "student"
    folder.mkdir(exist_ok=True)
    (folder / "layer.py").write_text(textwrap.dedent(source))
    job = Job(f"student/layer.py:{cls}", "relu", "seed", max_examples=5, memory_bytes=GiB)
    return run_isolated(job, timeout=timeout, copy=folder)


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            h.update(path.relative_to(root).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()


# -- checks that finish ------------------------------------------------------------------------------


def test_a_correct_layer_passes_with_its_report():
    result = fixture("alice_correct", "cnn.py", "ReLULayer", "relu")
    assert (result.status, result.reason, result.exit_code) == ("passed", "", 0)
    assert result.report["passed"] is True and result.report["target"] == "alice_correct/cnn.py:ReLULayer"
    assert {p["status"] for p in result.report["properties"]} == {"pass"}
    assert "PASS" in result.rendered and result.stage == "done"


def test_a_buggy_layer_fails_naming_the_property_and_the_mistake():
    result = fixture("bob_buggy", "dense.py", "FullyConnectedLayer", "dense")
    assert (result.status, result.exit_code) == ("failed", 1)
    assert result.reason == "failed: grad_bias [bias_grad_wrong_axes]"
    failed = [p["property"] for p in result.report["properties"] if p["status"] == "fail"]
    assert failed == ["grad_bias"]


# -- hangs -------------------------------------------------------------------------------------------


def test_a_hang_inside_a_c_call_is_killed_and_located():
    result = fixture("carol_hangs", "layers.py", "ReLULayer", "relu", timeout=HANG)  # the einsum never ends
    assert result.status == "timeout" and result.exit_code == 1 and result.report is None
    assert result.reason == "timed out after 20 s (in property grad_input)"
    assert result.where == "carol_hangs/layers.py line 41 in backward"  # the einsum line: the stack is in C


# -- memory, exits, signals ----------------------------------------------------------------------------


def test_running_out_of_memory_at_import_is_named_too(tmp_path):
    result = own(tmp_path, "hoard = []\nwhile True:\n    hoard.append(bytearray(64 * 1024 * 1024))\n")
    assert result.status == "memory"
    assert result.reason.startswith("killed: memory limit 1 GiB exceeded (while importing: student/layer.py: line 3")


def test_os_exit_in_backward_is_a_crash_with_the_exit_code():
    result = fixture("frank_exits", "layers.py", "ReLULayer", "relu")
    assert result.status == "crashed" and result.exit_code == 1
    assert result.reason == "interpreter exited with code 7 before finishing (in property grad_input)"


def test_os_exit_at_import(tmp_path):
    result = own(tmp_path, "import os\nos._exit(3)\n")
    assert result.reason == "interpreter exited with code 3 before finishing (while importing the submission)"


def test_sys_exit_at_import_is_an_import_failure(tmp_path):
    result = own(tmp_path, "import sys\nsys.exit(3)\n")
    assert (result.status, result.exit_code) == ("error", 2)
    assert result.reason.startswith("import failed: student/layer.py") and "sys.exit(3)" in result.reason


def test_a_segfault_is_a_crash_located_in_the_submission():
    result = fixture("grace_segfault", "layers.py", "ConvLayer", "conv")
    assert result.status == "crashed"
    assert result.reason == (
        "crashed: segmentation fault (SIGSEGV) (in property forward, at grace_segfault/layers.py line 15 in forward)"
    )
    assert "Segmentation fault" in result.stdout_tail and "/work/" not in result.stdout_tail.split("\n")[0]


# -- loading -------------------------------------------------------------------------------------------


def test_a_syntax_error_is_an_import_failure():
    result = fixture("heidi_syntax_error", "layers.py", "ReLULayer", "relu")
    assert (result.status, result.exit_code) == ("error", 2)
    assert result.reason == "import failed: heidi_syntax_error/layers.py: line 7: SyntaxError: expected ':'"


def test_a_missing_dependency_is_an_import_failure():
    result = fixture("ivan_missing_dependency", "layers.py", "ConvLayer", "conv")
    assert result.status == "error"
    assert result.reason == (
        "import failed: ivan_missing_dependency/layers.py: line 4: ModuleNotFoundError: No module named 'ivan_helpers'"
    )


def test_a_missing_class_cannot_be_loaded():
    result = fixture("alice_correct", "cnn.py", "NoSuchLayer", "relu")
    assert result.status == "error" and result.reason.startswith("could not load: no name 'NoSuchLayer'")


# -- what the child can reach --------------------------------------------------------------------------


def test_writes_land_in_the_childs_copy_not_in_siblings_or_outputs(tmp_path):
    subs, out = tmp_path / "subs", tmp_path / "out"
    out.mkdir()
    victim = subs / "alice_correct"
    victim.mkdir(parents=True)
    (victim / "cnn.py").write_text((SUBMISSIONS / "alice_correct" / "cnn.py").read_text())
    mallory = subs / "mallory_vandal"
    mallory.mkdir()
    (mallory / "layers.py").write_text((SUBMISSIONS / "mallory_vandal" / "layers.py").read_text())
    before = tree_digest(subs)
    job = Job("mallory_vandal/layers.py:ReLULayer", "relu", "seed", max_examples=5)
    result = run_isolated(job, timeout=ENOUGH, copy=mallory)
    assert result.status == "passed"
    assert tree_digest(subs) == before
    assert list(out.iterdir()) == []


def test_the_child_runs_in_a_fresh_directory_and_its_files_are_removed(tmp_path):
    record = tmp_path / "cwd.txt"
    result = own(tmp_path, f"import os\nopen({str(record)!r}, 'w').write(os.getcwd())\nopen('junk.txt', 'w')\n{RELU}")
    assert result.status == "passed"
    cwd = Path(record.read_text())
    assert cwd != Path.cwd() and cwd.name == "work"
    assert not cwd.exists()  # the job's folders are gone, the junk with them
    assert not (Path.cwd() / "junk.txt").exists()


def test_processes_the_submission_started_are_killed(tmp_path):
    record = tmp_path / "pid.txt"
    source = (
        f"import subprocess\np = subprocess.Popen(['sleep', '300'])\nopen({str(record)!r}, 'w').write(str(p.pid))\n"
    )
    result = own(tmp_path, source + RELU)
    assert result.status == "passed"
    pid = int(record.read_text())
    deadline = time.monotonic() + 60  # a bound for a broken kill, not a measurement: the loop ends at the kill
    while time.monotonic() < deadline and _running(pid):
        time.sleep(0.05)
    assert not _running(pid)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in state  # a zombie waiting for its reaper has ended


def test_output_is_captured_and_capped(tmp_path):
    result = own(tmp_path, f"print('x' * 1_000_000)\nimport os\nos.write(1, b'from C-level fd 1\\n')\n{RELU}")
    assert result.status == "passed"
    assert len(result.stdout_tail) <= isolate.TAIL_CHARS
    assert result.stdout_tail.endswith("from C-level fd 1")


def test_a_result_with_a_wrong_token_or_shape_is_rejected(tmp_path):
    path = tmp_path / "result.json"
    good = {"token": "t", "status": "passed", "reason": "", "report": None}
    path.write_text(json.dumps(good))
    assert isolate._read_result(path, "t") == good
    assert isolate._read_result(path, "other") is None
    for bad in ({**good, "status": "great"}, {**good, "report": {"properties": "all fine"}}, [good]):
        path.write_text(json.dumps(bad))
        assert isolate._read_result(path, "t") is None
    path.write_text("{not json")
    assert isolate._read_result(path, "t") is None


def test_a_job_with_an_unknown_oracle_is_refused():
    with pytest.raises(ValueError, match="oracles="):
        Job("x.py:X", "relu", "seed", oracles=("tea-leaves",))


def test_size_text():
    assert [isolate.size_text(n) for n in (2 * GiB, 3 * GiB // 2, 512 * 1024**2)] == ["2 GiB", "1.5 GiB", "512 MiB"]


# -- the command-line entry ------------------------------------------------------------------------------


def check_isolated(target: str, kind: str, json_to: str | None = None) -> int:
    args = ["check", target, "--kind", kind, "--preset", "seed", "--max-examples", "5", "--isolate", "-q"]
    args += ["--wall-timeout", str(ENOUGH), "--memory", "1024"]
    return cli.main([*args, *(["--json", json_to] if json_to else [])])


def test_check_isolate_exit_codes(tmp_path, capsys):
    report = tmp_path / "report.json"
    good = str(SUBMISSIONS / "alice_correct" / "cnn.py") + ":ReLULayer"
    assert check_isolated(good, "relu", str(report)) == 0
    assert json.loads(report.read_text())["passed"] is True
    bad = str(SUBMISSIONS / "bob_buggy" / "dense.py") + ":FullyConnectedLayer"
    assert check_isolated(bad, "dense") == 1
    broken = str(SUBMISSIONS / "heidi_syntax_error" / "layers.py") + ":ReLULayer"
    assert check_isolated(broken, "relu", str(report)) == 2
    assert "SyntaxError" in json.loads(report.read_text())["error"]
    err = capsys.readouterr().err
    assert "FAILED (failed): failed: grad_bias [bias_grad_wrong_axes]" in err
    assert "cannot load" in err and "SyntaxError" in err


def test_relative_targets_are_resolved_against_the_callers_directory(monkeypatch):
    monkeypatch.chdir(SUBMISSIONS)
    result = run_isolated(Job("judy.py:ReLULayer", "relu", "seed", max_examples=5), timeout=ENOUGH)
    assert result.status == "passed" and result.report["target"] == "judy.py:ReLULayer"
    assert os.getcwd() == str(SUBMISSIONS)
