"""Array primitives the convolution identities are written in: padding, stride dilation, rotation,
and batched valid cross-correlation.

Layout: images (N, C, H, W), kernels (F, C, kh, kw). Every function acts on the last two axes.
"""

from __future__ import annotations

import numpy as np

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


def _tap(x: np.ndarray, start: Pair, count: Pair, step: Pair) -> np.ndarray:
    """The strided view x[..., a + step*i, b + step*j] for i < count[0], j < count[1]."""
    (a, b), (n, m), (s, t) = start, count, step
    return x[..., a : a + s * (n - 1) + 1 : s, b : b + t * (m - 1) + 1 : t]


def corr2d(x: np.ndarray, k: np.ndarray, stride: Pair = (1, 1), dilation: Pair = (1, 1)) -> np.ndarray:
    """Batched valid cross-correlation, summed over input channels.

    out[n, f, i, j] = sum_{c, u, v} x[n, c, i*sh + u*dh, j*sw + v*dw] * k[f, c, u, v]
    x (N, C, H, W), k (F, C, kh, kw) -> (N, F, Ho, Wo), Ho = floor((H - dh*(kh-1) - 1)/sh) + 1.

    The sum is one matrix product. Its operand is gathered with a Python loop over whichever is
    smaller, the kh*kw kernel taps or the Ho*Wo output positions, so neither the big-kernel case
    (weight gradients, where the "kernel" is dL/dZ) nor the big-image case loops per pixel.
    """
    n, c, h, w = x.shape
    f, _, kh, kw = k.shape
    ho = corr_output_size(h, kh, stride[0], dilation[0])
    wo = corr_output_size(w, kw, stride[1], dilation[1])
    if kh * kw <= ho * wo:
        return _corr_gather_taps(x, k, (ho, wo), stride, dilation)
    return _corr_gather_outputs(x, k, (ho, wo), stride, dilation)


def _corr_gather_taps(x: np.ndarray, k: np.ndarray, out_hw: Pair, stride: Pair, dilation: Pair) -> np.ndarray:
    """im2col by kernel taps: cols[c, u, v, n, i, j] = x[n, c, i*s + u*d, j*s + v*d]; out = K @ cols."""
    n, c = x.shape[:2]
    f, _, kh, kw = k.shape
    ho, wo = out_hw
    cols = np.empty((c, kh, kw, n, ho, wo), dtype=np.result_type(x, k))
    xt = x.transpose(1, 0, 2, 3)
    for u in range(kh):
        for v in range(kw):
            cols[:, u, v] = _tap(xt, (u * dilation[0], v * dilation[1]), out_hw, stride)
    out = k.reshape(f, c * kh * kw) @ cols.reshape(c * kh * kw, n * ho * wo)
    return out.reshape(f, n, ho, wo).transpose(1, 0, 2, 3)


def _corr_gather_outputs(x: np.ndarray, k: np.ndarray, out_hw: Pair, stride: Pair, dilation: Pair) -> np.ndarray:
    """Per output position (i, j): out[:, :, i, j] = sum_{c,u,v} x[:, c, i*s + u*d, j*s + v*d] k[:, c, u, v]."""
    n, c = x.shape[:2]
    f, _, kh, kw = k.shape
    ho, wo = out_hw
    out = np.empty((n, f, ho, wo), dtype=np.result_type(x, k))
    kmat = k.reshape(f, c * kh * kw).T
    for i in range(ho):
        for j in range(wo):
            patch = _tap(x, (i * stride[0], j * stride[1]), (kh, kw), dilation)
            out[:, :, i, j] = patch.reshape(n, c * kh * kw) @ kmat
    return out


def corr2d_full(g: np.ndarray, k: np.ndarray, dilation: Pair = (1, 1)) -> np.ndarray:
    """Full cross-correlation of g with rot180(k), summed over k's first axis.

    out[n, c, y, x] = sum_{f, u, v} g[n, f, y - u*dh, x - v*dw] * k[f, c, u, v]   (out-of-range g = 0)
    = corr2d(pad(g, d*(k-1)), rot180(k) with axes F and C swapped, dilation d).
    g (N, F, Hg, Wg), k (F, C, kh, kw) -> (N, C, Hg + dh*(kh-1), Wg + dw*(kw-1)).
    """
    kh, kw = k.shape[-2:]
    reach = (dilation[0] * (kh - 1), dilation[1] * (kw - 1))
    flipped = np.ascontiguousarray(rot180(k).transpose(1, 0, 2, 3))
    return corr2d(pad2d(g, reach), flipped, (1, 1), dilation)
