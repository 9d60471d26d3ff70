"""MISBEHAVES: backward returns NaN everywhere.

The author "normalised" the mask by a quantity that is always zero (count - count), so every entry
is 0/0 = NaN (numpy also emits a RuntimeWarning: invalid value encountered in divide).
NCHW class (any shape): ReLUNaN; forward is a correct ReLU.
"""

import numpy as np


class ReLUNaN:
    def forward(self, x):
        self.x = x
        return np.maximum(x, 0)

    def backward(self, dout):
        mask = (self.x > 0).astype(dout.dtype)
        norm = mask.sum() - np.count_nonzero(mask)  # always 0
        return dout * mask * norm / norm
