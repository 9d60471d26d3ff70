"""2-D pooling. Max pooling: forward with first-maximum argmax, backward that routes each window's gradient.
Average pooling: each window's mean, backward that spreads each window's gradient evenly over its taps.

Floor mode as in PyTorch: Ho = floor((H + 2p - kh) / sh) + 1; padding is at most half the kernel, so every
window holds at least one real input. Max pooling pads with -inf; average pooling pads with zeros and
counts them (PyTorch's count_include_pad=True): the divisor is always kh*kw.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cnn._args import Pair, pair, require_array, require_shape
from cnn.ops import corr_output_size, pad2d, window_view

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
    taps = [(u, v) for u in range(k[0]) for v in range(k[1])]
    # Each tap is first copied into a contiguous buffer (one strided pass); everything after it
    # runs on contiguous arrays with plain arithmetic (masked copies and np.where are several
    # times slower than these). Running maximum: best starts at tap 0 with NaN turned into -inf,
    # and fmax keeps it NaN-free, so a NaN never wins. A tap wins where it is strictly greater,
    # so ties keep the earliest tap; as taps come in increasing order, the winner's index is
    # max(argmax, index * better).
    candidate = np.empty(out_shape, dtype=x.dtype)
    np.copyto(candidate, window_view(xp, taps[0], out_shape[2:], s))
    best = np.fmax(candidate, -np.inf)
    index_type = np.min_scalar_type(len(taps) - 1)
    winner = np.zeros(out_shape, dtype=index_type)
    better = np.empty(out_shape, dtype=bool)
    scaled = np.empty(out_shape, dtype=index_type)
    for index, (u, v) in enumerate(taps[1:], start=1):
        np.copyto(candidate, window_view(xp, (u, v), out_shape[2:], s))
        np.greater(candidate, best, out=better)
        np.fmax(best, candidate, out=best)
        np.multiply(better, index_type.type(index), out=scaled)
        np.maximum(winner, scaled, out=winner)
    argmax = winner.astype(np.int64)
    if np.isnan(x).any() or (p != (0, 0) and np.isneginf(best).any()):
        _rare_windows(xp, best, argmax, taps, out_shape, s, p, x.shape[2:])
    return best, argmax


def _rare_windows(xp, best, argmax, taps, out_shape, stride, padding, hw) -> None:
    """Windows the running maximum gets wrong, fixed in place (rare: only when they occur).

    - A NaN propagates as in PyTorch: the window's maximum is NaN, its argmax the first NaN tap.
    - A window whose real inputs are all -inf ties with the -inf padding: its argmax must be the
      first REAL tap, so the gradient reaches an input instead of vanishing into the padding.
    """
    rows = np.arange(out_shape[2])[:, None] * stride[0]
    cols = np.arange(out_shape[3])[None, :] * stride[1]
    nan_done = np.zeros(out_shape, dtype=bool)
    inf_todo = np.isneginf(best)
    for index, (u, v) in enumerate(taps):
        candidate = window_view(xp, (u, v), out_shape[2:], stride)
        is_nan = np.isnan(candidate) & ~nan_done
        best[is_nan] = np.nan
        argmax[is_nan] = index
        nan_done |= is_nan
        real = (
            (rows + u >= padding[0])
            & (rows + u < padding[0] + hw[0])
            & (cols + v >= padding[1])
            & (cols + v < padding[1] + hw[1])
        )
        pick = inf_todo & real & ~nan_done
        argmax[pick] = index
        inf_todo &= ~pick


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
    if argmax.size and (argmax.min() < 0 or argmax.max() >= k[0] * k[1]):
        raise ValueError(
            f"argmax entries must lie in [0, {k[0] * k[1]}) for kernel {k}, got [{argmax.min()}, {argmax.max()}]"
        )
    dxp = np.zeros((n, c, h + 2 * p[0], w + 2 * p[1]), dtype=grad_out.dtype)
    # The windows of one tap never overlap, so each tap's share, G where argmax picked it and +0
    # elsewhere, goes into the tap's strided view of dX~ in one pass: a plain copy when windows of
    # different taps do not overlap either (stride >= kernel), an add otherwise. The share is
    # built with contiguous integer ops on G's bits (bits AND all-ones-or-zero), which is exact
    # for every G, inf and NaN included, and several times faster than np.where.
    disjoint = s[0] >= k[0] and s[1] >= k[1]
    bits = np.dtype(f"u{grad_out.dtype.itemsize}")
    g_bits = np.ascontiguousarray(grad_out).view(bits)
    ones = bits.type(np.iinfo(bits).max)
    picked = np.empty(expected, dtype=bool)
    mask = np.empty(expected, dtype=bits)
    share = np.empty(expected, dtype=grad_out.dtype)
    for u in range(k[0]):
        for v in range(k[1]):
            np.equal(argmax, u * k[1] + v, out=picked)
            np.multiply(picked, ones, out=mask)
            np.bitwise_and(g_bits, mask, out=share.view(bits))
            view = window_view(dxp, (u, v), expected[2:], s)
            if disjoint:  # dX~ is 0 there: 0 + share, which also turns a -0 into +0
                np.add(share, 0.0, out=view)
            else:
                np.add(view, share, out=view)
    if p == (0, 0):
        return dxp
    return dxp[:, :, p[0] : p[0] + h, p[1] : p[1] + w].copy()


def avg_pool2d(
    x: np.ndarray, kernel_size: IntOrPair, stride: IntOrPair | None = None, padding: IntOrPair = 0
) -> np.ndarray:
    """Y[n,c,i,j] = (1 / (kh*kw)) sum_{u<kh, v<kw} X~[n, c, i*sh + u, j*sw + v], X~ padded with zeros
    (the padding counts in the divisor, as PyTorch's default count_include_pad=True)."""
    k, s, p = pool_geometry(kernel_size, stride, padding)
    require_array(x, "input", 4)
    out_shape = max_pool2d_output_shape(x.shape, k, s, p)  # the same floor formula for every pool
    xp = pad2d(x, p)
    total = np.zeros(out_shape, dtype=x.dtype)
    for u in range(k[0]):  # one strided view per tap: a loop over kh*kw taps, never over output positions
        for v in range(k[1]):
            total += window_view(xp, (u, v), out_shape[2:], s)
    return total / (k[0] * k[1])


def avg_pool2d_backward(
    grad_out: np.ndarray,
    input_shape: Sequence[int],
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
    padding: IntOrPair = 0,
) -> np.ndarray:
    """dX~[n, c, i*sh + u, j*sw + v] += G[n,c,i,j] / (kh*kw) for every tap (u, v); dX = crop_p(dX~).

    Overlapping windows (s < k) add up; the shares that land on the padding are dropped with it.
    """
    k, s, p = pool_geometry(kernel_size, stride, padding)
    require_array(grad_out, "grad_out", 4)
    n, c, h, w = (int(v) for v in input_shape)
    expected = max_pool2d_output_shape((n, c, h, w), k, s, p)
    require_shape(grad_out, expected, "grad_out")
    share = grad_out / (k[0] * k[1])
    dxp = np.zeros((n, c, h + 2 * p[0], w + 2 * p[1]), dtype=grad_out.dtype)
    for u in range(k[0]):  # the windows of one tap never overlap: each view is written once per tap
        for v in range(k[1]):
            view = window_view(dxp, (u, v), expected[2:], s)
            view += share
    return dxp[:, :, p[0] : p[0] + h, p[1] : p[1] + w].copy()
