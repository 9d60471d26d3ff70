"""The stateful layers of cnn/layers.py: the params/grads protocol, torch.nn-style constructors, agreement with
the functional core and with torch.nn, Sequential as the chain rule, and an end-to-end network against the
same network built in torch."""

from __future__ import annotations

import numpy as np
import pytest

from cnn import (
    AvgPool2D,
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    LeakyReLU,
    MaxPool2D,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    SoftmaxCrossEntropyLoss,
    SVMLoss,
    Tanh,
    conv2d,
    conv2d_grad_input,
    dense,
    max_pool2d,
    relu,
    sigmoid_backward,
    softmax_backward,
    softmax_cross_entropy,
    svm_loss,
    tanh_backward,
)


def randomize(layer, rng, dtype=np.float64):
    """Replace every parameter (zero biases included) by random values, so nothing is trivially 0."""
    for name, value in list(layer.params.items()):
        layer.params[name] = rng.standard_normal(value.shape).astype(dtype)
    return layer


def conv_layer(case, rng, dtype=np.float64, bias=True):
    layer = Conv2D(case.c, case.f, case.kernel, **case.geometry, bias=bias, dtype=dtype, rng=0)
    return randomize(layer, rng, dtype)


# ------------------------------------------------------------------------------------------------------
# params / grads protocol
# ------------------------------------------------------------------------------------------------------
def test_conv2d_params_and_grads_keys_and_shapes(rng):
    layer = Conv2D(3, 4, (2, 3), rng=0)
    assert set(layer.params) == {"weight", "bias"}
    assert layer.params["weight"].shape == (4, 3, 2, 3)  # (F, C, kh, kw), as torch.nn.Conv2d
    assert layer.params["bias"].shape == (4,)
    assert layer.params["weight"].dtype == np.float64
    y = layer.forward(rng.standard_normal((2, 3, 5, 6)))
    layer.backward(rng.standard_normal(y.shape))
    assert set(layer.grads) == set(layer.params)
    for name, value in layer.params.items():
        assert layer.grads[name].shape == value.shape and layer.grads[name].dtype == value.dtype


def test_conv2d_without_bias_has_only_a_weight(rng):
    layer = Conv2D(2, 3, 3, bias=False, rng=0)
    assert set(layer.params) == {"weight"}
    x = rng.standard_normal((2, 2, 5, 5))
    y = layer.forward(x)
    np.testing.assert_array_equal(y, conv2d(x, layer.params["weight"]))
    layer.backward(rng.standard_normal(y.shape))
    assert set(layer.grads) == {"weight"}


def test_dense_params_and_grads_keys_and_shapes(rng):
    layer = Dense(12, 5, rng=0)
    assert set(layer.params) == {"weight", "bias"}
    assert layer.params["weight"].shape == (12, 5)  # (D, M): Y = X W + b
    assert layer.params["bias"].shape == (5,)
    y = layer.forward(rng.standard_normal((3, 3, 2, 2)))
    assert y.shape == (3, 5)
    layer.backward(rng.standard_normal(y.shape))
    assert {k: v.shape for k, v in layer.grads.items()} == {"weight": (12, 5), "bias": (5,)}
    assert set(Dense(4, 2, bias=False).params) == {"weight"}


PARAMETERLESS = {
    "ReLU": ReLU,
    "Flatten": Flatten,
    "MaxPool2D": lambda: MaxPool2D(2),
    "LeakyReLU": lambda: LeakyReLU(0.1),
    "Sigmoid": Sigmoid,
    "Tanh": Tanh,
    "Softmax": lambda: Softmax(1),
    "AvgPool2D": lambda: AvgPool2D(2, 1, 1),
    "Dropout": lambda: Dropout(0.3, seed=2),
}


@pytest.mark.parametrize("make", list(PARAMETERLESS.values()), ids=list(PARAMETERLESS))
def test_parameterless_layers_have_empty_dicts(make, rng):
    layer = make()
    y = layer.forward(rng.standard_normal((2, 3, 4, 4)))
    layer.backward(rng.standard_normal(y.shape))
    assert layer.params == {} and layer.grads == {} and layer.parameters() == []


