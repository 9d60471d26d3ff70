"""Scaled dot-product scores as in scores.py, with the scale forgotten in the SECOND input's gradient.

Z = Q K^T / sqrt(d); right: dK = G^T Q / sqrt(d); here dK = G^T Q, sqrt(d) = 2 times too large (d = 4), while
dQ = G K / sqrt(d) is right: grad_k fails, grad_q passes.
"""

import numpy as np


class ScaledScoresKeyUnscaled:
    def forward(self, q: np.ndarray, k: np.ndarray) -> np.ndarray:
        self.q, self.k = q, k
        self.scale = 1.0 / np.sqrt(q.shape[1])
        return q @ k.T * self.scale

    def backward(self, dout: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dq = dout @ self.k * self.scale
        dk = dout.T @ self.q
        return dq, dk
