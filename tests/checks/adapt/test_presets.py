"""checks.adapt.presets: the seed preset reads the article's family as written, the nchw preset calls the
constructor it documents, and what either chose is one line of the declaration.

The layers are small classes defined here (their maths is cnn's functional core, so only the adapting is under
test), built with the method, attribute and argument names under test. Each name the preset accepts is shown to
be found, and a layer it cannot read is shown to be refused with an AdaptError; a learning rate passed as an
argument is shown to be the one the gradient is recovered with (a layer that steps with another rate is caught).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import cnn
from checks.adapt import presets
from checks.adapt.adapters import Declaration
from checks.adapt.presets import LR_PASSED, SEED_BACKWARD, SEED_FORWARD, SEED_LR_ARGUMENTS, AdaptError
from checks.case import Case
from checks.front import cli
from checks.geometry import ConvGeometry, DenseGeometry, ElementwiseGeometry, PoolGeometry
from checks.kinds import reference_subject

OWN_RATE = 0.1
"""The rate a layer keeps at self.lr (a layer that steps with it while handed LR_PASSED is wrong)."""


def _step(self, d, lr):
    """The seed conv's backward with a given rate: image (H, W), d (H', W', F); returns dL/dimage."""
    g = d.transpose(2, 0, 1)[None]
    w = getattr(self, self.attr)
    dx = cnn.conv2d_grad_input(g, w[:, None], (1, 1, *self.image.shape), 1, 0, 1)[0, 0]
    dw = cnn.conv2d_grad_weight(g, self.image[None, None], w.shape[1:], 1, 0, 1)[:, 0]
    setattr(self, self.attr, w - lr * dw)
    return dx


BACKWARDS = {
    None: lambda self, d: self.step(d, self.lr),
    "lr": lambda self, d, lr: self.step(d, lr),
    "alpha": lambda self, d, alpha: self.step(d, alpha),
    "learning_rate": lambda self, d, learning_rate: self.step(d, learning_rate),
    "learn_rate": lambda self, d, learn_rate: self.step(d, learn_rate),  # the seed series' Softmax.backprop
}


def seed_conv(
    forward: str = "forward", backward: str = "backward", attr: str = "filters", lr: str | None = None, lazy=False
) -> type:
    """A correct seed-style conv class: image (H, W) -> (H-k+1, W-k+1, F), filters at ``attr`` (F, k, k), an SGD
    step inside ``backward``, which takes the rate as its argument ``lr`` (None: reads self.lr)."""

    def __init__(self, num_filters, filter_size):
        self.shape, self.lr = (num_filters, filter_size, filter_size), OWN_RATE
        if not lazy:
            setattr(self, attr, np.ones(self.shape))

    def run(self, image):
        if not hasattr(self, attr):
            setattr(self, attr, np.ones(self.shape))
        self.image = image
        return cnn.conv2d(image[None, None], getattr(self, attr)[:, None], None, 1, 0, 1)[0].transpose(1, 2, 0)

    methods = {"__init__": __init__, forward: run, backward: BACKWARDS[lr], "step": _step, "attr": attr}
    return type(f"Conv_{forward}_{backward}_{attr}_{lr}", (), methods)


def conv_case(filters: int = 2, kernel: int = 2, size: int = 4, seed: int = 0) -> Case:
    g = ConvGeometry(1, 1, size, size, filters, (kernel, kernel), bias=False)
    rng = np.random.default_rng(seed)
    inputs = {"input": rng.standard_normal(g.input_shape), "weight": rng.standard_normal(g.param_shapes["weight"])}
    return Case("conv", g, inputs, rng.standard_normal(g.output_shape))


def grads(factory, case: Case) -> dict[str, np.ndarray]:
    subject = factory(case)
    subject.forward({k: v.copy() for k, v in case.inputs.items()})
    return dict(subject.backward(case.upstream.copy()))


# -- the seed preset: names -------------------------------------------------------------------------


