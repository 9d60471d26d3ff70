"""checks.adapt.adapters: a user's layer, written in its own convention, judged through the pipeline.

The layers below are small user-style classes, one per convention (gradients in attributes,
returned, recovered from an SGD step, handed to an optimizer; accumulating, lazy, channels-last),
each computed with cnn's functional core so that only the adapting is under test. They run through
checks.pipeline.trial.Trial and checks.pipeline.properties: a correct layer gives no FAIL finding, a misreporting one
a FAIL that names the cause."""

from __future__ import annotations

import numpy as np
import pytest

import cnn
from checks.adapt.adapters import ClassSubject, LayerSpec, Param, RecordingOptimizer
from checks.adapt.guard import LayerFault, Limits
from checks.case import Case
from checks.findings import FAIL, PASS
from checks.geometry import ConvGeometry, DenseGeometry
from checks.kinds import reference_subject
from checks.pipeline import properties
from checks.pipeline.trial import Options, Trial

CONV = ConvGeometry(2, 2, 5, 4, 3, (2, 2), stride=(2, 1), padding=(1, 0))
SEED_CONV = ConvGeometry(1, 1, 5, 5, 3, (3, 3), bias=False)  # one image, one channel, no bias
DENSE = DenseGeometry(3, (4,), 2)
OPTIONS = Options(limits=Limits(seconds=10.0))


def make_case(kind: str, geometry, seed: int = 0) -> Case:
    """Random normal values (nothing near a kink: conv and dense have none)."""
    rng = np.random.default_rng(seed)
    inputs = {"input": rng.standard_normal(geometry.input_shape)}
    inputs.update({k: rng.standard_normal(s) for k, s in geometry.param_shapes.items()})
    return Case(kind, geometry, inputs, rng.standard_normal(geometry.output_shape))


def run(spec: LayerSpec, case: Case, props: list[str] | None = None) -> dict[str, list]:
    """Findings by property for ``spec``'s layer on ``case``."""
    out: dict[str, list] = {}
    for f in properties.run(Trial(case, spec.subject, OPTIONS), props):
        out.setdefault(f.property, []).append(f)
    return out


def failures(found: dict[str, list]) -> list:
    return [f for fs in found.values() for f in fs if f.failed]


def failed_messages(found: dict[str, list], prop: str) -> list[str]:
    return [f.message for f in found[prop] if f.status == FAIL]


def reference_grads(case: Case) -> dict[str, np.ndarray]:
    subject = reference_subject(case)
    subject.forward({k: v.copy() for k, v in case.inputs.items()})
    return dict(subject.backward(case.upstream.copy()))


def assert_judged_and_passed(found: dict[str, list], names: list[str]) -> None:
    assert failures(found) == []
    for name in names:
        assert any(f.status == PASS and f.oracle in ("torch", "fd") for f in found[f"grad_{name}"]), name


# -- user-style layers ---------------------------------------------------------------------------


class AttrConv:
    """NCHW conv; W (F, C, kh, kw), b (F,); backward stores dW, db and returns dX."""

    def __init__(self, g: ConvGeometry) -> None:
        self.g = g
        self.W = np.zeros((g.filters, g.in_channels, *g.kernel))
        self.b = np.zeros(g.filters)

    def forward(self, x):
        self.x = x
        return cnn.conv2d(x, self.W, self.b, self.g.stride, self.g.padding, self.g.dilation)

    def backward(self, dy):
        g = self.g
        self.dW = cnn.conv2d_grad_weight(dy, self.x, g.kernel, g.stride, g.padding, g.dilation)
        self.db = cnn.conv2d_grad_bias(dy)
        return cnn.conv2d_grad_input(dy, self.W, self.x.shape, g.stride, g.padding, g.dilation)


def attr_conv_spec(cls=AttrConv, **options) -> LayerSpec:
    params = {"weight": Param("W", "FCHW", grad="dW"), "bias": Param("b", grad="db")}
    return LayerSpec("conv", cls, params=params, **options)


class ReturnedDense:
    """Dense on (N, D) with W (D, M), b (M,); backward returns (dX, [dW, db])."""

    def __init__(self, g: DenseGeometry) -> None:
        self.W = np.zeros((g.in_features, g.out_features))
        self.b = np.zeros(g.out_features)

    def forward(self, x):
        self.x = x
        return cnn.dense(x, self.W, self.b)

    def backward(self, dy):
        return cnn.dense_grad_input(dy, self.W, self.x.shape), [cnn.dense_grad_weight(dy, self.x), dy.sum(axis=0)]


