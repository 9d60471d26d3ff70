"""Array primitives the convolution identities are written in: padding, stride dilation, rotation,
and batched valid cross-correlation.

Layout: images (N, C, H, W), kernels (F, C, kh, kw). Every function acts on the last two axes.
This module holds the formulas; the performance machinery that computes the correlations fast
(flat windows, phase planes, scratch buffers, BLAS product splitting) is cnn/_fast.py.
"""

from __future__ import annotations

import numpy as np

from cnn import _fast
from cnn._args import Pair


def pad2d(x: np.ndarray, padding: Pair, value: float = 0.0) -> np.ndarray:
    """X~ = X surrounded by ``padding = (ph, pw)`` rows/columns of ``value`` on both sides of H and W.

    Returns ``x`` itself (not a copy) when there is nothing to pad; callers never write into it.
    """
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    h, w = x.shape[-2:]
    out = np.full(x.shape[:-2] + (h + 2 * ph, w + 2 * pw), value, dtype=x.dtype)
    out[..., ph : ph + h, pw : pw + w] = x
    return out


def dilate2d(x: np.ndarray, factor: Pair) -> np.ndarray:
    """Insert ``factor - 1`` zeros between neighbouring entries of the last two axes.

    out[..., i * sh, j * sw] = x[..., i, j]; every other entry is 0. Shape (..., (H-1)*sh+1, (W-1)*sw+1).
    """
    sh, sw = factor
    if sh == 1 and sw == 1:
        return x
    h, w = x.shape[-2:]
    out = np.zeros(x.shape[:-2] + ((h - 1) * sh + 1, (w - 1) * sw + 1), dtype=x.dtype)
    out[..., ::sh, ::sw] = x
    return out


def rot180(k: np.ndarray) -> np.ndarray:
    """rot180(K)[..., u, v] = K[..., kh-1-u, kw-1-v] (a view)."""
    return k[..., ::-1, ::-1]


def corr_output_size(size: int, kernel: int, stride: int, dilation: int) -> int:
    """Positions a dilated kernel fits at: floor((size - d*(k-1) - 1) / s) + 1 (may be <= 0)."""
    return (size - dilation * (kernel - 1) - 1) // stride + 1


def window_view(x: np.ndarray, start: Pair, count: Pair, step: Pair) -> np.ndarray:
    """The strided view V[..., i, j] = x[..., a + s*i, b + t*j] for i < n, j < m, with
    ``start = (a, b)``, ``count = (n, m)``, ``step = (s, t)``; shape x.shape[:-2] + (n, m).

    A view, not a copy: writing into it writes into ``x``. Tap (u, v) of every pooling window at
    once is window_view(X~, (u, v), (Ho, Wo), stride); window (i, j) of a correlation is
    window_view(x, (i*sh, j*sw), (kh, kw), dilation). Needs a + s*(n-1) < H and b + t*(m-1) < W.
    """
    (a, b), (n, m), (s, t) = start, count, step
    return x[..., a : a + s * (n - 1) + 1 : s, b : b + t * (m - 1) + 1 : t]


def corr2d(x: np.ndarray, k: np.ndarray, stride: Pair = (1, 1), dilation: Pair = (1, 1)) -> np.ndarray:
    """Batched valid cross-correlation, summed over input channels.

    out[n, f, i, j] = sum_{c, u, v} x[n, c, i*sh + u*dh, j*sw + v*dw] * k[f, c, u, v]
    x (N, C, H, W), k (F, C, kh, kw) -> (N, F, Ho, Wo), Ho = floor((H - dh*(kh-1) - 1)/sh) + 1.

    The sum runs as matrix products whose operands are gathered (or, where they can be, viewed in
    place) with a Python loop over whichever is smaller, the kh*kw kernel taps or the Ho*Wo output
    positions, so neither the big-kernel case (weight gradients, where the "kernel" is dL/dZ) nor
    the big-image case loops per pixel.
    """
    h, w = x.shape[2:]
    kh, kw = k.shape[2:]
    ho = corr_output_size(h, kh, stride[0], dilation[0])
    wo = corr_output_size(w, kw, stride[1], dilation[1])
    return _fast.corr(x, k, (ho, wo), stride, dilation)


def corr2d_full(g: np.ndarray, k: np.ndarray, dilation: Pair = (1, 1)) -> np.ndarray:
    """Full cross-correlation of g with rot180(k), summed over k's first axis.

    out[n, c, y, x] = sum_{f, u, v} g[n, f, y - u*dh, x - v*dw] * k[f, c, u, v]   (out-of-range g = 0)
    = corr2d(pad(g, d*(k-1)), rot180(k) with axes F and C swapped, dilation d).
    g (N, F, Hg, Wg), k (F, C, kh, kw) -> (N, C, Hg + dh*(kh-1), Wg + dw*(kw-1)).
    """
    kh, kw = k.shape[-2:]
    reach = (dilation[0] * (kh - 1), dilation[1] * (kw - 1))
    if g.size and k.size and np.isfinite(k).all():
        return _fast.scatter(g, k, (1, 1), dilation, (g.shape[2] + reach[0], g.shape[3] + reach[1]))
    flipped = np.ascontiguousarray(rot180(k).transpose(1, 0, 2, 3))
    return corr2d(pad2d(g, reach), flipped, (1, 1), dilation)


def _corr_transposed(g: np.ndarray, k: np.ndarray, stride: Pair, dilation: Pair, out_hw: Pair) -> np.ndarray:
    """Adjoint of corr2d in x: out[n, c, i*sh + u*dh, j*sw + v*dw] += g[n, f, i, j] * k[f, c, u, v].

    g (N, F, Hg, Wg), k (F, C, kh, kw) -> (N, C, *out_hw); out_hw must hold every tap
    (out_hw[0] >= (Hg-1)*sh + dh*(kh-1) + 1, same for W); rows and columns no tap reaches are 0.
    Equals corr2d_full(dilate2d(g, stride), k, dilation) zero-padded at the bottom/right to
    out_hw, without multiplying the zeros that dilate2d inserts.
    """
    n, f, hg, wg = g.shape
    c, kh, kw = k.shape[1:]
    need = ((hg - 1) * stride[0] + dilation[0] * (kh - 1) + 1, (wg - 1) * stride[1] + dilation[1] * (kw - 1) + 1)
    if out_hw[0] < need[0] or out_hw[1] < need[1]:
        raise ValueError(f"output size {out_hw} cannot hold the taps of g {g.shape} and k {k.shape}: needs {need}")
    if g.size and k.size and np.isfinite(k).all():
        return _fast.scatter(g, k, stride, dilation, out_hw)
    reached = corr2d_full(dilate2d(g, stride), k, dilation)
    out = np.zeros((n, c) + tuple(out_hw), dtype=reached.dtype)
    out[:, :, : reached.shape[2], : reached.shape[3]] = reached
    return out
