"""A seed-style first layer whose backward only trains: it takes the SGD step and returns None.

Correct (the filter gradient is right) but dL/dinput is never computed: a first layer has nobody to
hand it to, so the author skipped it. Input (H, W), filters (F, k, k), output (H-k+1, W-k+1, F),
stride 1, no padding, no bias. The filter gradient is only observable through the SGD step:
dL/dfilters = (filters_before - filters_after) / lr.
"""

import numpy as np


class FirstConvLayer:
    def __init__(self, num_filters, filter_size, lr=0.01, seed=None):
        rng = np.random.default_rng(seed)
        self.num_filters = num_filters
        self.filter_size = filter_size
        self.filters = rng.standard_normal((num_filters, filter_size, filter_size)) / filter_size**2
        self.lr = lr

    def forward(self, input):
        self.last_input = input
        k = self.filter_size
        h, w = input.shape
        out = np.zeros((h - k + 1, w - k + 1, self.num_filters), dtype=input.dtype)
        for i in range(h - k + 1):
            for j in range(w - k + 1):
                region = input[i : i + k, j : j + k]
                out[i, j] = np.sum(region[None, :, :] * self.filters, axis=(1, 2))
        return out

    def backward(self, dL_dout):
        k = self.filter_size
        h, w = self.last_input.shape
        grad = np.zeros(self.filters.shape)
        for i in range(h - k + 1):
            for j in range(w - k + 1):
                region = self.last_input[i : i + k, j : j + k]
                for f in range(self.num_filters):
                    grad[f] += dL_dout[i, j, f] * region
        self.filters -= self.lr * grad
        # first layer of the network: the input gradient is not needed, so nothing is returned
