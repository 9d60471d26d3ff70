"""A gated linear unit, a layer no built-in kind covers: checked as `function` (examples/function_kind/specs.py).

A = X W,  B = X V,  Z = A * s(B),  s = sigmoid
dA = G * s(B),  dB = G * A * s(B) (1 - s(B))
dX = dA W^T + dB V^T,  dW = X^T dA,  dV = X^T dB
"""

import numpy as np


class GatedLinear:
    def __init__(self, features: int, units: int, seed: int | None = None) -> None:
        rng = np.random.default_rng(seed)
        self.W = rng.normal(0, 0.5, (features, units))
        self.V = rng.normal(0, 0.5, (features, units))

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        self.a = x @ self.W
        self.s = 1 / (1 + np.exp(-(x @ self.V)))
        return self.a * self.s

    def backward(self, dout: np.ndarray) -> np.ndarray:
        da = dout * self.s
        db = dout * self.a * self.s * (1 - self.s)
        self.dW = self.x.T @ da
        self.dV = self.x.T @ db
        return da @ self.W.T + db @ self.V.T
