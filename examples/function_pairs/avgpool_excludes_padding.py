"""BUG: avg_pool_backward divides each window's gradient by its number of REAL (unpadded) taps, not by ph * pw.

The forward divides by pool_height * pool_width with the zero padding counted (count_include_pad=True);
the backward builds a mask of the real input positions and divides a border window's dout by the mask's
count instead. Only visible with pad >= 1. x (N, C, H, W); pool_param {"pool_height", "pool_width",
"stride"} and optionally "pad".
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
            out[:, :, i, j] = xp[:, :, i * s : i * s + ph, j * s : j * s + pw].sum(axis=(2, 3)) / (ph * pw)
    return out, (x, pool_param)


def avg_pool_backward(dout, cache):
    x, pool_param = cache
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    pad = pool_param.get("pad", 0)
    n, c, h, w = x.shape
    real = np.pad(np.ones((h, w)), pad)
    dxp = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=dout.dtype)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            count = real[i * s : i * s + ph, j * s : j * s + pw].sum()
            dxp[:, :, i * s : i * s + ph, j * s : j * s + pw] += dout[:, :, i, j, None, None] / count
    return dxp[:, :, pad : pad + h, pad : pad + w]