def returned_spec(cls=ReturnedDense, **options) -> LayerSpec:
    params = {"weight": Param("W", "DM"), "bias": Param("b")}
    return LayerSpec("dense", cls, input_layout="ND", params=params, gradients="returned", **options)


class SeedConv:
    """The seed article's conv: one (H, W) image -> (H', W', F), filters (F, k, k), no bias, stride 1;
    backward takes an SGD step with self.lr and returns only dL/dX."""

    def __init__(self, g: ConvGeometry) -> None:
        self.filters = np.zeros((g.filters, *g.kernel))
        self.lr = 0.125

    def forward(self, image):
        self.image = image
        return cnn.conv2d(image[None, None], self.filters[:, None])[0].transpose(1, 2, 0)

    def _grads(self, d_out):
        g = d_out.transpose(2, 0, 1)[None]
        kernel = self.filters[:, None]
        d_filters = cnn.conv2d_grad_weight(g, self.image[None, None], kernel.shape[-2:])[:, 0]
        d_image = cnn.conv2d_grad_input(g, kernel, (1, 1, *self.image.shape))[0, 0]
        return d_filters, d_image

    def backward(self, d_out):
        d_filters, d_image = self._grads(d_out)
        self.filters -= self.lr * d_filters
        return d_image


class SeedConvReturnsNone(SeedConv):
    """A first layer of the seed style: updates its filters and returns nothing."""

    def backward(self, d_out):
        super().backward(d_out)
        return None


def seed_spec(cls=SeedConv, **options) -> LayerSpec:
    return LayerSpec(
        "conv",
        cls,
        input_layout="HW",
        output_layout="HWC",
        params={"weight": Param("filters", "FHW")},
        gradients="sgd",
        **options,
    )


class RealOptimizer:
    """What the user's code would hand gradients to; it must never be reached during a check."""

    calls = 0

    def update(self, param, grad):
        RealOptimizer.calls += 1
        param -= 0.5 * grad


class OptimizerDense(ReturnedDense):
    """Hands its gradients to ``self.optimizer.update(param, grad)`` and returns dX."""

    def __init__(self, g: DenseGeometry) -> None:
        super().__init__(g)
        self.optimizer = RealOptimizer()

    def backward(self, dy):
        dx, (dw, db) = super().backward(dy)
        self.optimizer.update(self.W, dw)
        self.optimizer.update(self.b, db)
        return dx


def optimizer_spec(**options) -> LayerSpec:
    params = {"weight": Param("W", "DM"), "bias": Param("b")}
    return LayerSpec("dense", OptimizerDense, input_layout="ND", params=params, gradients="optimizer", **options)


class AccumulatingConv(AttrConv):
    """Adds into dW and db on every backward (as frameworks do) until zero_grad() is called."""

    def __init__(self, g: ConvGeometry) -> None:
        super().__init__(g)
        self.zero_grad()

    def zero_grad(self):
        self.dW = np.zeros_like(self.W)
        self.db = np.zeros_like(self.b)

    def backward(self, dy):
        dw, db = self.dW, self.db
        dx = super().backward(dy)
        self.dW, self.db = dw + self.dW, db + self.db
        return dx


class LazyDense(ReturnedDense):
    """Creates W and b on the first forward, from the input's size; gradients in dW, db."""

    def __init__(self, g: DenseGeometry) -> None:
        self.out_features = g.out_features
        self.W = self.b = None

    def forward(self, x):
        if self.W is None:
            self.W = np.full((x.shape[1], self.out_features), 0.01)
            self.b = np.zeros(self.out_features)
        return super().forward(x)

    def backward(self, dy):
        dx, (self.dW, self.db) = super().backward(dy)
        return dx


