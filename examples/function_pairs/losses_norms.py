"""CS231n-style losses, batch normalisation and dropout, vectorised. Correct.

- softmax_loss(x, y) -> (loss, dx): x (N, C) class scores, y (N,) integer labels; the loss is the MEAN over the
  batch of -log softmax(x_i)[y_i] (max-shifted, so exp never overflows), dx its gradient.
- svm_loss(x, y) -> (loss, dx): the multiclass hinge loss with margin 1, the mean over the batch of
  sum_{j != y_i} max(0, x_ij - x_iy_i + 1); a margin of exactly 0 counts as inactive.
- batchnorm_forward(x, gamma, beta, bn_param) -> (out, cache): x (N, D), gamma and beta (D,); bn_param
  {"mode": "train" or "test", "eps", "momentum", "running_mean", "running_var"}. Training mode normalises with the
  batch mean and the BIASED batch variance and updates the running averages in bn_param.
- batchnorm_backward(dout, cache) -> (dx, dgamma, dbeta): back through the forward's steps one by one.
- batchnorm_backward_alt(dout, cache): the same gradients from the simplified closed form.
- spatial_batchnorm_forward / spatial_batchnorm_backward: x (N, C, H, W), gamma and beta (C,): statistics per
  channel over N, H and W, by moving the channels last and running the plain pair on (N*H*W, C).
- dropout_forward(x, dropout_param) -> (out, cache): dropout_param {"p": the KEEP probability, "mode", "seed"};
  inverted dropout (kept units scaled by 1 / p) with a mask drawn from its own RandomState(seed).
- dropout_backward(dout, cache) -> dx.
"""

import numpy as np


def softmax_loss(x, y):
    n = x.shape[0]
    shifted = x - x.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_probs[np.arange(n), y].mean()
    dx = np.exp(log_probs)
    dx[np.arange(n), y] -= 1
    return loss, dx / n


def svm_loss(x, y):
    n = x.shape[0]
    rows = np.arange(n)
    margins = np.maximum(0, x - x[rows, y][:, None] + 1.0)
    margins[rows, y] = 0
    loss = margins.sum() / n
    active = (margins > 0).astype(x.dtype)
    active[rows, y] = -active.sum(axis=1)
    return loss, active / n


def batchnorm_forward(x, gamma, beta, bn_param):
    mode = bn_param["mode"]
    eps, momentum = bn_param.get("eps", 1e-5), bn_param.get("momentum", 0.9)
    d = x.shape[1]
    running_mean = bn_param.get("running_mean", np.zeros(d, dtype=x.dtype))
    running_var = bn_param.get("running_var", np.zeros(d, dtype=x.dtype))
    if mode == "train":
        mu = x.mean(axis=0)
        centred = x - mu
        var = (centred**2).mean(axis=0)
        inv_std = 1.0 / np.sqrt(var + eps)
        x_hat = centred * inv_std
        out = gamma * x_hat + beta
        cache = (x_hat, centred, inv_std, gamma)
        running_mean = momentum * running_mean + (1 - momentum) * mu
        running_var = momentum * running_var + (1 - momentum) * var
    elif mode == "test":
        out = gamma * (x - running_mean) / np.sqrt(running_var + eps) + beta
        cache = None
    else:
        raise ValueError(f"invalid batchnorm mode {mode!r}")
    bn_param["running_mean"], bn_param["running_var"] = running_mean, running_var
    return out, cache


def batchnorm_backward(dout, cache):
    x_hat, centred, inv_std, gamma = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    # x_hat = centred * inv_std: both factors depend on x
    dinv_std = (dx_hat * centred).sum(axis=0)
    dcentred = dx_hat * inv_std
    # inv_std = (var + eps) ** -1/2, var = mean(centred ** 2)
    dvar = dinv_std * -0.5 * inv_std**3
    dcentred += dvar * 2 * centred / n
    # centred = x - mu, mu = mean(x)
    dx = dcentred - dcentred.mean(axis=0)
    return dx, dgamma, dbeta


def batchnorm_backward_alt(dout, cache):
    x_hat, _, inv_std, gamma = cache
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx = gamma * inv_std * (dout - dout.mean(axis=0) - x_hat * (dout * x_hat).mean(axis=0))
    return dx, dgamma, dbeta


def _channels_last(x):
    n, c, h, w = x.shape
    return x.transpose(0, 2, 3, 1).reshape(-1, c)


def _channels_first(rows, shape):
    n, c, h, w = shape
    return rows.reshape(n, h, w, c).transpose(0, 3, 1, 2)


def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    out, cache = batchnorm_forward(_channels_last(x), gamma, beta, bn_param)
    return _channels_first(out, x.shape), (cache, x.shape)


def spatial_batchnorm_backward(dout, cache):
    inner, shape = cache
    dx, dgamma, dbeta = batchnorm_backward(_channels_last(dout), inner)
    return _channels_first(dx, shape), dgamma, dbeta


def dropout_forward(x, dropout_param):
    p, mode = dropout_param["p"], dropout_param["mode"]
    rng = np.random.RandomState(dropout_param.get("seed"))
    mask = None
    if mode == "train":
        mask = (rng.rand(*x.shape) < p) / p
        out = x * mask
    else:
        out = x
    return out.astype(x.dtype, copy=False), (dropout_param, mask)


def dropout_backward(dout, cache):
    dropout_param, mask = cache
    if dropout_param["mode"] == "train":
        return dout * mask
    return dout
