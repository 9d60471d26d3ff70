"""Named-mistake diagnosis (checks.explain.mistakes) and pattern summaries (checks.explain.patterns), on
fixed small cases.

Every known mistake (checks.explain.mistakes) and every extra detector must be named on a layer that makes
it, and nothing may be named for a correct layer or an unrelated bug. Cases are fixed and tiny, and
trials are built directly (no hypothesis search), so the file runs in about a second.
"""

from __future__ import annotations

import numpy as np
import pytest

from checks import explain
from checks.adapt import targets
from checks.adapt.adapters import LayerSpec, Param, Supports
from checks.case import Case
from checks.explain.evidence import Diagnosis, Evidence, Pattern
from checks.explain.mistakes import MISTAKES, mistaken
from checks.explain.patterns import patterns
from checks.geometry import (
    BatchNormGeometry,
    ConvGeometry,
    DenseGeometry,
    DropoutGeometry,
    ElementwiseGeometry,
    LeakyReluGeometry,
    LossGeometry,
    PoolGeometry,
    SoftmaxGeometry,
)
from checks.kinds import reference_subject
from checks.pipeline.trial import Options, Trial
from checks.tolerances import tolerances_for

OPTIONS = Options(oracles=())  # the NumPy reference is the exact answer: no torch needed (nor imported)
TOL = tolerances_for(np.float64).exact


def _values(rng: np.random.Generator, shape: tuple[int, ...], low: float = 0.1, high: float = 1.0) -> np.ndarray:
    """Signed values with |v| in [low, high]: no zeros, so no accidental kinks."""
    return rng.uniform(low, high, shape) * rng.choice([-1.0, 1.0], shape)


def conv_case(batch=2, channels=2, size=5, filters=2, kernel=3, stride=2, padding=0, seed=0) -> Case:
    g = ConvGeometry(batch, channels, size, size, filters, (kernel, kernel), (stride, stride), (padding, padding))
    rng = np.random.default_rng(seed)
    inputs = {"input": _values(rng, g.input_shape), "weight": _values(rng, g.param_shapes["weight"])}
    inputs["bias"] = _values(rng, (filters,))
    return Case("conv", g, inputs, _values(rng, g.output_shape, 0.1, 2.0))


def pool_case(stride=1) -> Case:
    """Overlapping 2x2 windows over 4x4 images, two channels; channel 0 has tied maxima."""
    g = PoolGeometry(1, 2, 4, 4, (2, 2), (stride, stride))
    x = np.array(
        [
            [[0.5, 0.5, 0.1, 0.2], [0.3, 0.1, 0.9, 0.4], [0.7, 0.7, 0.2, 0.6], [0.7, 0.1, 0.6, 0.3]],
            [[0.15, 0.25, 0.35, 0.45], [0.55, 0.65, 0.75, 0.85], [0.95, 0.8, 0.7, 0.6], [0.5, 0.4, 0.3, 0.2]],
        ]
    )[None]
    return Case("maxpool", g, {"input": x}, _values(np.random.default_rng(1), g.output_shape, 0.1, 2.0), mode="ties")


def relu_case() -> Case:
    x = np.array([[0.5, -0.25, 0.75], [-0.5, 0.3, -0.9]])
    up = np.array([[1.5, -0.5, -1.25], [0.75, -2.0, -0.3]])
    return Case("relu", ElementwiseGeometry((2, 3)), {"input": x}, up)


def dense_case(batch=3, features=3, out=3, seed=2) -> Case:
    g = DenseGeometry(batch, (features,), out, True)
    rng = np.random.default_rng(seed)
    inputs = {
        "input": _values(rng, g.input_shape),
        "weight": _values(rng, (features, out)),
        "bias": _values(rng, (out,)),
    }
    return Case("dense", g, inputs, _values(rng, g.output_shape, 0.1, 2.0))


def dense_softmax_case() -> Case:
    """A fused dense + softmax on (2, 2, 2) inputs (two feature axes, flattened), three classes."""
    g = DenseGeometry(2, (2, 2), 3, True)
    rng = np.random.default_rng(4)
    inputs = {"input": _values(rng, g.input_shape), "weight": _values(rng, (4, 3)), "bias": _values(rng, (3,))}
    return Case("dense+softmax", g, inputs, _values(rng, g.output_shape, 0.1, 2.0))


