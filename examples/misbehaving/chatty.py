"""Prints a great deal (a debug line per element, in forward and in backward) but is otherwise a
CORRECT ReLU: the gradient check should pass; the harness must capture the output instead of letting
it flood the report. NCHW class (any shape): ReLUChatty. About x.size + dout.size + 2 lines per
forward/backward pair (1,000 entries -> about 2,000 lines).
"""

import numpy as np


class ReLUChatty:
    def forward(self, x):
        print(f"forward: x.shape={x.shape}")
        for index, value in np.ndenumerate(x):
            print(f"  x{index} = {value!r} -> {max(value, 0.0)!r}")
        self.x = x
        return np.maximum(x, 0)

    def backward(self, dout):
        print(f"backward: dout.shape={dout.shape}")
        dx = dout * (self.x > 0)
        for index, value in np.ndenumerate(dx):
            print(f"  dx{index} = {value!r}")
        return dx
