"""BUG: dropout_forward ignores dropout_param["seed"] and draws a fresh mask from a module-level generator (never
reseeded) on every call, so the same input gives a different output each time: nothing about it can be
reproduced (and finite differences of it mean nothing). Each forward and its backward agree with each other (the
mask is cached), so every single call is a correct inverted dropout; p is the KEEP probability here."""

import numpy as np

_RNG = np.random.default_rng()


def dropout_forward(x, dropout_param):
    p = dropout_param["p"]
    mask = (_RNG.random(x.shape) < p) / p
    return x * mask, mask


def dropout_backward(dout, cache):
    return dout * cache
