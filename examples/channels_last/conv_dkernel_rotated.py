"""BUG: the kernel gradient is rotated by 180 degrees (its spatial axes kh, kw are flipped).

By analogy with "dL/dX uses the rotated kernel" the author also rotated dL/dK, so self.dkernel[u, v]
holds the gradient of kernel[kh-1-u, kw-1-v]. Invisible for 1 x 1 kernels (and when the true
gradient happens to be half-turn symmetric). dx and dbias are right.
x (N, H, W, C), kernel (kh, kw, C, F), bias (F,); stride/padding ints; gradients in self.dkernel,
self.dbias; backward -> dx.
"""

import numpy as np


class ConvKernelGradRotated:
    def __init__(self, in_channels, filters, kernel_size, stride=1, padding=0, seed=None):
        rng = np.random.default_rng(seed)
        k = kernel_size
        self.kernel = rng.normal(0.0, 0.1, (k, k, in_channels, filters))
        self.bias = np.zeros(filters)
        self.stride = stride
        self.padding = padding

    def forward(self, x):
        k, s, p = self.kernel.shape[0], self.stride, self.padding
        xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
        N, Hp, Wp, C = xp.shape
        Ho, Wo = (Hp - k) // s + 1, (Wp - k) // s + 1
        flat_kernel = self.kernel.reshape(k * k * C, -1)
        out = np.empty((N, Ho, Wo, flat_kernel.shape[1]), dtype=x.dtype)
        for i in range(Ho):
            for j in range(Wo):
                patch = xp[:, i * s : i * s + k, j * s : j * s + k, :].reshape(N, -1)
                out[:, i, j, :] = patch @ flat_kernel + self.bias
        self.x, self.xp = x, xp
        return out

    def backward(self, dout):
        k, s, p = self.kernel.shape[0], self.stride, self.padding
        N, Ho, Wo, F = dout.shape
        C = self.xp.shape[3]
        flat_kernel = self.kernel.reshape(k * k * C, F)
        dk = np.zeros_like(flat_kernel)
        dxp = np.zeros_like(self.xp)
        for i in range(Ho):
            for j in range(Wo):
                patch = self.xp[:, i * s : i * s + k, j * s : j * s + k, :].reshape(N, -1)
                g = dout[:, i, j, :]  # (N, F)
                dk += patch.T @ g
                dxp[:, i * s : i * s + k, j * s : j * s + k, :] += (g @ flat_kernel.T).reshape(N, k, k, C)
        self.dkernel = dk.reshape(self.kernel.shape)[::-1, ::-1]  # "rotate like the input gradient"
        self.dbias = dout.sum(axis=(0, 1, 2))
        return dxp[:, p : p + self.x.shape[1], p : p + self.x.shape[2], :]