@pytest.mark.parametrize("forward", SEED_FORWARD)
@pytest.mark.parametrize("backward", SEED_BACKWARD)
def test_every_accepted_method_name_is_found(forward, backward):
    spec = presets.seed("conv", seed_conv(forward, backward))
    assert (spec.forward_method, spec.backward_method) == (forward, backward)
    assert f"{forward}(x), {backward}(d);" in spec.adapted


def test_the_first_accepted_name_wins_when_a_class_has_two():
    cls = seed_conv("forward_prop", "backprop")
    cls.forward_pass, cls.back_prop = cls.forward_prop, cls.backprop
    spec = presets.seed("conv", cls)
    assert (spec.forward_method, spec.backward_method) == ("forward_prop", "backprop")


@pytest.mark.parametrize("attr", presets.SEED_PARAMS["conv"]["weight"])
def test_every_accepted_filter_name_is_found_and_used(attr):
    spec = presets.seed("conv", seed_conv(attr=attr))
    assert spec.params["weight"].attr == attr and f"filters `{attr}` (F, k, k)" in spec.adapted
    case = conv_case()
    ours, reference = grads(spec.subject, case), grads(reference_subject, case)
    np.testing.assert_allclose(ours["weight"], reference["weight"], rtol=1e-10, atol=1e-12)


def test_filters_that_exist_only_after_a_forward_are_found():
    spec = presets.seed("conv", seed_conv(attr="kernels", lazy=True))
    assert spec.params["weight"].attr == "kernels"


def test_a_candidate_with_the_wrong_number_of_entries_gives_way_to_one_that_fits():
    cls = seed_conv(attr="kernels")
    init = cls.__init__

    def with_scalar_weights(self, num_filters, filter_size):
        init(self, num_filters, filter_size)
        self.filters = 1.0  # an unrelated number under an earlier candidate name

    cls.__init__ = with_scalar_weights
    assert presets.seed("conv", cls).params["weight"].attr == "kernels"


# -- the seed preset: the learning rate ------------------------------------------------------------


@pytest.mark.parametrize("name", SEED_LR_ARGUMENTS)
def test_a_rate_passed_as_an_argument_is_passed_and_recovers_the_gradients(name):
    spec = presets.seed("conv", seed_conv("forward_prop", "backprop", "kernels", lr=name))
    assert spec.lr_argument == LR_PASSED and f"backprop(d, {name})" in spec.adapted
    assert f"lr passed as the argument `{name}`" in spec.adapted
    case = conv_case(seed=1)
    ours, reference = grads(spec.subject, case), grads(reference_subject, case)
    for gradient in ("input", "weight"):
        np.testing.assert_allclose(ours[gradient], reference[gradient], rtol=1e-10, atol=1e-12)
    assert spec.subject(case).learning_rate == LR_PASSED


def test_a_layer_that_steps_with_its_own_rate_instead_of_the_one_passed_is_caught():
    cls = seed_conv(lr="lr")
    cls.backward = lambda self, d, lr: self.step(d, self.lr)  # ignores the rate it is handed
    spec = presets.seed("conv", cls)
    case = conv_case(seed=2)
    ours, reference = grads(spec.subject, case), grads(reference_subject, case)
    np.testing.assert_allclose(ours["weight"], reference["weight"] * OWN_RATE / LR_PASSED, rtol=1e-10)


def test_a_rate_kept_on_self_is_read_there():
    spec = presets.seed("conv", seed_conv())
    assert spec.lr_argument is None and spec.adapted.endswith("lr read from self.lr")
    case = conv_case(seed=3)
    np.testing.assert_allclose(grads(spec.subject, case)["weight"], grads(reference_subject, case)["weight"])


def test_a_second_parameter_with_a_default_is_left_alone():
    cls = seed_conv()
    cls.backward = lambda self, d, verbose=False: self.step(d, self.lr)
    assert presets.seed("conv", cls).lr_argument is None


