"""Losses on scores (N, M) with integer labels (N,): softmax cross-entropy and the multiclass hinge (SVM) loss,
each averaged over the batch ("mean", the default) or summed ("sum")."""

from __future__ import annotations

import numpy as np

from cnn._args import require_array

REDUCTIONS = ("mean", "sum")
"""How a loss combines the per-sample terms: their mean over the batch (the default) or their sum."""


def reduction_divisor(reduction: object, batch: int) -> int:
    """N for "mean", 1 for "sum": L = (1 / divisor) sum_n loss_n."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return batch if reduction == "mean" else 1


def _labels(scores: np.ndarray, labels: object, name: str) -> np.ndarray:
    """``labels`` as N ints in [0, M) for ``scores`` (N, M), or ValueError naming both shapes."""
    require_array(scores, name, 2)
    labels = np.asarray(labels)
    n, m = scores.shape
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be {n} integers for {name} {scores.shape}, got {labels.dtype} {labels.shape}")
    if n and (labels.min() < 0 or labels.max() >= m):
        raise ValueError(f"labels must lie in [0, {m}), got range [{labels.min()}, {labels.max()}]")
    return labels


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log softmax(z)_k = z_k - max(z) - log sum_j exp(z_j - max(z)) (shifted so exp never overflows)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray, reduction: str = "mean") -> tuple[float, np.ndarray]:
    """L = -(1/D) sum_n log softmax(z_n)[y_n];  dL/dz = (softmax(z) - onehot(y)) / D, with D = N ("mean") or 1
    ("sum").

    logits (N, M) float, labels (N,) ints in [0, M). Returns (loss, dlogits) with dlogits in the
    logits' dtype.
    """
    labels = _labels(logits, labels, "logits")
    n = logits.shape[0]
    divisor = reduction_divisor(reduction, n)
    logp = log_softmax(logits)
    rows = np.arange(n)
    loss = -logp[rows, labels].sum() / divisor
    dlogits = np.exp(logp)
    dlogits[rows, labels] -= 1
    dlogits /= divisor
    return float(loss), dlogits.astype(logits.dtype, copy=False)


def hinge_margins(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """m_ij = x_ij - x_iy_i + 1 for j != y_i, and 0 at j = y_i (the label's own term is not in the loss)."""
    labels = _labels(scores, labels, "scores")
    rows = np.arange(scores.shape[0])
    margins = scores - scores[rows, labels][:, None] + 1
    margins[rows, labels] = 0
    return margins


def svm_loss(scores: np.ndarray, labels: np.ndarray, reduction: str = "mean") -> tuple[float, np.ndarray]:
    """L = (1/D) sum_i sum_{j != y_i} max(0, m_ij), m_ij = x_ij - x_iy_i + 1 (margin 1), D = N ("mean") or 1;
    dL/dx_ij = [m_ij > 0] / D for j != y_i and dL/dx_iy_i = -(sum_{j != y_i} [m_ij > 0]) / D.

    At a margin of exactly 0 the indicator is taken as 0 (PyTorch's multi_margin_loss does the same); any value
    in [0, 1] there is an equally valid subgradient. Returns (loss, dscores) with dscores in the scores' dtype.
    """
    margins = hinge_margins(scores, labels)
    divisor = reduction_divisor(reduction, scores.shape[0])
    loss = np.maximum(margins, 0).sum() / divisor
    active = (margins > 0).astype(scores.dtype)
    rows = np.arange(scores.shape[0])
    active[rows, np.asarray(labels)] = -active.sum(axis=1)
    return float(loss), (active / divisor).astype(scores.dtype, copy=False)
