"""MISBEHAVES: forward adds fresh random noise (std 1e-3) on every call -- a "jitter" augmentation
left switched on. The same input gives a different output each time, so finite differences are
meaningless. Backward is the exact ReLU gradient (masked where x <= 0).
NCHW class (any shape): ReLUJitter.
"""

import numpy as np


class ReLUJitter:
    def __init__(self):
        self.rng = np.random.default_rng()  # unseeded on purpose

    def forward(self, x):
        self.x = x
        return np.maximum(x, 0) + 1e-3 * self.rng.standard_normal(x.shape)

    def backward(self, dout):
        return dout * (self.x > 0)