@pytest.mark.parametrize(
    ("backward", "reason"),
    [
        (lambda self, d, cache: None, "cache would get no value"),
        (lambda self: None, "it takes no d"),
        (lambda self, d, *, mode: None, "mode would get no value"),
    ],
)
def test_a_backward_the_preset_cannot_call_is_refused(backward, reason):
    cls = seed_conv()
    cls.backward = backward
    with pytest.raises(AdaptError, match=reason):
        presets.seed("conv", cls)


def test_no_rate_anywhere_and_a_zero_rate_are_refused():
    cls = seed_conv()
    init = cls.__init__

    def without_rate(self, num_filters, filter_size):
        init(self, num_filters, filter_size)
        del self.lr

    cls.__init__ = without_rate
    with pytest.raises(AdaptError, match=r"backward\(d\) takes no learning rate and the layer keeps none at self.lr"):
        presets.seed("conv", cls)

    def zero_rate(self, num_filters, filter_size):
        init(self, num_filters, filter_size)
        self.lr = 0.0

    cls.__init__ = zero_rate
    with pytest.raises(AdaptError, match="self.lr is 0, so backward takes no SGD step"):
        presets.seed("conv", cls)


# -- the seed preset: what it refuses, and what it cannot probe ---------------------------------------


def test_a_class_without_a_forward_is_refused_naming_every_accepted_name():
    cls = seed_conv(forward="predict")
    with pytest.raises(
        AdaptError, match="has no forward method: expected one named forward / forward_prop / forward_pass"
    ):
        presets.seed("conv", cls)


def test_filters_under_an_unknown_name_are_refused_and_not_created():
    with pytest.raises(AdaptError, match=r"has no filters: none of `filters`, `kernels`, `weights`, `W` exists"):
        presets.seed("conv", seed_conv(attr="bank"))


def test_a_constructor_the_preset_cannot_call_is_refused_before_anything_runs():
    built = []

    class NeedsShape:
        def __init__(self, num_filters, filter_size, image_shape):
            built.append(1)

        def forward(self, x):
            return x

        def backward(self, d):
            return d

    with pytest.raises(AdaptError, match=r"missing a required argument: 'image_shape'; the preset builds it as Cls"):
        presets.seed("conv", NeedsShape)
    assert built == []


def test_a_layer_whose_probe_build_raises_is_adapted_with_the_default_names_and_says_so():
    cls = seed_conv(attr="kernels")

    def fails(self, num_filters, filter_size):
        raise RuntimeError("a bug of the layer's own")

    cls.__init__ = fails
    spec = presets.seed("conv", cls)  # the check then reports the layer's fault, case by case
    assert spec.params["weight"].attr == "filters" and spec.adapted.endswith("(not probed: building the layer raised)")


def test_a_fixed_kernel_is_read_off_the_filters_whatever_they_are_called():
    cls = seed_conv(attr="W")
    init = cls.__init__
    cls.__init__ = lambda self, num_filters: init(self, num_filters, 3)
    spec = presets.seed("conv", cls)
    assert spec.supports.kernel == 3 and spec.params["weight"].attr == "W" and "fixed 3x3 kernel" in spec.adapted


# -- the seed preset: dense, pool, relu --------------------------------------------------------------


class DenseAlpha:
    """x (n,) -> x @ W + b with W kept (m, n) (torch.nn.Linear's way); back_prop(d, alpha) steps with alpha."""

    def __init__(self, input_size, num_classes):
        self.w = np.zeros((num_classes, input_size))
        self.bias = np.zeros(num_classes)

    def forward_pass(self, x):
        self.x = x
        return self.w @ x + self.bias

    def back_prop(self, d, alpha):
        dx = self.w.T @ d
        self.w = self.w - alpha * np.outer(d, self.x)
        self.bias = self.bias - alpha * d
        return dx


