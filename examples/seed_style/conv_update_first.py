"""BUG: the SGD step is applied to the filters BEFORE the input gradient is computed.

dL/dinput is then computed with the already-updated filters (filters - lr * dL/dfilters), so it is off
by lr * (scatter of dL/dout with dL/dfilters); the error grows with lr and vanishes as lr -> 0.
The filter gradient (and so the step itself) is right.
Input (H, W), filters (F, k, k), output (H-k+1, W-k+1, F), stride 1, no padding, no bias.
"""

import numpy as np


class ConvUpdateFirst:
    def __init__(self, num_filters, filter_size, lr=0.01, seed=None):
        rng = np.random.default_rng(seed)
        self.num_filters = num_filters
        self.filter_size = filter_size
        self.filters = rng.standard_normal((num_filters, filter_size, filter_size)) / filter_size**2
        self.lr = lr

    def regions(self, image):
        k = self.filter_size
        for i in range(image.shape[0] - k + 1):
            for j in range(image.shape[1] - k + 1):
                yield image[i : i + k, j : j + k], i, j

    def forward(self, input):
        self.input = input
        k = self.filter_size
        out = np.zeros((input.shape[0] - k + 1, input.shape[1] - k + 1, self.num_filters), dtype=input.dtype)
        for region, i, j in self.regions(input):
            out[i, j] = np.tensordot(self.filters, region, axes=([1, 2], [0, 1]))
        return out

    def backward(self, dL_dout):
        k = self.filter_size
        dL_dfilters = np.zeros(self.filters.shape)
        for region, i, j in self.regions(self.input):
            for f in range(self.num_filters):
                dL_dfilters[f] += dL_dout[i, j, f] * region
        self.filters -= self.lr * dL_dfilters  # too early: the input gradient below needs the old filters

        dL_dinput = np.zeros(self.input.shape)
        for _, i, j in self.regions(self.input):
            for f in range(self.num_filters):
                dL_dinput[i : i + k, j : j + k] += dL_dout[i, j, f] * self.filters[f]
        return dL_dinput
