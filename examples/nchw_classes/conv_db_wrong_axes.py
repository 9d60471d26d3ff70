"""BUG: the bias gradient is summed over the wrong axes: dout.sum(axis=(0, 1, 2)), a channels-last habit.

In NCHW the filters are axis 1, so the right sum is over (0, 2, 3). Summing over (0, 1, 2) adds up
the filters and keeps the output WIDTH axis: self.db has shape (Wo,) instead of (F,), and even when
Wo == F the values are wrong. dx and dW are right.
Interface as conv.Conv2D: self.W (F, C, k, k), self.b (F,), gradients in self.dW, self.db;
backward -> dx. Square kernel (int), stride/padding ints.
"""

import numpy as np


class ConvBiasWrongAxes:
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, seed=None):
        rng = np.random.default_rng(seed)
        self.W = rng.standard_normal((out_channels, in_channels, kernel_size, kernel_size)) * 0.1
        self.b = np.zeros(out_channels)
        self.stride = stride
        self.padding = padding

    def forward(self, x):
        s, p, k = self.stride, self.padding, self.W.shape[2]
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        Ho, Wo = (xp.shape[2] - k) // s + 1, (xp.shape[3] - k) // s + 1
        out = np.zeros((x.shape[0], self.W.shape[0], Ho, Wo), dtype=x.dtype)
        for u in range(k):
            for v in range(k):
                tap = xp[:, :, u : u + s * (Ho - 1) + 1 : s, v : v + s * (Wo - 1) + 1 : s]
                out += np.einsum("nchw,fc->nfhw", tap, self.W[:, :, u, v])
        self.x, self.xp = x, xp
        return out + self.b.reshape(1, -1, 1, 1)

    def backward(self, dout):
        s, p, k = self.stride, self.padding, self.W.shape[2]
        _, _, Ho, Wo = dout.shape
        self.dW = np.zeros_like(self.W)
        dxp = np.zeros_like(self.xp)
        for u in range(k):
            for v in range(k):
                rows = slice(u, u + s * (Ho - 1) + 1, s)
                cols = slice(v, v + s * (Wo - 1) + 1, s)
                self.dW[:, :, u, v] = np.einsum("nfhw,nchw->fc", dout, self.xp[:, :, rows, cols])
                dxp[:, :, rows, cols] += np.einsum("nfhw,fc->nchw", dout, self.W[:, :, u, v])
        self.db = dout.sum(axis=(0, 1, 2))  # should be axis=(0, 2, 3)
        return dxp[:, :, p : p + self.x.shape[2], p : p + self.x.shape[3]]
