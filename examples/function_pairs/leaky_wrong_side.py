"""BUG: leaky_relu_backward puts the slope alpha on the wrong side: alpha where x > 0, 1 where x <= 0.

dx = where(x > 0, alpha * dout, dout) instead of where(x > 0, dout, alpha * dout). The forward is right.
lrelu_param {"alpha": a}. Any shape.
"""

import numpy as np


def leaky_relu_forward(x, lrelu_param):
    alpha = lrelu_param["alpha"]
    out = np.where(x > 0, x, alpha * x)
    return out, (x, alpha)


def leaky_relu_backward(dout, cache):
    x, alpha = cache
    dx = np.where(x > 0, alpha * dout, dout)
    return dx
