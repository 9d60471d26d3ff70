"""The self-test: each manifest example gets its expected verdict, or the run fails and says which did not."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from checks.front import cli, selftest
from checks.report import SCHEMA_VERSION

LAYERS = (Path(__file__).resolve().parents[2] / "fixtures" / "relu_layers.py").read_text()
SPECS = """
from checks import LayerSpec

from layers_for_selftest_specs import GoodReLU

good = LayerSpec("relu", lambda g: GoodReLU(), input_layout="ND")
"""
GOOD = {
    "target": "examples/layers.py:GoodReLU",
    "convention": "seed",
    "kind": "relu",
    "expected": "pass",
    "fails_on": [],
}
BAD = {
    "target": "examples/layers.py:BadReLU",
    "convention": "seed",
    "kind": "relu",
    "expected": "fail",
    "bug": "mask on output < 0",
    "fails_on": ["grad_input"],
}
FAST = ["--max-examples", "5", "-j", "1", "-q"]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with examples/layers.py and examples/specs.py; manifests go in examples/."""
    examples = tmp_path / "examples"
    examples.mkdir()
    (examples / "layers.py").write_text(textwrap.dedent(LAYERS))
    (examples / "layers_for_selftest_specs.py").write_text(textwrap.dedent(LAYERS))
    (examples / "specs.py").write_text(textwrap.dedent(SPECS))
    return tmp_path


def manifest(repo: Path, *entries: dict) -> str:
    path = repo / "examples" / "expected.json"
    path.write_text(json.dumps(list(entries), indent=2))
    return str(path)


def test_a_correct_and_a_buggy_example_that_meet_expectations_pass(repo, capsys):
    assert cli.main(["selftest", manifest(repo, GOOD, BAD), *FAST]) == 0
    out = capsys.readouterr().out
    assert "selftest PASS: 2 OK, 0 mismatch, 0 skipped of 2 examples" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:4]}
    assert rows["examples/layers.py:GoodReLU"][1:] == ["pass", "pass", "-", "OK"]
    assert rows["examples/layers.py:BadReLU"][1:] == ["fail", "fail", "grad_input", "OK"]


