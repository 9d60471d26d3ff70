"""MISBEHAVES: an in-place ReLU that overwrites the caller's input in forward (x[x < 0] = 0) and
returns that same array object as its output.

The values of the output and of dx are right (the mask from the clamped array is the same), but the
caller's x is modified: a previous layer that cached x for its own backward would now be wrong.
NCHW class (any shape): ReLUInPlace.
"""


class ReLUInPlace:
    def forward(self, x):
        x[x < 0] = 0
        self.out = x
        return x

    def backward(self, dout):
        return dout * (self.out > 0)
