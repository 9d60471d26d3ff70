"""The gated linear unit of glu.py with the sigmoid's derivative left out of the gate's gradient:
dB = G * A instead of G * A * s(B) (1 - s(B)), so dX and dV are wrong (dW is right)."""

import numpy as np


class GatedLinearNoGateDerivative:
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
        db = dout * self.a  # BUG: the sigmoid's derivative s (1 - s) is missing
        self.dW = self.x.T @ da
        self.dV = self.x.T @ db
        return da @ self.W.T + db @ self.V.T
