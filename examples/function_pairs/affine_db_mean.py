"""BUG: affine_backward averages the bias gradient over the batch (db = dout.mean(axis=0)).

The loss the harness differentiates is a sum over the batch, so db must be dout.sum(axis=0); the mean
is N times too small. Invisible when N == 1. dx and dw are right.
x (N, d1, ..., dk) flattened to (N, D); w (D, M); b (M,).
"""


def affine_forward(x, w, b):
    x_flat = x.reshape(x.shape[0], -1)
    return x_flat @ w + b, (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    x_flat = x.reshape(x.shape[0], -1)
    dx = (dout @ w.T).reshape(x.shape)
    dw = x_flat.T @ dout
    db = dout.mean(axis=0)
    return dx, dw, db