def test_a_dense_layer_is_read_with_its_names_its_weight_layout_and_the_rate_it_is_handed():
    spec = presets.seed("dense", DenseAlpha)
    assert (spec.params["weight"].attr, spec.params["weight"].layout, spec.params["bias"].attr) == ("w", "MD", "bias")
    assert spec.lr_argument == LR_PASSED
    assert spec.adapted == (
        "seed: DenseAlpha(input_size=n, num_classes=m); forward_pass(x), back_prop(d, alpha); weights `w` (m, n), "
        f"biases `bias` (m,); lr passed as the argument `alpha` ({LR_PASSED:g})"
    )
    g = DenseGeometry(1, (3,), 2)
    rng = np.random.default_rng(4)
    inputs = {k: rng.standard_normal(s) for k, s in {"input": g.input_shape, **g.param_shapes}.items()}
    case = Case("dense", g, inputs, rng.standard_normal(g.output_shape))
    ours, reference = grads(spec.subject, case), grads(reference_subject, case)
    for gradient in ("input", "weight", "bias"):
        np.testing.assert_allclose(ours[gradient], reference[gradient], rtol=1e-10, atol=1e-12)


def test_a_dense_layer_without_biases_by_an_accepted_name_is_refused():
    class NoBias(DenseAlpha):
        def __init__(self, input_size, num_classes):
            self.w, self.offset = np.zeros((num_classes, input_size)), np.zeros(num_classes)

        def forward_pass(self, x):
            return self.w @ x + self.offset

    with pytest.raises(AdaptError, match=r"has no biases: none of `biases`, `bias`, `b` exists"):
        presets.seed("dense", NoBias)


class PoolAlpha:
    def __init__(self, size=2):
        self.size = size

    def forward_prop(self, x):
        return x

    def back_prop(self, d, alpha):
        return d


class ReLUPass:
    def forward_pass(self, x):
        return x

    def backward_pass(self, d, learning_rate):
        return d


def test_pools_and_relus_called_with_a_rate_get_one_and_the_call_is_shown():
    pool = presets.seed("maxpool", PoolAlpha)
    assert pool.lr_argument == LR_PASSED and (pool.forward_method, pool.backward_method) == (
        "forward_prop",
        "back_prop",
    )
    assert pool.adapted.startswith("seed: PoolAlpha(size=k), window = stride = k; forward_prop(x), back_prop(d, alpha)")
    relu = presets.seed("relu", ReLUPass)
    assert relu.adapted == (
        f"seed: ReLUPass(); forward_pass(x), backward_pass(d, learning_rate); lr passed as the argument "
        f"`learning_rate` ({LR_PASSED:g})"
    )
    subject = relu.subject(Case("relu", ElementwiseGeometry((1, 3)), {"input": np.ones((1, 3))}, np.ones((1, 3))))
    subject.forward({"input": np.ones((1, 3))})
    assert subject.learning_rate == LR_PASSED


# -- the nchw preset ------------------------------------------------------------------------------------


class Recorded:
    """Records how it was built; params['weight'] sized from the conv arguments, params['bias'] when ``bias``."""

    calls: list = []

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True):
        type(self).calls.append(((in_channels, out_channels, kernel_size), {"stride": stride, "padding": padding}))
        self.params = {"weight": np.zeros((out_channels, in_channels, kernel_size, kernel_size))}
        if bias:
            self.params["bias"] = np.zeros(out_channels)
        self.grads = {}

    def forward(self, x):
        return x

    def backward(self, dout):
        return dout


def test_nchw_builds_a_conv_from_the_geometry_as_cnn_layers_does():
    spec = presets.nchw("conv", Recorded)
    Recorded.calls.clear()
    spec.build(ConvGeometry(2, 3, 6, 6, 4, (3, 3), (2, 2), (1, 1)))
    assert Recorded.calls == [((3, 4, 3), {"stride": 2, "padding": 1})]
    assert spec.supports.square and spec.supports.bias is True and set(spec.params) == {"weight", "bias"}
    assert spec.adapted.startswith("nchw: Recorded(in_channels, out_channels, kernel_size, stride=s, padding=p);")


def test_nchw_checks_a_layer_without_a_bias_as_one():
    class NoBias(Recorded):
        def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
            super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias=False)

    spec = presets.nchw("conv", NoBias)
    assert set(spec.params) == {"weight"} and spec.supports.bias is False and "(no bias)" in spec.adapted


