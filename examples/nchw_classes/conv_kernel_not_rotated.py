"""BUG: the input gradient is the full cross-correlation of dout with the kernel NOT rotated by 180 degrees.

The classic "kernel not rotated": in the convolution formulation dx~ = full_corr(dilate(dout), rot180(W));
this layer forgets rot180, so dx is wrong unless every kernel slice W[f, c] is symmetric under a half
turn (e.g. 1 x 1 kernels). dW and db are right.
Same interface as conv.Conv2D: self.W (F, C, kh, kw), self.b (F,), self.dW, self.db; backward -> dx;
stride and padding ints.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _pad(x, p):
    return np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))


def _dilate(g, s):
    n, f, h, w = g.shape
    out = np.zeros((n, f, s * (h - 1) + 1, s * (w - 1) + 1), dtype=g.dtype)
    out[:, :, ::s, ::s] = g
    return out


class ConvKernelNotRotated:
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, seed=None):
        kh, kw = (kernel_size, kernel_size) if np.isscalar(kernel_size) else kernel_size
        rng = np.random.default_rng(seed)
        self.W = rng.standard_normal((out_channels, in_channels, kh, kw)) * np.sqrt(2.0 / (in_channels * kh * kw))
        self.b = np.zeros(out_channels)
        self.stride = stride
        self.padding = padding

    def forward(self, x):
        self.x = x
        s = self.stride
        windows = sliding_window_view(_pad(x, self.padding), self.W.shape[2:], axis=(2, 3))[:, :, ::s, ::s]
        return np.einsum("nchwuv,fcuv->nfhw", windows, self.W) + self.b[:, None, None]

    def backward(self, dout):
        _, _, kh, kw = self.W.shape
        p, s = self.padding, self.stride
        xp = _pad(self.x, p)
        gd = _dilate(dout, s)
        windows = sliding_window_view(xp, gd.shape[2:], axis=(2, 3))[:, :, :kh, :kw]
        self.dW = np.einsum("ncuvhw,nfhw->fcuv", windows, gd)
        self.db = dout.sum(axis=(0, 2, 3))
        full = np.pad(gd, ((0, 0), (0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1)))
        windows = sliding_window_view(full, (kh, kw), axis=(2, 3))
        reached = np.einsum("nfhwuv,fcuv->nchw", windows, self.W)  # should be self.W[:, :, ::-1, ::-1]
        dxp = np.zeros_like(xp)
        dxp[:, :, : reached.shape[2], : reached.shape[3]] = reached
        return dxp[:, :, p : p + self.x.shape[2], p : p + self.x.shape[3]]
