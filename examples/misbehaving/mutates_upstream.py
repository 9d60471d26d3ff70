"""MISBEHAVES: backward zeroes the upstream gradient in place (dout[x <= 0] = 0) and returns it.

The returned dx has the right values, but it IS the caller's dout array, now modified: anyone still
holding dout (a second branch, a gradient checker that reuses G) sees the masked values.
NCHW class (any shape): ReLUMutatesGrad.
"""

import numpy as np


class ReLUMutatesGrad:
    def forward(self, x):
        self.x = x
        return np.maximum(x, 0)

    def backward(self, dout):
        dout[self.x <= 0] = 0
        return dout
