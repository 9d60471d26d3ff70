"""BUG: batchnorm_backward treats the batch mean and variance as constants: dx = dout * gamma / sqrt(var + eps).

That is the derivative of gamma * (x - mu) / sigma + beta with mu and sigma frozen; in training mode both are
computed from the very batch being normalised, so every x of a feature also moves the others' outputs through
them. The forward (plain batch norm on (N, D), biased variance) and dgamma / dbeta are right.
"""

import numpy as np


def batchnorm_forward(x, gamma, beta, bn_param):
    eps = bn_param.get("eps", 1e-5)
    mu = x.mean(axis=0)
    var = x.var(axis=0)
    x_hat = (x - mu) / np.sqrt(var + eps)
    return gamma * x_hat + beta, (x_hat, var, eps, gamma)


def batchnorm_backward(dout, cache):
    x_hat, var, eps, gamma = cache
    dgamma = (dout * x_hat).sum(axis=0)
    dbeta = dout.sum(axis=0)
    dx = dout * gamma / np.sqrt(var + eps)
    return dx, dgamma, dbeta
