"""Softmax cross-entropy, mean over the batch."""

from __future__ import annotations

import numpy as np

from cnn._args import require_array


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log softmax(z)_k = z_k - max(z) - log sum_j exp(z_j - max(z)) (shifted so exp never overflows)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """L = -(1/N) sum_n log softmax(z_n)[y_n];  dL/dz = (softmax(z) - onehot(y)) / N.

    logits (N, M) float, labels (N,) ints in [0, M). Returns (loss, dlogits) with dlogits in the
    logits' dtype.
    """
    require_array(logits, "logits", 2)
    labels = np.asarray(labels)
    n, m = logits.shape
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be {n} integers for logits {logits.shape}, got {labels.dtype} {labels.shape}")
    if n and (labels.min() < 0 or labels.max() >= m):
        raise ValueError(f"labels must lie in [0, {m}), got range [{labels.min()}, {labels.max()}]")
    logp = log_softmax(logits)
    rows = np.arange(n)
    loss = -logp[rows, labels].mean()
    dlogits = np.exp(logp)
    dlogits[rows, labels] -= 1
    dlogits /= n
    return float(loss), dlogits.astype(logits.dtype, copy=False)
