"""BUG: max-pool backward routes the window's gradient to EVERY position equal to the maximum.

The first version a student writes: loop over the window and copy dL/dout wherever region == max.
With distinct values it is correct; when a window holds two or more equal maxima each of them gets
the full gradient, so the window's gradient mass is multiplied by the number of ties (not a valid
subgradient). Layout (H, W, C) -> (H // size, W // size, C), window = stride = size.
"""

import numpy as np


class MaxPoolAllTies:
    def __init__(self, size=2):
        self.size = size

    def forward(self, input):
        self.input = input
        s = self.size
        h, w, c = input.shape
        out = np.zeros((h // s, w // s, c), dtype=input.dtype)
        for i in range(h // s):
            for j in range(w // s):
                out[i, j] = np.amax(input[i * s : i * s + s, j * s : j * s + s], axis=(0, 1))
        return out

    def backward(self, dL_dout):
        s = self.size
        dL_dinput = np.zeros(self.input.shape)
        ho, wo, c = dL_dout.shape
        for i in range(ho):
            for j in range(wo):
                region = self.input[i * s : i * s + s, j * s : j * s + s]
                top = np.amax(region, axis=(0, 1))
                for k in range(c):
                    for a in range(s):
                        for b in range(s):
                            if region[a, b, k] == top[k]:
                                dL_dinput[i * s + a, j * s + b, k] = dL_dout[i, j, k]
        return dL_dinput
