"""NCHW conv that never stores its gradients: backward hands them straight to an optimizer object. Correct.

ConvWithOptimizer(in_channels, out_channels, kernel_size, stride=1, padding=0, optimizer=None):
self.W (F, C, k, k), self.b (F,); square kernel (int); stride/padding ints; self.optimizer defaults
to SGD(lr=0.01). backward(dout) -> dx, after calling
    self.optimizer.update(self.W, dW)   # dW (F, C, k, k)
    self.optimizer.update(self.b, db)   # db (F,)
in that order (the optimizer updates the parameter array in place). The input gradient is computed
BEFORE the updates, from the weights that produced the forward. To read the gradients, give the
layer an optimizer whose update(param, grad) records grad (e.g. keyed by `param is layer.W`).
"""

import numpy as np


class SGD:
    def __init__(self, lr=0.01):
        self.lr = lr

    def update(self, param, grad):
        param -= self.lr * grad


class ConvWithOptimizer:
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, optimizer=None, seed=None):
        rng = np.random.default_rng(seed)
        k = kernel_size
        self.W = rng.standard_normal((out_channels, in_channels, k, k)) * np.sqrt(1.0 / (in_channels * k * k))
        self.b = np.zeros(out_channels)
        self.stride = stride
        self.padding = padding
        self.optimizer = optimizer if optimizer is not None else SGD(lr=0.01)

    def forward(self, x):
        k, s, p = self.W.shape[2], self.stride, self.padding
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        Ho, Wo = (xp.shape[2] - k) // s + 1, (xp.shape[3] - k) // s + 1
        out = np.zeros((x.shape[0], self.W.shape[0], Ho, Wo), dtype=x.dtype)
        for i in range(Ho):
            for j in range(Wo):
                window = xp[:, :, i * s : i * s + k, j * s : j * s + k]
                out[:, :, i, j] = np.tensordot(window, self.W, axes=([1, 2, 3], [1, 2, 3]))
        out += self.b[None, :, None, None]
        self.x, self.xp = x, xp
        return out

    def backward(self, dout):
        k, s, p = self.W.shape[2], self.stride, self.padding
        dW = np.zeros_like(self.W)
        dxp = np.zeros_like(self.xp)
        for i in range(dout.shape[2]):
            for j in range(dout.shape[3]):
                rows, cols = slice(i * s, i * s + k), slice(j * s, j * s + k)
                g = dout[:, :, i, j]  # (N, F)
                dW += np.tensordot(g, self.xp[:, :, rows, cols], axes=([0], [0]))
                dxp[:, :, rows, cols] += np.tensordot(g, self.W, axes=([1], [0]))
        db = dout.sum(axis=(0, 2, 3))
        dx = dxp[:, :, p : p + self.x.shape[2], p : p + self.x.shape[3]]
        self.optimizer.update(self.W, dW)
        self.optimizer.update(self.b, db)
        return dx
