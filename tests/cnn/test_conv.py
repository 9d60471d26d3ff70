"""conv2d and its three backward functions against PyTorch autograd in float64, on the fixed geometries of
conftest.CONV_CASES (batch > 1, several channels, non-square, stride 2/3, padding, dilation, uneven strides,
kernel == padded input, 1x1 outputs). The upstream gradient G is random and signed."""

from __future__ import annotations

import numpy as np

from cnn import conv2d, conv2d_grad_bias, conv2d_grad_input, conv2d_grad_weight


def conv_arrays(case, rng, dtype=np.float64):
    x = rng.standard_normal(case.input_shape).astype(dtype)
    w = rng.standard_normal(case.weight_shape).astype(dtype)
    b = rng.standard_normal(case.f).astype(dtype)
    g = rng.standard_normal(case.output_shape).astype(dtype)
    return x, w, b, g


def our_grads(case, x, w, g):
    return {
        "input": conv2d_grad_input(g, w, x.shape, **case.geometry),
        "weight": conv2d_grad_weight(g, x, case.kernel, **case.geometry),
        "bias": conv2d_grad_bias(g),
    }


def torch_conv(oracle, case, x, w, b, g):
    def fn(input, weight, bias):
        return oracle.F.conv2d(input, weight, bias, **case.geometry)

    return oracle.vjp(fn, {"input": x, "weight": w, "bias": b}, g)


def test_output_shape_is_the_formula(conv_case, rng):
    x, w, b, _ = conv_arrays(conv_case, rng)
    assert conv2d(x, w, b, **conv_case.geometry).shape == conv_case.output_shape


def test_forward_matches_torch(conv_case, rng, oracle, close):
    x, w, b, g = conv_arrays(conv_case, rng)
    z_ref, _ = torch_conv(oracle, conv_case, x, w, b, g)
    close(conv2d(x, w, b, **conv_case.geometry), z_ref, what="conv2d forward")


def test_forward_without_bias_matches_torch(conv_case, rng, oracle, close):
    x, w, _, g = conv_arrays(conv_case, rng)
    z_ref, grads = torch_conv(oracle, conv_case, x, w, None, g)
    close(conv2d(x, w, None, **conv_case.geometry), z_ref, what="conv2d forward, no bias")
    close(conv2d_grad_input(g, w, x.shape, **conv_case.geometry), grads["input"], what="dX, no bias")


def test_gradients_match_torch(conv_case, rng, oracle, close):
    x, w, b, g = conv_arrays(conv_case, rng)
    _, ref = torch_conv(oracle, conv_case, x, w, b, g)
    ours = our_grads(conv_case, x, w, g)
    for name in ("input", "weight", "bias"):
        close(ours[name], ref[name], what=f"d{name} [{conv_case.id}]")


def test_unreached_positions_get_exactly_zero_gradient(conv_case_unreached, rng, oracle, close):
    """Rows/columns of X that no window reaches (stride not dividing evenly, or gaps from s, d) get 0."""
    case = conv_case_unreached
    x, w, b, g = conv_arrays(case, rng)
    dx = conv2d_grad_input(g, w, x.shape, **case.geometry)
    rows, cols = list(case.unreached_rows), list(case.unreached_cols)
    assert np.all(dx[:, :, rows, :] == 0), f"unreached rows {rows} got gradient"
    assert np.all(dx[:, :, :, cols] == 0), f"unreached cols {cols} got gradient"
    # The reached part is not trivially zero (the test would be vacuous otherwise)...
    assert np.count_nonzero(dx) > 0
    # ...and the zeros are right: the output does not depend on those positions at all.
    x2 = x.copy()
    x2[:, :, rows, :] = rng.standard_normal(x2[:, :, rows, :].shape)
    x2[:, :, :, cols] = rng.standard_normal(x2[:, :, :, cols].shape)
    np.testing.assert_array_equal(conv2d(x2, w, b, **case.geometry), conv2d(x, w, b, **case.geometry))
    _, ref = torch_conv(oracle, case, x, w, b, g)
    close(dx, ref["input"], what="dX with unreached positions")


def test_geometry_table_covers_unreached_rows_and_columns(case_tables):
    """Guard against the table losing its uneven cases (the zero-gradient test would then be vacuous)."""
    conv = case_tables["conv"]
    assert sum(bool(c.unreached_rows) for c in conv) >= 3
    assert sum(bool(c.unreached_cols) for c in conv) >= 3
    assert any(c.output_shape[2:] == (1, 1) for c in conv)


