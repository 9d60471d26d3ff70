"""BUG: conv_backward indexes windows with stride 1 (i:i+HH instead of i*stride:i*stride+HH).

The forward honours the stride; the backward was written for stride 1 and never updated, so with
stride >= 2 both dx and dw are computed from the wrong windows. db is right, and everything is right
for stride == 1. NCHW; conv_param {"stride", "pad"}; w (F, C, HH, WW); b (F,).
"""

import numpy as np


def conv_forward(x, w, b, conv_param):
    s, p = conv_param["stride"], conv_param["pad"]
    N, _, H, W = x.shape
    F, _, HH, WW = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    Ho, Wo = 1 + (H + 2 * p - HH) // s, 1 + (W + 2 * p - WW) // s
    out = np.empty((N, F, Ho, Wo), dtype=x.dtype)
    for i in range(Ho):
        for j in range(Wo):
            window = xp[:, :, i * s : i * s + HH, j * s : j * s + WW]
            out[:, :, i, j] = np.tensordot(window, w, axes=([1, 2, 3], [1, 2, 3])) + b
    return out, (x, w, b, conv_param)


def conv_backward(dout, cache):
    x, w, b, conv_param = cache
    p = conv_param["pad"]
    _, _, HH, WW = w.shape
    _, _, Ho, Wo = dout.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for i in range(Ho):
        for j in range(Wo):
            window = xp[:, :, i : i + HH, j : j + WW]  # stride forgotten here ...
            g = dout[:, :, i, j]
            dw += np.tensordot(g, window, axes=([0], [0]))
            dxp[:, :, i : i + HH, j : j + WW] += np.tensordot(g, w, axes=([1], [0]))  # ... and here
    db = dout.sum(axis=(0, 2, 3))
    dx = dxp[:, :, p : xp.shape[2] - p, p : xp.shape[3] - p]
    return dx, dw, db
