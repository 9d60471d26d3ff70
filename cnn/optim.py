"""Optimizers: the only code that writes parameters."""

from __future__ import annotations

from cnn.layers import Layer


class SGD:
    """Plain gradient descent: p <- p - lr * dL/dp for every parameter that has a gradient."""

    def __init__(self, layer: Layer, lr: float = 0.01) -> None:
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr!r}")
        self.layer, self.lr = layer, float(lr)

    def step(self) -> None:
        params, grads = self.layer.params, self.layer.grads
        for name, grad in grads.items():
            params[name] = params[name] - self.lr * grad
