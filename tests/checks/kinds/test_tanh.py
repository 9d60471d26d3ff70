"""checks.kinds.tanh: the record, the reference forward against torch, the known mistake's formula and when it
shows, and the CS231n function pairs of examples/function_pairs: the correct one passes, the buggy one is caught
and named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from checks import check, kinds
from checks.adapt import targets
from checks.case import Case
from checks.geometry import ElementwiseGeometry
from checks.oracles import torch_oracle
from checks.strategies import cases

REPO = Path(__file__).resolve().parents[3]
KIND = kinds.get("tanh")
MISTAKE = kinds.by_name("tanh_backward_uses_input")


def case_of(x: list[list[float]], g: list[list[float]] | None = None) -> Case:
    x_ = np.array(x)
    up = np.ones_like(x_) if g is None else np.array(g)
    return Case("tanh", ElementwiseGeometry(x_.shape), {"input": x_}, up)


def test_the_kind_is_registered_user_checkable_curved_and_without_kinks():
    assert "tanh" in kinds.NAMES and "tanh" in kinds.USER_NAMES
    assert KIND.geometry is ElementwiseGeometry and KIND.curved and KIND.membership is None
    assert [m.name for m in KIND.mistakes] == ["tanh_backward_uses_input"] and MISTAKE.kind == "tanh"


@given(cases("tanh", mode=st.sampled_from(["separated", "mixed"])))
def test_the_reference_forward_and_gradient_equal_torch_and_meet_no_kink(case):
    z, sites = KIND.forward(case.geometry, case.inputs, None)
    exact = torch_oracle.gradients(KIND.torch, case.geometry, case.inputs, case.upstream)
    np.testing.assert_allclose(z, exact.output, rtol=1e-12, atol=1e-300)
    assert sites == []
    subject = kinds.reference_subject(case)
    subject.forward(case.inputs)
    # atol: where the output saturates, 1 - Y^2 (or Y (1 - Y)) cancels, and an ulp of Y is all that differs
    np.testing.assert_allclose(subject.backward(case.upstream)["input"], exact.grads["input"], rtol=1e-10, atol=1e-14)


def test_the_mistake_is_the_output_formula_fed_the_input():
    case = case_of([[0.5, -2.0, 3.0]], [[1.5, -0.5, 2.0]])
    x, g = case.inputs["input"], case.upstream
    np.testing.assert_array_equal(MISTAKE.wrong(case, {})["input"], g * (1 - x**2))
    assert MISTAKE.applies(case)


def test_the_mistake_hides_near_zero_where_tanh_x_is_x():
    assert not MISTAKE.applies(case_of([[0.01, -0.02]]))  # 1 - x^2 and 1 - tanh(x)^2 agree to 1e-7
    assert MISTAKE.applies(case_of([[0.01, -0.5]]))


def test_saturated_inputs_are_judged_by_finite_differences(judge):
    verdict = judge(case_of([[-30.0, 0.05, 25.0]], [[1.0, -0.5, 2.0]]), props=["grad_input"])
    assert verdict.statuses("grad_input", "fd") == {"pass"}, verdict.explain(verdict.findings)


# -- the function pairs of examples/function_pairs ----------------------------------------------------------


def pair(file: str):
    return targets.load(f"{REPO / 'examples' / 'function_pairs' / file}:", kind="tanh")


def test_the_correct_pair_passes():
    report = check(pair("activations.py"), in_process=True, max_examples=10)
    assert report.passed, report.render()


def test_the_pair_fed_the_input_fails_on_grad_input_with_its_mistake_named():
    report = check(pair("tanh_uses_input.py"), in_process=True, max_examples=10)
    assert report.failed_properties == ["grad_input"], report.render()
    found = next(p for p in report.properties if p.property == "grad_input")
    assert found.diagnosis.mistake == "tanh_backward_uses_input", report.render()
