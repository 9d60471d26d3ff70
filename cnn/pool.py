"""2-D max pooling: forward with first-maximum argmax, backward that routes each window's gradient.

Floor mode as in PyTorch: Ho = floor((H + 2p - kh) / sh) + 1; padding is -inf and at most half the
kernel, so every window holds at least one real input.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cnn._args import Pair, pair, require_array, require_shape
from cnn.ops import _tap, corr_output_size, pad2d

IntOrPair = int | Sequence[int]


def pool_geometry(kernel_size: IntOrPair, stride: IntOrPair | None, padding: IntOrPair) -> tuple[Pair, Pair, Pair]:
    """Normalise (kernel, stride, padding); stride defaults to the kernel; padding <= kernel // 2."""
    k = pair(kernel_size, "kernel_size", minimum=1)
    s = k if stride is None else pair(stride, "stride", minimum=1)
    p = pair(padding, "padding", minimum=0)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"padding {p} must be at most half the kernel {k}")
    return k, s, p


def max_pool2d_output_shape(input_shape: Sequence[int], kernel: Pair, stride: Pair, padding: Pair) -> tuple[int, ...]:
    """(N, C, Ho, Wo), Ho = floor((H + 2p - kh) / sh) + 1; ValueError when the kernel does not fit."""
    n, c, h, w = input_shape
    ho = corr_output_size(h + 2 * padding[0], kernel[0], stride[0], 1)
    wo = corr_output_size(w + 2 * padding[1], kernel[1], stride[1], 1)
    if ho < 1 or wo < 1:
        raise ValueError(
            f"pool kernel {kernel} is larger than the padded input {(h + 2 * padding[0], w + 2 * padding[1])}"
            f" (input {tuple(input_shape)}, padding {padding})"
        )
    return n, c, ho, wo


def max_pool2d(
    x: np.ndarray, kernel_size: IntOrPair, stride: IntOrPair | None = None, padding: IntOrPair = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Y[n,c,i,j] = max_{u<kh, v<kw} X~[n, c, i*sh + u, j*sw + v], X~ padded with -inf.

    Returns (Y, argmax) where argmax[n,c,i,j] = u*kw + v of the FIRST maximum in row-major order
    (PyTorch's choice), as int64.
    """
    k, s, p = pool_geometry(kernel_size, stride, padding)
    require_array(x, "input", 4)
    out_shape = max_pool2d_output_shape(x.shape, k, s, p)
    xp = pad2d(x, p, value=-np.inf)
    best = np.full(out_shape, -np.inf, dtype=x.dtype)
    argmax = np.zeros(out_shape, dtype=np.int64)
    for u in range(k[0]):
        for v in range(k[1]):
            candidate = _tap(xp, (u, v), out_shape[2:], s)
            # Strict '>' keeps the first maximum, so ties resolve to the earliest tap.
            better = candidate > best
            np.copyto(best, candidate, where=better)
            argmax[better] = u * k[1] + v
    return best, argmax


def max_pool2d_backward(
    grad_out: np.ndarray,
    argmax: np.ndarray,
    input_shape: Sequence[int],
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
    padding: IntOrPair = 0,
) -> np.ndarray:
    """dX~[n, c, i*sh + u, j*sw + v] += G[n,c,i,j] for the tap (u, v) = argmax[n,c,i,j]; dX = crop_p(dX~).

    Overlapping windows (s < k) add up; positions no window reached, and padding, get nothing.
    """
    k, s, p = pool_geometry(kernel_size, stride, padding)
    require_array(grad_out, "grad_out", 4)
    n, c, h, w = (int(v) for v in input_shape)
    expected = max_pool2d_output_shape((n, c, h, w), k, s, p)
    require_shape(grad_out, expected, "grad_out")
    require_shape(argmax, expected, "argmax")
    dxp = np.zeros((n, c, h + 2 * p[0], w + 2 * p[1]), dtype=grad_out.dtype)
    for u in range(k[0]):
        for v in range(k[1]):
            routed = np.where(argmax == u * k[1] + v, grad_out, 0)
            _tap(dxp, (u, v), expected[2:], s)[...] += routed
    return dxp[:, :, p[0] : p[0] + h, p[1] : p[1] + w].copy()
