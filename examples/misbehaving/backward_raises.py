"""MISBEHAVES: backward raises NotImplementedError (the author never wrote it). Forward is a correct conv.

NCHW class: ConvNoBackward(in_channels, out_channels, kernel_size); self.W (F, C, k, k), self.b (F,);
stride 1, no padding.
"""

import numpy as np


class ConvNoBackward:
    def __init__(self, in_channels, out_channels, kernel_size, seed=None):
        rng = np.random.default_rng(seed)
        self.W = rng.standard_normal((out_channels, in_channels, kernel_size, kernel_size)) * 0.1
        self.b = np.zeros(out_channels)

    def forward(self, x):
        k = self.W.shape[2]
        Ho, Wo = x.shape[2] - k + 1, x.shape[3] - k + 1
        out = np.empty((x.shape[0], self.W.shape[0], Ho, Wo), dtype=x.dtype)
        for i in range(Ho):
            for j in range(Wo):
                out[:, :, i, j] = np.einsum("nchw,fchw->nf", x[:, :, i : i + k, j : j + k], self.W) + self.b
        return out

    def backward(self, dout):
        raise NotImplementedError("ConvNoBackward.backward: TODO")
