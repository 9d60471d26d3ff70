"""Inverted dropout in training mode, one formula per function.

p is the DROP probability (PyTorch's convention) and keep = 1 - p; a mask m of 0s and 1s (1 = kept) is drawn
once, and the kept entries are scaled by 1 / keep so that the output's expectation is the input:

    y = x * m / keep        dx = G * m / keep
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Real

import numpy as np

from cnn._args import require_array, require_shape


def keep_probability(p: object) -> float:
    """keep = 1 - p for a drop probability p in [0, 1) (p = 1 would keep nothing and divide by 0)."""
    if isinstance(p, bool) or not isinstance(p, Real) or not 0 <= p < 1:
        raise ValueError(f"p (the drop probability) must be a number in [0, 1), got {p!r}")
    return 1.0 - float(p)


def dropout_mask(shape: Sequence[int], p: float, seed: int) -> np.ndarray:
    """m: True (kept) with probability 1 - p per entry, independently, from np.random.default_rng(seed)."""
    keep = keep_probability(p)
    return np.random.default_rng(seed).random(tuple(shape)) < keep


def _require_keep(keep: object) -> float:
    """keep: a number in (0, 1]."""
    if isinstance(keep, bool) or not isinstance(keep, Real) or not 0 < keep <= 1:
        raise ValueError(f"keep (the keep probability) must be a number in (0, 1], got {keep!r}")
    return float(keep)


def _require_mask(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
        raise ValueError(f"mask must be a boolean numpy array, got {getattr(mask, 'dtype', type(mask).__name__)}")
    require_shape(mask, shape, "mask")
    return mask


def dropout(x: np.ndarray, mask: np.ndarray, keep: float) -> np.ndarray:
    """y = x * m / keep."""
    require_array(x, "input", tuple(range(1, 9)))
    m = _require_mask(mask, x.shape)
    return (x * m / _require_keep(keep)).astype(x.dtype, copy=False)


def dropout_backward(grad_out: np.ndarray, mask: np.ndarray, keep: float) -> np.ndarray:
    """dx = G * m / keep (the same mask and scale as the forward)."""
    require_array(grad_out, "grad_out", tuple(range(1, 9)))
    m = _require_mask(mask, grad_out.shape)
    return (grad_out * m / _require_keep(keep)).astype(grad_out.dtype, copy=False)
