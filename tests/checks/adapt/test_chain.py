"""checks.adapt.chain, the worker's side of a whole network: the loss it ends in, the input shape, and which
faults on the probe mean the layers do not chain. (Networks themselves run in a worker: see
tests/checks/pipeline/test_chain.py and tests/checks/front/test_cli_network.py.)"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from checks.adapt import chain
from checks.adapt.guard import Cause, LayerFault

LOGITS = hnp.arrays(
    np.float64,
    st.tuples(st.integers(1, 3), st.integers(2, 6)),
    elements=st.floats(-5, 5, allow_nan=False, width=64),
)


def _central(f, z, h=1e-6):
    g = np.zeros_like(z)
    for i in range(z.size):
        e = np.zeros_like(z)
        e.reshape(-1)[i] = h
        g.reshape(-1)[i] = (f(z + e) - f(z - e)) / (2 * h)
    return g


@given(LOGITS, st.data())
def test_softmax_ce_gradient_is_the_derivative_of_its_loss(z, data):
    labels = data.draw(hnp.arrays(np.int64, z.shape[:-1], elements=st.integers(0, z.shape[-1] - 1)))
    value, g = chain.loss_and_grad(z, labels, "softmax_ce")
    expected = _central(lambda w: chain.loss_and_grad(w, labels, "softmax_ce")[0], z)
    assert np.allclose(g, expected, rtol=1e-6, atol=1e-8)
    assert value > 0


@given(LOGITS, st.data())
def test_nll_gradient_is_the_derivative_of_minus_log_p(z, data):
    p = np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)
    labels = data.draw(hnp.arrays(np.int64, z.shape[:-1], elements=st.integers(0, z.shape[-1] - 1)))
    value, g = chain.loss_and_grad(p, labels, "nll")
    expected = _central(lambda w: chain.loss_and_grad(w, labels, "nll")[0], p, h=1e-9)
    assert np.allclose(g, expected, rtol=1e-5, atol=1e-6)
    assert value == pytest.approx(-np.sum(np.log(p[np.arange(len(p)), labels])))


def test_a_wrong_loss_gradient_would_be_caught_by_the_same_comparison():
    z, labels = np.array([[0.3, -1.2, 2.0]]), np.array([2])
    _, g = chain.loss_and_grad(z, labels, "softmax_ce")
    wrong = g.copy()
    wrong[0, 2] += 1.0  # softmax without subtracting the one-hot
    expected = _central(lambda w: chain.loss_and_grad(w, labels, "softmax_ce")[0], z)
    assert np.allclose(g, expected, atol=1e-8) and not np.allclose(wrong, expected, atol=1e-3)


def test_nll_at_probability_zero_is_infinite_not_a_crash():
    value, _ = chain.loss_and_grad(np.array([0.0, 1.0]), np.array(0), "nll")
    assert value == np.inf


@pytest.mark.parametrize(
    ("output", "loss"),
    [
        (np.array([0.1, 0.2, 0.7]), "nll"),
        (np.array([[0.5, 0.5], [1.0, 0.0]]), "nll"),
        (np.array([0.1, 0.2, 0.6]), "softmax_ce"),  # does not sum to 1: logits
        (np.array([-0.1, 0.4, 0.7]), "softmax_ce"),  # negative: logits
        (np.array([1.0]), "softmax_ce"),  # one class: nothing to normalise
    ],
)
def test_the_loss_is_nll_only_when_the_output_is_a_probability_vector(output, loss):
    assert chain.loss_for(output) == loss


@pytest.mark.parametrize("value", [(28, 28), [1, 28, 28], (3,)])
def test_a_declared_input_shape_is_read(value):
    assert chain.parse_shape(value) == tuple(value)


@pytest.mark.parametrize("value", [(28, 0), (28.5, 28), "28", None, (-1,), ()])
def test_a_bad_input_shape_is_an_adaptation_error(value):
    with pytest.raises(chain.NetworkError, match="INPUT_SHAPE"):
        chain.parse_shape(value)


@pytest.mark.parametrize(
    ("detail", "cause", "shape_error"),
    [
        ("raised ValueError: matmul: Input operand 1 has a mismatch in its core dimension 0", Cause.RAISED, True),
        ("raised ValueError: operands could not be broadcast together with shapes (3,) (4,)", Cause.RAISED, True),
        ("raised IndexError: index 5 is out of bounds for axis 0 with size 4", Cause.RAISED, True),
        ("raised ValueError: not enough values to unpack (expected 3, got 2)", Cause.RAISED, True),  # h, w, c = x.shape
        ("raised RuntimeError: boom", Cause.RAISED, False),  # the layer's own fault: a failed check
        ("raised ValueError: bad luck", Cause.RAISED, False),
        ("did not return within 2 s (hang or infinite loop?)", Cause.TIMEOUT, False),
    ],
)
def test_only_numpy_shape_errors_mean_the_layers_do_not_chain(detail, cause, shape_error):
    assert chain._shape_error(LayerFault("forward", detail, cause=cause)) is shape_error


class _Holder:
    def __init__(self, **attributes):
        vars(self).update(attributes)


@pytest.mark.parametrize(
    ("attributes", "spelling"),
    [
        ({"dW": np.ones((2, 3))}, "dW"),
        ({"dw": np.ones((2, 3))}, "dw"),
        ({"grad_W": np.ones((2, 3))}, "grad_W"),
        ({"W_grad": np.ones((2, 3))}, "W_grad"),
        ({"grads": {"W": np.ones((2, 3))}}, "grads['W']"),
        ({"gradients": {"W": np.ones((2, 3))}}, "gradients['W']"),
        ({"dW": np.ones((3, 2))}, None),  # the wrong shape: not W's gradient
        ({"dW": np.ones((2, 3), dtype=np.int64)}, None),  # not a float array
        ({"grads": {"b": np.ones((2, 3))}}, None),  # another parameter's
        ({}, None),
    ],
)
def test_a_kept_gradient_is_found_only_by_the_presets_spellings_at_the_parameters_shape(attributes, spelling):
    holder = _Holder(W=np.zeros((2, 3)), **attributes)
    assert chain.grad_spelling(holder, "W", (2, 3)) == spelling
    if spelling is not None:
        assert np.array_equal(chain.read_grad(holder, spelling), np.ones((2, 3)))


def test_a_gradients_attribute_is_never_taken_for_a_parameter():
    assert chain._grad_names(["W", "b"]) >= {"dW", "dw", "db", "d_W", "grad_W", "W_grad", "grad_b", "b_grad"}
    assert "W" not in chain._grad_names(["W", "b"])


def test_a_class_is_described_by_its_file_and_the_surveys_guesses():
    data = chain.class_data(chain.NetworkError)  # a class of an importable file: its guesses may be empty
    assert data["qualname"] == "NetworkError" and data["file"].endswith("chain.py")
    assert data["found"]["name"] == "NetworkError"
