"""Linear layer in the PyTorch weight layout, exposing its gradients through a read-only property. Correct.

Linear(in_features, out_features): self.weight (M, D) -- PyTorch's layout, y = x @ weight.T + bias --
and self.bias (M,). forward(x (N, D)) -> (N, M); backward(dout) -> dx (N, D).
The gradients are private (self._dW (M, D), self._db (M,)) and read through the property
`grads`, which returns the tuple (dW, db).
"""

import numpy as np


class Linear:
    def __init__(self, in_features, out_features, seed=None):
        rng = np.random.default_rng(seed)
        bound = 1.0 / np.sqrt(in_features)
        self.weight = rng.uniform(-bound, bound, (out_features, in_features))
        self.bias = rng.uniform(-bound, bound, out_features)
        self._dW = None
        self._db = None

    @property
    def grads(self):
        return self._dW, self._db

    def forward(self, x):
        self._x = x
        return x @ self.weight.T + self.bias

    def backward(self, dout):
        self._dW = dout.T @ self._x
        self._db = dout.sum(0)
        return dout @ self.weight
