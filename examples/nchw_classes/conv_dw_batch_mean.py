"""BUG: the weight gradient is divided by the batch size (self.dW = ... / N).

The author averaged "to make the learning rate independent of the batch size", but the loss being
differentiated is not averaged, so dW is N times too small. Invisible when N == 1. dx and db are right.
Interface as conv.Conv2D: self.W (F, C, k, k), self.b (F,), gradients in self.dW, self.db;
backward -> dx. Square kernel (int), stride/padding ints.
"""

import numpy as np


class ConvWeightBatchMean:
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, seed=None):
        rng = np.random.default_rng(seed)
        self.W = 0.1 * rng.standard_normal((out_channels, in_channels, kernel_size, kernel_size))
        self.b = np.zeros(out_channels)
        self.stride = stride
        self.padding = padding

    def forward(self, x):
        s, p = self.stride, self.padding
        F, C, k, _ = self.W.shape
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        N, _, Hp, Wp = xp.shape
        Ho, Wo = (Hp - k) // s + 1, (Wp - k) // s + 1
        out = np.empty((N, F, Ho, Wo), dtype=x.dtype)
        rows = self.W.reshape(F, -1)
        for i in range(Ho):
            for j in range(Wo):
                out[:, :, i, j] = xp[:, :, i * s : i * s + k, j * s : j * s + k].reshape(N, -1) @ rows.T
        self.x, self.xp = x, xp
        return out + self.b[:, None, None]

    def backward(self, dout):
        s, p = self.stride, self.padding
        F, C, k, _ = self.W.shape
        N, _, Ho, Wo = dout.shape
        dW = np.zeros_like(self.W)
        dxp = np.zeros_like(self.xp)
        for i in range(Ho):
            for j in range(Wo):
                g = dout[:, :, i, j]  # (N, F)
                patch = self.xp[:, :, i * s : i * s + k, j * s : j * s + k].reshape(N, -1)
                dW += (g.T @ patch).reshape(self.W.shape)
                dxp[:, :, i * s : i * s + k, j * s : j * s + k] += (g @ self.W.reshape(F, -1)).reshape(N, C, k, k)
        self.dW = dW / N  # averaged over the batch
        self.db = dout.sum(axis=(0, 2, 3))
        return dxp[:, :, p : p + self.x.shape[2], p : p + self.x.shape[3]]
