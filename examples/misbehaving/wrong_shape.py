"""MISBEHAVES: arrays of the wrong shape (right values).

- ConvChannelsLastOutput: forward returns (N, Ho, Wo, F) instead of (N, F, Ho, Wo) (a stray
  transpose); NCHW class, self.W (F, C, k, k), self.b (F,), stride 1, no padding. Its backward
  expects dout in the same (N, Ho, Wo, F) layout, so a harness must stop at the forward shape.
- ReLUFlatGrad: backward returns dx flattened to 1-D (x.size,) instead of x's shape.
"""

import numpy as np


class ConvChannelsLastOutput:
    def __init__(self, in_channels, out_channels, kernel_size, seed=None):
        rng = np.random.default_rng(seed)
        self.W = rng.standard_normal((out_channels, in_channels, kernel_size, kernel_size)) * 0.1
        self.b = np.zeros(out_channels)

    def forward(self, x):
        self.x = x
        k = self.W.shape[2]
        Ho, Wo = x.shape[2] - k + 1, x.shape[3] - k + 1
        out = np.empty((x.shape[0], Ho, Wo, self.W.shape[0]), dtype=x.dtype)
        for i in range(Ho):
            for j in range(Wo):
                out[:, i, j, :] = np.einsum("nchw,fchw->nf", x[:, :, i : i + k, j : j + k], self.W) + self.b
        return out

    def backward(self, dout):
        k = self.W.shape[2]
        self.dW = np.zeros_like(self.W)
        dx = np.zeros_like(self.x)
        for i in range(dout.shape[1]):
            for j in range(dout.shape[2]):
                self.dW += np.einsum("nf,nchw->fchw", dout[:, i, j, :], self.x[:, :, i : i + k, j : j + k])
                dx[:, :, i : i + k, j : j + k] += np.einsum("nf,fchw->nchw", dout[:, i, j, :], self.W)
        self.db = dout.sum(axis=(0, 1, 2))
        return dx


class ReLUFlatGrad:
    def forward(self, x):
        self.x = x
        return np.maximum(x, 0)

    def backward(self, dout):
        return (dout * (self.x > 0)).ravel()
