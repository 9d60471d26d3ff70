"""checks.oracles.kinks: the tap layout of a pool, argmax sets, the activation-pattern signature, and
whether a point sits exactly on a kink (a ReLU zero or a tied pool window, padding included)."""

from __future__ import annotations

import numpy as np
import pytest

from checks.geometry import PoolGeometry
from checks.oracles.kinks import KinkSite, at_kink, pool_argmax_sets, pool_taps, same_signature, signature


def grid(rows: list[list[float]]) -> np.ndarray:
    """One image, one channel."""
    return np.array(rows, dtype=np.float64)[None, None]


@pytest.mark.parametrize(
    "geometry",
    [
        PoolGeometry(2, 3, 5, 7, (2, 3), (2, 1), (1, 1)),
        PoolGeometry(1, 1, 4, 4, (2, 2), (2, 2)),
        PoolGeometry(1, 2, 6, 5, (3, 1), (1, 3), (1, 0)),
    ],
)
def test_pool_taps_hold_every_window_entry_of_the_minus_infinity_padded_input(geometry):
    x = np.random.default_rng(0).standard_normal(geometry.input_shape)
    (kh, kw), (sh, sw), (ph, pw) = geometry.kernel, geometry.stride, geometry.padding
    padded = np.full((x.shape[0], x.shape[1], x.shape[2] + 2 * ph, x.shape[3] + 2 * pw), -np.inf)
    padded[:, :, ph : ph + x.shape[2], pw : pw + x.shape[3]] = x
    taps = pool_taps(x, geometry)
    n, c, ho, wo = geometry.output_shape
    assert taps.shape == (n, c, ho, wo, kh, kw)
    for i in range(ho):
        for j in range(wo):
            window = padded[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw]
            assert np.array_equal(taps[:, :, i, j], window)


def test_argmax_sets_mark_every_tied_maximum_and_nothing_else():
    geometry = PoolGeometry(1, 1, 2, 4, (2, 2), (2, 2))
    x = grid([[3.0, 1.0, 2.0, 2.0], [3.0, 0.0, 2.0, -1.0]])
    sets = pool_argmax_sets(x, geometry)
    assert sets[0, 0, 0, 0].tolist() == [[True, False], [True, False]]
    assert sets[0, 0, 0, 1].tolist() == [[True, True], [True, False]]


def test_padding_never_becomes_a_maximum_nor_a_tie():
    geometry = PoolGeometry(1, 1, 3, 3, (3, 3), (2, 2), (1, 1))
    x = grid([[-5.0, -4.0, -3.0], [-2.0, -9.0, -8.0], [-7.0, -6.0, -1.0]])  # all negative, all distinct
    sets = pool_argmax_sets(x, geometry)
    assert (sets.sum(axis=(-2, -1)) == 1).all()
    assert not at_kink([KinkSite("pool", x, geometry)])
    # the single maximum of the top-left window is -2 at (1, 0): tap (2, 1) of the padded window
    assert sets[0, 0, 0, 0].tolist() == [[False, False, False], [False, False, False], [False, True, False]]


def test_a_tie_inside_a_padded_window_is_a_kink():
    geometry = PoolGeometry(1, 1, 3, 3, (3, 3), (2, 2), (1, 1))
    x = grid([[-5.0, -2.0, -3.0], [-2.0, -9.0, -8.0], [-7.0, -6.0, -1.0]])  # -2 twice in window (0, 0)
    site = KinkSite("pool", x, geometry)
    assert at_kink([site])
    counts = pool_argmax_sets(x, geometry).sum(axis=(-2, -1))
    assert counts[0, 0].tolist() == [[2, 1], [1, 1]]


def test_a_tie_outside_every_window_is_no_kink():
    geometry = PoolGeometry(1, 1, 3, 3, (2, 2), (2, 2))  # the last row and column are never pooled
    x = grid([[1.0, 2.0, 7.0], [3.0, 4.0, 5.0], [6.0, 7.0, 7.0]])
    assert not at_kink([KinkSite("pool", x, geometry)])


