"""NCHW conv that ACCUMULATES its parameter gradients across backward calls (PyTorch's .grad semantics). Correct.

ConvAccumulate(in_channels, out_channels, kernel_size, stride=1, padding=0): self.W (F, C, k, k),
self.b (F,); square kernel (int); stride/padding ints. backward(dout) -> dx and does
self.dW += ..., self.db += ...; call zero_grad() before each backward whose gradients you want alone.
Two backward calls without zero_grad() leave the SUM of both gradients in self.dW / self.db.
"""

import numpy as np


class ConvAccumulate:
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, seed=None):
        rng = np.random.default_rng(seed)
        k = kernel_size
        self.W = rng.standard_normal((out_channels, in_channels, k, k)) / np.sqrt(in_channels * k * k)
        self.b = np.zeros(out_channels)
        self.stride = stride
        self.padding = padding
        self.zero_grad()

    def zero_grad(self):
        self.dW = np.zeros_like(self.W)
        self.db = np.zeros_like(self.b)

    def forward(self, x):
        k, s, p = self.W.shape[2], self.stride, self.padding
        self.x = x
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        N, _, Hp, Wp = xp.shape
        F = self.W.shape[0]
        out = np.zeros((N, F, (Hp - k) // s + 1, (Wp - k) // s + 1), dtype=x.dtype)
        for n in range(N):
            for f in range(F):
                for i in range(out.shape[2]):
                    for j in range(out.shape[3]):
                        out[n, f, i, j] = np.vdot(xp[n, :, i * s : i * s + k, j * s : j * s + k], self.W[f]) + self.b[f]
        return out

    def backward(self, dout):
        k, s, p = self.W.shape[2], self.stride, self.padding
        xp = np.pad(self.x, ((0, 0), (0, 0), (p, p), (p, p)))
        dxp = np.zeros_like(xp)
        N, F, Ho, Wo = dout.shape
        for n in range(N):
            for f in range(F):
                for i in range(Ho):
                    for j in range(Wo):
                        g = dout[n, f, i, j]
                        self.dW[f] += g * xp[n, :, i * s : i * s + k, j * s : j * s + k]
                        dxp[n, :, i * s : i * s + k, j * s : j * s + k] += g * self.W[f]
                        self.db[f] += g
        return dxp[:, :, p : p + self.x.shape[2], p : p + self.x.shape[3]]
