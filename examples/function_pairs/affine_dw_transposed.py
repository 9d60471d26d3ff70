"""BUG: affine_backward returns the weight gradient transposed: dw = dout.T @ x, shape (M, D).

It is the gradient of the (M, D) "PyTorch layout" weight, but this forward uses w (D, M). When D == M
(a square weight) the shapes agree and nothing crashes: the values are simply transposed.
When D != M the shape is (M, D) instead of (D, M). dx and db are right.
x (N, d1, ..., dk) flattened to (N, D); w (D, M); b (M,).
"""


def affine_forward(x, w, b):
    out = x.reshape(x.shape[0], -1).dot(w) + b
    return out, (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    N = x.shape[0]
    dx = dout.dot(w.T).reshape(x.shape)
    dw = dout.T.dot(x.reshape(N, -1))
    db = dout.sum(axis=0)
    return dx, dw, db
