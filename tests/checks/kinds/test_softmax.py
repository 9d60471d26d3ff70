"""checks.kinds.softmax: the reference against torch over any axis, the Jacobian identity, each known mistake as
the backward people write (checked against a loop that makes it), the declared axis (Supports.axis, through the
declaration's JSON), finite differences on saturated rows, and the example pairs (softmax over the last axis)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st

from checks import check, kinds
from checks.adapt import presets, targets
from checks.adapt.adapters import Declaration, Supports
from checks.case import Case
from checks.geometry import SoftmaxGeometry
from checks.oracles import torch_oracle
from checks.strategies import cases, softmax_geometries
from checks.strategies._spec import geometries

REPO = Path(__file__).resolve().parents[3]
KIND = kinds.get("softmax")
FIRST = settings(database=None, max_examples=1, phases=[Phase.generate], derandomize=True)


def softmax_case(shape=(2, 3, 4), axis=-1, seed=0) -> Case:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, shape)
    g = rng.uniform(0.1, 2, shape) * rng.choice([-1.0, 1.0], shape)
    return Case("softmax", SoftmaxGeometry(shape, axis), {"input": x}, g)


def right(case: Case) -> np.ndarray:
    subject = kinds.reference_subject(case)
    subject.forward(case.inputs)
    return subject.backward(case.upstream)["input"]


def rows(case: Case):
    """(P, G) with the softmax axis last, as 2-D arrays of rows, and a function putting rows back."""
    axis = case.geometry.axis
    p = np.moveaxis(kinds.get("softmax").forward(case.geometry, case.inputs, None)[0], axis, -1)
    g = np.moveaxis(case.upstream, axis, -1)
    shape = p.shape

    def back(r: np.ndarray) -> np.ndarray:
        return np.moveaxis(r.reshape(shape), -1, axis)

    return p.reshape(-1, shape[-1]), g.reshape(-1, shape[-1]), back


def test_the_kind_is_registered_user_checkable_curved_and_without_kinks():
    assert "softmax" in kinds.NAMES and "softmax" in kinds.USER_NAMES
    assert KIND.geometry is SoftmaxGeometry and KIND.curved and KIND.membership is None
    names = [m.name for m in KIND.mistakes]
    assert names == ["softmax_diagonal_only", "softmax_passes_upstream", "softmax_first_entry_only"]


@given(cases("softmax", softmax_geometries(ndim=(2, 4), axis=1), mode=st.sampled_from(["separated", "mixed"])))
def test_the_reference_equals_torch_over_another_axis(case):
    z, sites = KIND.forward(case.geometry, case.inputs, None)
    exact = torch_oracle.gradients(KIND.torch, case.geometry, case.inputs, case.upstream)
    np.testing.assert_allclose(z, exact.output, rtol=1e-12, atol=1e-300)
    assert sites == []
    np.testing.assert_allclose(right(case), exact.grads["input"], rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_the_gradient_is_the_jacobian_applied_row_by_row(axis):
    case = softmax_case(axis=axis)
    p, g, back = rows(case)
    expected = np.stack([(np.diag(q) - np.outer(q, q)) @ h for q, h in zip(p, g, strict=True)])
    np.testing.assert_allclose(right(case), back(expected), rtol=1e-12, atol=1e-15)


# -- the known mistakes, against loops that make them -------------------------------------------------------


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_each_mistake_is_the_backward_people_write(axis):
    case = softmax_case(axis=axis)
    p, g, back = rows(case)
    first_only = np.zeros_like(p)
    for r, (q, h) in enumerate(zip(p, g, strict=True)):
        jacobian = np.diag(q) - np.outer(q, q)
        k = int(np.flatnonzero(h)[0])
        first_only[r] = jacobian[:, k] * h[k]
    expected = {
        "softmax_diagonal_only": back(g * p * (1 - p)),
        "softmax_passes_upstream": case.upstream,
        "softmax_first_entry_only": back(first_only),
    }
    for name, wrong in expected.items():
        mistake = kinds.by_name(name)
        np.testing.assert_allclose(mistake.wrong(case, {})["input"], wrong, rtol=1e-12, atol=1e-15, err_msg=name)
        assert mistake.applies(case) and not np.allclose(wrong, right(case)), name


def test_the_first_entry_is_the_first_non_zero_one_and_an_all_zero_row_gets_nothing():
    case = softmax_case(shape=(3, 4))
    case.upstream[0, :2] = 0.0  # row 0: the first non-zero entry is at 2
    case.upstream[1] = 0.0  # row 1: nothing at all
    p, g, _ = rows(case)
    wrong = kinds.by_name("softmax_first_entry_only").wrong(case, {})["input"]
    np.testing.assert_allclose(wrong[0], (np.diag(p[0]) - np.outer(p[0], p[0]))[:, 2] * g[0, 2], rtol=1e-12)
    np.testing.assert_array_equal(wrong[1], 0.0)


def test_mistakes_that_need_two_classes_do_not_apply_to_one():
    case = softmax_case(shape=(3, 1))
    assert not kinds.by_name("softmax_diagonal_only").applies(case)
    assert not kinds.by_name("softmax_first_entry_only").applies(case)
    assert kinds.by_name("softmax_passes_upstream").applies(case)  # P = 1, so dX = 0, never G
    np.testing.assert_array_equal(right(case), 0.0)


# -- the axis a layer declares, and finite differences ------------------------------------------------------


@pytest.mark.parametrize("axis", [-1, 1, -2])
def test_a_declared_axis_survives_the_declarations_json_and_sets_the_geometry(axis):
    declaration = Declaration("softmax", "ND", supports=Supports(axis=axis, ndim=(2, 3)))
    back = Declaration.from_dict(json.loads(json.dumps(declaration.to_dict())))
    assert back == declaration
    drawn = find(geometries(back), lambda g: True, settings=FIRST)
    assert drawn.axis == axis and 2 <= len(drawn.shape) <= 3


def test_an_axis_that_some_drawn_shape_lacks_is_refused_up_front():
    with pytest.raises(ValueError, match="axis=2: not an axis"):
        geometries(Declaration("softmax", "ND", supports=Supports(axis=2)))


def test_the_function_pair_preset_is_softmax_over_the_last_axis():
    pair = {"softmax_forward": lambda x: (x, x), "softmax_backward": lambda d, c: d}
    spec = presets.function_pair("softmax", pair)
    assert spec.input_layout == "ND" and spec.supports.axis == -1 and spec.build(SoftmaxGeometry((2, 3))) is not None


def test_saturated_rows_are_judged_by_finite_differences(judge):
    x = np.array([[-30.0, 0.0, 25.0], [1.0, 1.05, 0.95]])
    case = Case("softmax", SoftmaxGeometry(x.shape), {"input": x}, np.array([[1.0, -0.5, 2.0], [0.3, -1.5, 1.2]]))
    verdict = judge(case)
    assert not verdict.failures, verdict.explain()
    assert verdict.statuses("grad_input", "fd") == {"pass"}, verdict.explain(verdict.findings)


# -- the function pairs of examples/function_pairs ----------------------------------------------------------


def pair(file: str):
    return targets.load(f"{REPO / 'examples' / 'function_pairs' / file}:", kind="softmax")


def test_the_correct_pair_passes():
    report = check(pair("activations.py"), in_process=True, max_examples=10)
    assert report.passed, report.render()


@pytest.mark.parametrize(
    ("file", "mistake"),
    [
        ("softmax_diagonal_only.py", "softmax_diagonal_only"),
        ("softmax_passes_upstream.py", "softmax_passes_upstream"),
        ("softmax_first_entry_only.py", "softmax_first_entry_only"),
    ],
)
def test_a_buggy_pair_fails_on_grad_input_with_its_mistake_named(file, mistake):
    report = check(pair(file), in_process=True, max_examples=10)
    assert report.failed_properties == ["grad_input"], report.render()
    found = next(p for p in report.properties if p.property == "grad_input")
    assert found.diagnosis.mistake == mistake, report.render()
