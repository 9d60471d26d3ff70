"""Subgradient membership (checks.kinds.relu / checks.kinds.maxpool ``membership``): in the Clarke
subdifferential at kinks. ReLU: G where X > 0, 0 where X < 0, between 0 and G where X == 0. Max-pool:
each window's G split into non-negative shares on its maxima, windows adding up. Valid policies pass, the
classic wrong ones fail with their reason."""

from __future__ import annotations

import numpy as np
import pytest

import cnn
from checks.geometry import PoolGeometry
from checks.kinds import maxpool, relu
from checks.oracles.kinks import pool_argmax_sets
from checks.tolerances import TOLERANCES

TOL = TOLERANCES[np.dtype(np.float64)].exact


def relu_membership(x, upstream, grad, tol):
    return relu.membership({"input": x}, None, upstream, grad, None, tol)


def pool_membership(x, geometry, upstream, grad, backward, tol):
    return maxpool.membership({"input": x}, geometry, upstream, grad, backward, tol)


# -- ReLU --------------------------------------------------------------------------------------

X = np.array([[-2.0, 0.0, 0.0, 0.0, 1.5, 0.0]])
G = np.array([[0.7, 1.2, -0.8, 2.0, -1.1, 0.5]])


@pytest.mark.parametrize("m", [0.0, 0.25, 1.0])
def test_relu_any_share_between_zero_and_one_at_an_exact_zero_is_valid(m):
    grad = G * np.where(X > 0, 1.0, np.where(X < 0, 0.0, m))
    assert relu_membership(X, G, grad, TOL).ok


def test_relu_different_shares_at_different_zeros_are_valid():
    grad = G * np.array([[0.0, 0.1, 0.9, 0.5, 1.0, 1.0]])
    assert relu_membership(X, G, grad, TOL).ok


@pytest.mark.parametrize("m", [-0.1, 1.2])
def test_relu_a_share_outside_zero_to_one_at_a_zero_is_rejected(m):
    grad = G * np.where(X > 0, 1.0, 0.0)
    grad[0, 2] = G[0, 2] * m  # G < 0 here, so the valid interval is [G, 0]
    result = relu_membership(X, G, grad, TOL)
    assert not result.ok
    assert result.comparison.worst_index == (0, 2)
    assert "X == 0" in result.reason and "(0, 2)" in result.reason


def test_relu_passing_the_gradient_where_the_input_is_negative_is_rejected():
    grad = G.copy()  # never masks
    grad[:, X[0] == 0] = 0.0
    result = relu_membership(X, G, grad, TOL)
    assert not result.ok
    assert "X < 0" in result.reason and "(0, 0)" in result.reason


def test_relu_masking_a_positive_input_is_rejected():
    grad = np.zeros_like(G)
    result = relu_membership(X, G, grad, TOL)
    assert not result.ok
    assert "X > 0" in result.reason


# -- max-pool ----------------------------------------------------------------------------------


