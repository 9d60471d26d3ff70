"""BUG: sigmoid_backward applies the derivative s * (1 - s) to the cached INPUT x instead of the output s.

dx = dout * x * (1 - x) instead of dout * s * (1 - s) with s = sigmoid(x): the forward caches x, and the
backward plugs it into the formula written for the output. Any shape.
"""

import numpy as np


def sigmoid_forward(x):
    out = 1 / (1 + np.exp(-x))
    cache = x
    return out, cache


def sigmoid_backward(dout, cache):
    x = cache
    dx = dout * x * (1 - x)
    return dx
