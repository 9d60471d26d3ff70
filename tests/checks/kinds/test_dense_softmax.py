"""checks.kinds.dense_softmax (``--kind dense+softmax``): the reference against torch and against the composed
Jacobian, each known mistake as the backward people write (checked against a loop that makes it) and where it is
invisible, the seed preset (an image the layer flattens, or a vector), and the example classes through the
sandboxed worker (never imported here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given

from checks import api, kinds
from checks.adapt import presets
from checks.case import Case
from checks.geometry import DenseGeometry
from checks.job import Job
from checks.oracles import torch_oracle
from checks.strategies import cases

REPO = Path(__file__).resolve().parents[3]
KIND = kinds.get("dense+softmax")
NAMES = ["dense_softmax_diagonal_only", "dense_softmax_first_entry_only"]


def fused_case(batch=2, features=(2, 3), classes=4, seed=0) -> Case:
    rng = np.random.default_rng(seed)
    g = DenseGeometry(batch, features, classes, True)
    inputs = {
        "input": rng.uniform(-2, 2, g.input_shape),
        "weight": rng.uniform(-1, 1, g.param_shapes["weight"]),
        "bias": rng.uniform(-1, 1, (classes,)),
    }
    upstream = rng.uniform(0.1, 2, g.output_shape) * rng.choice([-1.0, 1.0], g.output_shape)
    return Case("dense+softmax", g, inputs, upstream)


def right(case: Case) -> dict[str, np.ndarray]:
    subject = kinds.reference_subject(case)
    subject.forward(case.inputs)
    return dict(subject.backward(case.upstream))


def by_hand(case: Case, d_totals) -> dict[str, np.ndarray]:
    """The gradients a layer derives from its dL/dT row by row: dx_n = W dT_n, dW = sum_n x_n dT_n^T, db = sum dT_n."""
    x = case.inputs["input"].reshape(case.geometry.batch, -1)
    w, b = case.inputs["weight"], case.inputs["bias"]
    dx, dw, db = np.zeros_like(x), np.zeros_like(w), np.zeros_like(b)
    for n in range(x.shape[0]):
        t = x[n] @ w + b
        p = np.exp(t - t.max()) / np.exp(t - t.max()).sum()
        d = d_totals(p, case.upstream[n])
        dx[n], dw, db = w @ d, dw + np.outer(x[n], d), db + d
    return {"input": dx.reshape(case.inputs["input"].shape), "weight": dw, "bias": db}


def full_jacobian(p, g):
    return (np.diag(p) - np.outer(p, p)) @ g


def test_the_kind_is_registered_under_its_fused_name_curved_without_kinks():
    assert "dense+softmax" in kinds.NAMES and "dense+softmax" in kinds.USER_NAMES
    assert KIND.name == "dense+softmax" and KIND.geometry is DenseGeometry and KIND.params == ("weight", "bias")
    assert KIND.curved and KIND.membership is None
    assert [m.name for m in KIND.mistakes] == NAMES and {m.kind for m in KIND.mistakes} == {"dense+softmax"}


@given(cases("dense+softmax"))
def test_the_reference_equals_torch(case):
    z, sites = KIND.forward(case.geometry, case.inputs, None)
    exact = torch_oracle.gradients(KIND.torch, case.geometry, case.inputs, case.upstream)
    np.testing.assert_allclose(z, exact.output, rtol=1e-12, atol=1e-300)
    assert sites == [] and case.geometry.out_features >= 2
    ours = right(case)
    assert set(ours) == set(exact.grads)
    for name, grad in exact.grads.items():
        np.testing.assert_allclose(ours[name], grad, rtol=1e-9, atol=1e-14, err_msg=name)


@pytest.mark.parametrize("features", [(5,), (2, 3, 2)])
def test_the_gradients_are_the_softmax_jacobian_carried_through_the_dense_part(features):
    case = fused_case(features=features)
    expected, ours = by_hand(case, full_jacobian), right(case)
    for name in ("input", "weight", "bias"):
        np.testing.assert_allclose(ours[name], expected[name], rtol=1e-12, atol=1e-15, err_msg=name)


# -- the known mistakes, against loops that make them -------------------------------------------------------


def first_column(p, g):
    k = int(np.flatnonzero(g)[0])
    return (np.diag(p) - np.outer(p, p))[:, k] * g[k]


@pytest.mark.parametrize(
    ("name", "d_totals"), [(NAMES[0], lambda p, g: g * p * (1 - p)), (NAMES[1], first_column)], ids=NAMES
)
def test_each_mistake_is_the_backward_people_write_in_every_gradient(name, d_totals):
    case = fused_case()
    mistake, correct = kinds.by_name(name), right(case)
    wrong, expected = mistake.wrong(case, correct), by_hand(case, d_totals)
    assert mistake.applies(case) and set(wrong) == {"input", "weight", "bias"}
    for grad in wrong:
        np.testing.assert_allclose(wrong[grad], expected[grad], rtol=1e-12, atol=1e-15, err_msg=grad)
        assert not np.allclose(wrong[grad], correct[grad]), grad


def test_the_first_entry_mistake_is_invisible_on_a_one_hot_upstream_and_says_so():
    case = fused_case()
    case.upstream[:] = 0.0
    case.upstream[:, 1] = -1.5  # the cross-entropy shape dL/dp: one entry per row
    mistake = kinds.by_name("dense_softmax_first_entry_only")
    assert not mistake.applies(case)
    for grad, value in mistake.wrong(case, {}).items():
        np.testing.assert_allclose(value, right(case)[grad], rtol=1e-12, atol=1e-15, err_msg=grad)


def test_no_mistake_applies_to_a_single_class_where_every_gradient_is_zero():
    case = fused_case(classes=1)
    assert not any(m.applies(case) for m in KIND.mistakes)
    assert all(np.all(g == 0) for g in right(case).values())


# -- the seed preset: the article's Softmax(input_len, nodes) ------------------------------------------------


class _Flattens:
    def __init__(self, input_len, nodes):
        self.weights, self.biases = np.ones((input_len, nodes)), np.zeros(nodes)

    def forward(self, input):
        self.shape, self.flat = input.shape, input.flatten()
        t = self.flat @ self.weights + self.biases
        return np.exp(t) / np.exp(t).sum()

    def backprop(self, d_L_d_out, lr): ...


class _VectorOnly(_Flattens):
    def forward(self, input):
        t = input @ self.weights + self.biases  # no flatten: an image does not fit the weights
        return np.exp(t) / np.exp(t).sum()


def test_the_seed_preset_feeds_an_image_to_a_layer_that_flattens_it_and_a_vector_otherwise():
    image = presets.seed("dense+softmax", _Flattens)
    vector = presets.seed("dense+softmax", _VectorOnly)
    assert image.kind == vector.kind == "dense+softmax"
    assert (image.input_layout, image.supports.features_ndim) == ("CHW", 3) and "(H, W, C) image" in image.adapted
    assert vector.input_layout == "D" and "image" not in vector.adapted
    for spec in (image, vector):
        assert spec.gradients == "sgd" and spec.lr_argument == presets.LR_PASSED and spec.backward_method == "backprop"
        assert spec.params["weight"].attr == "weights" and spec.params["bias"].attr == "biases"
        built = spec.build(DenseGeometry(1, (2, 3, 1), 4))
        assert built.weights.shape == (6, 4) and built.biases.shape == (4,)


def test_the_dense_seed_preset_is_unchanged_by_the_fused_one():
    spec = presets.seed("dense", _Flattens)
    assert spec.kind == "dense" and spec.input_layout == "D"


# -- the examples, through the sandboxed worker ----------------------------------------------------------------


def check(file: str, name: str, max_examples: int = 15):
    target = f"{REPO / 'examples' / 'seed_style' / file}:{name}"
    return api.check_job(Job(target, "dense+softmax", "seed", max_examples=max_examples))


def test_the_correct_fused_layer_passes():
    report = check("dense_softmax.py", "DenseSoftmax")
    assert report.passed, report.render()
    assert {p.property for p in report.properties} >= {"grad_input", "grad_weight", "grad_bias"}


@pytest.mark.parametrize(
    ("file", "name", "mistake"),
    [
        ("dense_softmax_diagonal_only.py", "DenseSoftmaxDiagonal", NAMES[0]),
        ("dense_softmax_first_entry_only.py", "DenseSoftmaxFirstEntry", NAMES[1]),
    ],
)
def test_a_buggy_fused_layer_fails_every_gradient_with_its_mistake_named(file, name, mistake):
    report = check(file, name)
    assert {"grad_input", "grad_weight", "grad_bias"} <= set(report.failed_properties), report.render()
    found = next(p for p in report.properties if p.property == "grad_input")
    assert found.diagnosis.mistake == mistake, report.render()


def test_the_nchw_preset_drives_a_fused_class_with_params_and_grads_dicts():
    from pathlib import Path

    from checks.api import check_job
    from checks.job import Job

    fixture = Path(__file__).parents[2] / "fixtures" / "kinds" / "nchw_dense_softmax.py"
    right = check_job(Job(f"{fixture}:DenseSoftmax", kind="dense+softmax", preset="nchw", max_examples=10))
    assert right.passed, right.render()
    assert {"grad_weight", "grad_bias"} <= {p.property for p in right.properties}  # params['weight'], grads[...]
    wrong = check_job(Job(f"{fixture}:DenseSoftmaxDiagonal", kind="dense+softmax", preset="nchw", max_examples=10))
    assert not wrong.passed and "grad_input" in wrong.failed_properties
    assert "dense_softmax_diagonal_only" in wrong.render()
