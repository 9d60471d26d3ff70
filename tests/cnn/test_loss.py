"""softmax_cross_entropy (mean over the batch): the loss and dL/dlogits = (softmax - onehot) / N against
torch.nn.functional.cross_entropy in float64."""

from __future__ import annotations

import numpy as np
import pytest

from cnn import softmax_cross_entropy

LOSS_CASES = [
    # (N, M, logit scale)
    pytest.param(5, 3, 1.0, id="n5-m3"),
    pytest.param(1, 4, 1.0, id="n1"),
    pytest.param(8, 10, 3.0, id="n8-m10"),
    pytest.param(3, 2, 1000.0, id="huge-logits-no-overflow"),
    pytest.param(4, 1, 1.0, id="single-class"),
]


def loss_inputs(rng, n, m, scale, dtype=np.float64):
    return (scale * rng.standard_normal((n, m))).astype(dtype), rng.integers(0, m, n)


@pytest.mark.parametrize("n, m, scale", LOSS_CASES)
def test_loss_and_dlogits_match_torch(n, m, scale, rng, oracle, close):
    logits, labels = loss_inputs(rng, n, m, scale)
    t_labels = oracle.torch.tensor(labels)
    loss_ref, grads = oracle.vjp(lambda z: oracle.F.cross_entropy(z, t_labels), {"z": logits}, None)
    loss, dlogits = softmax_cross_entropy(logits, labels)
    assert isinstance(loss, float) and np.isfinite(loss)
    close(loss, loss_ref, what="loss")
    close(dlogits, grads["z"], what="dlogits")


@pytest.mark.parametrize("n, m, scale", LOSS_CASES)
def test_dlogits_is_softmax_minus_onehot_over_n(n, m, scale, rng, close):
    logits, labels = loss_inputs(rng, n, m, scale)
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    softmax = shifted / shifted.sum(axis=1, keepdims=True)
    onehot = np.eye(m)[labels]
    _, dlogits = softmax_cross_entropy(logits, labels)
    close(dlogits, (softmax - onehot) / n, what="(softmax - onehot) / N")
    close(dlogits.sum(axis=1), np.zeros(n), what="rows sum to 0")


@pytest.mark.parametrize("label_dtype", [np.int32, np.int64, np.uint8], ids=lambda t: np.dtype(t).name)
def test_any_integer_label_dtype_and_lists(label_dtype, rng):
    logits, labels = loss_inputs(rng, 4, 3, 1.0)
    expected = softmax_cross_entropy(logits, labels)
    loss, d = softmax_cross_entropy(logits, labels.astype(label_dtype))
    assert loss == expected[0]
    np.testing.assert_array_equal(d, expected[1])
    loss, d = softmax_cross_entropy(logits, labels.tolist())
    assert loss == expected[0]


def test_perfect_prediction_has_near_zero_loss():
    logits = np.array([[50.0, 0.0], [0.0, 50.0]])
    loss, d = softmax_cross_entropy(logits, np.array([0, 1]))
    assert 0 <= loss < 1e-20
    assert np.abs(d).max() < 1e-20


def test_float32_is_preserved_and_close_to_float64(rng, close):
    logits, labels = loss_inputs(rng, 6, 4, 2.0, np.float32)
    loss, d = softmax_cross_entropy(logits, labels)
    assert d.dtype == np.float32 and isinstance(loss, float)
    loss64, d64 = softmax_cross_entropy(logits.astype(np.float64), labels)
    close(loss, loss64, "float32_vs_float64")
    close(d, d64, "float32_vs_float64")


def test_arguments_are_not_modified(rng):
    logits, labels = loss_inputs(rng, 5, 3, 1.0)
    l0, y0 = logits.copy(), labels.copy()
    softmax_cross_entropy(logits, labels)
    np.testing.assert_array_equal(logits, l0)
    np.testing.assert_array_equal(labels, y0)
