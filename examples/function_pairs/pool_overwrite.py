"""BUG: max_pool_backward assigns (=) each window's gradient instead of adding (+=).

dx[window] = mask * dout overwrites the whole window, so where windows overlap (stride < pool size)
a later window wipes out what an earlier one routed to a shared position (including a shared argmax,
whose gradient should be the sum over both windows). Invisible when stride >= pool size.
NCHW; pool_param {"pool_height", "pool_width", "stride"}; first maximum wins ties.
"""

import numpy as np


def max_pool_forward(x, pool_param):
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, H, W = x.shape
    Ho, Wo = 1 + (H - ph) // s, 1 + (W - pw) // s
    out = np.zeros((N, C, Ho, Wo), dtype=x.dtype)
    for i in range(Ho):
        for j in range(Wo):
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
                    window = x[n, c, i * s : i * s + ph, j * s : j * s + pw]
                    mask = np.zeros_like(window)
                    mask[np.unravel_index(np.argmax(window), window.shape)] = 1
                    dx[n, c, i * s : i * s + ph, j * s : j * s + pw] = mask * dout[n, c, i, j]
    return dx
