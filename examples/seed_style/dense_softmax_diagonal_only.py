"""BUG: the softmax part of a fused dense + softmax layer uses only the diagonal of its Jacobian.

dp_i/ds_i = p_i (1 - p_i) is right, but dp_i/ds_j = -p_i p_j for j != i is left out, so
dL/ds = dL/dp * p * (1 - p) instead of p * (dL/dp - <dL/dp, p>). The wrong dL/ds then flows into dL/dx, the
weight step and the bias step alike. Invisible with a single class (p = 1, every gradient is 0).
"""

import numpy as np


class DenseSoftmaxDiagonal:
    def __init__(self, input_len, nodes, seed=None):
        generator = np.random.default_rng(seed)
        self.weights = generator.normal(0.0, 1.0 / np.sqrt(input_len), (input_len, nodes))
        self.biases = np.zeros(nodes)

    def forward(self, x):
        self.x_shape = x.shape
        self.x_flat = x.ravel()
        scores = self.x_flat @ self.weights + self.biases
        shifted = np.exp(scores - np.max(scores))
        self.probs = shifted / np.sum(shifted)
        return self.probs

    def backprop(self, dL_dp, lr):
        p = self.probs
        dL_ds = dL_dp * p * (1 - p)  # the elementwise "sigmoid-like" derivative: only the Jacobian's diagonal
        dL_dx = self.weights @ dL_ds
        self.weights -= lr * np.outer(self.x_flat, dL_ds)
        self.biases -= lr * dL_ds
        return dL_dx.reshape(self.x_shape)
