"""Activations, one formula per function: ReLU, leaky ReLU, sigmoid, tanh (elementwise) and softmax over one
axis, each with its backward (the vector-Jacobian product with the upstream gradient G)."""

from __future__ import annotations

from numbers import Real

import numpy as np

from cnn._args import require_array, require_same_dtype, require_shape


def relu(x: np.ndarray) -> np.ndarray:
    """Y = max(X, 0)."""
    require_array(x, "input", tuple(range(1, 9)))
    return np.maximum(x, 0)


def relu_backward(grad_out: np.ndarray, x: np.ndarray) -> np.ndarray:
    """dX = G * m, m = 1 where X > 0 and 0 elsewhere (ReLU'(0) = 0, PyTorch's choice).

    The mask is taken on the INPUT; any m in [0, 1] at X == 0 is an equally valid subgradient.
    """
    require_array(x, "input", tuple(range(1, 9)))
    require_array(grad_out, "grad_out", x.ndim)
    require_shape(grad_out, x.shape, "grad_out")
    require_same_dtype(x, grad_out, "input and grad_out")
    return np.where(x > 0, grad_out, 0).astype(x.dtype, copy=False)


def negative_slope(alpha: object) -> float:
    """A leaky ReLU's negative slope: a finite real number (not a bool)."""
    if isinstance(alpha, bool) or not isinstance(alpha, Real) or not np.isfinite(alpha):
        raise ValueError(f"alpha must be a finite real number, got {alpha!r}")
    return float(alpha)


def leaky_relu(x: np.ndarray, alpha: float = 0.01) -> np.ndarray:
    """Y = X where X > 0, alpha * X elsewhere."""
    require_array(x, "input", tuple(range(1, 9)))
    a = negative_slope(alpha)
    return np.where(x > 0, x, a * x).astype(x.dtype, copy=False)


def leaky_relu_backward(grad_out: np.ndarray, x: np.ndarray, alpha: float = 0.01) -> np.ndarray:
    """dX = G where X > 0, alpha * G elsewhere (slope alpha at X == 0, PyTorch's choice).

    Any dX between alpha * G and G at X == 0 is an equally valid subgradient.
    """
    require_array(x, "input", tuple(range(1, 9)))
    require_array(grad_out, "grad_out", x.ndim)
    require_shape(grad_out, x.shape, "grad_out")
    require_same_dtype(x, grad_out, "input and grad_out")
    a = negative_slope(alpha)
    return np.where(x > 0, grad_out, a * grad_out).astype(x.dtype, copy=False)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Y = 1 / (1 + exp(-X)), written as 1 / (1 + e) for X >= 0 and e / (1 + e) for X < 0 with e = exp(-|X|),
    so exp never overflows."""
    require_array(x, "input", tuple(range(1, 9)))
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def sigmoid_backward(grad_out: np.ndarray, output: np.ndarray) -> np.ndarray:
    """dX = G * Y * (1 - Y), from the forward's OUTPUT Y = sigmoid(X) (not from X)."""
    _require_backward(grad_out, output)
    return (grad_out * output * (1 - output)).astype(output.dtype, copy=False)


def tanh(x: np.ndarray) -> np.ndarray:
    """Y = tanh(X)."""
    require_array(x, "input", tuple(range(1, 9)))
    return np.tanh(x)


def tanh_backward(grad_out: np.ndarray, output: np.ndarray) -> np.ndarray:
    """dX = G * (1 - Y^2), from the forward's OUTPUT Y = tanh(X) (not from X)."""
    _require_backward(grad_out, output)
    return (grad_out * (1 - output * output)).astype(output.dtype, copy=False)


def softmax_axis(axis: object, ndim: int) -> int:
    """``axis`` as a non-negative axis of an ndim-dimensional array (negative counts from the end)."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise ValueError(f"axis must be an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for an input with {ndim} dimensions")
    return int(axis) % ndim


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """P = exp(X - m) / sum_axis exp(X - m), m = max_axis X (the shift keeps exp from overflowing; P is unchanged)."""
    require_array(x, "input", tuple(range(1, 9)))
    a = softmax_axis(axis, x.ndim)
    e = np.exp(x - x.max(axis=a, keepdims=True))
    return (e / e.sum(axis=a, keepdims=True)).astype(x.dtype, copy=False)


def softmax_backward(grad_out: np.ndarray, output: np.ndarray, axis: int = -1) -> np.ndarray:
    """dX = P * (G - sum_axis(G * P)), i.e. (diag(P) - P P^T) G along ``axis``, from the forward's OUTPUT P."""
    _require_backward(grad_out, output)
    a = softmax_axis(axis, output.ndim)
    return (output * (grad_out - (grad_out * output).sum(axis=a, keepdims=True))).astype(output.dtype, copy=False)


def _require_backward(grad_out: np.ndarray, output: np.ndarray) -> None:
    """The checks every output-based backward needs: G is a float array of the output's shape and dtype."""
    require_array(output, "output", tuple(range(1, 9)))
    require_array(grad_out, "grad_out", output.ndim)
    require_shape(grad_out, output.shape, "grad_out")
    require_same_dtype(output, grad_out, "output and grad_out")
