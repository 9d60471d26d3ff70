"""Seed-style max-pools that break ties differently from PyTorch. Both are VALID (Clarke subgradients).

Layout as the seed MaxPoolLayer: (H, W, C) -> (H // size, W // size, C), window = stride = size.
Away from ties both agree with every other correct max-pool; at a tie they differ from PyTorch
(which picks the first maximum) but still put the window's whole gradient on its maximum set.

- MaxPoolLastMax: the LAST maximum in row-major order gets the gradient.
- MaxPoolEvenSplit: the gradient is divided evenly among all tied maxima.
"""

import numpy as np


class MaxPoolLastMax:
    def __init__(self, size=2):
        self.size = size

    def forward(self, input):
        self.input = input
        s = self.size
        h, w, c = input.shape
        out = np.zeros((h // s, w // s, c), dtype=input.dtype)
        for i in range(h // s):
            for j in range(w // s):
                out[i, j] = input[i * s : i * s + s, j * s : j * s + s].max(axis=(0, 1))
        return out

    def backward(self, dL_dout):
        s = self.size
        dL_dinput = np.zeros(self.input.shape)
        ho, wo, c = dL_dout.shape
        for i in range(ho):
            for j in range(wo):
                for k in range(c):
                    best = None
                    for ii in range(s):
                        for jj in range(s):
                            v = self.input[i * s + ii, j * s + jj, k]
                            if best is None or v >= best[0]:  # >= keeps moving to later ties
                                best = (v, ii, jj)
                    dL_dinput[i * s + best[1], j * s + best[2], k] = dL_dout[i, j, k]
        return dL_dinput


class MaxPoolEvenSplit:
    def __init__(self, size=2):
        self.size = size

    def forward(self, input):
        self.input = input
        s = self.size
        h, w, c = input.shape
        out = np.zeros((h // s, w // s, c), dtype=input.dtype)
        for i in range(h // s):
            for j in range(w // s):
                out[i, j] = input[i * s : i * s + s, j * s : j * s + s].max(axis=(0, 1))
        self.output = out
        return out

    def backward(self, dL_dout):
        s = self.size
        dL_dinput = np.zeros(self.input.shape)
        ho, wo, c = dL_dout.shape
        for i in range(ho):
            for j in range(wo):
                region = self.input[i * s : i * s + s, j * s : j * s + s]
                for k in range(c):
                    is_max = region[:, :, k] == self.output[i, j, k]
                    share = dL_dout[i, j, k] / np.count_nonzero(is_max)
                    dL_dinput[i * s : i * s + s, j * s : j * s + s, k] += is_max * share
        return dL_dinput
