"""Seed-article style layers: one image at a time, channels last, plain Python loops, SGD inside backward.

Correct versions. Layouts:

- ConvLayer / Conv3x3: input (H, W) (one grey image), filters (F, k, k), output (H-k+1, W-k+1, F).
  Stride 1, no padding, no bias. backward(dL_dout) takes an SGD step on self.filters and returns dL/dinput (H, W).
- MaxPoolLayer: (H, W, C) -> (H // size, W // size, C); window = stride = size; the first maximum
  (row-major inside the window) receives the gradient.
- ReLULayer: any shape; the gradient is masked where input <= 0.
- FullyConnectedLayer: input of any shape, flattened to (n,); weights (n, m), biases (m,); output (m,).
  backward takes an SGD step on both and returns dL/dinput reshaped to the input's shape.
"""

import numpy as np


class ConvLayer:
    def __init__(self, num_filters, filter_size, lr=0.01, seed=None):
        rng = np.random.default_rng(seed)
        self.num_filters = num_filters
        self.filter_size = filter_size
        self.filters = rng.standard_normal((num_filters, filter_size, filter_size)) / (filter_size * filter_size)
        self.lr = lr

    def iterate_regions(self, image):
        """Yield every k x k patch of the image together with its top-left corner."""
        k = self.filter_size
        h, w = image.shape
        for i in range(h - k + 1):
            for j in range(w - k + 1):
                yield image[i : i + k, j : j + k], i, j

    def forward(self, input):
        self.input = input
        h, w = input.shape
        k = self.filter_size
        out = np.zeros((h - k + 1, w - k + 1, self.num_filters), dtype=input.dtype)
        for patch, i, j in self.iterate_regions(input):
            for f in range(self.num_filters):
                out[i, j, f] = np.sum(patch * self.filters[f])
        return out

    def backward(self, dL_dout):
        k = self.filter_size
        dL_dfilters = np.zeros(self.filters.shape)
        dL_dinput = np.zeros(self.input.shape)
        for patch, i, j in self.iterate_regions(self.input):
            for f in range(self.num_filters):
                g = dL_dout[i, j, f]
                dL_dfilters[f] += g * patch
                # scatter form: the output pixel (i, j) spreads g * filter back over its own window
                dL_dinput[i : i + k, j : j + k] += g * self.filters[f]
        self.filters -= self.lr * dL_dfilters
        return dL_dinput


class Conv3x3(ConvLayer):
    """The first-tutorial variant: the kernel size is fixed at 3."""

    def __init__(self, num_filters, lr=0.01, seed=None):
        super().__init__(num_filters, 3, lr=lr, seed=seed)


class MaxPoolLayer:
    def __init__(self, size=2):
        self.size = size

    def forward(self, input):
        self.input = input
        s = self.size
        h, w, c = input.shape
        ho, wo = h // s, w // s
        out = np.zeros((ho, wo, c), dtype=input.dtype)
        self.argmax = np.zeros((ho, wo, c, 2), dtype=int)
        for i in range(ho):
            for j in range(wo):
                window = input[i * s : (i + 1) * s, j * s : (j + 1) * s]
                for ch in range(c):
                    flat = np.argmax(window[:, :, ch])  # first maximum in row-major order
                    r, q = divmod(flat, s)
                    out[i, j, ch] = window[r, q, ch]
                    self.argmax[i, j, ch] = (i * s + r, j * s + q)
        return out

    def backward(self, dL_dout):
        dL_dinput = np.zeros(self.input.shape)
        ho, wo, c = dL_dout.shape
        for i in range(ho):
            for j in range(wo):
                for ch in range(c):
                    r, q = self.argmax[i, j, ch]
                    dL_dinput[r, q, ch] += dL_dout[i, j, ch]
        return dL_dinput


class ReLULayer:
    def forward(self, input):
        self.input = input
        return np.maximum(input, 0)

    def backward(self, dL_dout):
        dL_dinput = np.array(dL_dout, copy=True)
        dL_dinput[self.input <= 0] = 0
        return dL_dinput


class FullyConnectedLayer:
    def __init__(self, input_size, num_classes, lr=0.01, seed=None):
        rng = np.random.default_rng(seed)
        self.weights = rng.standard_normal((input_size, num_classes)) / input_size
        self.biases = np.zeros(num_classes)
        self.lr = lr

    def forward(self, input):
        self.input_shape = input.shape
        self.input = input.reshape(-1)
        return self.input @ self.weights + self.biases

    def backward(self, dL_dout):
        n, m = self.weights.shape
        dL_dW = self.input.reshape(n, 1) @ dL_dout.reshape(1, m)  # outer product, one sample
        dL_dB = dL_dout.copy()
        dL_dinput = self.weights @ dL_dout
        self.weights -= self.lr * dL_dW
        self.biases -= self.lr * dL_dB
        return dL_dinput.reshape(self.input_shape)
