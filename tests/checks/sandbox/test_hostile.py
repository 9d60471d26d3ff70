"""Hostile submissions (tests/fixtures/hostile): each holds a plainly wrong layer that also attacks the
grader (patching the checker or numpy, fake modules, a forged reply, exit status 0, escaping the process
group, reading or overwriting other submissions, killing other processes, lying objects, a bounded fork
bomb, floods, stray threads, memory), plus entries no submission may use to stop the run (a FIFO, a symlink
loop, a source that is too deep to parse, top-level symlinks). Through grading, through ``cnn-gradcheck
check`` and through the pytest plugin: a wrong layer never passes, an honest row stays passed, the run
completes, no process an attack started is alive afterwards, and nothing outside the output folder changed.

These run only where the worker gets a sandbox of its own (namespaces): in the process-only fallback an
attack that kills every process it can see would take the test run down with it, which is exactly the
difference between the two modes (README: what the sandbox guarantees).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from checks.front import cli
from checks.front.grade import grade
from checks.sandbox import jail, worker

pytest_plugins = "pytester"
HOSTILE = Path(__file__).resolve().parents[2] / "fixtures" / "hostile"
HONEST = Path(__file__).resolve().parents[2] / "fixtures" / "submissions" / "alice_correct" / "cnn.py"
ATTACKS = sorted(p.name for p in HOSTILE.iterdir() if p.is_dir())
CALL = 5.0  # s per call: ~1000x what a call takes; only a hang reaches it
ENOUGH = 600.0  # s per check: never reached, only a bound on a stuck test


@pytest.fixture(autouse=True)
def namespaces_only():
    caps = worker.sandbox()
    if not caps.namespaces:
        pytest.skip(f"needs the namespaces sandbox: {caps.reason}")


@pytest.fixture
def uids(tmp_path, monkeypatch) -> Path:
    """The file the sandbox logs this test's worker uids to (checks.sandbox.jail.LOG_VAR): other tests run
    workers at the same time, so only this test's uids are looked for afterwards."""
    log = tmp_path / "uids.log"
    monkeypatch.setenv(jail.LOG_VAR, str(log))
    return log


def digest(root: Path) -> str:
    """Every entry under ``root`` (symlinks as themselves, never followed), with file contents."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        h.update(path.relative_to(root).as_posix().encode())
        if path.is_symlink():
            h.update(b"-> " + os.readlink(path).encode())
        elif path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()


def survivors(log: Path) -> list[str]:
    """Live processes of the uids this test's workers were given (an escapee keeps its worker's uid)."""
    mine = {int(line) for line in log.read_text().split()} if log.exists() else set()
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        uid = int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])
        zombie = "State:\tZ" in status
        if not zombie and uid in mine:
            found.append(f"{pid} uid {uid}: {cmdline[:80]!r}")
    return found


def hostile_folder(tmp_path: Path) -> Path:
    """Every attack as a submission, an honest one, and entries that must not stop the run."""
    subs = tmp_path / "subs"
    shutil.copytree(HOSTILE, subs, ignore=shutil.ignore_patterns("__pycache__", "README.md"))
    (subs / "honest").mkdir()
    shutil.copy(HONEST, subs / "honest" / "layers.py")
    (subs / "fifo").mkdir()
    os.mkfifo(subs / "fifo" / "layers.py")
    (subs / "loop").mkdir()
    os.symlink(subs / "loop", subs / "loop" / "again")
    os.symlink("/etc/passwd", subs / "loop" / "layers.py")
    (subs / "too_deep").mkdir()
    (subs / "too_deep" / "layers.py").write_text("class ReLULayer:\n    x = " + "(" * 100_000 + ")" * 100_000 + "\n")
    os.symlink(subs / "honest", subs / "linked")
    os.mkfifo(subs / "pipe")
    return subs


def test_grading_a_folder_of_attacks(tmp_path, uids):
    subs = hostile_folder(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "grades.csv").write_text("honest,passed\n")
    before = (digest(subs), digest(elsewhere), sorted(p.name for p in tmp_path.iterdir()))
    out = tmp_path / "out"
    summary = grade(subs, ["relu"], out_dir=out, jobs=2, seed=0, max_examples=5, timeout=ENOUGH, call_seconds=CALL)
    rows = {r.submission: r for r in summary.rows}
    assert rows["honest"].status == "passed", rows["honest"]
    fooled = [f"{name}: {rows[name].status} {rows[name].reason}" for name in ATTACKS if rows[name].status == "passed"]
    assert not fooled, "\n".join(fooled)
    assert rows["read_others"].status != "error" or "saw:" not in rows["read_others"].reason
    assert rows["kill_others"].status == "failed" and rows["forge_reply"].status == "crashed"
    assert rows["fifo"].status == "missing" and rows["loop"].status == "missing"
    assert rows["too_deep"].status != "passed"
    assert rows["linked"].status == rows["pipe"].status == "refused"
    assert uids.exists() and survivors(uids) == []
    assert (digest(subs), digest(elsewhere)) == before[:2]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*before[2], "out", "uids.log"])
    assert sorted(p.name for p in out.iterdir()) == ["reports", "summary.csv", "summary.json"]
    assert not any(p.is_symlink() for p in out.rglob("*"))


@pytest.mark.parametrize("attack", ATTACKS)
def test_check_gives_every_attack_a_failing_exit_status(attack, capsys, uids):
    before = digest(HOSTILE)
    target = f"{HOSTILE / attack / 'layers.py'}:ReLULayer"
    status = cli.main(["check", target, "--kind", "relu", "--preset", "seed", "--max-examples", "5", "--timeout", "5"])
    out = capsys.readouterr().out
    assert status in (1, 2), out
    assert f"{target} (relu): PASS" not in out and "unsandboxed" not in out
    assert uids.exists() and survivors(uids) == []
    assert digest(HOSTILE) == before


@pytest.mark.parametrize("attack", ATTACKS)
def test_the_pytest_plugin_fails_every_attack(attack, pytester, uids):
    target = f"{HOSTILE / attack / 'layers.py'}:ReLULayer"
    options = ["--layer-kind", "relu", "--layer-preset", "seed", "--layer-max-examples", "5", "-p", "no:cacheprovider"]
    result = pytester.runpytest_subprocess("--layer", target, *options)
    outcomes = result.parseoutcomes()
    assert result.ret != 0 and (outcomes.get("failed", 0) or outcomes.get("error", 0) or outcomes.get("errors", 0))
    assert "unsandboxed" not in result.stdout.str()
    assert uids.exists() and survivors(uids) == []
