"""The pytest plugin, through pytester: one item per property, the report text on failure, the
[tool.cnn-gradcheck] table, the replay header, JUnit XML, and nothing at all without a layer."""

from __future__ import annotations

import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from checks.front import pytest_plugin

pytest_plugins = "pytester"

LAYERS = (Path(__file__).resolve().parents[2] / "fixtures" / "relu_layers.py").read_text()
RELU_PROPERTIES = ["forward", "grad_input", "oracle_agreement", "linearity", "determinism", "no_mutation", "quiet"]
FAST = ["--layer-kind", "relu", "--layer-preset", "seed", "--layer-max-examples", "5"]


@pytest.fixture(scope="module")
def preloaded() -> None:
    """Import what a check loads before the first in-process run: pytester restores sys.modules after
    each run, and numpy and torch cannot be imported a second time in one process."""
    import checks.api  # noqa: F401  (numpy, hypothesis and the checker)
    from checks.oracles import torch_oracle

    torch_oracle.available()  # imports torch when it is installed


@pytest.fixture
def project(pytester: pytest.Pytester, preloaded: None) -> pytest.Pytester:
    pytester.makepyfile(layers=textwrap.dedent(LAYERS))
    return pytester


def test_it_collects_one_item_per_property(project):
    result = project.runpytest("--layer", "layers.py:GoodReLU", *FAST, "--collect-only", "-q")
    ids = [line for line in result.outlines if line.startswith("cnn-gradcheck::")]
    assert ids == [f"cnn-gradcheck::GoodReLU::{p}" for p in RELU_PROPERTIES]


def test_a_correct_layer_passes_every_property(project):
    result = project.runpytest("--layer", "layers.py:GoodReLU", *FAST, "-v")
    result.assert_outcomes(passed=len(RELU_PROPERTIES))
    result.stdout.fnmatch_lines(["cnn-gradcheck::GoodReLU::grad_input PASSED*"])


def test_a_buggy_layer_fails_with_the_property_text_and_no_traceback(project):
    result = project.runpytest("--layer", "layers.py:BadReLU", *FAST)
    result.assert_outcomes(failed=1, passed=len(RELU_PROPERTIES) - 1)
    result.stdout.fnmatch_lines(
        [
            "*_ cnn-gradcheck::BadReLU::grad_input _*",
            "layers.py:BadReLU (relu): FAIL",
            "  FAIL*grad_input*examples*",
            "replay: pytest --layer layers.py:BadReLU --layer-kind relu --layer-preset seed --layer-seed 0 "
            "--layer-max-examples 5",
            "FAILED cnn-gradcheck::BadReLU::grad_input*",
        ]
    )
    assert "Traceback" not in result.stdout.str() and "def runtest" not in result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_it_reports_a_header_with_the_flags_that_replay_the_run(project):
    result = project.runpytest("--layer", "layers.py:GoodReLU", *FAST, "--layer-seed", "12", "--collect-only")
    result.stdout.fnmatch_lines(
        [
            "cnn-gradcheck: replay with --layer layers.py:GoodReLU --layer-kind relu --layer-preset seed "
            "--layer-seed 12 --layer-max-examples 5"
        ]
    )


def test_it_does_nothing_without_a_layer(project):
    project.makepyfile(test_plain="def test_one():\n    assert True\n")
    result = project.runpytest("-v")
    result.assert_outcomes(passed=1)
    assert "cnn-gradcheck" not in result.stdout.str().replace("cnn-gradcheck-", "")  # only the plugin list names us


def test_it_runs_alongside_ordinary_tests(project):
    project.makepyfile(test_plain="def test_one():\n    assert True\n")
    result = project.runpytest("--layer", "layers.py:GoodReLU", *FAST)
    result.assert_outcomes(passed=len(RELU_PROPERTIES) + 1)


def test_an_unloadable_layer_is_one_collection_error_with_the_reason(project):
    result = project.runpytest("--layer", "layers.py:Nope", *FAST)
    result.stdout.fnmatch_lines(
        ["cnn-gradcheck: cannot load layers.py:Nope: no name 'Nope' in layers.py (found: GoodReLU, BadReLU)"]
    )
    assert "Traceback" not in result.stdout.str()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.assert_outcomes(errors=1)


def test_k_selects_properties(project):
    result = project.runpytest("--layer", "layers.py:BadReLU", *FAST, "-k", "forward or quiet")
    result.assert_outcomes(passed=2)


