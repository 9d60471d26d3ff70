"""BUG (in batchnorm_backward_alt only): dgamma = sum(dout * x), the raw input where the normalised x_hat belongs.

batchnorm_backward is right; the module also defines the simplified batchnorm_backward_alt, which the checker
runs on its own cases (the geometry says alt=True), and that one computes dgamma from x. dx and dbeta are right
in both. Plain batch norm on (N, D).
"""

import numpy as np


def batchnorm_forward(x, gamma, beta, bn_param):
    eps = bn_param.get("eps", 1e-5)
    mu = x.mean(axis=0)
    inv_std = 1.0 / np.sqrt(x.var(axis=0) + eps)
    x_hat = (x - mu) * inv_std
    return gamma * x_hat + beta, (x, x_hat, inv_std, gamma)


def batchnorm_backward(dout, cache):
    _, x_hat, inv_std, gamma = cache
    n = dout.shape[0]
    dgamma = (dout * x_hat).sum(axis=0)
    dbeta = dout.sum(axis=0)
    dx_hat = dout * gamma
    dx = inv_std / n * (n * dx_hat - dx_hat.sum(axis=0) - x_hat * (dx_hat * x_hat).sum(axis=0))
    return dx, dgamma, dbeta


def batchnorm_backward_alt(dout, cache):
    x, x_hat, inv_std, gamma = cache
    dgamma = (dout * x).sum(axis=0)
    dbeta = dout.sum(axis=0)
    dx = gamma * inv_std * (dout - dout.mean(axis=0) - x_hat * (dout * x_hat).mean(axis=0))
    return dx, dgamma, dbeta
