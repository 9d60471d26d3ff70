"""max_pool2d and max_pool2d_backward against PyTorch (float64) and against a loop definition of the routing
rule, on the fixed geometries of conftest.POOL_CASES (overlapping, padded, non-square, non-divisible, global,
stride > kernel). Ties: our rule is the FIRST maximum in row-major window order, the same as torch's. Then
avg_pool2d and avg_pool2d_backward (zero padding counted in the divisor) against PyTorch and a loop
definition on the same geometries."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cnn import avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward

VALUE_MODES = ["distinct", "ties"]


def pool_input(case, rng, mode="distinct", dtype=np.float64):
    if mode == "distinct":
        x = rng.standard_normal(case.input_shape)
    else:  # few integer levels: most windows hold a tied maximum
        x = rng.integers(-2, 2, case.input_shape).astype(np.float64)
    return x.astype(dtype)


def loop_pool(x, case):
    """Reference by loops: y = max over the real positions of each window; pos = its FIRST max (row-major)."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = case.kernel_hw, case.stride_hw, case.padding_hw
    _, _, ho, wo = case.output_shape
    y = np.empty((n, c, ho, wo))
    pos = {}
    for b, ch, i, j in itertools.product(range(n), range(c), range(ho), range(wo)):
        best = None
        for u, v in itertools.product(range(kh), range(kw)):
            r, q = i * sh + u - ph, j * sw + v - pw
            if 0 <= r < h and 0 <= q < w and (best is None or x[b, ch, r, q] > best):
                best, pos[b, ch, i, j] = x[b, ch, r, q], (r, q)
        y[b, ch, i, j] = best
    return y, pos


def loop_pool_backward(g, pos, input_shape):
    dx = np.zeros(input_shape)
    for (b, ch, i, j), (r, q) in pos.items():
        dx[b, ch, r, q] += g[b, ch, i, j]
    return dx


def torch_pool(oracle, case, x, g):
    def fn(input):
        y, idx = oracle.F.max_pool2d(input, **case.geometry, return_indices=True)
        fn.indices = idx.numpy()
        return y

    y, grads = oracle.vjp(fn, {"input": x}, g)
    return y, fn.indices, grads["input"]


def our_argmax_as_torch_index(argmax, case):
    """argmax = u*kw + v inside the window -> torch's flat index row*W + col into the unpadded input."""
    _, _, ho, wo = argmax.shape
    kw, (sh, sw), (ph, pw) = case.kernel_hw[1], case.stride_hw, case.padding_hw
    u, v = np.divmod(argmax, kw)
    rows = np.arange(ho).reshape(-1, 1) * sh + u - ph
    cols = np.arange(wo).reshape(1, -1) * sw + v - pw
    return rows * case.w + cols


def test_output_shape_is_the_formula(pool_case, rng):
    y, argmax = max_pool2d(pool_input(pool_case, rng), **pool_case.geometry)
    assert y.shape == argmax.shape == pool_case.output_shape
    assert argmax.dtype == np.int64


@pytest.mark.parametrize("mode", VALUE_MODES)
def test_forward_and_argmax_match_torch(pool_case, mode, rng, oracle, close):
    x = pool_input(pool_case, rng, mode)
    g = rng.standard_normal(pool_case.output_shape)
    y_ref, idx_ref, _ = torch_pool(oracle, pool_case, x, g)
    y, argmax = max_pool2d(x, **pool_case.geometry)
    close(y, y_ref, what="max_pool2d forward")
    np.testing.assert_array_equal(our_argmax_as_torch_index(argmax, pool_case), idx_ref)


@pytest.mark.parametrize("mode", VALUE_MODES)
def test_backward_matches_torch(pool_case, mode, rng, oracle, close):
    x = pool_input(pool_case, rng, mode)
    g = rng.standard_normal(pool_case.output_shape)
    _, _, dx_ref = torch_pool(oracle, pool_case, x, g)
    _, argmax = max_pool2d(x, **pool_case.geometry)
    dx = max_pool2d_backward(g, argmax, x.shape, **pool_case.geometry)
    close(dx, dx_ref, what=f"max_pool2d_backward [{mode}]")


