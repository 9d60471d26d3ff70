"""Channels-last convolution: x (N, H, W, C), kernel (kh, kw, C, F), output (N, Ho, Wo, F). Correct.

Conv2DNHWC(in_channels, filters, kernel_size, stride=1, padding=0, seed=None): kernel_size int or
(kh, kw); stride and padding ints (same for both axes; zero padding). Parameters self.kernel
(kh, kw, C, F) and self.bias; backward(dout (N, Ho, Wo, F)) -> dx (N, H, W, C), and sets
self.dkernel (kh, kw, C, F) and self.dbias (same shape as self.bias).

The bias may be stored in three shapes, one subclass each (same constructor):
- ConvBiasVector: bias (F,)            (the same as Conv2DNHWC)
- ConvBiasColumn: bias (F, 1)          (a "column vector" habit from matrix-per-filter code)
- ConvBias4D:     bias (1, 1, 1, F)    (pre-broadcast against the NHWC output)
"""

import numpy as np


class Conv2DNHWC:
    @staticmethod
    def bias_shape(filters):
        """The shape self.bias is stored in; (F,) unless a subclass says otherwise."""
        return (filters,)

    def __init__(self, in_channels, filters, kernel_size, stride=1, padding=0, seed=None):
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        rng = np.random.default_rng(seed)
        limit = np.sqrt(6.0 / ((in_channels + filters) * kh * kw))
        self.kernel = rng.uniform(-limit, limit, (kh, kw, in_channels, filters))
        self.bias = np.zeros(self.bias_shape(filters))
        self.stride = stride
        self.padding = padding

    def _bias_row(self):
        """The bias as (F,), whatever shape it is stored in."""
        return self.bias.reshape(-1)

    def forward(self, x):
        kh, kw, _, F = self.kernel.shape
        s, p = self.stride, self.padding
        xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
        N, Hp, Wp, _ = xp.shape
        Ho, Wo = (Hp - kh) // s + 1, (Wp - kw) // s + 1
        out = np.zeros((N, Ho, Wo, F), dtype=x.dtype)
        for u in range(kh):
            for v in range(kw):
                tap = xp[:, u : u + s * (Ho - 1) + 1 : s, v : v + s * (Wo - 1) + 1 : s, :]  # (N, Ho, Wo, C)
                out += tap @ self.kernel[u, v]  # (C, F)
        self.x, self.xp = x, xp
        return out + self._bias_row()

    def backward(self, dout):
        kh, kw, _, _ = self.kernel.shape
        s, p = self.stride, self.padding
        _, Ho, Wo, _ = dout.shape
        dk = np.zeros_like(self.kernel)
        dxp = np.zeros_like(self.xp)
        for u in range(kh):
            for v in range(kw):
                rows = slice(u, u + s * (Ho - 1) + 1, s)
                cols = slice(v, v + s * (Wo - 1) + 1, s)
                dk[u, v] = np.einsum("nhwc,nhwf->cf", self.xp[:, rows, cols, :], dout)
                dxp[:, rows, cols, :] += dout @ self.kernel[u, v].T
        self.dkernel = dk
        self.dbias = dout.sum(axis=(0, 1, 2)).reshape(self.bias.shape)
        H, W = self.x.shape[1:3]
        return dxp[:, p : p + H, p : p + W, :]


class ConvBiasVector(Conv2DNHWC):
    """bias (F,): the base class's default, under its own name."""


class ConvBiasColumn(Conv2DNHWC):
    @staticmethod
    def bias_shape(filters):
        return (filters, 1)


class ConvBias4D(Conv2DNHWC):
    @staticmethod
    def bias_shape(filters):
        return (1, 1, 1, filters)