def test_settings_come_from_the_pyproject_table(project):
    project.makepyprojecttoml(
        """
        [tool.cnn-gradcheck]
        layer = "layers.py:BadReLU"
        kind = "relu"
        preset = "seed"
        seed = 3
        max_examples = 5
        """
    )
    result = project.runpytest()
    result.assert_outcomes(failed=1, passed=len(RELU_PROPERTIES) - 1)
    result.stdout.fnmatch_lines(["cnn-gradcheck: replay with --layer layers.py:BadReLU * --layer-seed 3 *"])


def test_the_command_line_wins_over_the_table(project):
    project.makepyprojecttoml(
        """
        [tool.cnn-gradcheck]
        layer = "layers.py:BadReLU"
        kind = "relu"
        preset = "seed"
        max_examples = 5
        """
    )
    result = project.runpytest("--layer", "layers.py:GoodReLU", "--layer-seed", "4")
    result.assert_outcomes(passed=len(RELU_PROPERTIES))
    result.stdout.fnmatch_lines(
        ["*--layer layers.py:GoodReLU --layer-kind relu * --layer-seed 4 --layer-max-examples 5"]
    )


def test_a_bad_table_is_a_usage_error(project):
    project.makepyprojecttoml(
        """
        [tool.cnn-gradcheck]
        layr = "layers.py:GoodReLU"
        max_examples = 0
        """
    )
    result = project.runpytest()
    assert "pyproject.toml [tool.cnn-gradcheck]: unknown key(s) layr; known: layer, kind, preset" in result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_a_bad_option_value_is_a_usage_error(project):
    result = project.runpytest("--layer", "layers.py:GoodReLU", "--layer-kind", "convolution")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--layer-kind: invalid choice: 'convolution'*"])


def test_junit_xml_records_each_property(project):
    result = project.runpytest("--layer", "layers.py:BadReLU", *FAST, "--junitxml=out.xml")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    cases = ET.parse(project.path / "out.xml").getroot().iter("testcase")
    by_name = {case.get("name"): case for case in cases}
    assert sorted(by_name) == sorted(RELU_PROPERTIES)
    assert {case.get("classname") for case in by_name.values()} == {"cnn-gradcheck.BadReLU"}
    failure = by_name["grad_input"].find("failure")
    assert failure is not None and "FAIL         grad_input" in (failure.text or "")
    assert by_name["forward"].find("failure") is None


def test_option_names_are_module_constants():
    assert (pytest_plugin.OPTION_LAYER, pytest_plugin.OPTION_SEED) == ("--layer", "--layer-seed")
    assert set(pytest_plugin.KEYS) == {"layer", "kind", "preset", "seed", "max_examples"}


def test_it_works_under_xdist(project):
    pytest.importorskip("xdist")
    result = project.runpytest("--layer", "layers.py:GoodReLU", *FAST, "-n", "2", "-v")
    result.assert_outcomes(passed=len(RELU_PROPERTIES))  # both workers collected the same items
    result.stdout.fnmatch_lines(["*PASSED cnn-gradcheck::GoodReLU::grad_input*"])


# -- several layers, inferred kinds ---------------------------------------------------------------------------


def test_every_layer_option_is_checked_not_only_the_last(project):
    result = project.runpytest("--layer", "layers.py:GoodReLU", "--layer", "layers.py:BadReLU", *FAST, "-v")
    result.assert_outcomes(failed=1, passed=2 * len(RELU_PROPERTIES) - 1)
    result.stdout.fnmatch_lines(
        ["*cnn-gradcheck::GoodReLU::quiet PASSED*", "*cnn-gradcheck::BadReLU::grad_input FAILED*"]
    )


def test_a_list_of_layers_in_the_table_is_checked(project):
    project.makepyprojecttoml(
        """
        [tool.cnn-gradcheck]
        layer = ["layers.py:GoodReLU", "layers.py:BadReLU"]
        kind = "relu"
        preset = "seed"
        max_examples = 5
        """
    )
    result = project.runpytest()
    result.assert_outcomes(failed=1, passed=2 * len(RELU_PROPERTIES) - 1)


def test_a_class_without_kind_or_preset_is_inferred_and_checked(project):
    result = project.runpytest("--layer", "layers.py:GoodReLU", "--layer-max-examples", "5", "-v")
    result.assert_outcomes(passed=len(RELU_PROPERTIES))


def test_a_layer_that_cannot_be_inferred_is_a_collection_error_saying_what_to_declare(project):
    project.makepyfile(
        odd=textwrap.dedent(
            """
            class Odd:
                def __init__(self, a, b):
                    pass

                def forward(self, x):
                    return x[::-1]

                def backward(self, d):
                    return d
            """
        )
    )
    result = project.runpytest("--layer", "odd.py", "--layer-max-examples", "5")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*cnn-gradcheck: Odd: cannot tell its kind*declare it*"])