def test_a_tie_between_different_windows_is_no_kink():
    geometry = PoolGeometry(1, 1, 2, 4, (2, 2), (2, 2))
    x = grid([[4.0, 1.0, 4.0, 1.0], [0.0, 2.0, 0.0, 2.0]])
    assert not at_kink([KinkSite("pool", x, geometry)])


def test_an_exact_relu_zero_is_a_kink_and_a_tiny_value_is_not():
    assert at_kink([KinkSite("relu", np.array([[1.0, 0.0, -2.0]]))])
    assert at_kink([KinkSite("relu", np.array([[1.0, -0.0, -2.0]]))])
    assert not at_kink([KinkSite("relu", np.array([[1.0, 1e-300, -2.0]]))])


def test_any_site_at_a_kink_puts_the_point_at_a_kink():
    geometry = PoolGeometry(1, 1, 2, 2, (2, 2), (2, 2))
    smooth_pool = KinkSite("pool", grid([[1.0, 2.0], [3.0, 4.0]]), geometry)
    zero_relu = KinkSite("relu", np.array([0.0, 1.0]))
    assert not at_kink([smooth_pool])
    assert at_kink([smooth_pool, zero_relu])
    assert not at_kink([])


def test_the_signature_is_the_relu_sign_pattern_and_the_pool_argmax_sets():
    geometry = PoolGeometry(1, 1, 2, 2, (2, 2), (2, 2))
    pool_x = grid([[1.0, 2.0], [3.0, 4.0]])
    relu_x = np.array([[-1.5, 0.0, 2.0]])
    sig = signature([KinkSite("relu", relu_x), KinkSite("pool", pool_x, geometry)])
    assert len(sig) == 2
    assert sig[0].tolist() == [[-1.0, 0.0, 1.0]]
    assert np.array_equal(sig[1], pool_argmax_sets(pool_x, geometry))


def test_the_signature_changes_exactly_when_the_pattern_does():
    geometry = PoolGeometry(1, 1, 2, 2, (2, 2), (2, 2))

    def sig(relu_x, pool_x):
        return signature([KinkSite("relu", np.array(relu_x)), KinkSite("pool", grid(pool_x), geometry)])

    base = sig([-1.0, 2.0], [[1.0, 2.0], [3.0, 4.0]])
    assert same_signature(base, sig([-0.5, 9.0], [[0.0, 3.9], [1.0, 4.0]]))  # values moved, pattern kept
    assert not same_signature(base, sig([0.5, 2.0], [[1.0, 2.0], [3.0, 4.0]]))  # a ReLU sign flipped
    assert not same_signature(base, sig([-1.0, 2.0], [[1.0, 2.0], [4.5, 4.0]]))  # the argmax moved
    assert not same_signature(base, sig([-1.0, 2.0], [[1.0, 2.0], [4.0, 4.0]]))  # a tie appeared
    assert not same_signature(base, base[:1])  # a different number of sites


def test_a_tie_within_rounding_is_near_a_kink_and_a_clear_gap_is_not():
    from checks.oracles.kinks import KinkSite, near_kink

    g = PoolGeometry(1, 1, 2, 2, (2, 2), (2, 2))
    tied = np.array([[[[1.0, 1.0 + 1e-15], [0.0, -1.0]]]])
    apart = np.array([[[[1.0, 0.5], [0.0, -1.0]]]])
    assert near_kink([KinkSite("pool", tied, g)], scale=1.0)
    assert not near_kink([KinkSite("pool", apart, g)], scale=1.0)
    assert near_kink([KinkSite("relu", np.array([1e-14, 2.0]))], scale=100.0)
    assert not near_kink([KinkSite("relu", np.array([0.5, -2.0]))], scale=100.0)
