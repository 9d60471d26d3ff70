"""BUG: leaky_relu_backward is ReLU's backward: the gradient is dropped where x <= 0 instead of scaled by alpha.

dx = dout * (x > 0) instead of where(x > 0, dout, alpha * dout). The forward is right. lrelu_param
{"alpha": a}. Any shape.
"""

import numpy as np


def leaky_relu_forward(x, lrelu_param):
    alpha = lrelu_param["alpha"]
    out = np.where(x > 0, x, alpha * x)
    return out, x


def leaky_relu_backward(dout, cache):
    x = cache
    dx = dout.copy()
    dx[x <= 0] = 0
    return dx