def test_nchw_pools_take_the_window_stride_and_padding():
    class Pool:
        def __init__(self, kernel_size, stride=None, padding=0):
            self.made = (kernel_size, stride, padding)

        forward = backward = Recorded.forward

    spec = presets.nchw("maxpool", Pool)
    assert spec.build(PoolGeometry(1, 2, 5, 5, (3, 3), (2, 2), (1, 1))).made == (3, 2, 1)


def test_nchw_refuses_a_constructor_it_cannot_call_and_a_layer_without_its_weight():
    class FromPath(Recorded):
        def __init__(self, path):
            pass

    with pytest.raises(AdaptError, match=r"FromPath\(path\) cannot be built as FromPath\(in_channels, out_channels"):
        presets.nchw("conv", FromPath)

    class WeightsElsewhere(Recorded):
        def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
            self.W = np.zeros((out_channels, in_channels, kernel_size, kernel_size))

    with pytest.raises(AdaptError, match=r"has no weight: none of `params\['weight'\]` exists"):
        presets.nchw("conv", WeightsElsewhere)


def test_nchw_with_a_build_of_the_users_own_is_not_second_guessed():
    spec = presets.nchw("relu", object, build=lambda g: ReLUPass())
    assert spec.adapted == "" and isinstance(spec.build(None), ReLUPass)


# -- what was chosen, as one line of the declaration --------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "cls"),
    [("conv", seed_conv()), ("dense", DenseAlpha), ("maxpool", PoolAlpha), ("relu", ReLUPass)],
)
def test_the_choice_travels_to_the_checker_as_one_line(kind, cls):
    declaration = presets.seed(kind, cls).declaration()
    assert declaration.adapted.startswith("seed: ") and len(declaration.adapted.splitlines()) == 1
    assert Declaration.from_dict(json.loads(json.dumps(declaration.to_dict()))) == declaration


@pytest.mark.parametrize("text", ["two\nlines", "trailing\n", "separator\u2028inside"])
def test_a_declaration_whose_adapted_line_is_not_one_line_is_refused(text):
    data = presets.seed("relu", ReLUPass).declaration().to_dict()
    data["adapted"] = text
    with pytest.raises(ValueError, match="more than one line"):
        Declaration.from_dict(data)


# -- through the command line: the header, the JSON settings, and a bug found with the rate passed ------------

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "seed_style"


def test_the_choice_is_under_the_header_and_in_the_json_settings(capsys):
    target = f"{EXAMPLES / 'family.py'}:ReLUPass"
    assert cli.main(["check", target, "--kind", "relu", "--preset", "seed", "--max-examples", "3", "--json", "-"]) == 0
    out, err = capsys.readouterr()
    line = (
        "seed: ReLUPass(); forward_pass(x), backward_pass(d, learning_rate); lr passed as the argument "
        f"`learning_rate` ({LR_PASSED:g})"
    )
    assert json.loads(out)["settings"]["adapted"] == line
    assert err.splitlines()[1] == f"cnn-gradcheck: adapted as {line}"


def test_a_layerspec_written_by_hand_has_no_adapted_line(capsys):
    target = f"{EXAMPLES.parent / 'misbehaving' / 'specs.py'}:relu_nan"
    assert cli.main(["check", target, "--max-examples", "3", "--json", "-"]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out)["settings"]["adapted"] == "" and "adapted as" not in err


def test_a_step_taken_too_early_with_the_rate_passed_is_named_with_that_rate(capsys):
    target = f"{EXAMPLES / 'family_step_first.py'}:KernelConvStepFirst"
    args = ["check", target, "--kind", "conv", "--preset", "seed", "--max-examples", "10", "--json", "-", "-q"]
    assert cli.main(args) == 1
    report = json.loads(capsys.readouterr().out)
    grad_input = next(p for p in report["properties"] if p["property"] == "grad_input")
    assert grad_input["status"] == "fail" and grad_input["diagnosis"]["mistake"] == "sgd_before_input_grad"
    assert f"lr = {LR_PASSED:g}" in grad_input["diagnosis"]["matches"][0]["evidence"]
