"""checks.adapt.chain, the worker's side of a whole network: the loss it ends in, the input shape, which faults
on the probe mean the layers do not chain, the method names a layer is driven by, and where its parameters and
kept gradients are found (spellings, one step into containers). The layers here are small classes of this file,
never a fixture's module: networks themselves run in a worker (tests/checks/pipeline/test_chain.py and
tests/checks/front/test_cli_network.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from checks.adapt import chain, presets
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
        assert np.array_equal(chain.read_at(holder, spelling), np.ones((2, 3)))


def test_a_gradients_attribute_is_never_taken_for_a_parameter():
    assert chain._grad_names(["W", "b"]) >= {"dW", "dw", "db", "d_W", "grad_W", "W_grad", "grad_b", "b_grad"}
    assert "W" not in chain._grad_names(["W", "b"])


def test_a_class_is_described_by_its_file_and_the_surveys_guesses():
    data = chain.class_data(chain.NetworkError)  # a class of an importable file: its guesses may be empty
    assert data["qualname"] == "NetworkError" and data["file"].endswith("chain.py")
    assert data["found"]["name"] == "NetworkError"


# -- method names --------------------------------------------------------------------------------------------


class _CallBprop:
    def __call__(self, x):
        return x

    def bprop(self, d):
        return d


class _ForwardAndCall(_CallBprop):
    def forward(self, x):
        return self(x)


class _GoLearn:
    def go(self, x):
        return x

    def learn(self, d, lr):
        return d


class _OnlyBackward:
    def backward(self, d):
        return d


def test_a_layer_called_as_a_function_with_bprop_is_driven_by_those_names():
    layer = chain.adapt_layer(_CallBprop(), 0)
    assert (layer.forward, layer.backward, layer.takes_lr) == ("__call__", "bprop", False)


def test_a_forward_method_wins_over_call():
    assert chain.adapt_layer(_ForwardAndCall(), 0).forward == "forward"


def test_every_class_is_callable_but_that_is_no_forward():
    # looked up on the class, __call__ is type.__call__ for any class; _OnlyBackward's instances are not callable
    assert presets.find_method(_OnlyBackward, ("__call__",), "forward") == "__call__"
    assert not chain._has_method(_OnlyBackward(), "__call__")
    assert chain._has_method(_CallBprop(), "__call__")
    with pytest.raises(chain.NetworkError, match="is not a layer"):
        chain.adapt_layer(_OnlyBackward(), 0)


def test_declared_names_drive_a_layer_the_table_does_not_know():
    with pytest.raises(chain.NetworkError) as refused:
        chain.adapt_layer(_GoLearn(), 1)
    message = str(refused.value)
    assert message.startswith("layer 2 _GoLearn (index 1) is not a layer: expected a forward / ")
    assert (
        "__call__" in message and "bprop" in message and "METHODS = {'forward': 'go', 'backward': 'learn'}" in message
    )
    layer = chain.adapt_layer(_GoLearn(), 1, {"forward": "go", "backward": "learn"})
    assert (layer.forward, layer.backward, layer.lr_argument) == ("go", "learn", "lr")


def test_a_declared_name_a_layer_lacks_is_an_adaptation_error_naming_the_layer_and_the_name():
    with pytest.raises(chain.NetworkError) as refused:
        chain.adapt_layer(_CallBprop(), 2, {"backward": "learn"}, "METHODS in net.py")
    assert str(refused.value).startswith(
        "layer 3 _CallBprop (index 2) has no method 'learn', declared as every layer's backward method "
        "(METHODS in net.py)"
    )
    # a role left undeclared is still looked up in the table
    assert chain.adapt_layer(_CallBprop(), 2, {"forward": "__call__"}).backward == "bprop"


@pytest.mark.parametrize(
    "value",
    [{"forward": "go", "backward": "learn"}, {"backward": "learn"}, {"forward": "__call__"}],
)
def test_declared_methods_are_read(value):
    assert chain.declared_methods(value, "METHODS") == value


@pytest.mark.parametrize(
    "value",
    [{}, {"forwards": "go"}, {"forward": "not a name"}, {"forward": 3}, ["forward", "go"], "go", {"forward": ""}],
)
def test_malformed_declared_methods_are_an_adaptation_error(value):
    with pytest.raises(chain.NetworkError, match="METHODS in net.py = .*expected the method names"):
        chain.declared_methods(value, "METHODS in net.py")


def test_no_declaration_is_no_declared_method():
    assert chain.declared_methods(None, "METHODS") == {}


# -- spellings: parameters and kept gradients one step inside containers ---------------------------------------


@pytest.mark.parametrize(
    ("spelling", "parsed"),
    [
        ("W", ("W", None, None)),
        ("params['W']", ("params", "W", "key")),
        ("params['conv1_W']", ("params", "conv1_W", "key")),
        ("weights[0]", ("weights", 0, "index")),
        ("weights[12]", ("weights", 12, "index")),
        ("W.data", ("W", "data", "field")),
    ],
)
def test_a_spelling_names_an_attribute_or_one_step_into_it(spelling, parsed):
    assert chain.parse_spelling(spelling) == parsed and chain.is_spelling(spelling)


@pytest.mark.parametrize(
    "garbled",
    [
        "",
        "1W",
        "W b",
        "params['W']['x']",  # two steps
        "a.b.c",
        'params["W"]',  # the worker writes repr(): single quotes
        "params['a b']",
        "params['W'] + 1",
        "weights[-1]",
        "weights[01]",
        "weights[12345]",
        "W.",
        "W.1",
        "__import__('os')",
        "x" * 200,
        None,
        3,
    ],
)
def test_anything_else_is_not_a_spelling(garbled):
    assert chain.parse_spelling(garbled) is None and not chain.is_spelling(garbled)


class _Param:
    def __init__(self, value):
        self.data = value
        self.grad = np.zeros_like(value)


def _nested():
    return _Holder(
        W=np.ones((2, 3)),
        params={"A": np.full((3,), 2.0), "n": np.arange(3), "empty": np.zeros(0), 7: np.ones(2), "a b": np.ones(2)},
        weights=[np.full((2,), 3.0), "not an array", np.full((1,), 4.0)],
        pair=(np.full((2,), 5.0),),
        P=_Param(np.full((2, 2), 6.0)),
        deeper={"inner": {"W": np.ones(2)}},
        scale=0.5,
    )


def test_float_arrays_one_step_inside_dicts_lists_tuples_and_parameter_objects_are_found_by_their_spelling():
    found = chain.float_arrays(_nested())
    assert set(found) == {"W", "params['A']", "params[7]", "weights[0]", "weights[2]", "pair[0]", "P.data"}
    holder = _nested()
    for spelling, array in chain.float_arrays(holder).items():
        assert chain.read_at(holder, spelling) is array  # read back through the one reader


def test_an_array_reachable_two_ways_is_one_parameter():
    w = np.ones((2, 2))
    holder = _Holder(params={"W": w, "b": np.zeros(2)}, W=w)
    assert set(chain.float_arrays(holder)) == {"W", "params['b']"}


def test_the_search_inside_containers_is_bounded():
    many = {f"k{i}": np.ones(1) for i in range(100)}
    found = chain.float_arrays(_Holder(a=many))
    assert len(found) == chain.NESTED_ENTRIES and set(found) == {f"a['k{i}']" for i in range(chain.NESTED_ENTRIES)}
    holders = {f"c{j}": [np.ones(1) for _ in range(chain.NESTED_ENTRIES)] for j in range(4)}
    assert len(chain.float_arrays(_Holder(**holders))) == chain.MAX_NESTED


def test_write_at_puts_an_array_back_where_the_layer_rebound_its_container():
    holder = _nested()
    originals = {s: a for s, a in chain.float_arrays(holder).items()}
    holder.W = holder.W - 1.0  # a step that rebinds each kind of holder
    holder.params = {"A": holder.params["A"] - 1.0, 7: holder.params[7]}
    holder.weights[0] = holder.weights[0] - 1.0
    holder.pair = (holder.pair[0] - 1.0,)
    holder.P.data = holder.P.data - 1.0
    for spelling, array in originals.items():
        assert chain.read_at(holder, spelling) is not array or spelling in ("params[7]", "weights[2]")
        assert chain.write_at(holder, spelling, array)
        assert chain.read_at(holder, spelling) is array
    assert type(holder.pair) is tuple


def test_write_at_says_when_the_spelling_leads_nowhere():
    holder = _Holder(params=None, weights=[], P=3.0)
    assert not chain.write_at(holder, "params['W']", np.ones(2))
    assert not chain.write_at(holder, "weights[0]", np.ones(2))
    assert not chain.write_at(holder, "P.data", np.ones(2))
    assert not chain.write_at(holder, "not a spelling!", np.ones(2))
    assert chain.read_at(holder, "params['W']") is None and chain.read_at(holder, "weights[0]") is None


@pytest.mark.parametrize(
    ("param", "attributes", "spelling"),
    [
        ("params['W']", {"grads": {"W": np.ones((2, 3))}}, "grads['W']"),
        ("params['W']", {"dparams": {"W": np.ones((2, 3))}}, "dparams['W']"),
        ("params['W']", {"grads": {"dW": np.ones((2, 3))}}, "grads['dW']"),
        ("params['W']", {"dW": np.ones((2, 3))}, "dW"),
        ("params['W']", {"grads": {"W": np.ones((3, 2))}}, None),  # the wrong shape
        ("params['W']", {"grads": {"b": np.ones((2, 3))}}, None),  # another parameter's
        ("weights[1]", {"grads": [np.ones(1), np.ones((2, 3))]}, "grads[1]"),
        ("weights[1]", {"dweights": [np.ones(1), np.ones((2, 3))]}, "dweights[1]"),
        ("weights[1]", {"grads": [np.ones((2, 3))]}, None),  # index 0 is another's
        ("W.data", {"W": _Holder(data=np.zeros((2, 3)), grad=np.ones((2, 3)))}, "W.grad"),
        ("W.data", {"W": _Holder(data=np.zeros((2, 3)), grad=None), "dW": np.ones((2, 3))}, "dW"),
        ("W.data", {"W": _Holder(data=np.zeros((2, 3)), grad=np.ones((2, 3), dtype=np.int64))}, None),
    ],
)
def test_a_nested_parameters_kept_gradient_is_found_where_such_code_keeps_it(param, attributes, spelling):
    holder = _Holder(**attributes)
    assert chain.grad_spelling(holder, param, (2, 3)) == spelling
    if spelling is not None:
        assert np.array_equal(chain.read_at(holder, spelling), np.ones((2, 3)))


def test_a_nested_parameters_kept_gradient_is_never_taken_for_a_parameter():
    names = chain._grad_names(["params['W']", "weights[0]", "P.data"])
    assert {"grads['W']", "dparams['W']", "grads['dW']", "dW", "grads[0]", "dweights[0]", "P.grad", "dP"} <= names
    assert not names & {"params['W']", "weights[0]", "P.data"}


# -- the checker's side takes these names, and nothing else --------------------------------------------------


class _Garbled(Exception):
    pass


class _Session:
    job = None

    def _garbled(self, stage, shapes, what):
        raise _Garbled(what)


def _described(params: dict, grads: dict):
    from checks.adapt import wire

    layer = {"index": 0, "name": "L", "calls": "forward(x), backward(d)", "params": params, "grads": grads}
    body = {"input_shape": [4], "layers": [layer], "takes_lr": [False], "model": False, "loss": "softmax_ce"}
    return wire.Message("net_loaded", body, {"output": np.zeros(3)})


def test_the_checker_accepts_the_spellings_and_garbles_any_other_name():
    from checks.sandbox.network import RemoteNetwork

    net = RemoteNetwork(_Session())  # type: ignore[arg-type]
    info = net._info(_described({"params['W']": [4, 3], "W.data": [3]}, {"params['W']": "grads['W']"}))
    assert info.layers[0].params == {"params['W']": (4, 3), "W.data": (3,)}
    assert info.layers[0].grads == {"params['W']": "grads['W']"}
    for params, grads in [
        ({"params['W'] + 1": [4, 3]}, {}),
        ({"a.b.c": [4, 3]}, {}),
        ({"W": [4, 3]}, {"W": "grads['W']['x']"}),
        ({"W": [4, 3]}, {"W": "__import__('os')"}),
    ]:
        with pytest.raises(_Garbled, match="a network description that does not parse"):
            net._info(_described(params, grads))
