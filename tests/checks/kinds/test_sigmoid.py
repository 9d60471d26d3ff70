"""checks.kinds.sigmoid: the record, the reference forward against torch, the known mistake's formula and when it
shows, finite differences with an absolute step (a step scaled by |X| truncates on saturated inputs), and the
CS231n function pairs of examples/function_pairs: the correct one passes, the buggy one is caught and named."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from checks import check, kinds
from checks.adapt import presets, targets
from checks.case import Case
from checks.geometry import ElementwiseGeometry
from checks.oracles import torch_oracle
from checks.strategies import cases

REPO = Path(__file__).resolve().parents[3]
KIND = kinds.get("sigmoid")
MISTAKE = kinds.by_name("sigmoid_backward_uses_input")


def case_of(x: list[list[float]], g: list[list[float]] | None = None) -> Case:
    x_ = np.array(x)
    up = np.ones_like(x_) if g is None else np.array(g)
    return Case("sigmoid", ElementwiseGeometry(x_.shape), {"input": x_}, up)


def test_the_kind_is_registered_user_checkable_curved_and_without_kinks():
    assert "sigmoid" in kinds.NAMES and "sigmoid" in kinds.USER_NAMES
    assert KIND.geometry is ElementwiseGeometry and KIND.curved and KIND.membership is None
    assert [m.name for m in KIND.mistakes] == ["sigmoid_backward_uses_input"] and MISTAKE.kind == "sigmoid"


@given(cases("sigmoid", mode=st.sampled_from(["separated", "mixed"])))
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
    np.testing.assert_array_equal(MISTAKE.wrong(case, {})["input"], g * x * (1 - x))
    assert MISTAKE.applies(case)


def test_the_mistake_is_invisible_only_where_x_times_1_minus_x_is_the_slope():
    # x = s(x) near 0.659 (a contraction: s' <= 1/4): x (1 - x) = s (1 - s), the wrong formula is right there
    x = 0.5
    for _ in range(60):
        x = 1 / (1 + np.exp(-x))
    assert abs(x - 1 / (1 + np.exp(-x))) < 1e-15
    assert not MISTAKE.applies(case_of([[x]]))
    assert MISTAKE.applies(case_of([[x, 0.05]]))


@pytest.mark.parametrize("x", [-40.0, -52.0, -60.0])
def test_saturated_inputs_are_judged_by_finite_differences_with_an_absolute_step(x, judge, monkeypatch):
    case = case_of([[x]])
    verdict = judge(case, props=["grad_input"])
    assert verdict.statuses("grad_input", "fd") == {"pass"}, verdict.explain(verdict.findings)
    # why the kind is curved: with a step scaled by |X| the difference truncates by ~(1e-4 |X|)^2 / 6 relative
    monkeypatch.setattr(kinds.sigmoid, "KIND", dataclasses.replace(KIND, curved=False))
    relative = judge(case, props=["grad_input"])
    assert relative.statuses("grad_input", "fd") == {"fail"}, relative.explain(relative.findings)


# -- the function pairs of examples/function_pairs ----------------------------------------------------------


def pair(file: str):
    return targets.load(f"{REPO / 'examples' / 'function_pairs' / file}:", kind="sigmoid")


def test_the_function_pair_preset_finds_sigmoid_forward_and_backward_on_nd_arrays():
    spec = presets.function_pair("sigmoid", {"sigmoid_forward": lambda x: (x, x), "sigmoid_backward": lambda d, c: d})
    assert spec.kind == "sigmoid" and spec.input_layout == "ND" and spec.params == {}


def test_the_correct_pair_passes():
    report = check(pair("activations.py"), in_process=True, max_examples=10)
    assert report.passed, report.render()


def test_the_pair_fed_the_input_fails_on_grad_input_with_its_mistake_named():
    report = check(pair("sigmoid_uses_input.py"), in_process=True, max_examples=10)
    assert report.failed_properties == ["grad_input"], report.render()
    found = next(p for p in report.properties if p.property == "grad_input")
    assert found.diagnosis.mistake == "sigmoid_backward_uses_input", report.render()
