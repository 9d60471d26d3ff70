"""BUG: dropout_backward scales the upstream gradient but forgets the mask: dx = dout / p everywhere, also where
the forward dropped the unit. p is the KEEP probability here (dropout_param {"p", "mode", "seed"}); the forward
(inverted dropout, mask from RandomState(seed)) is right."""

import numpy as np


def dropout_forward(x, dropout_param):
    p = dropout_param["p"]
    rng = np.random.RandomState(dropout_param.get("seed"))
    keep = rng.rand(*x.shape) < p
    return x * keep / p, (dropout_param, keep)


def dropout_backward(dout, cache):
    dropout_param, _ = cache
    return dout / dropout_param["p"]
