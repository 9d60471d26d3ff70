"""examples/ci/gradcheck.yml: a GitHub Actions workflow whose pytest steps gate a layer library on cnn-gradcheck.
Its `run:` steps are read from the YAML and the pytest ones run here, with the matrix filled in with bundled
examples (a correct layer and a buggy one) and --layer-max-examples 5: a correct layer exits 0, a buggy one
exits non-zero (the step, and so the job, fails), and the JUnit XML the step names exists and records the
failing property."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from checks.adapt.targets import KINDS, PRESETS

yaml = pytest.importorskip("yaml", reason="PyYAML reads the workflow (pip install '.[test]')")
REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / "examples" / "ci" / "gradcheck.yml"
ENOUGH = 600.0  # s for one pytest run: never reached, only a bound on a stuck test
MATRIX = re.compile(r"\$\{\{\s*matrix\.(\w+)\s*\}\}")
# what the test puts in the matrix: bundled examples, with the verdict each must get
CASES = {
    "correct": (
        {"name": "relu", "layer": f"{REPO}/examples/seed_style/layers.py:ReLULayer", "kind": "relu", "preset": "seed"},
        0,
    ),
    "buggy": (
        {
            "name": "relu-buggy",
            "layer": f"{REPO}/examples/seed_style/relu_output_below_zero.py:ReLUOutputBelowZero",
            "kind": "relu",
            "preset": "seed",
        },
        1,
    ),
}


def _workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def _job() -> dict:
    jobs = _workflow()["jobs"]
    assert len(jobs) == 1
    return next(iter(jobs.values()))


def _pytest_commands() -> list[str]:
    """The pytest command lines of the job's run: steps (a folded step is one line already)."""
    commands = []
    for step in _job()["steps"]:
        for line in str(step.get("run", "")).replace("\\\n", " ").splitlines():
            if line.strip().startswith("pytest "):
                commands.append(line.strip())
    return commands


def test_the_workflow_is_well_formed():
    workflow = _workflow()
    assert {"push", "pull_request"} <= set(workflow[True] if True in workflow else workflow["on"])  # yaml: on -> True
    job = _job()
    assert job["strategy"]["fail-fast"] is False
    for entry in job["strategy"]["matrix"]["include"]:
        assert set(entry) == {"name", "layer", "kind", "preset"}
        assert entry["kind"] in KINDS and entry["preset"] in PRESETS and ".py:" in entry["layer"]
    uses = [step.get("uses", "") for step in job["steps"]]
    assert any(u.startswith("actions/checkout@") for u in uses)
    assert any(u.startswith("actions/upload-artifact@") for u in uses)
    upload = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["if"] == "always()"  # the XML is kept when the check failed too
    commands = _pytest_commands()
    assert len(commands) == 1
    assert all(f"${{{{ matrix.{key} }}}}" in commands[0] for key in ("layer", "kind", "preset"))


def _argv(command: str, matrix: dict[str, str]) -> list[str]:
    filled = MATRIX.sub(lambda m: matrix[m.group(1)], command)
    argv = shlex.split(filled)
    assert argv[0] == "pytest"
    argv = [sys.executable, "-m", "pytest", *argv[1:]]
    if "--layer-max-examples" in argv:
        argv[argv.index("--layer-max-examples") + 1] = "5"
    else:
        argv += ["--layer-max-examples", "5"]
    return argv


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_pytest_steps_gate_on_the_check(case, tmp_path):
    matrix, expected = CASES[case]
    (command,) = _pytest_commands()
    argv = _argv(command, matrix)
    junit = re.search(r"--junitxml=(\S+)", " ".join(argv))
    assert junit, "the step writes JUnit XML"
    # the step runs in the library's checkout: here an empty folder (no tests of its own, no config)
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=ENOUGH)
    assert done.returncode == expected, done.stdout[-3000:] + done.stderr[-3000:]
    xml = tmp_path / junit.group(1)
    assert xml.is_file()
    suite = ET.parse(xml).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert "grad_input" in cases and len(cases) >= 5  # one test per property
    failed = sorted(name for name, c in cases.items() if c.find("failure") is not None)
    assert int(suite.get("failures")) == len(failed)
    if expected:
        assert "grad_input" in failed
        assert "replay: pytest --layer" in cases["grad_input"].find("failure").get("message", "") + (
            cases["grad_input"].find("failure").text or ""
        )
    else:
        assert failed == []