class ChannelsLastConv:
    """Channels-last conv: x (N, H, W, C), kernel (kh, kw, C, F), bias kept in ``bias_shape``."""

    def __init__(self, g: ConvGeometry, bias_shape: tuple[int, ...]) -> None:
        self.g = g
        self.kernel = np.zeros((*g.kernel, g.in_channels, g.filters))
        self.bias = np.zeros(bias_shape)

    def forward(self, x):
        self.x = x.transpose(0, 3, 1, 2)
        g = self.g
        z = cnn.conv2d(self.x, self.kernel.transpose(3, 2, 0, 1), self.bias.reshape(-1), g.stride, g.padding)
        return z.transpose(0, 2, 3, 1)

    def backward(self, dy):
        g, k = self.g, self.kernel.transpose(3, 2, 0, 1)
        dz = np.ascontiguousarray(dy.transpose(0, 3, 1, 2))
        self.d_kernel = cnn.conv2d_grad_weight(dz, self.x, g.kernel, g.stride, g.padding).transpose(2, 3, 1, 0)
        self.d_bias = cnn.conv2d_grad_bias(dz).reshape(self.bias.shape)
        return cnn.conv2d_grad_input(dz, k, self.x.shape, g.stride, g.padding).transpose(0, 2, 3, 1)


def channels_last_spec(bias_shape, cls=ChannelsLastConv) -> LayerSpec:
    params = {"weight": Param("kernel", "HWCF", grad="d_kernel"), "bias": Param("bias", grad="d_bias")}
    return LayerSpec("conv", lambda g: cls(g, bias_shape(g.filters)), input_layout="NHWC", params=params)


# -- each gradient source, correct layers ---------------------------------------------------------


def test_gradients_in_attributes_are_read_and_judged():
    case = make_case("conv", CONV)
    found = run(attr_conv_spec(), case)
    assert_judged_and_passed(found, ["input", "weight", "bias"])
    assert set(found) == set(properties.property_names(["input", "weight", "bias"]))


def test_gradients_returned_as_dx_and_a_parameter_list_are_read_and_judged():
    found = run(returned_spec(), make_case("dense", DENSE))
    assert_judged_and_passed(found, ["input", "weight", "bias"])


