"""BUG: a fused dense + softmax layer whose backprop returns inside its loop over dL/dp.

Written for a cross-entropy loss, whose dL/dp has a single non-zero entry (at the label), it skips the zero
entries and, at the first non-zero one, k, builds the softmax Jacobian's column k, dp/ds_k, and returns. With
any dL/dp that has two or more non-zero entries the other columns are missing: dL/ds = dp/ds_k * dL/dp_k
instead of the sum over every k. Input, weight and bias gradients all carry it.
"""

import numpy as np


class DenseSoftmaxFirstEntry:
    def __init__(self, input_len, nodes, seed=None):
        generator = np.random.default_rng(seed)
        self.weights = generator.normal(0.0, 1.0 / np.sqrt(input_len), (input_len, nodes))
        self.biases = np.zeros(nodes)

    def forward(self, x):
        self.x_shape = x.shape
        self.x_flat = x.ravel()
        self.scores = self.x_flat @ self.weights + self.biases
        shifted = np.exp(self.scores - np.max(self.scores))
        return shifted / np.sum(shifted)

    def backprop(self, dL_dp, lr):
        for k, upstream in enumerate(dL_dp):
            if upstream == 0:
                continue
            e = np.exp(self.scores - np.max(self.scores))
            total = np.sum(e)
            dp_ds = -e[k] * e / total**2  # column k of the Jacobian: dp/ds_k
            dp_ds[k] = e[k] * (total - e[k]) / total**2
            dL_ds = upstream * dp_ds
            dL_dx = self.weights @ dL_ds
            self.weights -= lr * np.outer(self.x_flat, dL_ds)
            self.biases -= lr * dL_ds
            return dL_dx.reshape(self.x_shape)  # returns at the first non-zero entry: the others are never seen
        return np.zeros(self.x_shape)
