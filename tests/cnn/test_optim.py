"""SGD: the only code that writes parameters. p <- p - lr * g for every parameter with a gradient."""

from __future__ import annotations

import numpy as np
import pytest

from cnn import SGD, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential, softmax_cross_entropy


def test_step_applies_p_minus_lr_g_on_a_layer(rng, close):
    layer = Dense(6, 3, rng=0)
    y = layer.forward(rng.standard_normal((4, 6)))
    layer.backward(rng.standard_normal(y.shape))
    before = {k: v.copy() for k, v in layer.params.items()}
    SGD(layer, lr=0.25).step()
    for name in before:
        close(layer.params[name], before[name] - 0.25 * layer.grads[name], what=name)


def test_step_applies_p_minus_lr_g_through_sequential(rng, close):
    net = Sequential(Conv2D(2, 3, 3, rng=0), ReLU(), MaxPool2D(2), Flatten(), Dense(12, 2, rng=1))
    y = net.forward(rng.standard_normal((2, 2, 6, 6)))
    net.backward(rng.standard_normal(y.shape))
    before = {k: v.copy() for k, v in net.params.items()}
    grads = dict(net.grads)
    SGD(net, lr=0.1).step()
    for name in before:
        close(net.params[name], before[name] - 0.1 * grads[name], what=name)
    # written to the layers themselves, not only to a view
    close(net.layers[4].params["weight"], before["4.weight"] - 0.1 * grads["4.weight"])


def test_step_does_not_write_into_the_gradient_or_alias_it(rng):
    layer = Dense(3, 2, rng=0)
    y = layer.forward(rng.standard_normal((2, 3)))
    layer.backward(rng.standard_normal(y.shape))
    g = {k: v.copy() for k, v in layer.grads.items()}
    SGD(layer, lr=0.5).step()
    for name in g:
        np.testing.assert_array_equal(layer.grads[name], g[name])
        assert not np.shares_memory(layer.params[name], layer.grads[name])


def test_step_before_backward_changes_nothing():
    layer = Conv2D(1, 2, 3, rng=0)
    before = {k: v.copy() for k, v in layer.params.items()}
    SGD(layer, lr=1.0).step()
    for name in before:
        np.testing.assert_array_equal(layer.params[name], before[name])


def test_float32_parameters_stay_float32(rng):
    layer = Dense(4, 2, dtype=np.float32, rng=0)
    y = layer.forward(rng.standard_normal((3, 4)).astype(np.float32))
    layer.backward(rng.standard_normal(y.shape).astype(np.float32))
    SGD(layer, lr=0.3).step()
    assert {v.dtype for v in layer.params.values()} == {np.dtype(np.float32)}


def test_a_few_steps_reduce_the_loss(rng):
    net = Sequential(Conv2D(1, 2, 3, padding=1, rng=0), ReLU(), MaxPool2D(2), Flatten(), Dense(8, 2, rng=1))
    x, labels = rng.standard_normal((6, 1, 4, 4)), rng.integers(0, 2, 6)
    opt = SGD(net, lr=0.1)
    first, _ = softmax_cross_entropy(net.forward(x), labels)
    for _ in range(20):
        loss, d = softmax_cross_entropy(net.forward(x), labels)
        net.backward(d)
        opt.step()
    assert loss < first


@pytest.mark.parametrize("lr", [0.0, -0.1, float("nan")], ids=["zero", "negative", "nan"])
def test_learning_rate_must_be_positive(lr):
    with pytest.raises(ValueError, match=r"lr must be > 0"):
        SGD(Dense(2, 2), lr=lr)
