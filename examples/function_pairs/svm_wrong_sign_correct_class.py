"""BUG: svm_loss adds the count of positive margins at the correct class instead of subtracting it:
dx[i, y_i] = +k_i / N. Raising the correct score lowers every margin, so its derivative is -k_i / N. The loss is
right; a row with no positive margin is right too."""

import numpy as np


def svm_loss(x, y):
    n = x.shape[0]
    rows = np.arange(n)
    margins = np.maximum(0, x - x[rows, y][:, None] + 1.0)
    margins[rows, y] = 0
    loss = margins.sum() / n
    dx = (margins > 0).astype(x.dtype)
    dx[rows, y] += dx.sum(axis=1)
    return loss, dx / n
