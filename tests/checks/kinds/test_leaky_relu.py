"""checks.kinds.leaky_relu: subgradient membership at exact zeros (every dX between alpha * G and G passes, anything
else fails with its reason), the drawn and the declared slope (Supports.alpha, through the declaration's JSON),
the function-pair preset handing lrelu_param {"alpha": a} over, the known mistakes, and the example pairs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given

from checks import check, kinds
from checks.adapt import presets, targets
from checks.adapt.adapters import Declaration, Supports
from checks.case import Case
from checks.geometry import LeakyReluGeometry
from checks.kinds import leaky_relu
from checks.oracles import torch_oracle
from checks.strategies import cases
from checks.strategies._spec import geometries
from checks.tolerances import TOLERANCES

REPO = Path(__file__).resolve().parents[3]
TOL = TOLERANCES[np.dtype(np.float64)].exact
KIND = kinds.get("leaky_relu")
ALPHA = 0.25
X = np.array([[-2.0, 0.0, 0.0, 0.0, 1.5, 0.0]])
G = np.array([[0.7, 1.2, -0.8, 2.0, -1.1, 0.5]])
GEOMETRY = LeakyReluGeometry(X.shape, ALPHA)


def membership(grad: np.ndarray):
    return leaky_relu.membership({"input": X}, GEOMETRY, G, grad, None, TOL)


def slopes(at_zero: np.ndarray | float) -> np.ndarray:
    return G * np.where(X > 0, 1.0, np.where(X < 0, ALPHA, at_zero))


def test_the_kind_is_registered_user_checkable_and_kinked_like_relu():
    assert "leaky_relu" in kinds.NAMES and "leaky_relu" in kinds.USER_NAMES
    assert KIND.geometry is LeakyReluGeometry and KIND.membership is not None and not KIND.curved
    assert set(KIND.modes) == {"separated", "zeros", "ties"}
    _, sites = KIND.forward(GEOMETRY, {"input": X}, None)
    assert [s.op for s in sites] == ["relu"]  # the sign pattern of X decides the piece, as for ReLU


@given(cases("leaky_relu", mode="ties"))
def test_the_reference_forward_equals_torch(case):
    z, _ = KIND.forward(case.geometry, case.inputs, None)
    exact = torch_oracle.gradients(KIND.torch, case.geometry, case.inputs, case.upstream)
    np.testing.assert_array_equal(z, exact.output)
    subject = kinds.reference_subject(case)
    subject.forward(case.inputs)
    np.testing.assert_array_equal(subject.backward(case.upstream)["input"], exact.grads["input"])  # alpha at 0


# -- membership at exact zeros ------------------------------------------------------------------------------


@pytest.mark.parametrize("m", [ALPHA, 0.5, 1.0])
def test_any_slope_between_alpha_and_one_at_an_exact_zero_is_valid(m):
    assert membership(slopes(m)).ok


def test_different_slopes_at_different_zeros_are_valid():
    assert membership(slopes(np.array([[0.0, ALPHA, 0.3, 0.9, 0.0, 1.0]]))).ok


@pytest.mark.parametrize("m", [0.0, ALPHA / 2, 1.2])
def test_a_slope_outside_alpha_to_one_at_a_zero_is_rejected(m):
    grad = slopes(ALPHA)
    grad[0, 2] = G[0, 2] * m  # G < 0 here, so the valid interval is [G, alpha G]
    result = membership(grad)
    assert not result.ok and result.comparison.worst_index == (0, 2)
    assert "X == 0" in result.reason and "(0, 2)" in result.reason and "alpha = 0.25" in result.reason


def test_the_slope_one_where_the_input_is_negative_is_rejected():
    grad = slopes(ALPHA)
    grad[0, 0] = G[0, 0]
    result = membership(grad)
    assert not result.ok and "X < 0 (must be alpha * G" in result.reason and "(0, 0)" in result.reason


def test_a_slope_other_than_one_where_the_input_is_positive_is_rejected():
    grad = slopes(ALPHA)
    grad[0, 4] = ALPHA * G[0, 4]
    result = membership(grad)
    assert not result.ok and "X > 0 (must pass G)" in result.reason


def test_the_allowed_interval_is_kept_for_the_report():
    lo, hi = membership(slopes(ALPHA)).allowed
    np.testing.assert_array_equal(lo, np.minimum(G * np.where(X > 0, 1, ALPHA), slopes(1.0)))
    np.testing.assert_array_equal(hi, np.maximum(G * np.where(X > 0, 1, ALPHA), slopes(1.0)))


# -- the known mistakes -------------------------------------------------------------------------------------


def test_the_mistakes_swap_or_drop_the_slope_and_apply_where_they_show():
    case = Case("leaky_relu", LeakyReluGeometry((1, 3), 0.1), {"input": np.array([[-1.0, 0.0, 2.0]])}, np.ones((1, 3)))
    swapped = kinds.by_name("leaky_slope_wrong_side")
    dropped = kinds.by_name("leaky_slope_dropped")
    np.testing.assert_allclose(swapped.wrong(case, {})["input"], [[1.0, 1.0, 0.1]])
    np.testing.assert_allclose(dropped.wrong(case, {})["input"], [[0.0, 0.0, 1.0]])
    assert swapped.applies(case) and dropped.applies(case)
    positive = Case("leaky_relu", LeakyReluGeometry((1, 2), 0.1), {"input": np.array([[0.0, 2.0]])}, np.ones((1, 2)))
    assert swapped.applies(positive) and not dropped.applies(positive)  # nothing negative: ReLU's backward is right


# -- the slope a layer declares -----------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.1, (0.05, 0.2), 0, (0, 0.5)])
def test_a_declared_slope_survives_the_declarations_json(alpha):
    declaration = Declaration("leaky_relu", "ND", supports=Supports(alpha=alpha))
    back = Declaration.from_dict(json.loads(json.dumps(declaration.to_dict())))
    assert back.supports.alpha == alpha and back == declaration


@pytest.mark.parametrize("alpha", [True, "0.1", [0.1], [0.1, "x"], [True, 0.2], None])
def test_anything_else_as_a_slope_is_refused_by_the_declarations_json(alpha):
    data = Declaration("leaky_relu", "ND").to_dict()
    data["supports"]["alpha"] = alpha
    with pytest.raises(ValueError, match="alpha="):
        Declaration.from_dict(data)


def test_the_other_fields_still_refuse_floats():
    data = Declaration("leaky_relu", "ND").to_dict()
    data["supports"]["ndim"] = 2.5
    with pytest.raises(ValueError, match="ndim=2.5"):
        Declaration.from_dict(data)


@given(
    geometries(Declaration("leaky_relu", "ND", supports=Supports(alpha=0.125, ndim=3))),
    geometries(Declaration("leaky_relu", "ND")),
)
def test_a_users_layer_is_checked_at_its_declared_slope_or_across_the_default_range(fixed, ranged):
    assert fixed.alpha == 0.125 and len(fixed.shape) == 3
    assert 0.01 <= ranged.alpha <= 0.3


def test_the_function_pair_preset_hands_the_slope_over_in_lrelu_param():
    seen = []

    def leaky_relu_forward(x, lrelu_param):
        seen.append(lrelu_param)
        return np.where(x > 0, x, lrelu_param["alpha"] * x), (x, lrelu_param["alpha"])

    def leaky_relu_backward(dout, cache):
        return dout

    spec = presets.function_pair(
        "leaky_relu", dict(leaky_relu_forward=leaky_relu_forward, leaky_relu_backward=leaky_relu_backward)
    )
    assert spec.input_layout == "ND" and spec.supports.alpha == (0.01, 0.3)
    layer = spec.build(LeakyReluGeometry((2, 3), 0.2))
    layer.forward(np.ones((2, 3)))
    assert seen == [{"alpha": 0.2}]


# -- the function pairs of examples/function_pairs ----------------------------------------------------------


def pair(file: str):
    return targets.load(f"{REPO / 'examples' / 'function_pairs' / file}:", kind="leaky_relu")


def test_the_correct_pair_passes():
    report = check(pair("activations.py"), in_process=True, max_examples=10)
    assert report.passed, report.render()


@pytest.mark.parametrize(
    ("file", "mistake"),
    [("leaky_wrong_side.py", "leaky_slope_wrong_side"), ("leaky_as_relu.py", "leaky_slope_dropped")],
)
def test_a_buggy_pair_fails_on_grad_input_with_its_mistake_named(file, mistake):
    report = check(pair(file), in_process=True, max_examples=10)
    assert report.failed_properties == ["grad_input"], report.render()
    found = next(p for p in report.properties if p.property == "grad_input")
    assert found.diagnosis.mistake == mistake, report.render()
