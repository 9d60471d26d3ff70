"""MISBEHAVES: declared to return (dX, [dW, db]) like nchw_classes/conv_tuple_grads.py, but returns the
flat 3-tuple (dX, dW, db) -- a tuple of the wrong length (all three arrays are right).

NCHW class: ConvFlatTuple(in_channels, out_channels, kernel_size); self.W (F, C, k, k), self.b (F,);
stride 1, no padding; nothing stored on the layer.
"""

import numpy as np


class ConvFlatTuple:
    def __init__(self, in_channels, out_channels, kernel_size, seed=None):
        rng = np.random.default_rng(seed)
        self.W = rng.standard_normal((out_channels, in_channels, kernel_size, kernel_size)) * 0.1
        self.b = np.zeros(out_channels)

    def forward(self, x):
        self.x = x
        k = self.W.shape[2]
        Ho, Wo = x.shape[2] - k + 1, x.shape[3] - k + 1
        out = np.empty((x.shape[0], self.W.shape[0], Ho, Wo), dtype=x.dtype)
        for i in range(Ho):
            for j in range(Wo):
                out[:, :, i, j] = np.einsum("nchw,fchw->nf", x[:, :, i : i + k, j : j + k], self.W) + self.b
        return out

    def backward(self, dout):
        k = self.W.shape[2]
        dW = np.zeros_like(self.W)
        dX = np.zeros_like(self.x)
        for i in range(dout.shape[2]):
            for j in range(dout.shape[3]):
                dW += np.einsum("nf,nchw->fchw", dout[:, :, i, j], self.x[:, :, i : i + k, j : j + k])
                dX[:, :, i : i + k, j : j + k] += np.einsum("nf,fchw->nchw", dout[:, :, i, j], self.W)
        return dX, dW, dout.sum(axis=(0, 2, 3))
