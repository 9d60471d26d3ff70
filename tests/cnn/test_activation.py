"""relu and relu_backward against PyTorch (float64), including inputs that are exactly 0 (ReLU'(0) = 0, the
same subgradient torch picks), and the mask taken on the input."""

from __future__ import annotations

import numpy as np
import pytest

from cnn import relu, relu_backward

SHAPES = [
    pytest.param((7,), id="1d"),
    pytest.param((3, 5), id="2d"),
    pytest.param((2, 3, 4, 5), id="nchw"),
    pytest.param((1, 1, 1, 1), id="single"),
]


def relu_input(rng, shape, dtype=np.float64):
    x = rng.standard_normal(shape)
    x.flat[::3] = 0.0  # exact zeros: the kink
    return x.astype(dtype)


@pytest.mark.parametrize("shape", SHAPES)
def test_forward_and_backward_match_torch(shape, rng, oracle, close):
    x = relu_input(rng, shape)
    g = rng.standard_normal(shape)
    y_ref, grads = oracle.vjp(lambda x: oracle.F.relu(x), {"x": x}, g)
    close(relu(x), y_ref, what="relu")
    close(relu_backward(g, x), grads["x"], what="relu_backward")


@pytest.mark.parametrize("shape", SHAPES)
def test_backward_is_g_masked_by_positive_input(shape, rng):
    x = relu_input(rng, shape)
    g = rng.standard_normal(shape)
    dx = relu_backward(g, x)
    np.testing.assert_array_equal(dx[x > 0], g[x > 0])
    assert np.all(dx[x <= 0] == 0)
    np.testing.assert_array_equal(relu(x), np.where(x > 0, x, 0.0))


def test_gradient_at_zero_is_zero_like_torch(oracle):
    x = np.array([[-1.0, 0.0, 1.0, -0.0]])
    g = np.array([[2.0, -3.0, 4.0, 5.0]])
    np.testing.assert_array_equal(relu_backward(g, x), [[0.0, 0.0, 4.0, 0.0]])
    np.testing.assert_array_equal(relu_backward(g, x), oracle.vjp(lambda x: oracle.F.relu(x), {"x": x}, g)[1]["x"])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_preserved(dtype, rng, close):
    x = relu_input(rng, (2, 3, 4, 5), dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    assert relu(x).dtype == dtype
    assert relu_backward(g, x).dtype == dtype
    close(relu_backward(g, x), relu_backward(g.astype(np.float64), x.astype(np.float64)), "float32_vs_float64")


def test_arguments_are_not_modified(rng):
    x, g = relu_input(rng, (2, 3, 4, 5)), rng.standard_normal((2, 3, 4, 5))
    x0, g0 = x.copy(), g.copy()
    relu(x)
    relu_backward(g, x)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(g, g0)
