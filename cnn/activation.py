"""ReLU and its mask."""

from __future__ import annotations

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
