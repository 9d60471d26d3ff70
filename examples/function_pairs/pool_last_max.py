"""Max-pool function pair whose backward gives a tied window's gradient to its LAST maximum. VALID.

Same signatures and layouts as layers_naive.max_pool_forward / max_pool_backward (NCHW, pool_param
{"pool_height", "pool_width", "stride"}, no padding, overlapping windows add up). At a tie this
differs from PyTorch (first maximum) but is still a valid subgradient.
"""

import numpy as np


def max_pool_forward(x, pool_param):
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, H, W = x.shape
    out = np.empty((N, C, (H - ph) // s + 1, (W - pw) // s + 1), dtype=x.dtype)
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            out[:, :, i, j] = x[:, :, i * s : i * s + ph, j * s : j * s + pw].max(axis=(2, 3))
    return out, (x, pool_param)


def max_pool_backward(dout, cache):
    x, pool_param = cache
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, Ho, Wo = dout.shape
    dx = np.zeros_like(x)
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    flipped = x[n, c, i * s : i * s + ph, j * s : j * s + pw].ravel()[::-1]
                    last = ph * pw - 1 - np.argmax(flipped)  # argmax of the reversed window = last maximum
                    r, q = divmod(last, pw)
                    dx[n, c, i * s + r, j * s + q] += dout[n, c, i, j]
    return dx
