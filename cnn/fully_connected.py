"""Fully connected layer and flatten, on batches (N, ...) flattened to (N, D)."""

from __future__ import annotations

import numpy as np

from cnn._args import require_array, require_same_dtype, require_shape


def flatten(x: np.ndarray) -> np.ndarray:
    """(N, d1, d2, ...) -> (N, d1*d2*...), row-major (a view when x is contiguous)."""
    require_array(x, "input", tuple(range(1, 9)))
    return x.reshape(x.shape[0], -1)


def unflatten(grad_out: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
    """The backward of flatten: dX = G reshaped to X's shape."""
    require_array(grad_out, "grad_out", tuple(range(1, 9)))
    require_shape(grad_out, (input_shape[0], int(np.prod(input_shape[1:], dtype=np.int64))), "grad_out")
    return grad_out.reshape(input_shape)


def dense(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """Y = flatten(X) W + b with W (D, M), b (M,)."""
    require_array(x, "input", tuple(range(2, 9)))
    require_array(weight, "weight", 2)
    require_same_dtype(x, weight, "input and weight")
    flat = flatten(x)
    if flat.shape[1] != weight.shape[0]:
        raise ValueError(
            f"input {x.shape} flattens to {flat.shape[1]} features but weight {weight.shape} expects {weight.shape[0]}"
        )
    y = flat @ weight
    if bias is not None:
        require_array(bias, "bias", 1)
        require_same_dtype(x, bias, "input and bias")
        require_shape(bias, (weight.shape[1],), "bias")
        y = y + bias
    return y


def _check_grad_out(grad_out: np.ndarray, n: int, weight: np.ndarray) -> None:
    require_array(grad_out, "grad_out", 2)
    require_same_dtype(weight, grad_out, "weight and grad_out")
    require_shape(grad_out, (n, weight.shape[1]), "grad_out")


def dense_grad_input(grad_out: np.ndarray, weight: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
    """dX = G W^T, reshaped to X's original shape."""
    _check_grad_out(grad_out, input_shape[0], weight)
    features = int(np.prod(input_shape[1:], dtype=np.int64))
    if features != weight.shape[0]:
        raise ValueError(
            f"input_shape {tuple(input_shape)} has {features} features "
            f"but weight {weight.shape} expects {weight.shape[0]}"
        )
    return (grad_out @ weight.T).reshape(input_shape)


def dense_grad_weight(grad_out: np.ndarray, x: np.ndarray) -> np.ndarray:
    """dW = flatten(X)^T G, shape (D, M)."""
    require_array(grad_out, "grad_out", 2)
    flat = flatten(x)
    require_same_dtype(grad_out, x, "grad_out and input")
    if grad_out.shape[0] != flat.shape[0]:
        raise ValueError(f"grad_out {grad_out.shape} and input {x.shape} disagree on the batch size")
    return flat.T @ grad_out


def dense_grad_bias(grad_out: np.ndarray) -> np.ndarray:
    """db = sum_n G[n, :]."""
    require_array(grad_out, "grad_out", 2)
    return grad_out.sum(axis=0)
