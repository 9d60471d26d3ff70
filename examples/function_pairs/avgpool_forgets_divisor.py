"""BUG: avg_pool_backward spreads each window's whole dout over its taps, without the 1 / (ph * pw).

The forward averages; the backward adds dout[i, j] to every tap of window (i, j), so dx is ph * pw times
too large. Only visible with a window of more than one tap. x (N, C, H, W); pool_param {"pool_height",
"pool_width", "stride"} and optionally "pad" (zero padding).
"""

import numpy as np


def avg_pool_forward(x, pool_param):
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    pad = pool_param.get("pad", 0)
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    n, c, hp, wp = xp.shape
    ho, wo = (hp - ph) // s + 1, (wp - pw) // s + 1
    out = np.zeros((n, c, ho, wo), dtype=x.dtype)
    for i in range(ho):
        for j in range(wo):
            out[:, :, i, j] = xp[:, :, i * s : i * s + ph, j * s : j * s + pw].mean(axis=(2, 3))
    return out, (x, pool_param)


def avg_pool_backward(dout, cache):
    x, pool_param = cache
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    pad = pool_param.get("pad", 0)
    n, c, h, w = x.shape
    dxp = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=dout.dtype)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            dxp[:, :, i * s : i * s + ph, j * s : j * s + pw] += dout[:, :, i, j, None, None]
    return dxp[:, :, pad : pad + h, pad : pad + w]
