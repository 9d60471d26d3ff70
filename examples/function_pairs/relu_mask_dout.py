"""BUG: relu_backward builds its mask from the upstream gradient (dout > 0) instead of the input (x > 0).

dx = dout where dout > 0, else 0: positive gradients leak through where x < 0, and negative ones
are dropped where x > 0. Any shape.
"""

import numpy as np


def relu_forward(x):
    out = np.maximum(x, 0)
    cache = x
    return out, cache


def relu_backward(dout, cache):
    dx = dout.copy()
    dx[dout <= 0] = 0
    return dx
