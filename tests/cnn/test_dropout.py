"""cnn.dropout (inverted dropout in training mode, p the drop probability): y = x * m / keep and dx = G * m / keep
against torch autograd of the same masked product in float64, the mask's reproducibility and rate, the Dropout
layer, and argument checks."""

from __future__ import annotations

import numpy as np
import pytest

from cnn import Dropout, dropout, dropout_backward, dropout_mask, keep_probability


@pytest.mark.parametrize("p", [0.0, 0.25, 0.5, 0.9])
def test_forward_and_gradient_match_torch_autograd_of_the_masked_product(p, rng, oracle, close):
    x = rng.standard_normal((3, 4, 5))
    g = rng.standard_normal(x.shape)
    mask = dropout_mask(x.shape, p, seed=7)
    keep = keep_probability(p)
    y_ref, grads = oracle.vjp(lambda x: x * oracle.tensor(mask.astype(np.float64)) / keep, {"x": x}, g)
    close(dropout(x, mask, keep), y_ref, what="forward")
    close(dropout_backward(g, mask, keep), grads["x"], what="dx")


def test_the_mask_is_reproducible_from_its_seed_and_keeps_about_1_minus_p():
    a, b = dropout_mask((200, 50), 0.3, seed=1), dropout_mask((200, 50), 0.3, seed=1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, dropout_mask((200, 50), 0.3, seed=2))
    assert a.dtype == np.bool_ and abs(a.mean() - 0.7) < 0.02
    assert dropout_mask((4, 4), 0.0, seed=3).all()


def test_the_layer_draws_the_same_mask_on_every_forward_and_differentiates_it(rng, close):
    layer = Dropout(p=0.4, seed=5)
    x = rng.standard_normal((2, 3, 4))
    y1, y2 = layer.forward(x), layer.forward(x)
    np.testing.assert_array_equal(y1, y2)
    mask = dropout_mask(x.shape, 0.4, 5)
    close(y1, x * mask / 0.6, what="forward")
    g = rng.standard_normal(x.shape)
    close(layer.backward(g), g * mask / 0.6, what="dx")
    assert layer.params == {} and layer.grads == {}


def test_float32_stays_float32(rng):
    x = rng.standard_normal((3, 3)).astype(np.float32)
    mask = dropout_mask(x.shape, 0.5, 0)
    assert dropout(x, mask, 0.5).dtype == np.float32
    assert dropout_backward(x, mask, 0.5).dtype == np.float32


@pytest.mark.parametrize("p", [1.0, -0.1, 1.5, True, "0.5"])
def test_p_must_be_a_drop_probability_below_1(p):
    with pytest.raises(ValueError, match="drop probability"):
        keep_probability(p)


def test_the_mask_must_be_boolean_and_of_the_input_shape(rng):
    x = rng.standard_normal((2, 3))
    with pytest.raises(ValueError, match="boolean"):
        dropout(x, np.ones((2, 3)), 0.5)
    with pytest.raises(ValueError):
        dropout(x, np.ones((3, 2), dtype=bool), 0.5)
    with pytest.raises(ValueError, match="keep"):
        dropout(x, np.ones((2, 3), dtype=bool), 0.0)
