"""MISBEHAVES: backward stores self.dW / self.db correctly but forgets `return dx` (returns None).

NCHW class: ConvForgotReturn(in_channels, out_channels, kernel_size); self.W (F, C, k, k), self.b (F,),
gradients in self.dW, self.db (both right); stride 1, no padding. Declared convention: backward -> dx.
"""

import numpy as np


class ConvForgotReturn:
    def __init__(self, in_channels, out_channels, kernel_size, seed=None):
        rng = np.random.default_rng(seed)
        self.W = rng.standard_normal((out_channels, in_channels, kernel_size, kernel_size)) * 0.1
        self.b = np.zeros(out_channels)

    def forward(self, x):
        self.x = x
        k = self.W.shape[2]
        Ho, Wo = x.shape[2] - k + 1, x.shape[3] - k + 1
        out = np.empty((x.shape[0], self.W.shape[0], Ho, Wo), dtype=x.dtype)
        for i in range(Ho):
            for j in range(Wo):
                out[:, :, i, j] = np.einsum("nchw,fchw->nf", x[:, :, i : i + k, j : j + k], self.W) + self.b
        return out

    def backward(self, dout):
        k = self.W.shape[2]
        self.dW = np.zeros_like(self.W)
        dx = np.zeros_like(self.x)
        for i in range(dout.shape[2]):
            for j in range(dout.shape[3]):
                self.dW += np.einsum("nf,nchw->fchw", dout[:, :, i, j], self.x[:, :, i : i + k, j : j + k])
                dx[:, :, i : i + k, j : j + k] += np.einsum("nf,fchw->nchw", dout[:, :, i, j], self.W)
        self.db = dout.sum(axis=(0, 2, 3))