def test_parameters_lists_the_param_arrays():
    layer = Conv2D(1, 2, 3, rng=0)
    assert [id(p) for p in layer.parameters()] == [id(layer.params["weight"]), id(layer.params["bias"])]


def test_rng_seed_makes_initialisation_reproducible():
    np.testing.assert_array_equal(Conv2D(2, 3, 3, rng=7).params["weight"], Conv2D(2, 3, 3, rng=7).params["weight"])
    np.testing.assert_array_equal(Dense(4, 3, rng=7).params["weight"], Dense(4, 3, rng=7).params["weight"])


@pytest.mark.parametrize(
    "make, x_shape",
    [(lambda: Conv2D(2, 3, 3, rng=0), (2, 2, 5, 5)), (lambda: Dense(8, 3, rng=0), (2, 8))],
    ids=["Conv2D", "Dense"],
)
def test_assigning_a_param_changes_the_computation(make, x_shape, rng, close):
    layer = make()
    x = rng.standard_normal(x_shape)
    before = layer.forward(x)
    new_w = rng.standard_normal(layer.params["weight"].shape)
    layer.params["weight"] = new_w
    after = layer.forward(x)
    assert not np.allclose(before, after)
    expected = conv2d(x, new_w, layer.params["bias"]) if x.ndim == 4 else dense(x, new_w, layer.params["bias"])
    close(after, expected, what="forward after assigning params['weight']")
    g = rng.standard_normal(after.shape)
    dx = layer.backward(g)
    if x.ndim == 4:
        close(dx, conv2d_grad_input(g, new_w, x.shape), what="backward uses the assigned weight")
    else:
        close(dx, g @ new_w.T, what="backward uses the assigned weight")


@pytest.mark.parametrize(
    "make, x_shape",
    [(lambda: Conv2D(2, 3, 3, rng=0), (2, 2, 5, 5)), (lambda: Dense(8, 3, rng=0), (2, 8))],
    ids=["Conv2D", "Dense"],
)
def test_backward_does_not_change_params(make, x_shape, rng):
    layer = randomize(make(), rng)
    objects = {k: v for k, v in layer.params.items()}
    values = {k: v.copy() for k, v in layer.params.items()}
    y = layer.forward(rng.standard_normal(x_shape))
    layer.backward(rng.standard_normal(y.shape))
    layer.backward(rng.standard_normal(y.shape))
    for name in values:
        assert layer.params[name] is objects[name]
        np.testing.assert_array_equal(layer.params[name], values[name])


def test_grads_are_those_of_the_last_backward_not_accumulated(rng, close):
    layer = randomize(Conv2D(2, 3, 3, rng=0), rng)
    y = layer.forward(rng.standard_normal((2, 2, 5, 5)))
    g1, g2 = rng.standard_normal(y.shape), rng.standard_normal(y.shape)
    layer.backward(g2)
    expected = {k: v.copy() for k, v in layer.grads.items()}
    layer.backward(g1)
    layer.backward(g2)
    for name in expected:
        close(layer.grads[name], expected[name], what=name)


def test_backward_uses_the_latest_forward_input(rng, close):
    layer = randomize(Dense(6, 2, rng=0), rng)
    x1, x2 = rng.standard_normal((3, 6)), rng.standard_normal((3, 6))
    layer.forward(x1)
    layer.forward(x2)
    g = rng.standard_normal((3, 2))
    layer.backward(g)
    close(layer.grads["weight"], x2.T @ g)


