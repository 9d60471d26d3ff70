"""Scaled dot-product attention scores, a layer of TWO inputs: checked as `function` (examples/function_kind/specs.py).

Z = Q K^T / sqrt(d)        Q (n, d) queries, K (m, d) keys -> Z (n, m)
dQ = G K / sqrt(d),  dK = G^T Q / sqrt(d)

forward(q, k) takes the inputs in the order the LayerSpec names them (inputs=("q", "k")), and backward(dout)
returns their gradients in the same order.
"""

import numpy as np


class ScaledScores:
    def forward(self, q: np.ndarray, k: np.ndarray) -> np.ndarray:
        self.q, self.k = q, k
        self.scale = 1.0 / np.sqrt(q.shape[1])
        return q @ k.T * self.scale

    def backward(self, dout: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dq = dout @ self.k * self.scale
        dk = dout.T @ self.q * self.scale
        return dq, dk
