"""checks.tolerances: one row per dtype, the documented relations between rows and columns, and
overrides laid over a row field by field (jax's _merge_tolerance, keyed by field instead of dtype)."""

from __future__ import annotations

import numpy as np
import pytest

from checks.compare import compare
from checks.tolerances import TOLERANCES, DtypeTolerances, Tolerance, tolerances_for

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
KINDS = ("exact", "fd", "forward")


def test_the_table_has_exactly_a_float32_and_a_float64_row():
    assert set(TOLERANCES) == {F32, F64}
    assert all(isinstance(row, DtypeTolerances) for row in TOLERANCES.values())


@pytest.mark.parametrize("kind", KINDS)
def test_float32_is_looser_than_float64_in_every_tolerance(kind):
    loose, tight = getattr(TOLERANCES[F32], kind), getattr(TOLERANCES[F64], kind)
    assert loose.atol > tight.atol
    assert loose.rtol > tight.rtol


def test_float32_takes_a_larger_finite_difference_step():
    assert TOLERANCES[F32].eps > TOLERANCES[F64].eps


@pytest.mark.parametrize("dtype", [F32, F64])
def test_finite_differences_are_judged_more_loosely_than_an_exact_oracle(dtype):
    row = TOLERANCES[dtype]
    assert row.fd.atol > row.exact.atol
    assert row.fd.rtol > row.exact.rtol


@pytest.mark.parametrize("kind", ["exact", "fd"])
def test_in_float64_a_relative_error_of_1e_5_in_a_single_entry_fails(kind):
    tol = getattr(TOLERANCES[F64], kind)
    expected = np.linspace(-1.0, 1.0, 101)
    actual = expected.copy()
    actual[0] *= 1 + 1e-5  # the largest entry, where the bound is loosest
    assert not compare(actual, expected, tol).ok


@pytest.mark.parametrize("dtype", [F32, F64])
def test_an_error_of_float32_size_passes_the_float32_row_only(dtype):
    """A gradient computed in float32 differs from float64 by ~1e-7 relative: float32 rows accept
    it against an exact oracle, the float64 row must not."""
    rng = np.random.default_rng(0)
    expected = rng.standard_normal(200)
    actual = expected * (1 + 3e-6)  # well above float64 rounding, below float32 tolerance
    assert compare(actual, expected, TOLERANCES[dtype].exact).ok == (dtype == F32)


@pytest.mark.parametrize("spelling", [np.float64, "float64", F64, np.zeros(1).dtype])
def test_a_dtype_may_be_given_as_a_type_a_name_or_a_dtype(spelling):
    assert tolerances_for(spelling) == TOLERANCES[F64]


def test_without_overrides_the_row_is_returned_unchanged():
    assert tolerances_for(np.float32) == TOLERANCES[F32]
    assert tolerances_for(np.float32, {}) == TOLERANCES[F32]


def test_an_override_replaces_only_the_named_fields():
    loose = Tolerance(atol=1e-3, rtol=1e-2)
    row = tolerances_for(np.float64, {"fd": loose, "directions": 7})
    default = TOLERANCES[F64]
    assert row.fd == loose
    assert row.directions == 7
    assert (row.eps, row.exact, row.forward, row.max_elementwise) == (
        default.eps,
        default.exact,
        default.forward,
        default.max_elementwise,
    )


def test_an_override_does_not_change_the_table():
    before = dict(TOLERANCES)
    tolerances_for(np.float64, {"eps": 1e-2, "exact": Tolerance(1.0, 1.0)})
    assert TOLERANCES == before
    assert tolerances_for(np.float64).eps == before[F64].eps


@pytest.mark.parametrize("dtype", [np.float16, np.int32, np.complex128])
def test_an_unknown_dtype_raises_naming_it_and_the_supported_ones(dtype):
    with pytest.raises(ValueError, match=str(np.dtype(dtype))) as info:
        tolerances_for(dtype)
    assert "float64" in str(info.value) and "float32" in str(info.value)


def test_an_unknown_override_field_raises_naming_it_and_the_known_ones():
    with pytest.raises(ValueError, match="'fd_atol'") as info:
        tolerances_for(np.float64, {"fd_atol": 1e-3, "eps": 1e-3})
    assert "'exact'" in str(info.value)


@pytest.mark.parametrize("value", [1e-3, {"atol": 1e-3}])
def test_a_tolerance_field_overridden_with_a_number_or_a_partial_dict_is_merged_or_refused(value):
    """Either way is fine (jax merges a scalar or a partial dict; refusing is also clear), but the
    row must never hold something that is not a Tolerance."""
    try:
        row = tolerances_for(np.float64, {"fd": value})
    except ValueError as exc:
        assert "fd" in str(exc)
    else:
        assert isinstance(row.fd, Tolerance)