def test_unreached_examples_are_what_the_ids_claim():
    """Hand-checked: stride 3 over 10 rows with k=3 leaves row 9; over 11 columns leaves 9 and 10."""
    from cnn.conv import conv2d_output_shape

    assert conv2d_output_shape((2, 2, 10, 11), (3, 2, 3, 3), (3, 3), (0, 0), (1, 1)) == (2, 3, 3, 3)
    rng = np.random.default_rng(0)
    x, w, g = rng.standard_normal((2, 2, 10, 11)), rng.standard_normal((3, 2, 3, 3)), rng.standard_normal((2, 3, 3, 3))
    dx = conv2d_grad_input(g, w, x.shape, stride=3)
    assert np.all(dx[:, :, 9, :] == 0) and np.all(dx[:, :, :, 9:] == 0)
    assert np.all(dx[:, :, 8, :9] != 0)
    # stride 2, dilation 2, k=2 on 7 rows: only even rows are ever read; odd rows get zero.
    x, w = rng.standard_normal((1, 1, 7, 7)), rng.standard_normal((1, 1, 2, 2))
    g = rng.standard_normal((1, 1, 3, 3))
    dx = conv2d_grad_input(g, w, x.shape, stride=2, dilation=2)
    assert np.all(dx[:, :, 1::2, :] == 0) and np.all(dx[:, :, :, 1::2] == 0)
    assert np.all(dx[:, :, ::2, ::2] != 0)


def test_float32_is_preserved_and_close_to_float64(conv_case, rng, close):
    x, w, b, g = conv_arrays(conv_case, rng, np.float32)
    z32 = conv2d(x, w, b, **conv_case.geometry)
    grads32 = our_grads(conv_case, x, w, g)
    assert z32.dtype == np.float32
    assert {k: v.dtype for k, v in grads32.items()} == dict.fromkeys(grads32, np.dtype(np.float32))
    x64, w64, b64, g64 = (a.astype(np.float64) for a in (x, w, b, g))
    close(z32, conv2d(x64, w64, b64, **conv_case.geometry), "float32_vs_float64", what="conv2d f32")
    grads64 = our_grads(conv_case, x64, w64, g64)
    for name in grads32:
        close(grads32[name], grads64[name], "float32_vs_float64", what=f"d{name} f32")


def test_float32_matches_torch_float32(rng, oracle, close):
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in [(2, 3, 7, 6), (4, 3, 3, 2), (4,)])
    geo = {"stride": 2, "padding": 1, "dilation": 1}
    g = rng.standard_normal((2, 4, 4, 4)).astype(np.float32)
    z, ref = oracle.vjp(lambda x, w, b: oracle.F.conv2d(x, w, b, **geo), {"x": x, "w": w, "b": b}, g)
    close(conv2d(x, w, b, **geo), z, "float32")
    close(conv2d_grad_input(g, w, x.shape, **geo), ref["x"], "float32")
    close(conv2d_grad_weight(g, x, (3, 2), **geo), ref["w"], "float32")
    close(conv2d_grad_bias(g), ref["b"], "float32")


def test_int_and_pair_arguments_agree(rng):
    x, w, b = rng.standard_normal((2, 2, 9, 9)), rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3)
    ints = {"stride": 2, "padding": 1, "dilation": 2}
    pairs = {"stride": (2, 2), "padding": (1, 1), "dilation": (2, 2)}
    z = conv2d(x, w, b, **ints)
    np.testing.assert_array_equal(z, conv2d(x, w, b, **pairs))
    g = rng.standard_normal(z.shape)
    np.testing.assert_array_equal(conv2d_grad_input(g, w, x.shape, **ints), conv2d_grad_input(g, w, x.shape, **pairs))
    np.testing.assert_array_equal(conv2d_grad_weight(g, x, 3, **ints), conv2d_grad_weight(g, x, (3, 3), **pairs))


def test_arguments_are_not_modified(conv_case, rng):
    arrays = conv_arrays(conv_case, rng)
    copies = [a.copy() for a in arrays]
    x, w, b, g = arrays
    conv2d(x, w, b, **conv_case.geometry)
    our_grads(conv_case, x, w, g)
    for a, c in zip(arrays, copies, strict=True):
        np.testing.assert_array_equal(a, c)


def test_gradients_are_linear_in_g(rng, close):
    """L = sum(Z * G) is linear in G, so every gradient is: grad(aG1 + bG2) = a grad(G1) + b grad(G2)."""
    x, w = rng.standard_normal((2, 2, 8, 7)), rng.standard_normal((3, 2, 3, 2))
    geo = {"stride": (2, 3), "padding": 1, "dilation": (1, 2)}
    g1 = rng.standard_normal(conv2d(x, w, **geo).shape)
    g2 = rng.standard_normal(g1.shape)
    for fn in (
        lambda g: conv2d_grad_input(g, w, x.shape, **geo),
        lambda g: conv2d_grad_weight(g, x, (3, 2), **geo),
        conv2d_grad_bias,
    ):
        close(fn(2.0 * g1 - 3.0 * g2), 2.0 * fn(g1) - 3.0 * fn(g2), what="linearity in G")
