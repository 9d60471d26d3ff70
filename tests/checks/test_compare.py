"""checks.compare: the entry-wise bound atol * max|expected| + rtol * |expected|, the worst entry,
non-finite and masked entries, and the directional comparison of one projected value."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from checks.compare import compare, compare_directional
from checks.tolerances import Tolerance

# Binary fractions, so every bound below is computed without rounding and the boundary is exact.
TOL = Tolerance(atol=2.0**-10, rtol=2.0**-6)
EXPECTED = np.array([1.0, -2.0, 4.0])  # scale = max|e| = 4


def bound(e: float, scale: float = 4.0, tol: Tolerance = TOL) -> float:
    return tol.atol * scale + tol.rtol * abs(e)


def with_error(expected: np.ndarray, index: int, delta: float) -> np.ndarray:
    actual = expected.copy()
    actual.flat[index] += delta
    return actual


def just_past(expected: np.ndarray, index: int) -> np.ndarray:
    """``expected`` with one entry moved one ulp beyond the edge of its bound, away from zero."""
    actual = expected.copy()
    e = float(actual.flat[index])
    sign = 1.0 if e >= 0 else -1.0
    actual.flat[index] = np.nextafter(e + sign * bound(e), sign * np.inf)
    return actual


@pytest.mark.parametrize("index", [0, 1, 2])
def test_an_error_exactly_at_the_bound_passes(index):
    e = EXPECTED[index]
    actual = with_error(EXPECTED, index, bound(e) * np.sign(e))
    assert compare(actual, EXPECTED, TOL).ok


@pytest.mark.parametrize("index", [0, 1, 2])
def test_an_error_just_past_the_bound_fails_at_that_entry(index):
    c = compare(just_past(EXPECTED, index), EXPECTED, TOL)
    assert not c.ok
    assert c.mismatched == 1
    assert c.worst_index == (index,)


def test_the_absolute_part_of_the_bound_scales_with_the_largest_expected_entry():
    # An error of atol * 4 on the entry 1.0 is allowed only because some entry has magnitude 4.
    delta = TOL.atol * 4.0 + TOL.rtol * 1.0
    assert compare(np.array([1.0 + delta, 4.0]), np.array([1.0, 4.0]), TOL).ok
    assert not compare(np.array([1.0 + delta, 2.0]), np.array([1.0, 2.0]), TOL).ok


def test_the_verdict_does_not_depend_on_the_array_size():
    large_e = np.tile(EXPECTED, 10_000)  # 30000 entries, same max|e|
    at = 1_234 * 3  # an entry equal to EXPECTED[0]
    assert compare(with_error(EXPECTED, 0, bound(1.0)), EXPECTED, TOL).ok
    assert compare(with_error(large_e, at, bound(1.0)), large_e, TOL).ok
    assert not compare(just_past(EXPECTED, 0), EXPECTED, TOL).ok
    large = compare(just_past(large_e, at), large_e, TOL)
    assert not large.ok
    assert (large.mismatched, large.total, large.worst_index) == (1, 30_000, (at,))


def test_the_verdict_does_not_depend_on_the_overall_magnitude():
    at_bound, past = with_error(EXPECTED, 1, -bound(2.0)), just_past(EXPECTED, 1)
    for factor in (2.0**-20, 1.0, 2.0**30):  # powers of two: scaling adds no rounding
        assert compare(at_bound * factor, EXPECTED * factor, TOL).ok
        assert not compare(past * factor, EXPECTED * factor, TOL).ok


def test_the_worst_entry_is_the_most_clearly_wrong_not_the_largest_error():
    tol = Tolerance(atol=0.0, rtol=0.01)
    expected = np.array([[100.0, 1.0], [3.0, -5.0]])
    actual = np.array([[100.9, 1.5], [3.0, -5.0]])  # errors 0.9 (within 1.0) and 0.5 (bound 0.01)
    c = compare(actual, expected, tol)
    assert c.worst_index == (0, 1)
    assert (c.worst_actual, c.worst_expected) == (1.5, 1.0)
    assert c.max_abs == pytest.approx(0.9)
    assert c.max_rel == pytest.approx(0.5)
    assert "(0, 1)" in c.summary()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_actual_entry_always_fails(bad):
    huge = Tolerance(atol=1e300, rtol=1e300)
    actual = np.array([1.0, bad, 4.0])
    c = compare(actual, np.array([1.0, 2.0, 4.0]), huge)
    assert not c.ok
    assert c.worst_index == (1,)
    assert c.mismatched == 1


@pytest.mark.filterwarnings("ignore:invalid value encountered in subtract")
def test_a_non_finite_actual_fails_even_where_the_expected_value_is_the_same_infinity():
    assert not compare(np.array([np.inf]), np.array([np.inf]), TOL).ok


def test_masked_entries_are_never_judged():
    actual = np.array([np.nan, 1000.0, 2.0, 4.0])
    expected = np.array([1.0, 2.0, 2.0, 4.0])
    mask = np.array([False, False, True, True])
    c = compare(actual, expected, TOL, mask=mask)
    assert c.ok
    assert c.total == 2
    assert c.max_abs == 0.0
    assert c.worst_index in {(2,), (3,)}


def test_the_scale_comes_from_the_judged_entries_only():
    # An untrusted huge expected value must not loosen the bound on the trusted ones.
    expected = np.array([1e6, 1.0])
    actual = np.array([1e6, 1.1])
    assert compare(actual, expected, TOL).ok
    assert not compare(actual, expected, TOL, mask=np.array([False, True])).ok


def test_an_all_masked_comparison_passes_with_nothing_compared():
    c = compare(np.array([1.0, 2.0]), np.array([5.0, 6.0]), TOL, mask=np.zeros(2, dtype=bool))
    assert c.ok and c.total == 0
    assert c.summary() == "nothing compared"


def test_a_zero_dimensional_pair_is_compared():
    assert compare(np.array(2.0), np.array(2.0), TOL).ok
    c = compare(np.array(3.0), np.array(2.0), TOL)
    assert not c.ok and c.worst_index == ()


def test_a_shape_mismatch_raises_naming_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 2\)"):
        compare(np.zeros((2, 3)), np.zeros((3, 2)), TOL)


def test_the_summary_counts_mismatches_and_reports_the_worst_values():
    c = compare(np.array([1.0, 2.5, 4.0]), EXPECTED, TOL)
    text = c.summary()
    assert "1/3 entries differ" in text
    assert "got 2.5" in text and "expected -2" in text


# -- directional -------------------------------------------------------------------------------


def test_a_cancelling_projection_is_judged_against_the_sum_of_absolute_terms():
    terms = np.array([1e6, -1e6 + 1e-3])
    actual = float(terms.sum())  # ~1e-3 after cancellation
    expected = actual + 1e-6  # rounding-sized error relative to the terms, huge relative to the sum
    tol = Tolerance(atol=1e-8, rtol=2e-6)
    assert compare_directional(actual, expected, float(np.abs(terms).sum()), tol).ok
    # Judged by its own size instead, the same error is a failure: the scale is what makes it pass.
    assert not compare_directional(actual, expected, 0.0, tol).ok


def test_a_directional_error_beyond_the_bound_fails():
    tol = Tolerance(atol=2.0**-10, rtol=2.0**-6)
    scale, expected = 8.0, 2.0
    limit = tol.atol * scale + tol.rtol * expected
    assert compare_directional(expected + limit, expected, scale, tol).ok
    c = compare_directional(np.nextafter(expected + limit, np.inf), expected, scale, tol)
    assert not c.ok
    assert c.mismatched == 1 and c.total == 1


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_non_finite_projection_fails(bad):
    assert not compare_directional(bad, 1.0, 1e300, Tolerance(1e300, 1e300)).ok


@pytest.mark.parametrize(
    "actual, expected",
    [([5.0, 0.0], [0.0, 0.0]), ([np.inf], [np.inf])],
    ids=["all-zero-expected", "inf-vs-inf"],
)
def test_a_comparison_emits_no_floating_point_warnings(actual, expected):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not compare(np.array(actual), np.array(expected), TOL).ok


def test_a_directional_comparison_against_zero_reports_a_finite_relative_error_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = compare_directional(5.0, 0.0, 1.0, TOL)
    assert not c.ok
    assert np.isfinite(c.max_rel)