def route(x: np.ndarray, geometry: PoolGeometry, g: np.ndarray, policy: str, *, overwrite: str = "") -> np.ndarray:
    """A max-pool backward written window by window: each window's G goes to its maxima per ``policy``.

    first / last: the first / last maximum in row-major order; split: evenly; shares: fixed uneven
    non-negative shares; all: the full G to every maximum (wrong); signed: shares 1.5 and -0.5 over
    two maxima (wrong); leak: the first maximum gets G and a non-maximum 0.5 G more (wrong);
    elsewhere: G to the window's smallest entry (wrong). ``overwrite``: "always" assigns instead
    of adding (`=` for `+=`), "nonzero" assigns only shares that are not 0.
    """
    argmax = pool_argmax_sets(x, geometry)
    (kh, kw), (sh, sw), (ph, pw) = geometry.kernel, geometry.stride, geometry.padding
    n, c, ho, wo = geometry.output_shape
    padded = np.full((n, c, x.shape[2] + 2 * ph, x.shape[3] + 2 * pw), -np.inf)
    padded[:, :, ph : ph + x.shape[2], pw : pw + x.shape[3]] = x
    dxp = np.zeros_like(padded)
    for b, ch, i, j in np.ndindex(n, c, ho, wo):
        maxima = [(u, v) for u in range(kh) for v in range(kw) if argmax[b, ch, i, j, u, v]]
        gij = g[b, ch, i, j]
        if policy == "first":
            shares = {maxima[0]: gij}
        elif policy == "last":
            shares = {maxima[-1]: gij}
        elif policy == "split":
            shares = {m: gij / len(maxima) for m in maxima}
        elif policy == "shares":
            weights = np.arange(1, len(maxima) + 1, dtype=float) ** 2
            shares = dict(zip(maxima, gij * weights / weights.sum(), strict=True))
        elif policy == "all":
            shares = {m: gij for m in maxima}
        elif policy == "signed":
            shares = {maxima[0]: 1.5 * gij, maxima[-1]: -0.5 * gij} if len(maxima) > 1 else {maxima[0]: gij}
        elif policy == "leak":
            shares = {maxima[0]: gij, **{p: 0.5 * gij for p in lowest(padded, geometry, (b, ch, i, j), maxima)}}
        elif policy == "elsewhere":
            shares = {p: gij for p in lowest(padded, geometry, (b, ch, i, j), maxima)} or {maxima[0]: gij}
        else:
            raise ValueError(policy)
        for (u, v), share in shares.items():
            if overwrite == "nonzero" and share == 0:
                continue
            if overwrite:
                dxp[b, ch, i * sh + u, j * sw + v] = share
            else:
                dxp[b, ch, i * sh + u, j * sw + v] += share
    return dxp[:, :, ph : ph + x.shape[2], pw : pw + x.shape[3]]


def lowest(padded: np.ndarray, geometry: PoolGeometry, index: tuple, maxima: list) -> list[tuple[int, int]]:
    """The window's smallest real entry as a one-element list, or [] when every entry is a maximum."""
    b, ch, i, j = index
    (kh, kw), (sh, sw) = geometry.kernel, geometry.stride
    window = padded[b, ch, i * sh : i * sh + kh, j * sw : j * sw + kw]
    u, v = np.unravel_index(int(np.argmin(np.where(np.isfinite(window), window, np.inf))), window.shape)
    return [] if (u, v) in maxima else [(int(u), int(v))]


def membership(x, geometry, g, policy, **kw):
    def backward(probe_g: np.ndarray) -> np.ndarray:
        return route(x, geometry, probe_g, policy, **kw)

    return pool_membership(x, geometry, g, backward(g), backward, TOL)


def signed_upstream(shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0.2, 2.0, shape) * rng.choice([-1.0, 1.0], shape)


# Overlapping windows (stride 1 < kernel 2) with ties and positions that are the maximum of several
# windows at once; the same input again with padding; and non-overlapping windows with ties.
X_OVERLAP = np.array(
    [
        [[1.0, 1.0, 0.0, 2.0], [1.0, -1.0, 2.0, 2.0], [0.5, 0.5, -3.0, 0.0]],
        [[-1.0, -1.0, -1.0, -1.0], [-1.0, -1.0, -2.0, -2.0], [-3.0, -1.0, -4.0, -5.0]],
    ]
)[None]
OVERLAP = PoolGeometry(1, 2, 3, 4, (2, 2), (1, 1))
PADDED = PoolGeometry(1, 2, 3, 4, (2, 2), (1, 1), (1, 1))
DISJOINT = PoolGeometry(2, 1, 4, 4, (2, 2), (2, 2))
X_DISJOINT = np.array(
    [
        [[[3.0, 3.0, 1.0, 0.0], [3.0, 3.0, 1.0, 1.0], [0.0, 2.0, 5.0, 4.0], [2.0, 1.0, 5.0, 5.0]]],
        [[[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0], [7.0, 6.0, 1.0, 2.0], [5.0, 7.0, 2.0, 1.0]]],
    ]
)
SETS = {
    "overlapping": (X_OVERLAP, OVERLAP, signed_upstream(OVERLAP.output_shape, 7)),
    "disjoint": (X_DISJOINT, DISJOINT, signed_upstream(DISJOINT.output_shape, 8)),
    "padded": (X_OVERLAP, PADDED, signed_upstream(PADDED.output_shape, 9)),
}
UNPADDED = ["overlapping", "disjoint"]
ALL_SETS = [*UNPADDED, "padded"]