def smooth_case(kind: str):
    """Sigmoid or tanh on (2, 3): inputs of both signs, away from 0 and from the points where the mistaken
    formula happens to agree."""

    def case() -> Case:
        x = np.array([[0.5, -1.25, 2.0], [-0.3, 1.75, -2.5]])
        up = np.array([[1.5, -0.5, -1.25], [0.75, -2.0, -0.3]])
        return Case(kind, ElementwiseGeometry((2, 3)), {"input": x}, up)

    return case


def leaky_relu_case() -> Case:
    x = np.array([[0.5, -0.25, 0.75], [-0.5, 0.3, -0.9]])
    up = np.array([[1.5, -0.5, -1.25], [0.75, -2.0, -0.3]])
    return Case("leaky_relu", LeakyReluGeometry((2, 3), 0.1), {"input": x}, up)


def softmax_case(axis: int = -1) -> Case:
    """Two rows of four logits (over the last axis), or the same array over axis 0 (four rows of two)."""
    rng = np.random.default_rng(3)
    g = SoftmaxGeometry((2, 4), axis)
    return Case("softmax", g, {"input": _values(rng, g.input_shape)}, _values(rng, g.output_shape, 0.1, 2.0))


def avgpool_case() -> Case:
    """Overlapping 2x2 windows with padding 1 over 4x4 images: border windows hold 1 or 2 real taps, inner 4."""
    g = PoolGeometry(1, 2, 4, 4, (2, 2), (1, 1), (1, 1))
    rng = np.random.default_rng(4)
    return Case("avgpool", g, {"input": _values(rng, g.input_shape)}, _values(rng, g.output_shape, 0.1, 2.0))


def batchnorm_case(shape: tuple[int, ...] = (4, 3)) -> Case:
    """Plain batch norm on four samples of three features (or spatial on ``shape``), signed gamma."""
    g = BatchNormGeometry(shape)
    rng = np.random.default_rng(5)
    inputs = {"input": _values(rng, shape, 0.1, 2.0), "gamma": _values(rng, (shape[1],), 0.5, 1.5)}
    inputs["beta"] = _values(rng, (shape[1],))
    return Case("batchnorm", g, inputs, _values(rng, shape, 0.1, 2.0))


def dropout_case() -> Case:
    """Drop probability 0.4 on (3, 4): the reference's mask from seed 3 keeps some entries and drops others."""
    g = DropoutGeometry((3, 4), 0.4, 3)
    rng = np.random.default_rng(6)
    return Case("dropout", g, {"input": _values(rng, g.input_shape)}, _values(rng, g.output_shape, 0.1, 2.0))


def loss_case(kind: str):
    """Three samples of four scores, mean over the batch, upstream 1: some hinge margins active, none at 0."""

    def case() -> Case:
        x = np.array([[0.3, -0.45, 1.2, 0.05], [-1.1, 0.6, 0.25, -0.2], [0.9, 0.15, -0.7, 1.35]])
        return Case(kind, LossGeometry(3, 4), {"input": x}, np.asarray(1.0), np.array([0, 3, 1]))

    return case


CASES = {
    "batchnorm": batchnorm_case,
    "dropout": dropout_case,
    "softmax_ce": loss_case("softmax_ce"),
    "svm_loss": loss_case("svm_loss"),
    "conv": conv_case,
    "maxpool": pool_case,
    "relu": relu_case,
    "dense": dense_case,
    "sigmoid": smooth_case("sigmoid"),
    "tanh": smooth_case("tanh"),
    "leaky_relu": leaky_relu_case,
    "softmax": softmax_case,
    "avgpool": avgpool_case,
    "dense+softmax": dense_softmax_case,
}


def diagnosis(factory, case: Case, name: str, spec: LayerSpec | None = None) -> Diagnosis:
    trial = Trial(case, factory, OPTIONS)
    return explain.explain(trial, name, spec)[1]