@pytest.mark.parametrize("mode", VALUE_MODES)
def test_forward_and_backward_match_loop_definition(pool_case, mode, rng, close):
    """First max in row-major order, padding never selected, overlapping windows add up."""
    x = pool_input(pool_case, rng, mode)
    g = rng.standard_normal(pool_case.output_shape)
    y_loop, pos = loop_pool(x, pool_case)
    y, argmax = max_pool2d(x, **pool_case.geometry)
    np.testing.assert_array_equal(y, y_loop)
    close(max_pool2d_backward(g, argmax, x.shape, **pool_case.geometry), loop_pool_backward(g, pos, x.shape))


def test_each_window_routes_its_whole_gradient_to_its_first_maximum(pool_case, rng):
    """One window at a time (one-hot G with a signed value): the gradient lands on exactly one input, inside
    the window, holding the window's max, and the first such in row-major order; the mass is conserved."""
    x = pool_input(pool_case, rng, "ties")[:1, :1]
    shape = (1, 1, *pool_case.output_shape[2:])
    _, argmax = max_pool2d(x, **pool_case.geometry)
    _, pos = loop_pool(x, pool_case._replace(n=1, c=1))
    for i, j in itertools.product(range(shape[2]), range(shape[3])):
        g = np.zeros(shape)
        g[0, 0, i, j] = value = -1.5 if (i + j) % 2 else 2.25
        dx = max_pool2d_backward(g, argmax, x.shape, **pool_case.geometry)
        assert np.count_nonzero(dx) == 1, f"window ({i},{j}) routed to {np.argwhere(dx)}"
        assert dx.sum() == value
        assert tuple(np.argwhere(dx)[0][2:]) == pos[0, 0, i, j]


def test_gradient_mass_is_conserved(pool_case, rng, close):
    """Every window holds a real input (padding <= kernel/2), so sum(dX) == sum(G): nothing goes to padding."""
    for mode in VALUE_MODES:
        x = pool_input(pool_case, rng, mode)
        g = rng.standard_normal(pool_case.output_shape)
        _, argmax = max_pool2d(x, **pool_case.geometry)
        close(max_pool2d_backward(g, argmax, x.shape, **pool_case.geometry).sum(), g.sum(), what="mass")


def test_unreached_positions_get_exactly_zero_gradient(pool_case_unreached, rng, oracle, close):
    case = pool_case_unreached
    x = pool_input(case, rng)
    g = rng.standard_normal(case.output_shape)
    _, argmax = max_pool2d(x, **case.geometry)
    dx = max_pool2d_backward(g, argmax, x.shape, **case.geometry)
    rows, cols = list(case.unreached_rows), list(case.unreached_cols)
    assert np.all(dx[:, :, rows, :] == 0), f"unreached rows {rows} got gradient"
    assert np.all(dx[:, :, :, cols] == 0), f"unreached cols {cols} got gradient"
    assert np.count_nonzero(dx) > 0
    close(dx, torch_pool(oracle, case, x, g)[2], what="dX with unreached positions")


def test_geometry_table_covers_what_it_claims(case_tables):
    pools = case_tables["pool"]
    assert any(c.stride_hw[0] < c.kernel_hw[0] for c in pools), "overlapping"
    assert any(c.padding_hw != (0, 0) for c in pools), "padded"
    assert any(c.unreached_rows for c in pools) and any(c.unreached_cols for c in pools), "non-divisible"
    assert any(c.output_shape[2:] == (1, 1) for c in pools), "1x1 output"
    assert any(c.kernel_hw[0] != c.kernel_hw[1] for c in pools), "non-square"


# ------------------------------------------------------------------------------------------------------
# Ties, written out by hand
# ------------------------------------------------------------------------------------------------------
def _route(x, g, **geometry):
    x = np.asarray(x, dtype=np.float64)[None, None]
    g = np.asarray(g, dtype=np.float64)[None, None]
    _, argmax = max_pool2d(x, **geometry)
    return max_pool2d_backward(g, argmax, x.shape, **geometry)[0, 0]


def test_tie_constant_input_routes_to_each_windows_top_left():
    dx = _route(np.ones((4, 4)), [[1.0, -2.0], [3.0, -4.0]], kernel_size=2)
    expected = np.zeros((4, 4))
    expected[0, 0], expected[0, 2], expected[2, 0], expected[2, 2] = 1.0, -2.0, 3.0, -4.0
    np.testing.assert_array_equal(dx, expected)


