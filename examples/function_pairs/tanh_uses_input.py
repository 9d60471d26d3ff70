"""BUG: tanh_backward computes 1 - x**2 from the cached INPUT x instead of 1 - tanh(x)**2.

dx = dout * (1 - x**2): the derivative is written in terms of the output, but the forward caches the input.
Close to right only where |x| is small (tanh(x) ~ x). Any shape.
"""

import numpy as np


def tanh_forward(x):
    out = np.tanh(x)
    cache = x
    return out, cache


def tanh_backward(dout, cache):
    x = cache
    dx = dout * (1 - x**2)
    return dx