def test_the_fixtures_have_ties_and_the_overlapping_one_shares_maxima_between_windows():
    for x, geometry, _ in SETS.values():
        assert (pool_argmax_sets(x, geometry).sum(axis=(-2, -1)) > 1).any()
    # first-max routing puts more than one window's gradient on some position
    for geometry in (OVERLAP, PADDED):
        assert route(X_OVERLAP, geometry, np.ones(geometry.output_shape), "first").max() > 1


@pytest.mark.parametrize("name", ALL_SETS)
@pytest.mark.parametrize("policy", ["first", "last", "split", "shares"])
def test_every_valid_split_of_each_windows_gradient_over_its_maxima_is_accepted(name, policy):
    x, geometry, g = SETS[name]
    result = membership(x, geometry, g, policy)
    assert result.ok, result.reason


@pytest.mark.parametrize("name", UNPADDED)
def test_routing_the_full_gradient_to_every_tied_maximum_is_rejected_with_the_mass_ratio(name):
    x, geometry, g = SETS[name]
    result = membership(x, geometry, g, "all")
    assert not result.ok
    assert "sends" in result.reason and "upstream gradient" in result.reason
    i = result.comparison.worst_index
    ties = int(pool_argmax_sets(x, geometry)[i].sum())
    assert ties > 1
    assert f"ratio {ties:.3g}" in result.reason
    assert f"{ties} tied maximum(s)" in result.reason


@pytest.mark.parametrize("name", UNPADDED)
def test_a_share_with_the_wrong_sign_is_rejected_even_when_the_mass_is_right(name):
    x, geometry, g = SETS[name]
    result = membership(x, geometry, g, "signed")
    assert not result.ok
    assert "wrong sign" in result.reason


@pytest.mark.parametrize("name", UNPADDED)
def test_gradient_outside_the_argmax_set_is_rejected(name):
    x, geometry, g = SETS[name]
    leak = membership(x, geometry, g, "leak")
    assert not leak.ok
    assert "no window's maximum" in leak.reason
    elsewhere = membership(x, geometry, g, "elsewhere")
    assert not elsewhere.ok
    assert "sends 0 to its maximum" in elsewhere.reason


def test_overwriting_instead_of_adding_where_windows_overlap_is_rejected():
    # a probe's zero-gradient windows overwrite its other windows' shares: the mass is wrong
    result = membership(*SETS["overlapping"], "first", overwrite="always")
    assert not result.ok
    assert "to its maximum position(s)" in result.reason


def test_overwriting_that_skips_zero_shares_is_caught_by_the_sum_of_the_probes():
    # every probe sees non-overlapping windows only, where `=` and `+=` agree: only the full
    # backward, where windows overlap, differs from the sum of the probes
    result = membership(*SETS["overlapping"], "first", overwrite="nonzero")
    assert not result.ok
    assert "+=" in result.reason and "sum of its per-window parts" in result.reason


@pytest.mark.parametrize("overwrite", ["always", "nonzero"])
def test_overwriting_is_harmless_when_windows_do_not_overlap(overwrite):
    assert membership(*SETS["disjoint"], "first", overwrite=overwrite).ok


def test_a_backward_that_ignores_the_probe_is_rejected():
    """The probes must really drive ``backward``: a layer replaying its last full answer fails."""
    x, geometry, g = SETS["overlapping"]
    full = route(x, geometry, g, "first")
    result = pool_membership(x, geometry, g, full, lambda probe_g: full, TOL)
    assert not result.ok


def test_the_reference_max_pool_with_padding_is_a_member_at_ties():
    """Regression (dx was once padded twice): PyTorch's own first-max routing, one tied window, padding 1."""
    geometry = PoolGeometry(1, 1, 2, 2, (2, 2), (1, 1), (1, 1))
    x = np.array([[[[1.0, 1.0], [0.0, -1.0]]]])
    g = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)

    def backward(up: np.ndarray) -> np.ndarray:
        _, argmax = cnn.max_pool2d(x, geometry.kernel, geometry.stride, geometry.padding)
        return cnn.max_pool2d_backward(up, argmax, x.shape, geometry.kernel, geometry.stride, geometry.padding)

    result = pool_membership(x, geometry, g, backward(g), backward, TOL)
    assert result.ok, result.reason
