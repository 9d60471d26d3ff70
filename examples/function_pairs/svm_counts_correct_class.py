"""BUG: svm_loss keeps the correct class's own margin, x_iy - x_iy + 1 = 1, in the sum: the loss is 1 too large
(per sample, so by 1 after the mean), and the correct class's gradient counts that margin as one more positive
one (dx[i, y_i] = -(k_i + 1) / N instead of -k_i / N, k_i the row's positive margins over j != y_i).

The margins[range(N), y] = 0 line is missing."""

import numpy as np


def svm_loss(x, y):
    n = x.shape[0]
    rows = np.arange(n)
    margins = np.maximum(0, x - x[rows, y][:, None] + 1.0)
    loss = margins.sum() / n
    positive = margins > 0
    dx = positive.astype(x.dtype)
    dx[rows, y] = -positive.sum(axis=1)
    return loss, dx / n
