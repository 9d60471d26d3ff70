"""relu and relu_backward against PyTorch (float64), including inputs that are exactly 0 (ReLU'(0) = 0, the
same subgradient torch picks), and the mask taken on the input; then leaky_relu, sigmoid, tanh and softmax
(over the last axis and another) against PyTorch, with saturating inputs, and their own identities."""

from __future__ import annotations

import numpy as np
import pytest

from cnn import (
    leaky_relu,
    leaky_relu_backward,
    relu,
    relu_backward,
    sigmoid,
    sigmoid_backward,
    softmax,
    softmax_backward,
    tanh,
    tanh_backward,
)

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


# ------------------------------------------------------------------------------------------------------
# leaky_relu, sigmoid, tanh, softmax
# ------------------------------------------------------------------------------------------------------
def _softmax_axis(axis: int):
    return {
        "ours": lambda x: softmax(x, axis),
        "backward": lambda g, x, y: softmax_backward(g, y, axis),
        "torch": lambda F, t: F.softmax(t, dim=axis),
    }


ACTIVATIONS = {
    "leaky_relu": {
        "ours": lambda x: leaky_relu(x, 0.2),
        "backward": lambda g, x, y: leaky_relu_backward(g, x, 0.2),
        "torch": lambda F, t: F.leaky_relu(t, 0.2),
    },
    "sigmoid": {
        "ours": sigmoid,
        "backward": lambda g, x, y: sigmoid_backward(g, y),
        "torch": lambda F, t: t.sigmoid(),
    },
    "tanh": {"ours": tanh, "backward": lambda g, x, y: tanh_backward(g, y), "torch": lambda F, t: t.tanh()},
    "softmax": _softmax_axis(-1),
    "softmax_axis0": _softmax_axis(0),
}
"""name -> our forward, our backward (from G, X and our Y), and the same function in torch."""


@pytest.mark.parametrize("name", list(ACTIVATIONS))
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("scale", [1.0, 30.0], ids=["moderate", "saturating"])
def test_activation_forward_and_backward_match_torch(name, shape, scale, rng, oracle, close):
    fns = ACTIVATIONS[name]
    x = relu_input(rng, shape) * scale  # exact zeros too: the leaky ReLU's kink, where torch takes alpha
    g = rng.standard_normal(shape)
    y_ref, grads = oracle.vjp(lambda x: fns["torch"](oracle.F, x), {"x": x}, g)
    y = fns["ours"](x)
    close(y, y_ref, what=f"{name} forward")
    close(fns["backward"](g, x, y), grads["x"], what=f"{name} backward")


@pytest.mark.parametrize("name", list(ACTIVATIONS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activation_dtype_is_preserved_and_arguments_are_not_modified(name, dtype, rng, close):
    fns = ACTIVATIONS[name]
    x = relu_input(rng, (2, 3, 4, 5), dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    x0, g0 = x.copy(), g.copy()
    y = fns["ours"](x)
    dx = fns["backward"](g, x, y)
    assert y.dtype == dtype and dx.dtype == dtype
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(g, g0)
    x64 = x.astype(np.float64)
    close(dx, fns["backward"](g.astype(np.float64), x64, fns["ours"](x64)), "float32_vs_float64")


def test_leaky_relu_takes_alpha_where_the_input_is_not_positive():
    x = np.array([[-2.0, -0.0, 0.0, 3.0]])
    g = np.array([[1.0, 2.0, -4.0, 8.0]])
    np.testing.assert_array_equal(leaky_relu(x, 0.25), [[-0.5, 0.0, 0.0, 3.0]])
    np.testing.assert_array_equal(leaky_relu_backward(g, x, 0.25), [[0.25, 0.5, -1.0, 8.0]])


def test_sigmoid_and_softmax_never_overflow():
    x = np.array([[-1000.0, -40.0, 0.0, 40.0, 1000.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
        s = sigmoid(x)
        p = softmax(x)
    np.testing.assert_allclose(s, [[0.0, np.exp(-40.0), 0.5, 1.0, 1.0]], rtol=1e-12, atol=0)
    np.testing.assert_allclose(p, [[0.0, 0.0, 0.0, 0.0, 1.0]], atol=1e-300)
    assert np.all(np.isfinite(s)) and np.all(np.isfinite(p))


def test_softmax_rows_sum_to_one_along_the_axis_and_the_gradient_sums_to_zero(rng, close):
    x = rng.standard_normal((2, 3, 4))
    g = rng.standard_normal(x.shape)
    for axis in (0, 1, -1):
        p = softmax(x, axis)
        close(p.sum(axis=axis), np.ones(np.delete(x.shape, axis)), what=f"sum of P over axis {axis}")
        close(softmax_backward(g, p, axis).sum(axis=axis), np.zeros(np.delete(x.shape, axis)), what="sum of dX")


def test_softmax_backward_is_the_full_jacobian_applied_to_g(rng, close):
    x, g = rng.standard_normal(5), rng.standard_normal(5)
    p = softmax(x[None])[0]
    jacobian = np.diag(p) - np.outer(p, p)
    close(softmax_backward(g[None], p[None])[0], jacobian @ g, what="(diag(P) - P P^T) G")
