"""The seed article's layers as other people name things: the same maths, other method and attribute names.

All correct. The seed preset finds each part by name (``forward`` / ``forward_prop`` / ``forward_pass``;
``backward`` / ``backprop`` / ``back_prop`` / ``backward_pass`` / ``backward_prop``; filters ``filters`` /
``kernels`` / ``weights`` / ``W``; dense weights ``weights`` / ``W`` / ``w``, biases ``biases`` / ``bias`` / ``b``)
and reads a learning rate passed to backward as ``(d, lr)``, ``(d, alpha)`` or ``(d, learning_rate)``.

- KernelConv: image (H, W) -> (H-k+1, W-k+1, F); filters kept as ``kernels`` (F, k, k); ``forward_prop(image)``,
  ``backprop(d, lr)`` takes the SGD step with the rate it is handed. Stride 1, no padding, no bias.
- LazyKernelConv: the same, but ``kernels`` only exist after the first ``forward_prop``.
- PoolBackProp: (H, W, C) -> (H // size, W // size, C), window = stride = size; ``forward_prop``,
  ``back_prop(d, alpha)`` (the rate is ignored: a pool has nothing to learn, but every layer of a network
  loop is called the same way). The first maximum of a window receives its gradient.
- ReLUPass: ``forward_pass(x)``, ``backward_pass(d, learning_rate)``; masked where x <= 0.
- DenseBackProp: input of any shape flattened to (n,); ``W`` (n, m), ``b`` (m,); ``forward_prop``,
  ``back_prop(d, alpha)`` steps both with the rate it is handed.
"""

import numpy as np


class KernelConv:
    def __init__(self, num_filters, filter_size):
        rng = np.random.default_rng(7)
        self.num_filters = num_filters
        self.filter_size = filter_size
        self.kernels = rng.normal(0.0, 1.0 / filter_size, (num_filters, filter_size, filter_size))

    def windows(self, image):
        """Each k x k window of the image with the output position it produces."""
        k = self.filter_size
        rows, cols = image.shape
        for r in range(rows - k + 1):
            for c in range(cols - k + 1):
                yield r, c, image[r : r + k, c : c + k]

    def forward_prop(self, image):
        self.image = image
        k = self.filter_size
        rows, cols = image.shape
        out = np.zeros((rows - k + 1, cols - k + 1, self.num_filters), dtype=image.dtype)
        for r, c, window in self.windows(image):
            out[r, c] = (self.kernels * window).sum(axis=(1, 2))
        return out

    def backprop(self, d, lr):
        k = self.filter_size
        d_kernels = np.zeros(self.kernels.shape)
        d_image = np.zeros(self.image.shape)
        for r, c, window in self.windows(self.image):
            for f in range(self.num_filters):
                d_kernels[f] += d[r, c, f] * window
                d_image[r : r + k, c : c + k] += d[r, c, f] * self.kernels[f]
        self.kernels = self.kernels - lr * d_kernels
        return d_image


class LazyKernelConv(KernelConv):
    """Sizes its kernels only when it first sees an image (a common way to defer initialisation)."""

    def __init__(self, num_filters, filter_size):
        self.num_filters = num_filters
        self.filter_size = filter_size
        self.kernels = None

    def forward_prop(self, image):
        if self.kernels is None:
            shape = (self.num_filters, self.filter_size, self.filter_size)
            self.kernels = np.random.default_rng(3).uniform(-0.5, 0.5, shape)
        return super().forward_prop(image)


class PoolBackProp:
    def __init__(self, size=2):
        self.size = size

    def forward_prop(self, volume):
        self.volume = volume
        s = self.size
        rows, cols, channels = volume.shape
        out = np.zeros((rows // s, cols // s, channels), dtype=volume.dtype)
        self.winner = np.zeros(out.shape + (2,), dtype=int)
        for r in range(rows // s):
            for c in range(cols // s):
                for ch in range(channels):
                    window = volume[r * s : r * s + s, c * s : c * s + s, ch]
                    i, j = np.unravel_index(np.argmax(window), window.shape)
                    out[r, c, ch] = window[i, j]
                    self.winner[r, c, ch] = (r * s + i, c * s + j)
        return out

    def back_prop(self, d, alpha):
        d_volume = np.zeros(self.volume.shape)
        rows, cols, channels = d.shape
        for r in range(rows):
            for c in range(cols):
                for ch in range(channels):
                    i, j = self.winner[r, c, ch]
                    d_volume[i, j, ch] += d[r, c, ch]
        return d_volume


class ReLUPass:
    def forward_pass(self, x):
        self.positive = x > 0
        return np.where(self.positive, x, 0.0).astype(x.dtype)

    def backward_pass(self, d, learning_rate):
        return np.where(self.positive, d, 0.0)


class DenseBackProp:
    def __init__(self, input_size, num_classes):
        rng = np.random.default_rng(11)
        self.W = rng.normal(0.0, 1.0 / np.sqrt(input_size), (input_size, num_classes))
        self.b = np.zeros(num_classes)

    def forward_prop(self, x):
        self.shape = x.shape
        self.x = x.ravel()
        return self.x @ self.W + self.b

    def back_prop(self, d, alpha):
        d_x = self.W @ d
        self.W = self.W - alpha * np.outer(self.x, d)
        self.b = self.b - alpha * d
        return d_x.reshape(self.shape)
