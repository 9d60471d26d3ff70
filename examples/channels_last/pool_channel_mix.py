"""BUG: max-pool backward finds each window's argmax after reshaping the (k, k, C) window as (C, k * k).

Ported from NCHW code, where a window is (C, k, k) and reshape(C, -1) is right. On a channels-last
window (N, k, k, C) the same reshape reinterprets memory, mixing positions and channels, so the
gradient goes to the wrong position (and is decided by another channel's values). The forward is
right. Invisible when C == 1 (the two layouts then coincide).
x (N, H, W, C) -> (N, Ho, Wo, C); MaxPoolChannelMix(pool_size=2, strides=None); no parameters.
"""

import numpy as np


class MaxPoolChannelMix:
    def __init__(self, pool_size=2, strides=None):
        self.pool_size = pool_size
        self.strides = pool_size if strides is None else strides

    def forward(self, x):
        k, s = self.pool_size, self.strides
        N, H, W, C = x.shape
        Ho, Wo = (H - k) // s + 1, (W - k) // s + 1
        out = np.empty((N, Ho, Wo, C), dtype=x.dtype)
        for i in range(Ho):
            for j in range(Wo):
                out[:, i, j, :] = x[:, i * s : i * s + k, j * s : j * s + k, :].max(axis=(1, 2))
        self.x = x
        return out

    def backward(self, dout):
        k, s = self.pool_size, self.strides
        N, Ho, Wo, C = dout.shape
        dx = np.zeros_like(self.x)
        for i in range(Ho):
            for j in range(Wo):
                window = self.x[:, i * s : i * s + k, j * s : j * s + k, :]
                idx = window.reshape(N, C, k * k).argmax(axis=2)  # (N, C): meant "argmax per channel"
                for n in range(N):
                    for c in range(C):
                        r, q = divmod(idx[n, c], k)
                        dx[n, i * s + r, j * s + q, c] += dout[n, i, j, c]
        return dx