# ------------------------------------------------------------------------------------------------------
# Constructors: int or (h, w) like torch.nn, and the layers agree with torch.nn modules
# ------------------------------------------------------------------------------------------------------
def test_constructor_accepts_ints_and_pairs():
    a = Conv2D(2, 3, 3, stride=2, padding=1, dilation=2)
    assert (a.kernel_size, a.stride, a.padding, a.dilation) == ((3, 3), (2, 2), (1, 1), (2, 2))
    b = Conv2D(2, 3, (2, 3), stride=(2, 1), padding=(1, 0), dilation=(1, 2))
    assert (b.kernel_size, b.stride, b.padding, b.dilation) == ((2, 3), (2, 1), (1, 0), (1, 2))
    assert b.params["weight"].shape == (3, 2, 2, 3)
    p = MaxPool2D(3)
    assert (p.kernel_size, p.stride, p.padding) == ((3, 3), (3, 3), (0, 0))
    q = MaxPool2D((2, 3), stride=(1, 2), padding=(1, 1))
    assert (q.kernel_size, q.stride, q.padding) == ((2, 3), (1, 2), (1, 1))


def _torch_module_grads(torch, module, x, g):
    xt = torch.tensor(x, requires_grad=True)
    y = module(xt)
    y.backward(torch.tensor(g))
    grads = {name: p.grad.numpy() for name, p in module.named_parameters()}
    return y.detach().numpy(), xt.grad.numpy(), grads


def test_conv2d_layer_matches_torch_nn_conv2d_with_pair_arguments(rng, torch, close):
    args = {"kernel_size": (2, 3), "stride": (2, 1), "padding": (1, 0), "dilation": (1, 2)}
    ours = randomize(Conv2D(2, 3, **args, rng=0), rng)
    theirs = torch.nn.Conv2d(2, 3, **args, dtype=torch.float64)
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(ours.params["weight"]))
        theirs.bias.copy_(torch.from_numpy(ours.params["bias"]))
    x = rng.standard_normal((2, 2, 7, 9))
    y = ours.forward(x)
    g = rng.standard_normal(y.shape)
    y_ref, dx_ref, grads_ref = _torch_module_grads(torch, theirs, x, g)
    close(y, y_ref, what="Conv2D forward")
    close(ours.backward(g), dx_ref, what="Conv2D dX")
    close(ours.grads["weight"], grads_ref["weight"], what="Conv2D dK")
    close(ours.grads["bias"], grads_ref["bias"], what="Conv2D dB")


def test_maxpool_layer_matches_torch_nn_maxpool2d_with_pair_arguments(rng, torch, close):
    args = {"kernel_size": (2, 3), "stride": (1, 2), "padding": (1, 1)}
    x = rng.standard_normal((2, 3, 6, 7))
    ours = MaxPool2D(**args)
    y = ours.forward(x)
    g = rng.standard_normal(y.shape)
    y_ref, dx_ref, _ = _torch_module_grads(torch, torch.nn.MaxPool2d(**args), x, g)
    close(y, y_ref)
    close(ours.backward(g), dx_ref)


def test_dense_layer_matches_torch_nn_linear(rng, torch, close):
    ours = randomize(Dense(24, 5, rng=0), rng)
    theirs = torch.nn.Linear(24, 5, dtype=torch.float64)
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(ours.params["weight"].T.copy()))  # torch stores (M, D)
        theirs.bias.copy_(torch.from_numpy(ours.params["bias"]))
    x = rng.standard_normal((3, 24))
    y = ours.forward(x)
    g = rng.standard_normal(y.shape)
    y_ref, dx_ref, grads_ref = _torch_module_grads(torch, theirs, x, g)
    close(y, y_ref)
    close(ours.backward(g), dx_ref)
    close(ours.grads["weight"], grads_ref["weight"].T)
    close(ours.grads["bias"], grads_ref["bias"])


# ------------------------------------------------------------------------------------------------------
# Layers on the shared geometries, against torch.nn.functional
# ------------------------------------------------------------------------------------------------------
def test_conv2d_layer_matches_torch(conv_case, rng, oracle, close):
    layer = conv_layer(conv_case, rng)
    x = rng.standard_normal(conv_case.input_shape)
    y = layer.forward(x)
    assert y.shape == conv_case.output_shape
    g = rng.standard_normal(y.shape)
    w, b = layer.params["weight"], layer.params["bias"]
    y_ref, ref = oracle.vjp(lambda x, w, b: oracle.F.conv2d(x, w, b, **conv_case.geometry), {"x": x, "w": w, "b": b}, g)
    close(y, y_ref, what="Conv2D forward")
    close(layer.backward(g), ref["x"], what="Conv2D dX")
    close(layer.grads["weight"], ref["w"], what="Conv2D dK")
    close(layer.grads["bias"], ref["b"], what="Conv2D dB")


