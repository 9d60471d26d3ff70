"""BUG: softmax_backward returns the upstream gradient unchanged (dx = dout).

A shortcut copied from a fused softmax + cross-entropy, where the upstream term is already (s - y); for a
softmax on its own it skips the Jacobian diag(s) - s s^T entirely. Softmax over the last axis; the forward
is right.
"""

import numpy as np


def softmax_forward(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    s = e / e.sum(axis=-1, keepdims=True)
    return s, s


def softmax_backward(dout, cache):
    return dout.copy()