def test_an_sgd_step_inside_backward_gives_back_the_gradient_and_the_filters_are_restored():
    case = make_case("conv", SEED_CONV)
    subject = seed_spec().subject(case)
    subject.forward({k: v.copy() for k, v in case.inputs.items()})
    installed = subject.layer.filters.copy()
    grads = subject.backward(case.upstream.copy())
    expected = reference_grads(case)
    np.testing.assert_allclose(grads["weight"], expected["weight"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grads["input"], expected["input"], rtol=1e-12, atol=1e-12)
    assert np.array_equal(subject.layer.filters, installed)  # the step was undone
    # and so a second backward sees the same filters and recovers the same gradient
    again = subject.backward(case.upstream.copy())
    assert np.array_equal(again["weight"], grads["weight"])


def test_an_sgd_layer_passes_every_property():
    found = run(seed_spec(), make_case("conv", SEED_CONV))
    assert_judged_and_passed(found, ["input", "weight"])


def test_a_layer_returning_none_still_has_its_weight_gradient_judged_when_declared_so():
    spec = seed_spec(SeedConvReturnsNone, returns_input_grad=False)
    case = make_case("conv", SEED_CONV)
    found = run(spec, case, properties.property_names(["weight"]))
    assert "grad_input" not in found
    assert_judged_and_passed(found, ["weight"])


def test_a_layer_returning_none_fails_only_its_input_gradient_when_it_claims_to_return_one():
    found = run(seed_spec(SeedConvReturnsNone), make_case("conv", SEED_CONV), ["grad_input", "grad_weight"])
    assert failed_messages(found, "grad_input") == [
        "backward: returned None instead of the input gradient (inputs: input (5, 5), filters (3, 3, 3))"
    ]
    assert_judged_and_passed({"grad_weight": found["grad_weight"]}, ["weight"])


def test_a_recording_optimizer_stands_in_for_the_layers_own():
    RealOptimizer.calls = 0
    case = make_case("dense", DENSE)
    found = run(optimizer_spec(), case)
    assert_judged_and_passed(found, ["input", "weight", "bias"])
    assert RealOptimizer.calls == 0


def test_the_recording_optimizer_records_copies_by_parameter_identity():
    opt = RecordingOptimizer()
    w, b = np.zeros(2), np.zeros(2)
    g1, g2 = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    opt.update(w, g1)
    opt.step(b, g2, 0.1)  # aliases with extra arguments, as optimizers take
    opt.apply(w, g2, lr=0.1)
    g1[...] = 0.0
    assert np.array_equal(opt.grad_for(w), g2)  # the latest one for that parameter
    assert np.array_equal(opt.grad_for(b), g2)
    assert np.array_equal(opt.seen[0][1], [1.0, 2.0])  # a copy, not the caller's array
    assert opt.grad_for(np.zeros(2)) is None  # equal values, different object


def test_an_optimizer_layer_that_never_calls_update_fails_naming_the_missing_gradient():
    class Forgetful(OptimizerDense):
        def backward(self, dy):
            return ReturnedDense.backward(self, dy)[0]

    spec = LayerSpec("dense", Forgetful, input_layout="ND", params={"weight": Param("W", "DM")}, gradients="optimizer")
    case = make_case("dense", DenseGeometry(3, (4,), 2, bias=False))
    found = run(spec, case, ["grad_weight"])
    assert "no gradient for 'weight' was found" in failed_messages(found, "grad_weight")[0]


@pytest.mark.parametrize("reset", ["zero_grad", "zero"])
def test_an_accumulating_layer_reset_between_calls_gives_the_same_gradient_twice(reset):
    case = make_case("conv", CONV)
    subject = attr_conv_spec(AccumulatingConv, reset=reset).subject(case)
    results = []
    for _ in range(2):
        subject.forward({k: v.copy() for k, v in case.inputs.items()})
        results.append(subject.backward(case.upstream.copy()))
    for name in ("input", "weight", "bias"):
        assert np.array_equal(results[0][name], results[1][name]), name
    found = run(attr_conv_spec(AccumulatingConv, reset=reset), case)
    assert_judged_and_passed(found, ["input", "weight", "bias"])


def test_an_accumulating_layer_without_a_reset_is_caught():
    found = run(attr_conv_spec(AccumulatingConv), make_case("conv", CONV))
    assert {f.property for f in failures(found)} >= {"determinism", "linearity"}


def test_a_lazy_layer_gets_its_parameters_created_then_replaced_by_the_cases():
    spec = LayerSpec(
        "dense",
        LazyDense,
        input_layout="ND",
        params={"weight": Param("W", "DM", grad="dW"), "bias": Param("b", grad="db")},
    )
    case = make_case("dense", DENSE)
    subject = spec.subject(case)
    assert subject.layer.W is None
    subject.forward({k: v.copy() for k, v in case.inputs.items()})
    assert np.array_equal(subject.layer.W, case.inputs["weight"])
    assert_judged_and_passed(run(spec, case), ["input", "weight", "bias"])


@pytest.mark.parametrize(
    "bias_shape",
    [lambda f: (f,), lambda f: (f, 1), lambda f: (1, 1, 1, f)],
    ids=["(F,)", "(F,1)", "(1,1,1,F)"],
)
def test_a_channels_last_layer_with_hwcf_kernels_and_any_bias_shape_passes(bias_shape):
    geometry = CONV._replace(dilation=(1, 1))
    case = make_case("conv", geometry)
    spec = channels_last_spec(bias_shape)
    subject = spec.subject(case)
    subject.forward({k: v.copy() for k, v in case.inputs.items()})
    assert subject.layer.bias.shape == bias_shape(geometry.filters)  # installed in the user's shape
    assert np.array_equal(subject.layer.kernel, case.inputs["weight"].transpose(2, 3, 1, 0))
    assert_judged_and_passed(run(spec, case), ["input", "weight", "bias"])


# -- misreporting layers --------------------------------------------------------------------------


def test_a_wrong_output_shape_names_both_shapes():
    class Transposed(AttrConv):
        def forward(self, x):
            return super().forward(x).transpose(0, 1, 3, 2)

    geometry = CONV._replace(width=6)
    assert geometry.output_shape == (2, 3, 3, 5)
    found = run(attr_conv_spec(Transposed), make_case("conv", geometry), ["forward"])
    (message,) = failed_messages(found, "forward")
    assert message.startswith("forward: output has shape (2, 3, 5, 3), expected (2, 3, 3, 5)")


@pytest.mark.parametrize(
    "result, cause",
    [
        (lambda dx, dw, db: None, "expected (dX, [parameter gradients]) from backward, got NoneType"),
        (
            lambda dx, dw, db: (dx, dw, db),
            "expected (dX, [parameter gradients]) from backward, got a tuple of length 3",
        ),
        (lambda dx, dw, db: (dx, [dw]), "expected 2 parameter gradients, got a list of length 1"),
        (lambda dx, dw, db: (dx, dw), "expected 2 parameter gradients, got an array of shape"),
    ],
    ids=["none", "three-tuple", "short-list", "array-not-list"],
)
def test_a_backward_returning_the_wrong_structure_fails_naming_what_it_returned(result, cause):
    class Misreporting(ReturnedDense):
        def backward(self, dy):
            dx, (dw, db) = super().backward(dy)
            return result(dx, dw, db)

    found = run(returned_spec(Misreporting), make_case("dense", DENSE), ["grad_input", "grad_weight"])
    for prop in ("grad_input", "grad_weight"):
        (message,) = failed_messages(found, prop)
        assert message.startswith("backward: ") and cause in message


def test_a_backward_returning_none_names_the_missing_input_gradient():
    class Silent(AttrConv):
        def backward(self, dy):
            super().backward(dy)

    found = run(attr_conv_spec(Silent), make_case("conv", CONV), ["grad_input", "grad_weight"])
    assert "returned None instead of the input gradient" in failed_messages(found, "grad_input")[0]
    assert failed_messages(found, "grad_weight") == []


@pytest.mark.parametrize(
    "corrupt, cause",
    [
        (lambda dw: dw[:, :, :1], "gradient for 'weight' has shape (3, 2, 1, 2), expected (3, 2, 2, 2)"),
        (lambda dw: dw.reshape(3, -1), "gradient for 'weight': expected a 4-d array in layout FCHW"),
    ],
    ids=["same-rank", "other-rank"],
)
def test_a_weight_gradient_of_the_wrong_shape_fails_naming_the_shapes(corrupt, cause):
    class Misshapen(AttrConv):
        def backward(self, dy):
            dx = super().backward(dy)
            self.dW = corrupt(self.dW)
            return dx

    found = run(attr_conv_spec(Misshapen), make_case("conv", CONV), ["grad_weight", "grad_bias"])
    (message,) = failed_messages(found, "grad_weight")
    assert cause in message
    assert failed_messages(found, "grad_bias") == []


def test_a_bias_gradient_of_the_wrong_size_fails_naming_its_shape():
    class ScalarBias(AttrConv):
        def backward(self, dy):
            dx = super().backward(dy)
            self.db = self.db.sum()  # the seed article's scalar bias gradient
            return dx

    found = run(attr_conv_spec(ScalarBias), make_case("conv", CONV), ["grad_bias"])
    (message,) = failed_messages(found, "grad_bias")
    assert "gradient for 'bias' has shape (), expected (3,) entries in any shape" in message


def test_a_gradient_attribute_that_is_never_set_is_named():
    class Elsewhere(AttrConv):
        def backward(self, dy):
            dx = super().backward(dy)
            self.grad_W = self.__dict__.pop("dW")
            return dx

    found = run(attr_conv_spec(Elsewhere), make_case("conv", CONV), ["grad_weight"])
    assert "gradient 'dW' not found on the layer (AttributeError" in failed_messages(found, "grad_weight")[0]


def test_a_param_without_a_grad_path_is_an_adapter_fault():
    spec = LayerSpec("conv", AttrConv, params={"weight": Param("W", "FCHW"), "bias": Param("b", grad="db")})
    found = run(spec, make_case("conv", CONV), ["grad_input"])
    assert "adapt: Param for 'weight' names no grad attribute" in failed_messages(found, "grad_input")[0]


def test_a_missing_backward_method_is_named():
    spec = attr_conv_spec(backward_method="backprop")
    found = run(spec, make_case("conv", CONV), ["grad_input"])
    assert "the layer has no method 'backprop'" in failed_messages(found, "grad_input")[0]


def test_an_sgd_layer_without_a_learning_rate_is_named():
    found = run(seed_spec(lr_attr="learning_rate"), make_case("conv", SEED_CONV), ["grad_weight"])
    assert "gradients='sgd' needs a learning rate at 'learning_rate'" in failed_messages(found, "grad_weight")[0]


def test_an_exception_in_the_layer_is_shown_with_the_input_shapes():
    class Raising(AttrConv):
        def backward(self, dy):
            raise IndexError("index 7 is out of bounds")

    found = run(attr_conv_spec(Raising), make_case("conv", CONV), ["grad_input"])
    (message,) = failed_messages(found, "grad_input")
    assert message == (
        "backward: raised IndexError: index 7 is out of bounds "
        "(inputs: input (2, 2, 5, 4), weight (3, 2, 2, 2), bias (3,))"
    )


class Scribbler(AttrConv):
    """Writes into its parameters and its input after using them, and takes an SGD step in backward."""

    def forward(self, x):
        z = super().forward(x)
        self.x = x.copy()
        self.W *= 2.0
        self.b[...] = 0.0
        x[...] = 0.0
        return z

    def backward(self, dy):
        self.W /= 2.0
        dx = super().backward(dy)
        self.W -= 0.1 * self.dW
        return dx


class UpstreamScribbler(AttrConv):
    """Scales the upstream gradient it was given, in place, after using it."""

    def backward(self, dy):
        dx = super().backward(dy)
        dy *= 3.0
        return dx


def test_a_layer_writing_into_its_parameters_and_input_does_not_corrupt_the_case():
    case = make_case("conv", CONV)
    keep = case.copy()
    trial = Trial(case, attr_conv_spec(Scribbler).subject, OPTIONS)
    found: dict[str, list] = {}
    for f in properties.run(trial):
        found.setdefault(f.property, []).append(f)
    for name in case.inputs:
        assert np.array_equal(case.inputs[name], keep.inputs[name]), name
        assert np.array_equal(trial.pristine.inputs[name], keep.inputs[name]), name
    # its gradients are still judged right: every call gets the case's parameters afresh
    for prop in ("forward", "grad_input", "grad_weight", "grad_bias", "determinism", "linearity"):
        assert failed_messages(found, prop) == [], prop
    assert "forward modified its argument(s) ['input']" in failed_messages(found, "no_mutation")[0]


def test_a_layer_writing_into_the_upstream_gradient_does_not_corrupt_the_case():
    case = make_case("conv", CONV)
    keep = case.copy()
    trial = Trial(case, attr_conv_spec(UpstreamScribbler).subject, OPTIONS)
    found = {f.property: f for f in properties.run(trial, ["grad_input", "determinism", "no_mutation"]) if f.failed}
    assert "modified the upstream gradient" in found["no_mutation"].message
    assert np.array_equal(case.upstream, keep.upstream)
    assert np.array_equal(trial.pristine.upstream, keep.upstream)


def test_a_nchw_layer_writing_into_its_input_fails_no_mutation():
    class InPlace(AttrConv):
        def forward(self, x):
            z = super().forward(x)
            x[...] = 0.0
            return z

    found = run(attr_conv_spec(InPlace), make_case("conv", CONV), ["no_mutation"])
    assert "forward modified its argument(s) ['input']" in failed_messages(found, "no_mutation")[0]


def test_a_channels_last_layer_writing_into_its_input_fails_no_mutation():
    class InPlace(ChannelsLastConv):
        def forward(self, x):
            z = super().forward(x)
            self.x = self.x.copy()
            x[...] = 0.0
            return z

    spec = channels_last_spec(lambda f: (f,), InPlace)
    found = run(spec, make_case("conv", CONV._replace(dilation=(1, 1))), ["no_mutation"])
    assert failed_messages(found, "no_mutation")


# -- the spec itself -------------------------------------------------------------------------------


def test_a_spec_refuses_an_unknown_gradient_source_parameter_name_or_layout():
    with pytest.raises(ValueError, match="gradients='magic'"):
        LayerSpec("conv", AttrConv, gradients="magic")
    with pytest.raises(ValueError, match=r"\['kernel'\]"):
        LayerSpec("conv", AttrConv, params={"kernel": Param("K")})
    with pytest.raises(ValueError, match="'NWHC'"):
        LayerSpec("conv", AttrConv, input_layout="NWHC")
    with pytest.raises(ValueError, match="'HCW'"):
        LayerSpec("conv", AttrConv, output_layout="HCW")


def test_the_output_layout_defaults_to_the_input_layout():
    assert LayerSpec("relu", AttrConv, input_layout="NHWC").out_layout == "NHWC"
    assert LayerSpec("conv", AttrConv, input_layout="HW", output_layout="HWC").out_layout == "HWC"


def test_each_spec_case_gets_a_fresh_layer():
    case = make_case("conv", CONV)
    spec = attr_conv_spec()
    first, second = spec.subject(case), spec.subject(case)
    assert isinstance(first, ClassSubject) and first.layer is not second.layer


def test_a_fault_is_a_layer_fault():
    """Faults the adapter raises are LayerFaults, which the guard passes through unchanged."""
    case = make_case("conv", CONV)
    subject = attr_conv_spec(backward_method="nope").subject(case)
    subject.forward({k: v.copy() for k, v in case.inputs.items()})
    with pytest.raises(LayerFault) as info:
        subject.backward(case.upstream.copy())
    assert info.value.stage == "adapt"
