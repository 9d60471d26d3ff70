"""NCHW conv keeping parameters and gradients in dicts keyed "W" and "b". Correct.

ConvDictGrads(in_channels, out_channels, kernel_size, stride=1, padding=0): self.params["W"]
(F, C, k, k), self.params["b"] (F,); square kernels only (kernel_size an int); stride/padding ints.
backward(dout) -> dx and fills self.gradients["W"], self.gradients["b"] (same shapes).
Implementation: im2col with explicit loops over output positions.
"""

import numpy as np


class ConvDictGrads:
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, seed=None):
        rng = np.random.default_rng(seed)
        k = kernel_size
        self.params = {
            "W": rng.standard_normal((out_channels, in_channels, k, k)) * 0.1,
            "b": np.zeros(out_channels),
        }
        self.gradients = {"W": None, "b": None}
        self.stride = stride
        self.padding = padding

    def _im2col(self, xp, ho, wo):
        """(N, Ho * Wo, C * k * k): row i * Wo + j holds the window under output (i, j)."""
        k, s = self.params["W"].shape[2], self.stride
        cols = np.empty((xp.shape[0], ho * wo, xp.shape[1] * k * k), dtype=xp.dtype)
        for i in range(ho):
            for j in range(wo):
                cols[:, i * wo + j] = xp[:, :, i * s : i * s + k, j * s : j * s + k].reshape(xp.shape[0], -1)
        return cols

    def forward(self, x):
        W, b = self.params["W"], self.params["b"]
        F, _, k, _ = W.shape
        p, s = self.padding, self.stride
        N, _, H, Wd = x.shape
        ho, wo = (H + 2 * p - k) // s + 1, (Wd + 2 * p - k) // s + 1
        self.x_shape = x.shape
        self.cols = self._im2col(np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))), ho, wo)
        out = self.cols @ W.reshape(F, -1).T + b  # (N, Ho * Wo, F)
        return out.transpose(0, 2, 1).reshape(N, F, ho, wo)

    def backward(self, dout):
        W = self.params["W"]
        F, C, k, _ = W.shape
        N, _, ho, wo = dout.shape
        p, s = self.padding, self.stride
        g = dout.reshape(N, F, ho * wo).transpose(0, 2, 1)  # (N, Ho * Wo, F)
        self.gradients["W"] = np.einsum("npf,npk->fk", g, self.cols).reshape(W.shape)
        self.gradients["b"] = g.sum(axis=(0, 1))
        dcols = g @ W.reshape(F, -1)  # (N, Ho * Wo, C * k * k)
        _, _, H, Wd = self.x_shape
        dxp = np.zeros((N, C, H + 2 * p, Wd + 2 * p), dtype=dout.dtype)
        for i in range(ho):
            for j in range(wo):
                dxp[:, :, i * s : i * s + k, j * s : j * s + k] += dcols[:, i * wo + j].reshape(N, C, k, k)
        return dxp[:, :, p : p + H, p : p + Wd]
