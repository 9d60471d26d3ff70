"""BUG: the scatter-form input gradient uses the kernel rotated by 180 degrees.

The student read "dL/dX = full conv of dL/dZ with the 180-degree rotated kernel" and put the rotation
into the scatter loop `dL_dinput[window] += g * rot180(filter)`. The scatter form needs the kernel
as it is (the rotation belongs only to the convolution formulation), so dL/dinput is wrong unless
every filter is symmetric under a half turn (e.g. k == 1). The filter gradient and its SGD step are right.
Input (H, W), filters (F, k, k), output (H-k+1, W-k+1, F), stride 1, no padding, no bias.
"""

import numpy as np


class ConvRotatedScatter:
    def __init__(self, num_filters, filter_size, lr=0.01, seed=None):
        rng = np.random.default_rng(seed)
        self.num_filters = num_filters
        self.filter_size = filter_size
        self.filters = rng.standard_normal((num_filters, filter_size, filter_size)) / filter_size**2
        self.lr = lr

    def forward(self, input):
        self.input = input
        k = self.filter_size
        h, w = input.shape
        out = np.zeros((h - k + 1, w - k + 1, self.num_filters), dtype=input.dtype)
        for i in range(h - k + 1):
            for j in range(w - k + 1):
                for f in range(self.num_filters):
                    out[i, j, f] = np.sum(input[i : i + k, j : j + k] * self.filters[f])
        return out

    def backward(self, dL_dout):
        k = self.filter_size
        h, w = self.input.shape
        dL_dfilters = np.zeros(self.filters.shape)
        dL_dinput = np.zeros(self.input.shape)
        for i in range(h - k + 1):
            for j in range(w - k + 1):
                for f in range(self.num_filters):
                    g = dL_dout[i, j, f]
                    dL_dfilters[f] += g * self.input[i : i + k, j : j + k]
                    dL_dinput[i : i + k, j : j + k] += g * np.rot90(self.filters[f], 2)
        self.filters -= self.lr * dL_dfilters
        return dL_dinput
