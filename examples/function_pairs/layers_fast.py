"""Vectorised CS231n-style layer functions (NCHW). Correct. Same signatures as layers_naive.py.

conv: the forward gathers every window with numpy's sliding_window_view and contracts with einsum;
the backward contracts dout with the windows for dw, and for dx scatters one kernel tap (u, v) at a
time with strided slice assignment (HH * WW vectorised adds instead of N * F * Ho * Wo small ones).
max-pool: windows gathered the same way; the argmax of each flattened window is scattered with
np.add.at, so overlapping windows add up; the first maximum wins ties.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _windows(xp, kh, kw, s):
    """(N, C, Ho, Wo, kh, kw) view of every window of xp taken with stride s."""
    return sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::s, ::s]


def conv_forward(x, w, b, conv_param):
    s, p = conv_param["stride"], conv_param["pad"]
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    cols = _windows(xp, w.shape[2], w.shape[3], s)
    out = np.einsum("nchwuv,fcuv->nfhw", cols, w) + b[None, :, None, None]
    return out, (x, w, b, conv_param)


def conv_backward(dout, cache):
    x, w, b, conv_param = cache
    s, p = conv_param["stride"], conv_param["pad"]
    _, _, HH, WW = w.shape
    _, _, Ho, Wo = dout.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    cols = _windows(xp, HH, WW, s)
    dw = np.einsum("nchwuv,nfhw->fcuv", cols, dout)
    db = dout.sum(axis=(0, 2, 3))
    dxp = np.zeros_like(xp)
    for u in range(HH):
        for v in range(WW):
            tap = np.einsum("nfhw,fc->nchw", dout, w[:, :, u, v])
            dxp[:, :, u : u + s * (Ho - 1) + 1 : s, v : v + s * (Wo - 1) + 1 : s] += tap
    dx = dxp[:, :, p : p + x.shape[2], p : p + x.shape[3]]
    return dx, dw, db


def max_pool_forward(x, pool_param):
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    win = _windows(x, ph, pw, s)
    return win.max(axis=(4, 5)), (x, pool_param)


def max_pool_backward(dout, cache):
    x, pool_param = cache
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, Ho, Wo = dout.shape
    win = _windows(x, ph, pw, s).reshape(N, C, Ho, Wo, ph * pw)
    r, q = np.divmod(win.argmax(axis=-1), pw)
    rows = r + s * np.arange(Ho)[:, None]
    cols = q + s * np.arange(Wo)[None, :]
    n = np.arange(N)[:, None, None, None]
    c = np.arange(C)[None, :, None, None]
    dx = np.zeros_like(x)
    np.add.at(dx, (n, c, rows, cols), dout)
    return dx


def relu_forward(x):
    out = x.copy()
    out[out < 0] = 0
    return out, x


def relu_backward(dout, cache):
    return np.where(cache > 0, dout, 0.0)


def affine_forward(x, w, b):
    return np.dot(x.reshape(len(x), -1), w) + b, (x, w, b)


def affine_backward(dout, cache):
    x, w, _ = cache
    dw = np.dot(x.reshape(len(x), -1).T, dout)
    dx = np.dot(dout, w.T).reshape(x.shape)
    return dx, dw, np.sum(dout, axis=0)
