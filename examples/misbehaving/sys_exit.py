"""MISBEHAVES: backward calls sys.exit(3) (a debugging leftover: "stop here"). Forward is a correct ReLU.
NCHW class (any shape): ReLUExits.
"""

import sys

import numpy as np


class ReLUExits:
    def forward(self, x):
        self.x = x
        return np.maximum(x, 0)

    def backward(self, dout):
        print("reached backward, stopping")
        sys.exit(3)
