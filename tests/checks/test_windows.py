"""checks.windows (the pool-window algebra) against plain loops over windows and taps, on geometries
with overlapping and disjoint windows, padding and non-square kernels and strides; plus small
hand-computed examples, and deliberately broken variants that the loop references reject."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from checks import windows
from checks.geometry import PoolGeometry
from cnn.ops import window_view

GEOMETRIES = [
    PoolGeometry(2, 3, 5, 7, (2, 3), (2, 1), (1, 1)),  # non-square kernel, stride < kernel along W, padding
    PoolGeometry(1, 1, 4, 4, (2, 2), (2, 2)),  # disjoint windows
    PoolGeometry(1, 2, 6, 5, (3, 1), (1, 3), (1, 0)),  # stride < kernel along H, > kernel along W
    PoolGeometry(1, 1, 7, 6, (3, 3), (2, 2), (1, 1)),  # overlapping, padded, the last rows unpooled
    PoolGeometry(2, 1, 5, 4, (3, 2), (1, 1)),  # stride 1, non-square
]


# -- loop references ------------------------------------------------------------------------------


def windows_of(g: PoolGeometry):
    """Every (n, c, i, j, u, v, y, x): tap (u, v) of window (i, j) sits at padded position (y, x)."""
    n, c, ho, wo = g.output_shape
    (kh, kw), (sh, sw) = g.kernel, g.stride
    for b, ch, i, j, u, v in itertools.product(range(n), range(c), range(ho), range(wo), range(kh), range(kw)):
        yield b, ch, i, j, u, v, i * sh + u, j * sw + v


def loop_taps(xp: np.ndarray, g: PoolGeometry) -> np.ndarray:
    out = np.full(g.output_shape + g.kernel, np.nan)
    for b, ch, i, j, u, v, y, x in windows_of(g):
        out[b, ch, i, j, u, v] = xp[b, ch, y, x]
    return out


def loop_scatter_add(values: np.ndarray, g: PoolGeometry) -> np.ndarray:
    out = np.zeros(windows.padded_shape(g))
    for b, ch, i, j, u, v, y, x in windows_of(g):
        out[b, ch, y, x] += values[b, ch, i, j, u, v]
    return out


def loop_coverage(g: PoolGeometry) -> np.ndarray:
    (ph, pw), (h, w) = g.padding, g.input_shape[2:]
    out = np.zeros(g.input_shape, dtype=np.int64)
    for b, ch, _, _, _, _, y, x in windows_of(g):
        if 0 <= y - ph < h and 0 <= x - pw < w:
            out[b, ch, y - ph, x - pw] += 1
    return out


def loop_argmax_sets(x: np.ndarray, g: PoolGeometry) -> np.ndarray:
    (ph, pw), (h, w) = g.padding, g.input_shape[2:]
    n, c, ho, wo = g.output_shape
    (kh, kw), (sh, sw) = g.kernel, g.stride
    out = np.zeros(g.output_shape + g.kernel, dtype=bool)
    for b, ch, i, j in itertools.product(range(n), range(c), range(ho), range(wo)):
        real = {
            (u, v): x[b, ch, i * sh + u - ph, j * sw + v - pw]
            for u, v in itertools.product(range(kh), range(kw))
            if 0 <= i * sh + u - ph < h and 0 <= j * sw + v - pw < w
        }
        top = max(real.values())
        for (u, v), value in real.items():
            out[b, ch, i, j, u, v] = value == top
    return out


def loop_covered(mask: np.ndarray, g: PoolGeometry) -> np.ndarray:
    (ph, pw), (h, w) = g.padding, g.input_shape[2:]
    out = np.zeros(g.input_shape, dtype=bool)
    for b, ch, i, j, u, v, y, x in windows_of(g):
        if mask[b, ch, i, j, u, v] and 0 <= y - ph < h and 0 <= x - pw < w:
            out[b, ch, y - ph, x - pw] = True
    return out


def input_cells(g: PoolGeometry, i: int, j: int) -> set[tuple[int, int]]:
    (kh, kw), (sh, sw) = g.kernel, g.stride
    return {(i * sh + u, j * sw + v) for u in range(kh) for v in range(kw)}


def groups_are_valid(groups: list[np.ndarray], g: PoolGeometry) -> bool:
    """A partition of the output positions in which no two windows of one group share a position."""
    ho, wo = g.output_shape[2:]
    if sum(m.astype(int) for m in groups).tolist() != np.ones((ho, wo), dtype=int).tolist():
        return False
    for m in groups:
        members = list(zip(*np.nonzero(m), strict=True))
        for (a, b), (c, d) in itertools.combinations(members, 2):
            if input_cells(g, int(a), int(b)) & input_cells(g, int(c), int(d)):
                return False
    return True


def padded(x: np.ndarray, g: PoolGeometry, fill: float) -> np.ndarray:
    (ph, pw), (h, w) = g.padding, g.input_shape[2:]
    out = np.full(windows.padded_shape(g), fill)
    out[:, :, ph : ph + h, pw : pw + w] = x
    return out


def ties_input(g: PoolGeometry, seed: int = 0) -> np.ndarray:
    """Small integers: many windows hold tied maxima."""
    return np.random.default_rng(seed).integers(-2, 3, g.input_shape).astype(np.float64)


# -- against the loops ----------------------------------------------------------------------------


@pytest.mark.parametrize("g", GEOMETRIES)
def test_taps_and_pool_taps_are_the_windows_of_the_padded_input(g):
    x = np.random.default_rng(1).standard_normal(g.input_shape)
    for fill in (-np.inf, 0.0):
        xp = padded(x, g, fill)
        expected = loop_taps(xp, g)
        assert windows.taps(xp, g).shape == g.output_shape + g.kernel
        assert np.array_equal(windows.taps(xp, g), expected)
        assert np.array_equal(windows.pool_taps(x, g, fill=fill), expected)
    assert windows.pool_taps(x.astype(np.float32), g).dtype == np.float32


@pytest.mark.parametrize("g", GEOMETRIES)
def test_scatter_add_accumulates_every_tap_into_the_padded_grid(g):
    values = np.random.default_rng(2).standard_normal(g.output_shape + g.kernel)
    assert np.allclose(windows.scatter_add(values, g), loop_scatter_add(values, g), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("g", GEOMETRIES)
def test_scatter_add_is_the_adjoint_of_taps(g):
    rng = np.random.default_rng(3)
    xp, t = rng.standard_normal(windows.padded_shape(g)), rng.standard_normal(g.output_shape + g.kernel)
    assert np.isclose(np.vdot(windows.taps(xp, g), t), np.vdot(xp, windows.scatter_add(t, g)), rtol=1e-12)


@pytest.mark.parametrize("g", GEOMETRIES)
def test_coverage_counts_the_windows_holding_each_input_position(g):
    assert np.array_equal(windows.coverage(g), loop_coverage(g))
    assert windows.coverage(g).dtype == np.int64


@pytest.mark.parametrize("g", GEOMETRIES)
def test_argmax_sets_covered_and_tied_positions_match_the_loops(g):
    x = ties_input(g)
    sets = windows.argmax_sets(x, g)
    assert np.array_equal(sets, loop_argmax_sets(x, g))
    assert np.array_equal(windows.covered(sets, g), loop_covered(sets, g))
    tied = loop_argmax_sets(x, g).sum(axis=(-2, -1)) > 1
    expected = loop_covered(np.broadcast_to(tied[..., None, None], sets.shape), g)
    assert np.array_equal(windows.tied_positions(x, g), expected)


@pytest.mark.parametrize("g", GEOMETRIES)
def test_probe_groups_partition_the_windows_into_non_overlapping_groups(g):
    groups = windows.probe_groups(g)
    (kh, kw), (sh, sw) = g.kernel, g.stride
    assert len(groups) == -(-kh // sh) * -(-kw // sw)
    assert all(m.shape == g.output_shape[2:] for m in groups)
    assert groups_are_valid(groups, g)


def test_window_view_is_a_writable_strided_view():
    x = np.zeros((1, 1, 5, 7))
    view = window_view(x, (1, 2), (2, 3), (3, 2))
    assert view.shape == (1, 1, 2, 3)
    view[...] = 1
    assert [tuple(int(i) for i in p) for p in zip(*np.nonzero(x[0, 0]), strict=True)] == [
        (1, 2), (1, 4), (1, 6), (4, 2), (4, 4), (4, 6)
    ]  # fmt: skip


# -- hand-computed examples -----------------------------------------------------------------------


def test_hand_example_taps_and_coverage_of_a_2x2_stride_1_pool_on_3x3():
    g = PoolGeometry(1, 1, 3, 3, (2, 2), (1, 1))
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    t = windows.taps(x, g)
    assert t[0, 0, 0, 0].tolist() == [[0, 1], [3, 4]]
    assert t[0, 0, 0, 1].tolist() == [[1, 2], [4, 5]]
    assert t[0, 0, 1, 1].tolist() == [[4, 5], [7, 8]]
    assert windows.coverage(g)[0, 0].tolist() == [[1, 2, 1], [2, 4, 2], [1, 2, 1]]
    assert windows.scatter_add(t, g)[0, 0].tolist() == [[0, 2, 2], [6, 16, 10], [6, 14, 8]]


def test_hand_example_padding_is_not_an_input_position():
    g = PoolGeometry(1, 1, 3, 3, (3, 3), (2, 2), (1, 1))  # 2x2 windows over the padded 5x5 grid
    assert windows.padded_shape(g) == (1, 1, 5, 5)
    assert windows.coverage(g)[0, 0].tolist() == [[1, 2, 1], [2, 4, 2], [1, 2, 1]]
    x = np.array([[[[-5.0, -2.0, -3.0], [-2.0, -9.0, -8.0], [-7.0, -6.0, -1.0]]]])  # -2 tied in window (0, 0)
    assert windows.tied_positions(x, g)[0, 0].tolist() == [
        [True, True, False],
        [True, True, False],
        [False, False, False],
    ]


def test_hand_example_probe_groups_of_a_3_wide_stride_2_pool():
    g = PoolGeometry(1, 1, 7, 3, (3, 1), (2, 1))  # Ho = 3, Wo = 3: rows 0 and 2 never overlap
    groups = windows.probe_groups(g)
    assert [m.astype(int).tolist() for m in groups] == [
        [[1, 1, 1], [0, 0, 0], [1, 1, 1]],
        [[0, 0, 0], [1, 1, 1], [0, 0, 0]],
    ]


# -- the references catch broken implementations ---------------------------------------------------


def broken_taps_unit_step(xp, g):
    """Reads window (i, j) at (i + u, j + v), forgetting the stride."""
    out = np.empty(g.output_shape + g.kernel)
    for u, v in itertools.product(range(g.kernel[0]), range(g.kernel[1])):
        out[..., u, v] = window_view(xp, (u, v), g.output_shape[2:], (1, 1))
    return out


def broken_scatter_overwrite(values, g):
    """`out[window] = value` instead of `+=`: overlapping windows overwrite each other."""
    out = np.zeros(windows.padded_shape(g))
    for u, v in itertools.product(range(g.kernel[0]), range(g.kernel[1])):
        window_view(out, (u, v), g.output_shape[2:], g.stride)[...] = values[..., u, v]
    return out


def broken_probe_groups_floor(g):
    """floor(k/s) instead of ceil(k/s) groups: windows of one group overlap when s does not divide k."""
    (kh, kw), (sh, sw) = g.kernel, g.stride
    gh, gw = max(1, kh // sh), max(1, kw // sw)
    ho, wo = g.output_shape[2:]
    rows, cols = np.arange(ho)[:, None], np.arange(wo)[None, :]
    return [(rows % gh == a) & (cols % gw == b) for a in range(gh) for b in range(gw)]


def test_the_loop_references_reject_broken_implementations():
    g = PoolGeometry(1, 1, 6, 7, (3, 2), (2, 1), (1, 1))  # non-square stride, overlapping, padded
    rng = np.random.default_rng(4)
    xp = rng.standard_normal(windows.padded_shape(g))
    values = rng.standard_normal(g.output_shape + g.kernel)
    assert not np.array_equal(broken_taps_unit_step(xp, g), loop_taps(xp, g))
    assert not np.allclose(broken_scatter_overwrite(values, g), loop_scatter_add(values, g))
    assert not groups_are_valid(broken_probe_groups_floor(g), g)
    # and the real ones pass the same references
    assert np.array_equal(windows.taps(xp, g), loop_taps(xp, g))
    assert np.allclose(windows.scatter_add(values, g), loop_scatter_add(values, g))
    assert groups_are_valid(windows.probe_groups(g), g)
