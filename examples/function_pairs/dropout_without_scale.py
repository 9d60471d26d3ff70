"""BUG: dropout_backward applies the mask but not inverted dropout's 1 / p: dx = dout * mask, while the forward
scales the kept units by 1 / p. p is the KEEP probability here (dropout_param {"p", "mode", "seed"})."""

import numpy as np


def dropout_forward(x, dropout_param):
    p = dropout_param["p"]
    rng = np.random.RandomState(dropout_param.get("seed"))
    keep = rng.rand(*x.shape) < p
    return x * keep / p, keep


def dropout_backward(dout, cache):
    return dout * cache
