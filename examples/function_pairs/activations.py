"""CS231n-style activation and average-pooling functions, vectorised. Correct.

Every forward returns (out, cache); every backward takes (dout, cache) and returns dx.

- sigmoid_forward(x) / sigmoid_backward: any shape; the backward uses the cached OUTPUT s: dx = dout * s * (1 - s).
- tanh_forward(x) / tanh_backward: any shape; dx = dout * (1 - t**2) with t the cached output.
- leaky_relu_forward(x, lrelu_param) / leaky_relu_backward: lrelu_param {"alpha": a}; slope a where x <= 0.
- softmax_forward(x) / softmax_backward: softmax over the LAST axis (max-shifted, so exp never overflows);
  dx = s * (dout - sum(dout * s, last axis)).
- avg_pool_forward(x, pool_param) / avg_pool_backward: x (N, C, H, W); pool_param {"pool_height",
  "pool_width", "stride"} and optionally "pad" (zero padding, counted in the divisor: every window is
  divided by pool_height * pool_width); windows may overlap and their gradients add up.
"""

import numpy as np


def sigmoid_forward(x):
    e = np.exp(-np.abs(x))
    out = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
    return out, out


def sigmoid_backward(dout, cache):
    s = cache
    return dout * s * (1 - s)


def tanh_forward(x):
    out = np.tanh(x)
    return out, out


def tanh_backward(dout, cache):
    t = cache
    return dout * (1 - t**2)


def leaky_relu_forward(x, lrelu_param):
    alpha = lrelu_param["alpha"]
    out = np.where(x > 0, x, alpha * x)
    return out, (x, alpha)


def leaky_relu_backward(dout, cache):
    x, alpha = cache
    return np.where(x > 0, dout, alpha * dout)


def softmax_forward(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    out = e / e.sum(axis=-1, keepdims=True)
    return out, out


def softmax_backward(dout, cache):
    s = cache
    return s * (dout - (dout * s).sum(axis=-1, keepdims=True))


def avg_pool_forward(x, pool_param):
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    pad = pool_param.get("pad", 0)
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    windows = np.lib.stride_tricks.sliding_window_view(xp, (ph, pw), axis=(2, 3))[:, :, ::stride, ::stride]
    out = windows.mean(axis=(-2, -1))
    return out, (x.shape, pool_param)


def avg_pool_backward(dout, cache):
    shape, pool_param = cache
    ph, pw, stride = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    pad = pool_param.get("pad", 0)
    n, c, h, w = shape
    dxp = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=dout.dtype)
    ho, wo = dout.shape[2:]
    share = dout / (ph * pw)
    for u in range(ph):
        for v in range(pw):
            dxp[:, :, u : u + stride * (ho - 1) + 1 : stride, v : v + stride * (wo - 1) + 1 : stride] += share
    return dxp[:, :, pad : pad + h, pad : pad + w]