def test_maxpool_layer_matches_torch(pool_case, rng, oracle, close):
    layer = MaxPool2D(**pool_case.geometry)
    x = rng.standard_normal(pool_case.input_shape)
    y = layer.forward(x)
    g = rng.standard_normal(y.shape)
    y_ref, ref = oracle.vjp(lambda x: oracle.F.max_pool2d(x, **pool_case.geometry), {"x": x}, g)
    close(y, y_ref, what="MaxPool2D forward")
    close(layer.backward(g), ref["x"], what="MaxPool2D dX")


def test_relu_and_flatten_layers_match_torch(rng, oracle, close):
    x = rng.standard_normal((2, 3, 4, 5))
    x.flat[::4] = 0.0
    for layer, fn in ((ReLU(), oracle.F.relu), (Flatten(), lambda t: t.flatten(1))):
        y = layer.forward(x)
        g = rng.standard_normal(y.shape)
        y_ref, ref = oracle.vjp(lambda x, fn=fn: fn(x), {"x": x}, g)
        close(y, y_ref)
        close(layer.backward(g), ref["x"])


ACTIVATION_LAYERS = {
    "LeakyReLU": (lambda: LeakyReLU(0.2), lambda torch: torch.nn.LeakyReLU(0.2)),
    "Sigmoid": (Sigmoid, lambda torch: torch.nn.Sigmoid()),
    "Tanh": (Tanh, lambda torch: torch.nn.Tanh()),
    "Softmax": (Softmax, lambda torch: torch.nn.Softmax(dim=-1)),
    "Softmax-axis1": (lambda: Softmax(1), lambda torch: torch.nn.Softmax(dim=1)),
}


@pytest.mark.parametrize("name", list(ACTIVATION_LAYERS))
def test_activation_layers_match_torch_nn(name, rng, torch, close):
    make, make_torch = ACTIVATION_LAYERS[name]
    x = rng.standard_normal((2, 3, 4, 5)) * 3
    x.flat[::7] = 0.0
    layer = make()
    y = layer.forward(x)
    g = rng.standard_normal(y.shape)
    y_ref, dx_ref, _ = _torch_module_grads(torch, make_torch(torch), x, g)
    close(y, y_ref, what=f"{name} forward")
    close(layer.backward(g), dx_ref, what=f"{name} dX")


def test_avgpool_layer_matches_torch(pool_case, rng, oracle, close):
    layer = AvgPool2D(**pool_case.geometry)
    x = rng.standard_normal(pool_case.input_shape)
    y = layer.forward(x)
    g = rng.standard_normal(y.shape)
    y_ref, ref = oracle.vjp(lambda x: oracle.F.avg_pool2d(x, **pool_case.geometry), {"x": x}, g)
    close(y, y_ref, what="AvgPool2D forward")
    close(layer.backward(g), ref["x"], what="AvgPool2D dX")


def test_output_based_layers_differentiate_the_latest_forward(rng, close):
    """Sigmoid, Tanh and Softmax keep their forward's output: a second forward replaces it."""
    for layer, backward in ((Sigmoid(), sigmoid_backward), (Tanh(), tanh_backward)):
        layer.forward(rng.standard_normal((2, 3)))
        x = rng.standard_normal((2, 3))
        y = layer.forward(x)
        g = rng.standard_normal(y.shape)
        close(layer.backward(g), backward(g, y))
    layer = Softmax(0)
    layer.forward(rng.standard_normal((3, 2)))
    y = layer.forward(rng.standard_normal((3, 2)))
    g = rng.standard_normal(y.shape)
    close(layer.backward(g), softmax_backward(g, y, 0))


