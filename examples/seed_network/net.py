"""A seed-article network: one 28x28 grey image -> Conv3x3(8) -> MaxPool2 -> Softmax(13*13*8, 10).

Each layer keeps what its backward needs from its forward, and backprop(d, lr) takes the SGD step on its own
parameters after computing the gradient it hands to the layer before it. The last layer fuses a dense layer
with a softmax: it returns probabilities, so the loss is -log p[label].

    cnn-gradcheck check examples/seed_network/net.py:build --kind network
"""

import numpy as np

INPUT_SHAPE = (28, 28)


class Conv3x3:
    """(H, W) -> (H - 2, W - 2, F): valid 3x3 correlation with F filters, no bias."""

    def __init__(self, num_filters, seed=0):
        rng = np.random.default_rng(seed)
        self.num_filters = num_filters
        self.filters = rng.standard_normal((num_filters, 3, 3)) / 9

    def regions(self, image):
        h, w = image.shape
        for i in range(h - 2):
            for j in range(w - 2):
                yield i, j, image[i : i + 3, j : j + 3]

    def forward(self, image):
        self.last_input = image
        h, w = image.shape
        out = np.zeros((h - 2, w - 2, self.num_filters))
        for i, j, region in self.regions(image):
            out[i, j] = np.sum(region * self.filters, axis=(1, 2))
        return out

    def backprop(self, d_out, lr):
        d_filters = np.zeros(self.filters.shape)
        d_input = np.zeros(self.last_input.shape)
        for i, j, region in self.regions(self.last_input):
            g = d_out[i, j]  # (F,)
            d_filters += g[:, None, None] * region
            d_input[i : i + 3, j : j + 3] += np.tensordot(g, self.filters, axes=1)
        self.filters -= lr * d_filters
        return d_input


class MaxPool2:
    """(H, W, C) -> (H // 2, W // 2, C); the gradient goes to the first maximum of each 2x2 window."""

    def forward(self, x):
        self.last_input = x
        h, w, c = x.shape
        windows = x[: h // 2 * 2, : w // 2 * 2].reshape(h // 2, 2, w // 2, 2, c).transpose(0, 2, 4, 1, 3)
        flat = windows.reshape(h // 2, w // 2, c, 4)
        self.choice = np.argmax(flat, axis=-1)
        return np.max(flat, axis=-1)

    def backprop(self, d_out, lr):
        d_input = np.zeros(self.last_input.shape)
        ho, wo, c = d_out.shape
        rows, cols = np.divmod(self.choice, 2)
        i, j, k = np.meshgrid(np.arange(ho), np.arange(wo), np.arange(c), indexing="ij")
        d_input[2 * i + rows, 2 * j + cols, k] = d_out
        return d_input


class Softmax:
    """Flatten, dense (n -> classes), softmax: returns the class probabilities."""

    def __init__(self, input_len, classes, seed=1):
        rng = np.random.default_rng(seed)
        self.weights = rng.standard_normal((input_len, classes)) / input_len
        self.biases = np.zeros(classes)

    def forward(self, x):
        self.last_shape = x.shape
        self.last_flat = x.reshape(-1)
        totals = self.last_flat @ self.weights + self.biases
        e = np.exp(totals - totals.max())
        self.last_probs = e / e.sum()
        return self.last_probs

    def backprop(self, d_probs, lr):
        p = self.last_probs
        d_totals = p * (d_probs - np.dot(d_probs, p))  # the softmax Jacobian (diag(p) - p p^T) times d_probs
        d_weights = np.outer(self.last_flat, d_totals)
        d_input = self.weights @ d_totals
        self.weights -= lr * d_weights
        self.biases -= lr * d_totals
        return d_input.reshape(self.last_shape)


def build():
    return [Conv3x3(8), MaxPool2(), Softmax(13 * 13 * 8, 10)]
