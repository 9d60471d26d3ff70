"""Batch normalisation in training mode, one formula per function.

Channels sit on axis 1 and every other axis is averaged over: a batch of vectors (N, D) is normalised per
feature over N ("plain" batch norm), a batch of images (N, C, H, W) per channel over N, H and W ("spatial"
batch norm); any rank >= 2 works the same way. With M the number of entries per channel,

    mu = (1/M) sum x      var = (1/M) sum (x - mu)^2   (the biased variance, as PyTorch normalises in training)
    x_hat = (x - mu) / sqrt(var + eps)      y = gamma * x_hat + beta

gamma and beta have one entry per channel, (C,).
"""

from __future__ import annotations

from numbers import Real

import numpy as np

from cnn._args import require_array, require_same_dtype, require_shape

DEFAULT_EPS = 1e-5
"""PyTorch's default: added to the variance so that a channel with one distinct value does not divide by 0."""


def batch_axes(ndim: int) -> tuple[int, ...]:
    """The axes statistics are taken over: every axis but the channel axis 1."""
    return (0, *range(2, ndim))


def channel_shape(x: np.ndarray) -> tuple[int, ...]:
    """(1, C, 1, ...): a per-channel vector broadcast against ``x``."""
    return (1, x.shape[1], *([1] * (x.ndim - 2)))


def epsilon(eps: object) -> float:
    """eps: a finite real number > 0 (not a bool)."""
    if isinstance(eps, bool) or not isinstance(eps, Real) or not np.isfinite(eps) or eps <= 0:
        raise ValueError(f"eps must be a positive finite number, got {eps!r}")
    return float(eps)


def _require_input(x: np.ndarray) -> np.ndarray:
    return require_array(x, "input", tuple(range(2, 9)))


def _require_channels(x: np.ndarray, value: np.ndarray, name: str) -> np.ndarray:
    require_array(value, name, 1)
    require_shape(value, (x.shape[1],), name)
    require_same_dtype(x, value, f"input and {name}")
    return value.reshape(channel_shape(x))


def normalize(x: np.ndarray, eps: float = DEFAULT_EPS) -> tuple[np.ndarray, np.ndarray]:
    """(x_hat, sigma): x_hat = (x - mu) / sigma with sigma = sqrt(var + eps), mu and the biased var per channel."""
    _require_input(x)
    axes = batch_axes(x.ndim)
    mu = x.mean(axis=axes, keepdims=True)
    sigma = np.sqrt(((x - mu) ** 2).mean(axis=axes, keepdims=True) + epsilon(eps))
    return ((x - mu) / sigma).astype(x.dtype, copy=False), sigma.astype(x.dtype, copy=False)


def batch_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = DEFAULT_EPS) -> np.ndarray:
    """y = gamma * x_hat + beta, x_hat = (x - mu) / sqrt(var + eps) over every axis but the channels (axis 1)."""
    x_hat, _ = normalize(x, eps)
    y = _require_channels(x, gamma, "gamma") * x_hat + _require_channels(x, beta, "beta")
    return y.astype(x.dtype, copy=False)


def _require_grad(grad_out: np.ndarray, x: np.ndarray) -> None:
    _require_input(x)
    require_array(grad_out, "grad_out", x.ndim)
    require_shape(grad_out, x.shape, "grad_out")
    require_same_dtype(x, grad_out, "input and grad_out")


def batch_norm_grad_input(
    grad_out: np.ndarray, x: np.ndarray, gamma: np.ndarray, eps: float = DEFAULT_EPS
) -> np.ndarray:
    """dx = (gamma / sigma) * (G - mean(G) - x_hat * mean(G * x_hat)), the means per channel over the batch axes.

    The two mean terms are the paths through mu and var: both depend on every x of the channel.
    """
    _require_grad(grad_out, x)
    x_hat, sigma = normalize(x, eps)
    axes = batch_axes(x.ndim)
    centred = grad_out - grad_out.mean(axis=axes, keepdims=True)
    through_var = x_hat * (grad_out * x_hat).mean(axis=axes, keepdims=True)
    dx = _require_channels(x, gamma, "gamma") / sigma * (centred - through_var)
    return dx.astype(x.dtype, copy=False)


def batch_norm_grad_gamma(grad_out: np.ndarray, x: np.ndarray, eps: float = DEFAULT_EPS) -> np.ndarray:
    """dgamma = sum of G * x_hat per channel (over every axis but 1)."""
    _require_grad(grad_out, x)
    x_hat, _ = normalize(x, eps)
    return (grad_out * x_hat).sum(axis=batch_axes(x.ndim)).astype(x.dtype, copy=False)


def batch_norm_grad_beta(grad_out: np.ndarray) -> np.ndarray:
    """dbeta = sum of G per channel (over every axis but 1)."""
    require_array(grad_out, "grad_out", tuple(range(2, 9)))
    return grad_out.sum(axis=batch_axes(grad_out.ndim))
