"""BUG: batch norm normalises with the UNBIASED variance, sum((x - mu)^2) / (N - 1) (np.var(ddof=1), the default of
torch.var, and what the running variance is updated with), where training mode normalises with the biased one
(divide by N).

The backward is derived consistently for that forward, so the pair agrees with itself (finite differences of
its own forward pass it); it is the function that is wrong: forward, dx and dgamma all differ from batch norm's.
Plain batch norm on (N, D).
"""

import numpy as np


def batchnorm_forward(x, gamma, beta, bn_param):
    eps = bn_param.get("eps", 1e-5)
    n = x.shape[0]
    centred = x - x.mean(axis=0)
    var = (centred**2).sum(axis=0) / (n - 1)
    inv_std = 1.0 / np.sqrt(var + eps)
    x_hat = centred * inv_std
    return gamma * x_hat + beta, (x_hat, inv_std, gamma)


def batchnorm_backward(dout, cache):
    x_hat, inv_std, gamma = cache
    n = dout.shape[0]
    dgamma = (dout * x_hat).sum(axis=0)
    dbeta = dout.sum(axis=0)
    dx = gamma * inv_std * (dout - dout.mean(axis=0) - x_hat * (dout * x_hat).sum(axis=0) / (n - 1))
    return dx, dgamma, dbeta
