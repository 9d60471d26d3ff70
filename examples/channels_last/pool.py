"""Channels-last max-pools: x (N, H, W, C) -> (N, Ho, Wo, C). MaxPool2DNHWC(pool_size=2, strides=None).

Square window (int pool_size), int strides (default pool_size), no padding, floor mode; overlapping
windows (strides < pool_size) add up. No parameters. All three are correct; they differ only at ties:

- MaxPool2DNHWC: the FIRST maximum (row-major in the window) gets the gradient, like PyTorch.
- MaxPool2DNHWCLastMax: the LAST maximum gets it. Valid subgradient.
- MaxPool2DNHWCEvenSplit: tied maxima share it evenly. Valid subgradient.
"""

import numpy as np


class MaxPool2DNHWC:
    def __init__(self, pool_size=2, strides=None):
        self.pool_size = pool_size
        self.strides = pool_size if strides is None else strides

    def _geometry(self, x):
        k, s = self.pool_size, self.strides
        return (x.shape[1] - k) // s + 1, (x.shape[2] - k) // s + 1

    def _route(self, window):
        """window (N, k, k, C) -> weights (N, k, k, C) saying how the window's gradient is shared."""
        N, k, _, C = window.shape
        flat = window.reshape(N, k * k, C)
        weights = np.zeros_like(flat)
        np.put_along_axis(weights, flat.argmax(axis=1)[:, None, :], 1.0, axis=1)
        return weights.reshape(window.shape)

    def forward(self, x):
        k, s = self.pool_size, self.strides
        Ho, Wo = self._geometry(x)
        out = np.empty((x.shape[0], Ho, Wo, x.shape[3]), dtype=x.dtype)
        for i in range(Ho):
            for j in range(Wo):
                out[:, i, j, :] = x[:, i * s : i * s + k, j * s : j * s + k, :].max(axis=(1, 2))
        self.x = x
        return out

    def backward(self, dout):
        k, s = self.pool_size, self.strides
        _, Ho, Wo, _ = dout.shape
        dx = np.zeros_like(self.x)
        for i in range(Ho):
            for j in range(Wo):
                weights = self._route(self.x[:, i * s : i * s + k, j * s : j * s + k, :])
                dx[:, i * s : i * s + k, j * s : j * s + k, :] += weights * dout[:, i : i + 1, j : j + 1, :]
        return dx


class MaxPool2DNHWCLastMax(MaxPool2DNHWC):
    def _route(self, window):
        N, k, _, C = window.shape
        flat = window.reshape(N, k * k, C)[:, ::-1]  # reversed, so argmax finds the last maximum
        weights = np.zeros_like(flat)
        np.put_along_axis(weights, flat.argmax(axis=1)[:, None, :], 1.0, axis=1)
        return weights[:, ::-1].reshape(window.shape)


class MaxPool2DNHWCEvenSplit(MaxPool2DNHWC):
    def _route(self, window):
        is_max = window == window.max(axis=(1, 2), keepdims=True)
        return is_max / is_max.sum(axis=(1, 2), keepdims=True)
