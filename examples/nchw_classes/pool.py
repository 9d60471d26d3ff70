"""NCHW max-pool classes: MaxPool2D(kernel_size, stride=None), stride defaulting to kernel_size.

Square window (int kernel_size), int stride, no padding, floor mode; windows may overlap (stride <
kernel_size) and their gradients then add up. forward(x (N, C, H, W)) -> (N, C, Ho, Wo);
backward(dout) -> dx. No parameters. All three are correct; they differ only at ties:

- MaxPool2D: the FIRST maximum (row-major in the window) gets the gradient, like PyTorch.
- MaxPool2DLastMax: the LAST maximum gets it. Valid subgradient.
- MaxPool2DEvenSplit: tied maxima share it evenly. Valid subgradient.
"""

import numpy as np


class MaxPool2D:
    def __init__(self, kernel_size, stride=None):
        self.k = kernel_size
        self.s = kernel_size if stride is None else stride

    def _windows(self, x):
        """(N, C, Ho, Wo, k * k) copy of every window, flattened row-major."""
        k, s = self.k, self.s
        N, C, H, W = x.shape
        Ho, Wo = (H - k) // s + 1, (W - k) // s + 1
        win = np.empty((N, C, Ho, Wo, k * k), dtype=x.dtype)
        for u in range(k):
            for v in range(k):
                win[..., u * k + v] = x[:, :, u : u + s * (Ho - 1) + 1 : s, v : v + s * (Wo - 1) + 1 : s]
        return win

    def _pick(self, win):
        """Index (into the flattened window) of the position that receives the gradient."""
        return win.argmax(axis=-1)

    def forward(self, x):
        self.x_shape = x.shape
        win = self._windows(x)
        self.choice = self._pick(win)
        return win.max(axis=-1)

    def backward(self, dout):
        k, s = self.k, self.s
        N, C, Ho, Wo = dout.shape
        dx = np.zeros(self.x_shape, dtype=dout.dtype)
        n, c, i, j = np.indices((N, C, Ho, Wo))
        u, v = np.divmod(self.choice, k)
        np.add.at(dx, (n, c, i * s + u, j * s + v), dout)
        return dx


class MaxPool2DLastMax(MaxPool2D):
    def _pick(self, win):
        last = win.shape[-1] - 1
        return last - win[..., ::-1].argmax(axis=-1)


class MaxPool2DEvenSplit(MaxPool2D):
    def forward(self, x):
        self.x_shape = x.shape
        win = self._windows(x)
        out = win.max(axis=-1)
        is_max = win == out[..., None]
        self.share = is_max / is_max.sum(axis=-1, keepdims=True)  # (N, C, Ho, Wo, k * k), rows sum to 1
        return out

    def backward(self, dout):
        k, s = self.k, self.s
        _, _, Ho, Wo = dout.shape
        dx = np.zeros(self.x_shape, dtype=dout.dtype)
        spread = self.share * dout[..., None]
        for u in range(k):
            for v in range(k):
                dx[:, :, u : u + s * (Ho - 1) + 1 : s, v : v + s * (Wo - 1) + 1 : s] += spread[..., u * k + v]
        return dx