class Perturbed:
    """The reference layer with one gradient passed through ``change`` (an unrelated bug)."""

    def __init__(self, case: Case, name: str, change) -> None:
        self.inner, self.name, self.change = reference_subject(case), name, change

    def forward(self, inputs):
        return self.inner.forward(inputs)

    def backward(self, upstream):
        grads = dict(self.inner.backward(upstream))
        grads[self.name] = self.change(np.array(grads[self.name], copy=True))
        return grads


def perturbed(name: str, change):
    return lambda case: Perturbed(case, name, change)


def _one_entry(g: np.ndarray) -> np.ndarray:
    g.reshape(-1)[g.size // 2] += 0.3 * (np.abs(g).max() or 1.0)
    return g


# -- named mistakes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mistake", MISTAKES, ids=lambda m: m.name)
def test_each_known_mistake_is_named_on_a_layer_that_makes_it(mistake):
    case = CASES[mistake.kind]()
    assert mistake.applies(case), "the fixture case must make the mistake visible"
    found = diagnosis(mistaken(mistake), case, mistake.gradient)
    assert found.mistake == mistake.name, found.render_lines()
    assert [m.mistake for m in found.matches] == [mistake.name]
    assert found.matches[0].formula == mistake.formula and found.matches[0].source == "mistakes"


def test_softmax_mistakes_are_named_over_another_axis_too():
    for name in ("softmax_diagonal_only", "softmax_passes_upstream", "softmax_first_entry_only"):
        found = diagnosis(mistaken(name), softmax_case(axis=0), "input")
        assert [m.mistake for m in found.matches] == [name], found.render_lines()


def test_the_two_avgpool_divisor_mistakes_are_told_apart_where_windows_hold_different_tap_counts():
    for name, other in (("avgpool_excludes_padding", 4.0), ("avgpool_forgets_divisor", None)):
        found = diagnosis(mistaken(name), avgpool_case(), "input")
        assert [m.mistake for m in found.matches] == [name], found.render_lines()
        scale = [p.value for p in found.patterns if p.name == "scale"]
        assert scale == ([pytest.approx(4.0)] if other is None else []), found.render_lines()


def test_batchnorm_mistakes_are_named_on_spatial_batch_norm_too():
    for m in [m for m in MISTAKES if m.kind == "batchnorm"]:
        found = diagnosis(mistaken(m), batchnorm_case((2, 2, 3, 2)), m.gradient)
        assert [match.mistake for match in found.matches] == [m.name], found.render_lines()


def test_the_unbiased_variance_is_named_on_the_gamma_gradient_too():
    found = diagnosis(mistaken("batchnorm_var_unbiased"), batchnorm_case(), "gamma")
    assert [m.mistake for m in found.matches] == ["batchnorm_var_unbiased"], found.render_lines()


def test_stride_ignored_is_named_on_the_weight_gradient_too():
    found = diagnosis(mistaken("stride_ignored"), conv_case(), "weight")
    assert found.mistake == "stride_ignored"


SHAPE_PATTERNS = {"shifted", "unsummed", "first_sample", "assigned"}
"""Patterns that describe how a gradient was computed wrongly (tests/checks/explain/test_patterns.py)."""


# a kind without a case here is already a failure of test_each_known_mistake_is_named_on_a_layer_that_makes_it
@pytest.mark.parametrize("mistake", [m for m in MISTAKES if m.kind in CASES], ids=lambda m: m.name)
def test_a_known_mistake_shows_a_shape_pattern_only_when_it_has_that_shape(mistake):
    found = diagnosis(mistaken(mistake), CASES[mistake.kind](), mistake.gradient)
    shown = {p.name for p in found.patterns} & SHAPE_PATTERNS
    # overwrite_overlaps IS a scatter with `=` where windows overlap: the one catalogue entry with such a shape
    assert shown == ({"assigned"} if mistake.name == "overwrite_overlaps" else set()), found.render_lines()


GRADIENTS = [("conv", "input"), ("conv", "weight"), ("conv", "bias"), ("maxpool", "input"), ("relu", "input")]
GRADIENTS += [("dense", "input"), ("dense", "weight"), ("dense", "bias")]
GRADIENTS += [(kind, "input") for kind in ("sigmoid", "tanh", "leaky_relu", "softmax", "avgpool")]
GRADIENTS += [("batchnorm", "input"), ("batchnorm", "gamma"), ("batchnorm", "beta")]
GRADIENTS += [(kind, "input") for kind in ("dropout", "softmax_ce", "svm_loss")]
GRADIENTS += [("dense+softmax", "input"), ("dense+softmax", "weight"), ("dense+softmax", "bias")]


@pytest.mark.parametrize(("kind", "name"), GRADIENTS)
def test_a_correct_layer_gets_no_diagnosis(kind, name):
    found = diagnosis(reference_subject, CASES[kind](), name)
    assert found.mistake is None and found.matches == []
    assert [p.name for p in found.patterns][:1] == ["agrees"]


@pytest.mark.parametrize(("kind", "name"), GRADIENTS)
@pytest.mark.parametrize("bug", ["one_entry", "times_1.37"])
def test_an_unrelated_bug_gets_no_diagnosis(kind, name, bug):
    change = _one_entry if bug == "one_entry" else (lambda g: g * 1.37)
    found = diagnosis(perturbed(name, change), CASES[kind](), name)
    assert found.mistake is None, found.render_lines()
    assert "no known mistake matches" in found.render_lines()[-1]
    if bug == "times_1.37":
        scale = next(p for p in found.patterns if p.name == "scale")
        assert scale.value == pytest.approx(1.37) and "1.37" in scale.text


# -- extra detectors, on the example layers that make them -----------------------------------------


def example(target: str, kind: str | None = None, preset: str | None = None) -> LayerSpec:
    return targets.load(target, kind=kind, preset=preset)


def test_sgd_step_before_the_input_gradient_is_named_with_its_learning_rate():
    spec = example("examples/seed_style/conv_update_first.py:ConvUpdateFirst", "conv", "seed")
    case = conv_case(batch=1, channels=1, size=4, filters=2, kernel=2, stride=1)
    case = Case(
        "conv", case.geometry._replace(bias=False), {k: case.inputs[k] for k in ("input", "weight")}, case.upstream
    )
    found = diagnosis(spec.subject, case, "input", spec)
    assert found.mistake == "sgd_before_input_grad"
    assert "lr = 0.01" in found.matches[0].evidence and "own lr is 0.01" in found.matches[0].evidence


class DenseStepFirst:
    """Seed-style dense layer that takes its SGD step before computing dL/dinput (lr 0.5)."""

    def __init__(self, input_size, num_classes):
        self.weights, self.biases, self.lr = np.zeros((input_size, num_classes)), np.zeros(num_classes), 0.5

    def forward(self, x):
        self.x = x.reshape(-1)
        return self.x @ self.weights + self.biases

    def backward(self, d):
        self.weights -= self.lr * np.outer(self.x, d)
        self.biases -= self.lr * d
        return self.weights @ d


def test_sgd_step_before_the_input_gradient_is_named_for_a_dense_layer():
    spec = LayerSpec(
        "dense",
        lambda g: DenseStepFirst(g.in_features, g.out_features),
        input_layout="D",
        output_layout="D",
        params={"weight": Param("weights", "DM"), "bias": Param("biases")},
        gradients="sgd",
        supports=Supports(batch=1),
    )
    found = diagnosis(spec.subject, dense_case(batch=1, features=4, out=2), "input", spec)
    assert found.mistake == "sgd_before_input_grad" and "lr = 0.5" in found.matches[0].evidence


def test_bias_summed_over_the_wrong_axes_is_named_from_a_wrongly_shaped_gradient():
    spec = example("examples/nchw_classes/specs.py:conv_bias_wrong_axes")
    found = diagnosis(spec.subject, conv_case(stride=1, padding=1), "bias", spec)
    assert found.mistake == "bias_grad_wrong_axes"
    assert "axes (0, 1, 2) (n, f, i)" in found.matches[0].explanation  # dL/dout is (n, f, i, j)
    assert "axis=(0, 2, 3)" in found.matches[0].formula


def test_bias_summed_to_a_scalar_is_named_through_an_sgd_step():
    spec = example("examples/seed_style/dense_bias_scalar.py:FullyConnectedBiasScalar", "dense", "seed")
    found = diagnosis(spec.subject, dense_case(batch=1, features=4, out=3), "bias", spec)
    assert found.mistake == "bias_grad_wrong_axes" and "to a scalar" in found.matches[0].explanation


def test_an_empty_crop_at_padding_zero_is_named_from_the_layers_own_empty_array():
    spec = example("examples/function_pairs/conv_empty_crop.py:", "conv")
    found = diagnosis(spec.subject, conv_case(), "input", spec)
    assert found.mistake == "empty_crop_at_pad0"
    assert found.patterns[0].name == "empty" and "padding (0, 0)" in found.patterns[0].text


def test_an_empty_gradient_of_another_shape_is_still_an_empty_crop():
    found = diagnosis(perturbed("input", lambda g: g[:, :, 1:1, :]), conv_case(), "input")
    assert [m.mistake for m in found.matches] == ["empty_crop_at_pad0"]
    assert found.matches[0].source == "mistakes" and "(2, 2, 0, 5)" in found.matches[0].evidence


def test_weight_gradient_over_the_batch_is_named_on_an_example_layer():
    spec = example("examples/nchw_classes/specs.py:conv_weight_batch_mean")
    found = diagnosis(spec.subject, conv_case(stride=1, padding=1), "weight", spec)
    assert found.mistake == "weight_grad_over_batch"


def test_any_gradient_divided_by_the_batch_size_is_named():
    found = diagnosis(perturbed("input", lambda g: g / 2), conv_case(), "input")
    assert found.mistake == "input_grad_over_batch"
    assert diagnosis(perturbed("input", lambda g: g / 2), conv_case(batch=3), "input").mistake is None


def test_a_rotated_kernel_gradient_is_named():
    spec = example("examples/channels_last/specs.py:conv_kernel_grad_rotated")
    found = diagnosis(spec.subject, conv_case(stride=1, padding=1), "weight", spec)
    assert found.mistake == "weight_grad_rotated"


class WindowOverwrite:
    """NCHW max-pool whose backward assigns each whole window (`dx[window] = mask * g`)."""

    def __init__(self, k, s):
        self.k, self.s = k, s

    def forward(self, x):
        self.x = x
        n, c, h, w = x.shape
        k, s = self.k, self.s
        ho, wo = (h - k) // s + 1, (w - k) // s + 1
        return np.array(
            [[x[:, :, i * s : i * s + k, j * s : j * s + k].max(axis=(2, 3)) for j in range(wo)] for i in range(ho)]
        ).transpose(2, 3, 0, 1)

    def backward(self, dout):
        k, s, dx = self.k, self.s, np.zeros_like(self.x)
        for i in range(dout.shape[2]):
            for j in range(dout.shape[3]):
                window = self.x[:, :, i * s : i * s + k, j * s : j * s + k].reshape(*dout.shape[:2], -1)
                mask = window == window.max(axis=-1, keepdims=True)
                first = np.cumsum(mask, axis=-1) == 1
                dx[:, :, i * s : i * s + k, j * s : j * s + k] = ((mask & first) * dout[:, :, i, j, None]).reshape(
                    *dout.shape[:2], k, k
                )
        return dx


def test_overwriting_whole_windows_is_named_overwrite_overlaps():
    spec = LayerSpec("maxpool", lambda g: WindowOverwrite(g.kernel[0], g.stride[0]))
    found = diagnosis(spec.subject, pool_case(), "input", spec)
    assert found.mistake == "overwrite_overlaps" and found.matches[0].source == "mistakes"
    assert "only where pool windows overlap" in [p.text for p in found.patterns]


# -- patterns --------------------------------------------------------------------------------------


def evidence(case: Case, name: str, actual: np.ndarray, **extra) -> Evidence:
    subject = reference_subject(case)
    subject.forward({k: v.copy() for k, v in case.inputs.items()})
    correct = {k: np.asarray(v) for k, v in subject.backward(case.upstream.copy()).items() if k in case.inputs}
    return Evidence(case, name, actual, correct, TOL, **extra)


def right(case: Case, name: str) -> np.ndarray:
    return evidence(case, name, None).right.copy()


def names(patterns: list[Pattern]) -> list[str]:
    return [p.name for p in patterns]


def test_exactly_one_over_n_reads_as_averaged_over_the_batch():
    case = conv_case(batch=4)
    found = patterns(evidence(case, "weight", right(case, "weight") / 4))
    scale = next(p for p in found if p.name == "scale")
    assert scale.value == pytest.approx(0.25) and "1/N = 1/4" in scale.text and "averaged over the batch" in scale.text


def test_a_constant_multiple_is_found_by_least_squares_and_a_near_multiple_is_not():
    case = conv_case()
    r = right(case, "input")
    assert "-1 times" in next(p.text for p in patterns(evidence(case, "input", -r)) if p.name == "scale")
    near = r * 3.0
    near.reshape(-1)[0] += 1e-3
    assert "scale" not in names(patterns(evidence(case, "input", near)))


def test_all_zeros():
    case = dense_case()
    assert names(patterns(evidence(case, "input", np.zeros((3, 3)))))[0] == "zeros"


def test_transposed_with_the_right_shape_and_with_the_wrong_one():
    square, oblong = dense_case(), dense_case(features=4, out=2)
    same = patterns(evidence(square, "weight", right(square, "weight").T))
    assert "transposed" in names(same)
    swapped = patterns(evidence(oblong, "weight", right(oblong, "weight").T))
    assert swapped[0].name == "transposed" and swapped[0].value == [1, 0] and "d, m" in swapped[0].text


def test_spatially_transposed_conv_weight_names_the_swapped_axes():
    case = conv_case()
    found = patterns(evidence(case, "weight", right(case, "weight").transpose(0, 1, 3, 2)))
    transposed = next(p for p in found if p.name == "transposed")
    assert transposed.value == [0, 1, 3, 2] and "(u, v swapped)" in transposed.text


def test_empty_array_mentions_the_zero_padding():
    case = conv_case()
    found = patterns(evidence(case, "input", np.zeros((2, 2, 0, 0))))
    assert found[0].name == "empty" and "p == 0" in found[0].text


def test_nan_entries_are_counted():
    case = relu_case()
    bad = right(case, "input")
    bad[0, 1] = np.nan
    assert patterns(evidence(case, "input", bad))[0].value == 1


def test_wrong_only_at_the_border():
    case = conv_case(size=5, stride=1, padding=1)
    bad = right(case, "input")
    bad[:, :, 0, 2] += 1.0
    bad[1, 0, 3, 4] -= 1.0
    assert "border" in names(patterns(evidence(case, "input", bad)))
    bad[0, 0, 2, 2] += 1.0  # an interior entry too: no longer border-only
    assert "border" not in names(patterns(evidence(case, "input", bad)))


def test_wrong_everywhere_and_only_for_later_samples():
    case = conv_case(stride=1, padding=1)
    r = right(case, "input")
    assert names(patterns(evidence(case, "input", r + 1.0)))[0] == "everywhere"
    later = r.copy()
    later[1:] += 1.0
    assert "batch" in names(patterns(evidence(case, "input", later)))


def test_wrong_only_where_windows_overlap_and_only_at_ties():
    case = pool_case()
    overlap = patterns(evidence(case, "input", right(case, "input") * 0 + _first_max_overwrite(case)))
    assert "overlap" in names(overlap)
    ties = patterns(evidence(case, "input", mistaken("route_to_all_ties")(case).mistake.wrong(case, {})["input"]))
    assert "ties" in names(ties)


def _first_max_overwrite(case: Case) -> np.ndarray:
    subject = WindowOverwrite(2, 1)
    subject.forward(case.inputs["input"])
    return subject.backward(case.upstream)


def test_the_minimal_case_statement_says_only_what_was_shown():
    from checks.pipeline.needs import Need

    case = conv_case(batch=1, channels=1, filters=1, kernel=1, stride=2)
    assert "minimal" not in names(patterns(evidence(case, "input", right(case, "input") * 2)))
    shown = [Need("stride", [2, 2], [1, 1], "needs stride > 1: with stride 1 the same layer passes")]
    found = patterns(evidence(case, "input", right(case, "input") * 2, needs=shown))
    assert found[-1].name == "minimal" and found[-1].text == shown[0].text
