"""BUG: ReLU backward masks where `output < 0`, which never happens, so the gradient is never masked.

The output of a ReLU is >= 0 everywhere, so the mask is empty and dL/dinput = dL/dout even where the
input was negative. (Masking on `output <= 0`, or on `input <= 0`, would be right.) Any shape.
"""

import numpy as np


class ReLUOutputBelowZero:
    def forward(self, input):
        self.output = np.maximum(input, 0)
        return self.output

    def backward(self, dL_dout):
        dL_dinput = dL_dout.copy()
        dL_dinput[self.output < 0] = 0
        return dL_dinput