# ------------------------------------------------------------------------------------------------------
# Sequential
# ------------------------------------------------------------------------------------------------------
def small_net(rng, dtype=np.float64):
    return Sequential(
        randomize(Conv2D(2, 3, 3, padding=1, dtype=dtype, rng=0), rng, dtype),
        ReLU(),
        MaxPool2D(2),
        Flatten(),
        randomize(Dense(3 * 3 * 3, 4, dtype=dtype, rng=0), rng, dtype),
    )


def test_sequential_params_and_grads_keys(rng):
    net = small_net(rng)
    assert list(net.params) == ["0.weight", "0.bias", "4.weight", "4.bias"]
    assert net.params["0.weight"] is net.layers[0].params["weight"]
    y = net.forward(rng.standard_normal((2, 2, 6, 6)))
    net.backward(rng.standard_normal(y.shape))
    assert list(net.grads) == list(net.params)
    for name, value in net.params.items():
        assert net.grads[name].shape == value.shape


def test_sequential_is_the_chain(rng, close):
    """forward = the layers in order; backward = their backwards in reverse; grads = each layer's grads."""
    net, twin = small_net(np.random.default_rng(1)), small_net(np.random.default_rng(1))
    x = rng.standard_normal((2, 2, 6, 6))
    y = net.forward(x)
    h = x
    for layer in twin.layers:
        h = layer.forward(h)
    np.testing.assert_array_equal(y, h)
    g = rng.standard_normal(y.shape)
    dx = net.backward(g)
    d = g
    for layer in reversed(twin.layers):
        d = layer.backward(d)
    close(dx, d, what="Sequential dX")
    for i, layer in enumerate(twin.layers):
        for name, grad in layer.grads.items():
            close(net.grads[f"{i}.{name}"], grad, what=f"{i}.{name}")
    # And the chain written with the functional core:
    w0, b0, w4, b4 = (net.params[k] for k in ("0.weight", "0.bias", "4.weight", "4.bias"))
    z = conv2d(x, w0, b0, padding=1)
    close(y, dense(max_pool2d(relu(z), 2)[0], w4, b4), what="functional chain")


def test_sequential_params_assignment_writes_through(rng):
    net = small_net(rng)
    new = np.zeros_like(net.params["0.weight"])
    net.params["0.weight"] = new
    assert net.layers[0].params["weight"] is new
    with pytest.raises(KeyError):
        net.params["1.weight"] = new  # ReLU has no weight


# ------------------------------------------------------------------------------------------------------
# End to end: conv -> relu -> pool -> flatten -> dense -> softmax cross-entropy, against torch
# ------------------------------------------------------------------------------------------------------
NETS = [
    # (input shape, conv args, pool args, classes)
    pytest.param((4, 3, 8, 8), {"out": 4, "kernel_size": 3, "padding": 1}, {"kernel_size": 2}, 5, id="k3-pad1-pool2"),
    pytest.param(
        (3, 2, 9, 7),
        {"out": 3, "kernel_size": (3, 2), "stride": (2, 1), "padding": (1, 0), "dilation": (1, 2)},
        {"kernel_size": 3, "stride": 2, "padding": 1},
        4,
        id="nonsquare-stride-dilation-overlapping-padded-pool",
    ),
]


def build_net(x_shape, conv_args, pool_args, classes, rng, dtype=np.float64):
    conv_args = dict(conv_args)
    out = conv_args.pop("out")
    conv = randomize(Conv2D(x_shape[1], out, **conv_args, dtype=dtype, rng=0), rng, dtype)
    head = Sequential(conv, ReLU(), MaxPool2D(**pool_args), Flatten())
    features = head.forward(np.zeros(x_shape, dtype)).shape[1]
    return Sequential(*head.layers, randomize(Dense(features, classes, dtype=dtype, rng=0), rng, dtype))