def test_a_buggy_example_marked_pass_is_a_mismatch(repo, capsys):
    assert cli.main(["selftest", manifest(repo, GOOD, {**BAD, "expected": "pass", "fails_on": []}), *FAST]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH" in out and "selftest FAIL: 1 OK, 1 mismatch" in out


def test_a_correct_example_marked_fail_is_a_mismatch(repo, capsys):
    assert cli.main(["selftest", manifest(repo, {**GOOD, "expected": "fail"}), *FAST]) == 1
    row = capsys.readouterr().out.splitlines()[2].split()
    assert row == ["examples/layers.py:GoodReLU", "fail", "pass", "-", "MISMATCH"]


def test_failing_on_other_properties_than_listed_is_a_mismatch(repo, capsys):
    assert cli.main(["selftest", manifest(repo, {**BAD, "fails_on": ["grad_input", "determinism"]}), *FAST]) == 1
    assert "missing: determinism" in capsys.readouterr().out


def test_an_entry_with_a_spec_uses_it(repo, capsys):
    entry = {**GOOD, "convention": "nchw_class", "spec": "examples/specs.py:good"}
    assert cli.main(["selftest", manifest(repo, entry), *FAST]) == 0


def test_an_entry_without_a_spec_is_skipped_and_fails_the_run_unless_allowed(repo, capsys):
    path = manifest(repo, GOOD, {**GOOD, "convention": "channels_last"})
    assert cli.main(["selftest", path, *FAST]) == 1
    out = capsys.readouterr().out
    assert "SKIPPED" in out and "needs a 'spec' field" in out
    assert cli.main(["selftest", path, *FAST, "--allow-missing"]) == 0


def test_an_unloadable_example_is_a_mismatch_with_its_reason(repo, capsys):
    assert cli.main(["selftest", manifest(repo, {**GOOD, "target": "examples/layers.py:Gone"}), *FAST]) == 1
    assert "no name 'Gone' in examples/layers.py" in capsys.readouterr().out


def test_a_crash_of_the_harness_is_reported_on_its_example_and_the_run_goes_on(repo, capsys, monkeypatch):
    import checks.api

    real = checks.api._run

    def crashes_on_bad(declaration, factory, job, *args, **kwargs):
        if "BadReLU" in job.shown:
            raise NameError("name 'oops' is not defined")
        return real(declaration, factory, job, *args, **kwargs)

    monkeypatch.setattr(checks.api, "_run", crashes_on_bad)
    assert cli.main(["selftest", manifest(repo, BAD, GOOD), *FAST]) == 1
    out = capsys.readouterr().out
    assert "internal error in cnn-gradcheck: NameError: name 'oops' is not defined" in out
    assert "1 OK, 1 mismatch" in out


def test_k_selects_examples_and_a_selection_of_none_exits_2(repo, capsys):
    path = manifest(repo, GOOD, {**BAD, "expected": "pass"})
    assert cli.main(["selftest", path, *FAST, "-k", "good"]) == 0
    assert cli.main(["selftest", path, *FAST, "-k", "nothing-like-this"]) == 2
    assert "no example" in capsys.readouterr().err


def test_json_has_one_result_per_example(repo, tmp_path):
    out_file = tmp_path / "results.json"
    assert cli.main(["selftest", manifest(repo, GOOD, BAD), *FAST, "--json", str(out_file)]) == 0
    data = json.loads(out_file.read_text())
    assert data["settings"]["max_examples"] == 5
    bad = data["examples"][1]
    assert (bad["target"], bad["status"], bad["got"], bad["caught"]) == (BAD["target"], "OK", "fail", ["grad_input"])
    assert bad["report"]["schema_version"] == SCHEMA_VERSION and bad["report"]["passed"] is False


def test_parallel_jobs_give_the_same_verdicts_in_manifest_order(repo, capsys):
    assert cli.main(["selftest", manifest(repo, BAD, GOOD), "--max-examples", "5", "-j", "2"]) == 0
    out, err = capsys.readouterr()
    assert out.index("BadReLU") < out.index("GoodReLU")
    assert err.count(" ... OK (") == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "invalid JSON"),
        ('{"target": "x"}', "expected a JSON list of examples"),
        ('[{"target": "x.py:A", "kind": "relu"}]', "entry 0 has no expected"),
        ('[{"target": "x.py:A", "kind": "relu", "expected": "maybe"}]', "expected must be pass or fail"),
    ],
)
def test_a_bad_manifest_exits_2_with_one_line(tmp_path, capsys, content, message):
    path = tmp_path / "expected.json"
    path.write_text(content)
    assert cli.main(["selftest", str(path), *FAST]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_missing_manifest_exits_2(tmp_path, capsys):
    assert cli.main(["selftest", str(tmp_path / "none.json")]) == 2
    assert "no such manifest" in capsys.readouterr().err


def test_paths_are_relative_to_the_folder_that_holds_examples(repo):
    loaded = selftest.load_manifest(Path(manifest(repo, GOOD)))
    assert loaded.root == repo.resolve()


def test_readme_categories_map_to_properties():
    example = selftest.Example(0, "x.py:A", "relu", "fail", fails_on=("mutation", "nondeterminism", "grad_input"))
    assert example.expected_failures == ["no_mutation", "determinism", "grad_input"]


class _StubReport:
    def __init__(self, failed: list[str]) -> None:
        self.failed_properties, self.passed = failed, not failed


def test_strict_also_refuses_failures_outside_fails_on():
    example = selftest.Example(0, "x.py:A", "relu", "fail", fails_on=("grad_input",))
    report = _StubReport(["grad_input", "linearity"])
    assert selftest.judge(example, report).status == selftest.OK
    strict = selftest.judge(example, report, strict=True)
    assert (strict.status, strict.reason) == (selftest.MISMATCH, "also failed on linearity")
    assert selftest.judge(example, _StubReport(["grad_input"]), strict=True).status == selftest.OK


def test_strict_is_a_command_line_switch(repo, capsys):
    assert cli.main(["selftest", manifest(repo, GOOD, BAD), *FAST, "--strict"]) == 0
