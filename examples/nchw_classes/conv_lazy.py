"""Lazily-initialised NCHW conv: the weights are created on the first forward, from x.shape[1]. Correct.

LazyConv2D(out_channels, kernel_size, stride=1, padding=0): before the first forward self.W is None;
the first forward creates self.W (F, C, k, k) with C = x.shape[1] and self.b (F,) zeros. Later
forwards reuse them (a different channel count then raises ValueError). Square kernel (int);
stride/padding ints. backward(dout) -> dx; gradients in self.dW, self.db.
To load given weights: run one forward on an input of the right shape first, then assign self.W / self.b.
"""

import numpy as np


class LazyConv2D:
    def __init__(self, out_channels, kernel_size, stride=1, padding=0, seed=None):
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.rng = np.random.default_rng(seed)
        self.W = None
        self.b = None

    def _build(self, in_channels):
        k = self.kernel_size
        self.W = self.rng.standard_normal((self.out_channels, in_channels, k, k)) / np.sqrt(in_channels * k * k)
        self.b = np.zeros(self.out_channels)

    def forward(self, x):
        if self.W is None:
            self._build(x.shape[1])
        elif x.shape[1] != self.W.shape[1]:
            raise ValueError(f"LazyConv2D was built for {self.W.shape[1]} channels, got {x.shape[1]}")
        k, s, p = self.kernel_size, self.stride, self.padding
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        N, _, Hp, Wp = xp.shape
        Ho, Wo = (Hp - k) // s + 1, (Wp - k) // s + 1
        out = np.empty((N, self.out_channels, Ho, Wo), dtype=x.dtype)
        for i in range(Ho):
            for j in range(Wo):
                patch = xp[:, :, i * s : i * s + k, j * s : j * s + k]
                out[:, :, i, j] = np.einsum("nchw,fchw->nf", patch, self.W)
        self.xp, self.x_hw = xp, x.shape[2:]
        return out + self.b[:, None, None]

    def backward(self, dout):
        k, s, p = self.kernel_size, self.stride, self.padding
        self.dW = np.zeros_like(self.W)
        dxp = np.zeros_like(self.xp)
        for i in range(dout.shape[2]):
            for j in range(dout.shape[3]):
                g = dout[:, :, i, j]
                patch = self.xp[:, :, i * s : i * s + k, j * s : j * s + k]
                self.dW += np.einsum("nf,nchw->fchw", g, patch)
                dxp[:, :, i * s : i * s + k, j * s : j * s + k] += np.einsum("nf,fchw->nchw", g, self.W)
        self.db = dout.sum(axis=(0, 2, 3))
        H, W = self.x_hw
        return dxp[:, :, p : p + H, p : p + W]
