"""NCHW-batch dense layer storing its gradients in grad_W / grad_b. Correct.

Dense(in_features, out_features): self.W (D, M), self.b (M,). forward(x) flattens x (N, ...) to
(N, D) and returns (N, M); backward(dout (N, M)) -> dx in x's original shape, and sets
self.grad_W (D, M), self.grad_b (M,).
"""

import numpy as np


class Dense:
    def __init__(self, in_features, out_features, seed=None):
        rng = np.random.default_rng(seed)
        self.W = rng.uniform(-1, 1, (in_features, out_features)) / np.sqrt(in_features)
        self.b = np.zeros(out_features)
        self.grad_W = np.zeros_like(self.W)
        self.grad_b = np.zeros_like(self.b)

    def forward(self, x):
        self.x_shape = x.shape
        self.x_flat = x.reshape(x.shape[0], -1)
        return self.x_flat @ self.W + self.b

    def backward(self, dout):
        self.grad_W = self.x_flat.T @ dout
        self.grad_b = dout.sum(axis=0)
        return (dout @ self.W.T).reshape(self.x_shape)
