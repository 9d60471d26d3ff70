"""NCHW convolution layer with its parameter gradients stored as attributes. Correct.

Conv2D(in_channels, out_channels, kernel_size, stride=1, padding=0): kernel_size int or (kh, kw);
stride and padding ints (the same for both spatial axes; zero padding).
Parameters self.W (F, C, kh, kw) and self.b (F,); forward(x (N, C, H, W)) -> (N, F, Ho, Wo);
backward(dout) -> dx, and sets self.dW, self.db (overwritten on every call).

The backward is written in the "convolution" formulation of gradients.md: dout is dilated by the
stride; dW is the valid cross-correlation of the padded input with it, dx~ is the FULL
cross-correlation of it with the 180-degree rotated kernel, then the padding is cropped off.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _pad(x, p):
    return np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))


def _dilate(g, s):
    """Insert s - 1 zeros between neighbouring entries along H and W."""
    n, f, h, w = g.shape
    out = np.zeros((n, f, s * (h - 1) + 1, s * (w - 1) + 1), dtype=g.dtype)
    out[:, :, ::s, ::s] = g
    return out


def _rot180(k):
    return k[:, :, ::-1, ::-1]


class Conv2D:
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, seed=None):
        kh, kw = (kernel_size, kernel_size) if np.isscalar(kernel_size) else kernel_size
        rng = np.random.default_rng(seed)
        scale = np.sqrt(2.0 / (in_channels * kh * kw))
        self.W = rng.standard_normal((out_channels, in_channels, kh, kw)) * scale
        self.b = np.zeros(out_channels)
        self.stride = stride
        self.padding = padding
        self.dW = None
        self.db = None

    def forward(self, x):
        self.x = x
        s = self.stride
        windows = sliding_window_view(_pad(x, self.padding), self.W.shape[2:], axis=(2, 3))[:, :, ::s, ::s]
        return np.einsum("nchwuv,fcuv->nfhw", windows, self.W) + self.b[:, None, None]

    def backward(self, dout):
        F, C, kh, kw = self.W.shape
        p, s = self.padding, self.stride
        xp = _pad(self.x, p)
        gd = _dilate(dout, s)
        # dW[f, c] = valid cross-correlation of xp[n, c] with gd[n, f], summed over n (first kh x kw entries)
        windows = sliding_window_view(xp, gd.shape[2:], axis=(2, 3))[:, :, :kh, :kw]
        self.dW = np.einsum("ncuvhw,nfhw->fcuv", windows, gd)
        self.db = dout.sum(axis=(0, 2, 3))
        # dx~ = full cross-correlation of gd with rot180(W), summed over f
        full = np.pad(gd, ((0, 0), (0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1)))
        windows = sliding_window_view(full, (kh, kw), axis=(2, 3))
        reached = np.einsum("nfhwuv,fcuv->nchw", windows, _rot180(self.W))
        dxp = np.zeros_like(xp)
        dxp[:, :, : reached.shape[2], : reached.shape[3]] = reached  # rows no window reached stay 0
        return dxp[:, :, p : p + self.x.shape[2], p : p + self.x.shape[3]]
