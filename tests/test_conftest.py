"""The hypothesis profiles of the root conftest.py: they exist with their documented settings, the active one
is chosen by ``--hypothesis-profile`` or ``HYPOTHESIS_PROFILE``, and a @given suite runs alike in one
process and under pytest-xdist (``-n 2``, as ``make test`` runs it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings

pytest_plugins = "pytester"

ROOT_CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"


def test_the_ci_profile_is_derandomised_without_deadline_and_prints_the_blob() -> None:
    ci = settings.get_profile("ci")
    assert ci.derandomize is True
    assert ci.deadline is None
    assert ci.print_blob is True
    assert ci.database is None  # derandomised runs need no example database


def test_the_profiles_order_their_example_counts_dev_ci_thorough() -> None:
    dev, ci, thorough = (settings.get_profile(name).max_examples for name in ("dev", "ci", "thorough"))
    assert dev <= ci < thorough
    assert ci >= 50  # "enough examples to matter"
    assert thorough >= 10 * ci  # "many examples, for a nightly job or a false-positive hunt"


def test_the_thorough_profile_is_random_without_deadline_and_prints_the_blob() -> None:
    thorough = settings.get_profile("thorough")
    assert thorough.derandomize is False and thorough.deadline is None and thorough.print_blob is True


# One tiny @given test that reports the settings it ran under; run through pytester with the project's
# root conftest.py (the profiles) copied in.
PROBE = """
from hypothesis import given, settings, strategies as st

SEEN = []

@given(st.integers())
def test_probe(x):
    SEEN.append(x)
    s = settings.default
    print(f"PROFILE max_examples={s.max_examples} derandomize={s.derandomize}")
"""


@pytest.fixture
def probe(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(ROOT_CONFTEST.read_text())
    pytester.makepyfile(test_probe=PROBE)
    return pytester


def _profile_line(result: pytest.RunResult) -> str:
    lines = [line for line in result.outlines if "PROFILE " in line]
    assert lines, result.stdout.str()
    return lines[0][lines[0].index("PROFILE ") :]


@pytest.mark.parametrize("how", ["option", "environment"])
def test_the_profile_is_chosen_by_option_or_environment(probe: pytest.Pytester, how: str, monkeypatch) -> None:
    if how == "option":
        result = probe.runpytest_subprocess("--hypothesis-profile=ci", "-s", "-p", "no:cacheprovider")
    else:
        monkeypatch.setenv("HYPOTHESIS_PROFILE", "ci")
        result = probe.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    ci = settings.get_profile("ci")
    assert _profile_line(result) == f"PROFILE max_examples={ci.max_examples} derandomize=True"


def test_a_given_suite_runs_under_xdist_as_in_one_process(probe: pytest.Pytester) -> None:
    """Cheap (~5 s): two worker processes, each loading the profiles, each passing the probe."""
    probe.makepyfile(test_probe_twin=PROBE.replace("test_probe", "test_probe_twin"))
    single = probe.runpytest_subprocess("--hypothesis-profile=ci", "-p", "no:cacheprovider")
    single.assert_outcomes(passed=2)
    parallel = probe.runpytest_subprocess("--hypothesis-profile=ci", "-p", "xdist", "-n", "2", "-p", "no:cacheprovider")
    parallel.assert_outcomes(passed=2)
    assert "2 workers" in parallel.stdout.str()