@pytest.mark.parametrize("x_shape, conv_args, pool_args, classes", NETS)
def test_end_to_end_network_matches_torch(x_shape, conv_args, pool_args, classes, rng, torch, close):
    net = build_net(x_shape, conv_args, pool_args, classes, rng)
    x = rng.standard_normal(x_shape)
    labels = rng.integers(0, classes, x_shape[0])
    loss, dlogits = softmax_cross_entropy(net.forward(x), labels)
    dx = net.backward(dlogits)

    F = torch.nn.functional
    geo = {k: v for k, v in conv_args.items() if k not in ("out", "kernel_size")}
    t = {k: torch.tensor(v, requires_grad=True) for k, v in net.params.items()}
    xt = torch.tensor(x, requires_grad=True)
    h = F.max_pool2d(F.relu(F.conv2d(xt, t["0.weight"], t["0.bias"], **geo)), **pool_args)
    logits = F.linear(h.flatten(1), t["4.weight"].T, t["4.bias"])
    loss_ref = F.cross_entropy(logits, torch.tensor(labels))
    loss_ref.backward()

    close(loss, loss_ref.item(), what="loss")
    close(dx, xt.grad.numpy(), what="dL/dX")
    assert list(net.grads) == list(t)
    for name, tensor in t.items():
        close(net.grads[name], tensor.grad.numpy(), what=f"dL/d{name}")


@pytest.mark.parametrize("x_shape, conv_args, pool_args, classes", NETS)
def test_float32_network_is_float32_throughout_and_close_to_float64(x_shape, conv_args, pool_args, classes, rng, close):
    net32 = build_net(x_shape, conv_args, pool_args, classes, np.random.default_rng(3), np.float32)
    net64 = build_net(x_shape, conv_args, pool_args, classes, np.random.default_rng(3), np.float64)
    for name in net64.params:  # same values: the float32 ones, widened
        net64.params[name] = net32.params[name].astype(np.float64)
    x = rng.standard_normal(x_shape).astype(np.float32)
    labels = rng.integers(0, classes, x_shape[0])
    y32 = net32.forward(x)
    assert y32.dtype == np.float32
    loss32, d32 = softmax_cross_entropy(y32, labels)
    dx32 = net32.backward(d32)
    assert dx32.dtype == np.float32
    assert {g.dtype for g in net32.grads.values()} == {np.dtype(np.float32)}
    loss64, d64 = softmax_cross_entropy(net64.forward(x.astype(np.float64)), labels)
    dx64 = net64.backward(d64)
    close(loss32, loss64, "float32_vs_float64", what="loss")
    close(dx32, dx64, "float32_vs_float64", what="dX")
    for name in net64.grads:
        close(net32.grads[name], net64.grads[name], "float32_vs_float64", what=name)


def test_batchnorm_has_gamma_and_beta_and_their_grads(rng):
    layer = BatchNorm(3)
    y = layer.forward(rng.standard_normal((2, 3, 4, 4)))
    layer.backward(rng.standard_normal(y.shape))
    assert set(layer.params) == set(layer.grads) == {"gamma", "beta"}
    assert [p.shape for p in layer.parameters()] == [(3,), (3,)]


@pytest.mark.parametrize(
    ("make", "compute"), [(SoftmaxCrossEntropyLoss, softmax_cross_entropy), (SVMLoss, svm_loss)], ids=["ce", "svm"]
)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_loss_layers_return_the_loss_and_scale_their_gradient_by_the_upstream_scalar(
    make, compute, reduction, rng, close
):
    scores, labels = rng.standard_normal((4, 3)), rng.integers(0, 3, 4)
    layer = make(reduction)
    loss, d = compute(scores, labels, reduction)
    out = layer.forward(scores, labels)
    assert out.shape == () and out.dtype == scores.dtype
    close(out, loss, what="loss")
    close(layer.backward(), d, what="dscores")
    close(layer.backward(np.asarray(-0.5)), -0.5 * d, what="dscores * G")
    with pytest.raises(ValueError, match="scalar"):
        layer.backward(np.ones(2))


def test_a_loss_layer_refuses_backward_before_forward_and_an_unknown_reduction():
    with pytest.raises(ValueError, match="before forward"):
        SVMLoss().backward()
    with pytest.raises(ValueError, match="reduction"):
        SoftmaxCrossEntropyLoss("none")
