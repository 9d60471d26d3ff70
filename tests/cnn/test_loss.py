"""softmax_cross_entropy (mean over the batch, or the sum): the loss and dL/dlogits = (softmax - onehot) / N
against torch.nn.functional.cross_entropy in float64; svm_loss (multiclass hinge, margin 1) against torch's
multi_margin_loss and a loop."""

from __future__ import annotations

import numpy as np
import pytest

from cnn import hinge_margins, softmax_cross_entropy, svm_loss

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


# -- reduction "sum", and the multiclass hinge (SVM) loss ------------------------------------------------------


@pytest.mark.parametrize("n, m, scale", LOSS_CASES)
def test_the_sum_reduction_matches_torch(n, m, scale, rng, oracle, close):
    logits, labels = loss_inputs(rng, n, m, scale)
    t_labels = oracle.torch.tensor(labels)
    loss_ref, grads = oracle.vjp(lambda z: oracle.F.cross_entropy(z, t_labels, reduction="sum"), {"z": logits}, None)
    loss, dlogits = softmax_cross_entropy(logits, labels, "sum")
    close(loss, loss_ref, what="loss")
    close(dlogits, grads["z"], what="dlogits")


def test_an_unknown_reduction_is_refused(rng):
    logits, labels = loss_inputs(rng, 2, 3, 1.0)
    with pytest.raises(ValueError, match="reduction must be one of"):
        softmax_cross_entropy(logits, labels, "none")
    with pytest.raises(ValueError, match="reduction must be one of"):
        svm_loss(logits, labels, "avg")


def hinge_loop(x: np.ndarray, labels: np.ndarray, divisor: float) -> tuple[float, np.ndarray]:
    """The loop people write: sum over j != y_i of max(0, x_ij - x_iy_i + 1), an active margin adds 1 at j and
    -1 at y_i."""
    loss, dx = 0.0, np.zeros_like(x)
    for i, y in enumerate(labels):
        for j in range(x.shape[1]):
            margin = x[i, j] - x[i, y] + 1
            if j != y and margin > 0:
                loss += margin
                dx[i, j] += 1
                dx[i, y] -= 1
    return loss / divisor, dx / divisor


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("n, m, scale", LOSS_CASES)
def test_the_svm_loss_matches_torch_and_the_loop(n, m, scale, reduction, rng, oracle, close):
    x, labels = loss_inputs(rng, n, m, scale)
    t_labels = oracle.torch.tensor(labels)

    def hinge(z):
        # multi_margin_loss divides each sample's sum by the number of classes: undone
        total = oracle.F.multi_margin_loss(z, t_labels, p=1, margin=1.0, reduction="sum") * m
        return total / n if reduction == "mean" else total

    loss_ref, grads = oracle.vjp(hinge, {"z": x}, None)
    loss, dx = svm_loss(x, labels, reduction)
    close(loss, loss_ref, what="loss")
    close(dx, grads["z"], what="dx")
    expected = hinge_loop(x, labels, n if reduction == "mean" else 1)
    close(loss, expected[0], what="loss (loop)")
    close(dx, expected[1], what="dx (loop)")


def test_a_margin_of_exactly_0_counts_as_inactive():
    x = np.array([[0.0, -1.0, 0.5]])  # margin at j = 1 is exactly 0, at j = 2 it is 1.5
    loss, dx = svm_loss(x, np.array([0]))
    assert loss == 1.5
    np.testing.assert_array_equal(dx, [[-1.0, 0.0, 1.0]])
    np.testing.assert_array_equal(hinge_margins(x, np.array([0])), [[0.0, 0.0, 1.5]])


def test_the_svm_loss_keeps_float32():
    x = np.array([[0.3, -0.2], [1.0, 0.5]], dtype=np.float32)
    assert svm_loss(x, np.array([1, 0]))[1].dtype == np.float32
