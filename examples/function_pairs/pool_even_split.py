"""Max-pool function pair whose backward splits a tied window's gradient EVENLY among its maxima. VALID.

Same signatures and layouts as layers_naive.max_pool_forward / max_pool_backward (NCHW, pool_param
{"pool_height", "pool_width", "stride"}, no padding, overlapping windows add up). With k tied maxima
each gets dout / k. At a tie this differs from PyTorch but is still a valid subgradient.
"""

import numpy as np


def max_pool_forward(x, pool_param):
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, H, W = x.shape
    Ho, Wo = (H - ph) // s + 1, (W - pw) // s + 1
    out = np.empty((N, C, Ho, Wo), dtype=x.dtype)
    for i in range(Ho):
        for j in range(Wo):
            out[:, :, i, j] = np.max(x[:, :, i * s : i * s + ph, j * s : j * s + pw], axis=(2, 3))
    return out, (x, out, pool_param)


def max_pool_backward(dout, cache):
    x, out, pool_param = cache
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    _, _, Ho, Wo = dout.shape
    dx = np.zeros_like(x)
    for i in range(Ho):
        for j in range(Wo):
            window = x[:, :, i * s : i * s + ph, j * s : j * s + pw]
            mask = window == out[:, :, i, j][:, :, None, None]
            share = dout[:, :, i, j] / mask.sum(axis=(2, 3))
            dx[:, :, i * s : i * s + ph, j * s : j * s + pw] += mask * share[:, :, None, None]
    return dx
