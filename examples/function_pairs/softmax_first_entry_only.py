"""BUG: softmax_backward returns from its loop after the first non-zero entry of dout in each row.

Meant to add up J[:, k] * dout[k] over every k (J = diag(s) - s s^T), the loop breaks after the first
non-zero dout[k], so each row gets only that one Jacobian column. Softmax over the last axis of an array of
any rank (rows: every other index); the forward is right.
"""

import numpy as np


def softmax_forward(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    s = e / e.sum(axis=-1, keepdims=True)
    return s, s


def softmax_backward(dout, cache):
    s = cache
    rows_s = s.reshape(-1, s.shape[-1])
    rows_g = dout.reshape(-1, s.shape[-1])
    dx = np.zeros_like(rows_s)
    for r in range(rows_s.shape[0]):
        p = rows_s[r]
        jacobian = np.diag(p) - np.outer(p, p)
        for k in range(p.shape[0]):
            if rows_g[r, k] != 0:
                dx[r] = jacobian[:, k] * rows_g[r, k]
                break
    return dx.reshape(s.shape)
