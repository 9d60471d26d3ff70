"""BUG: backprop(d, lr) takes its SGD step on the kernels BEFORE it computes the image gradient.

Same layer as family.py:KernelConv (filters kept as ``kernels`` (F, k, k), ``forward_prop(image)``,
``backprop(d, lr)`` with the rate passed as an argument), but dL/dimage is scattered from the kernels after
``kernels -= lr * dL/dkernels``: it is off by lr times the scatter of d with dL/dkernels. The kernel gradient,
and so the step itself, is right.
"""

import numpy as np


class KernelConvStepFirst:
    def __init__(self, num_filters, filter_size):
        self.num_filters = num_filters
        self.filter_size = filter_size
        self.kernels = np.random.default_rng(5).normal(0.0, 0.3, (num_filters, filter_size, filter_size))

    def forward_prop(self, image):
        self.image = image
        k = self.filter_size
        rows, cols = image.shape
        out = np.zeros((rows - k + 1, cols - k + 1, self.num_filters), dtype=image.dtype)
        for r in range(rows - k + 1):
            for c in range(cols - k + 1):
                out[r, c] = np.einsum("fij,ij->f", self.kernels, image[r : r + k, c : c + k])
        return out

    def backprop(self, d, lr):
        k = self.filter_size
        rows, cols, _ = d.shape
        d_kernels = np.zeros(self.kernels.shape)
        for r in range(rows):
            for c in range(cols):
                d_kernels += d[r, c][:, None, None] * self.image[r : r + k, c : c + k]
        self.kernels -= lr * d_kernels  # too early: the image gradient below needs the kernels of the forward
        d_image = np.zeros(self.image.shape)
        for r in range(rows):
            for c in range(cols):
                d_image[r : r + k, c : c + k] += np.einsum("f,fij->ij", d[r, c], self.kernels)
        return d_image
