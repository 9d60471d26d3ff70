"""BUG: conv_backward crops the padding with dx_padded[:, :, pad:-pad, pad:-pad].

Right for pad >= 1, but with pad == 0 the slice is 0:-0 == 0:0, so dx comes back EMPTY, shape
(N, C, 0, 0). dw and db are right. NCHW; conv_param {"stride", "pad"}; w (F, C, HH, WW); b (F,).
"""

import numpy as np


def conv_forward(x, w, b, conv_param):
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    H_out = 1 + (H + 2 * pad - HH) // stride
    W_out = 1 + (W + 2 * pad - WW) // stride
    x_padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    out = np.zeros((N, F, H_out, W_out), dtype=x.dtype)
    w_rows = w.reshape(F, -1)
    for i in range(H_out):
        for j in range(W_out):
            window = x_padded[:, :, i * stride : i * stride + HH, j * stride : j * stride + WW]
            out[:, :, i, j] = window.reshape(N, -1) @ w_rows.T + b
    return out, (x, w, b, conv_param)


def conv_backward(dout, cache):
    x, w, b, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, F, H_out, W_out = dout.shape
    _, C, HH, WW = w.shape
    x_padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    dx_padded = np.zeros_like(x_padded)
    dw = np.zeros_like(w)
    db = np.sum(dout, axis=(0, 2, 3))
    for i in range(H_out):
        for j in range(W_out):
            rows = slice(i * stride, i * stride + HH)
            cols = slice(j * stride, j * stride + WW)
            g = dout[:, :, i, j]  # (N, F)
            dw += np.einsum("nf,nchw->fchw", g, x_padded[:, :, rows, cols])
            dx_padded[:, :, rows, cols] += np.einsum("nf,fchw->nchw", g, w)
    dx = dx_padded[:, :, pad:-pad, pad:-pad]
    return dx, dw, db