def test_tie_constant_input_overlapping_windows():
    g = np.array([[1.0, -2.0], [3.0, -4.0]])
    dx = _route(np.full((3, 3), 7.0), g, kernel_size=2, stride=1)
    expected = np.zeros((3, 3))
    expected[:2, :2] = g
    np.testing.assert_array_equal(dx, expected)


def test_tie_first_max_in_row_major_order_is_not_always_top_left():
    # max 5 at (0, 1) and (1, 0): row-major order reaches (0, 1) first.
    np.testing.assert_array_equal(_route([[0.0, 5.0], [5.0, 1.0]], [[-3.0]], kernel_size=2), [[0, -3.0], [0, 0]])
    # max 5 at (1, 0) and (1, 1): (1, 0) first.
    np.testing.assert_array_equal(_route([[0.0, 1.0], [5.0, 5.0]], [[2.0]], kernel_size=2), [[0, 0], [2.0, 0]])


def test_tie_shared_by_overlapping_windows_accumulates():
    # windows [1,3] -> col 1; [3,3] -> col 1 (first); [3,1] -> col 2.
    dx = _route([[1.0, 3.0, 3.0, 1.0]], [[0.5, -2.0, 4.0]], kernel_size=(1, 2), stride=1)
    np.testing.assert_array_equal(dx, [[0.0, -1.5, 4.0, 0.0]])


def test_tie_with_padding_never_routes_to_padding(oracle):
    x = np.full((2, 3), -1.0)
    g = np.arange(1.0, 13.0).reshape(3, 4) * np.array([1, -1, 1, -1])
    dx = _route(x, g, kernel_size=2, stride=1, padding=1)
    assert dx.sum() == g.sum()
    case_dx = oracle.vjp(lambda x: oracle.F.max_pool2d(x, 2, 1, 1), {"x": x[None, None]}, g[None, None])[1]["x"][0, 0]
    np.testing.assert_array_equal(dx, case_dx)


def test_default_stride_is_the_kernel(rng):
    x = rng.standard_normal((2, 2, 6, 9))
    y, a = max_pool2d(x, (2, 3))
    y2, a2 = max_pool2d(x, (2, 3), stride=(2, 3))
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(a, a2)
    g = rng.standard_normal(y.shape)
    np.testing.assert_array_equal(
        max_pool2d_backward(g, a, x.shape, (2, 3)), max_pool2d_backward(g, a, x.shape, (2, 3), (2, 3))
    )


# ------------------------------------------------------------------------------------------------------
# dtype, purity, and edge cases where we differ from torch
# ------------------------------------------------------------------------------------------------------
def test_float32_is_preserved_and_close_to_float64(pool_case, rng, close):
    x = pool_input(pool_case, rng, dtype=np.float32)
    g = rng.standard_normal(pool_case.output_shape).astype(np.float32)
    y, argmax = max_pool2d(x, **pool_case.geometry)
    dx = max_pool2d_backward(g, argmax, x.shape, **pool_case.geometry)
    assert y.dtype == dx.dtype == np.float32
    y64, argmax64 = max_pool2d(x.astype(np.float64), **pool_case.geometry)
    np.testing.assert_array_equal(argmax, argmax64)
    close(y, y64, "float32_vs_float64")
    close(dx, max_pool2d_backward(g.astype(np.float64), argmax64, x.shape, **pool_case.geometry), "float32_vs_float64")


def test_arguments_are_not_modified(pool_case, rng):
    x = pool_input(pool_case, rng)
    g = rng.standard_normal(pool_case.output_shape)
    x0, g0 = x.copy(), g.copy()
    _, argmax = max_pool2d(x, **pool_case.geometry)
    a0 = argmax.copy()
    max_pool2d_backward(g, argmax, x.shape, **pool_case.geometry)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(g, g0)
    np.testing.assert_array_equal(argmax, a0)


def test_window_of_minus_inf_routes_gradient_to_a_real_input(oracle):
    x = np.full((1, 1, 3, 3), -np.inf)
    x[0, 0, 2, 2] = 1.0
    g = np.array([[[[1.5, -2.0], [0.5, 3.0]]]])
    _, argmax = max_pool2d(x, 2, 2, 1)
    dx = max_pool2d_backward(g, argmax, x.shape, 2, 2, 1)
    ref = oracle.vjp(lambda x: oracle.F.max_pool2d(x, 2, 2, 1), {"x": x}, g)[1]["x"]
    assert dx.sum() == g.sum()
    np.testing.assert_array_equal(dx, ref)


