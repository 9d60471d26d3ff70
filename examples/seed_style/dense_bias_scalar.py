"""BUG: the dense bias gradient is `dL_dout.sum(axis=0)`, which on ONE sample (a 1-D vector) is a scalar.

Written for a batch (N, m), where summing over axis 0 is right; applied to a single 1-D sample it adds
up all m output gradients, and the SGD step then moves every bias by lr * sum(dL/dout). The
recovered bias gradient is sum(dL/dout) in every entry instead of dL/dout. Invisible when m == 1.
Weights and input gradient are correct (general outer product, no hard-coded sizes).
Input flattened to (n,), weights (n, m), biases (m,).
"""

import numpy as np


class FullyConnectedBiasScalar:
    def __init__(self, input_size, num_classes, lr=0.01, seed=None):
        rng = np.random.default_rng(seed)
        self.weights = rng.standard_normal((input_size, num_classes)) / input_size
        self.biases = np.zeros(num_classes)
        self.lr = lr

    def forward(self, input):
        self.input_shape = input.shape
        self.input = input.flatten()
        return self.input @ self.weights + self.biases

    def backward(self, dL_dout):
        dL_dB = dL_dout.sum(axis=0)  # meant for (N, m); on a (m,) vector this is a scalar
        dL_dW = np.outer(self.input, dL_dout)
        dL_dinput = self.weights @ dL_dout
        self.weights -= self.lr * dL_dW
        self.biases -= self.lr * dL_dB
        return dL_dinput.reshape(self.input_shape)
