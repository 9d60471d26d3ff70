"""BUG: softmax_backward treats the softmax as elementwise: dx = dout * s * (1 - s), the Jacobian's diagonal only.

The off-diagonal terms -s_i s_j dout_j of the Jacobian diag(s) - s s^T are missing. Softmax over the last
axis; the forward is right (max-shifted).
"""

import numpy as np


def softmax_forward(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    s = e / e.sum(axis=-1, keepdims=True)
    return s, s


def softmax_backward(dout, cache):
    s = cache
    dx = dout * s * (1 - s)
    return dx