def test_nan_propagates_like_torch(oracle):
    x = np.array([[[[1.0, np.nan], [0.0, 2.0]]]])
    y, _ = max_pool2d(x, 2)
    y_ref = oracle.F.max_pool2d(oracle.tensor(x), 2).numpy()
    np.testing.assert_array_equal(y, y_ref)


# ------------------------------------------------------------------------------------------------------
# Average pooling: zero padding counted in the divisor (count_include_pad=True), on the same geometries
# ------------------------------------------------------------------------------------------------------
def loop_avg_pool(x, case):
    """Reference by loops: y = sum of the window's REAL inputs / (kh*kw); the padding adds 0 but counts."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = case.kernel_hw, case.stride_hw, case.padding_hw
    _, _, ho, wo = case.output_shape
    y = np.zeros((n, c, ho, wo))
    for i, j, u, v in itertools.product(range(ho), range(wo), range(kh), range(kw)):
        r, q = i * sh + u - ph, j * sw + v - pw
        if 0 <= r < h and 0 <= q < w:
            y[:, :, i, j] += x[:, :, r, q] / (kh * kw)
    return y


def loop_avg_pool_backward(g, case):
    """Each window's G / (kh*kw) to each of its real taps; overlapping windows add up."""
    dx = np.zeros(case.input_shape)
    (kh, kw), (sh, sw), (ph, pw) = case.kernel_hw, case.stride_hw, case.padding_hw
    _, _, ho, wo = case.output_shape
    for i, j, u, v in itertools.product(range(ho), range(wo), range(kh), range(kw)):
        r, q = i * sh + u - ph, j * sw + v - pw
        if 0 <= r < case.h and 0 <= q < case.w:
            dx[:, :, r, q] += g[:, :, i, j] / (kh * kw)
    return dx


def test_avg_pool_forward_and_backward_match_torch(pool_case, rng, oracle, close):
    x = pool_input(pool_case, rng)
    g = rng.standard_normal(pool_case.output_shape)
    fn = lambda x: oracle.F.avg_pool2d(x, **pool_case.geometry, count_include_pad=True)  # noqa: E731
    y_ref, grads = oracle.vjp(fn, {"x": x}, g)
    y = avg_pool2d(x, **pool_case.geometry)
    assert y.shape == pool_case.output_shape
    close(y, y_ref, what="avg_pool2d forward")
    close(avg_pool2d_backward(g, x.shape, **pool_case.geometry), grads["x"], what="avg_pool2d_backward")


def test_avg_pool_matches_the_loop_definition(pool_case, rng, close):
    x = pool_input(pool_case, rng)
    g = rng.standard_normal(pool_case.output_shape)
    close(avg_pool2d(x, **pool_case.geometry), loop_avg_pool(x, pool_case), what="forward")
    close(avg_pool2d_backward(g, x.shape, **pool_case.geometry), loop_avg_pool_backward(g, pool_case), what="dX")


def test_avg_pool_divides_by_the_whole_window_even_at_the_padding():
    x = np.ones((1, 1, 2, 2))
    np.testing.assert_array_equal(avg_pool2d(x, 2, 2, 1)[0, 0], np.full((2, 2), 0.25))  # one real tap of four
    dx = avg_pool2d_backward(np.ones((1, 1, 2, 2)), x.shape, 2, 2, 1)
    np.testing.assert_array_equal(dx[0, 0], np.full((2, 2), 0.25))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_avg_pool_dtype_is_preserved_and_arguments_are_not_modified(pool_case, dtype, rng, close):
    x = pool_input(pool_case, rng, dtype=dtype)
    g = rng.standard_normal(pool_case.output_shape).astype(dtype)
    x0, g0 = x.copy(), g.copy()
    y = avg_pool2d(x, **pool_case.geometry)
    dx = avg_pool2d_backward(g, x.shape, **pool_case.geometry)
    assert y.dtype == dtype and dx.dtype == dtype
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(g, g0)
    reference = avg_pool2d_backward(g.astype(np.float64), x.shape, **pool_case.geometry)
    close(dx, reference, "float32_vs_float64")
