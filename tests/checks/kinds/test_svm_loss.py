"""checks.kinds.svm_loss: the reference against torch, the subgradient membership at margins of exactly 0 (every
tie-break between the two one-sided choices passes, anything outside fails), each known mistake as the backward
people write, and the example pairs (svm_loss(x, y) -> (loss, dx), mean over the batch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given

from checks import check, kinds
from checks.adapt import presets, targets
from checks.case import Case
from checks.findings import FAIL, PASS
from checks.geometry import LossGeometry
from checks.oracles import torch_oracle
from checks.strategies import cases, loss_geometries
from checks.tolerances import Tolerance

REPO = Path(__file__).resolve().parents[3]
KIND = kinds.get("svm_loss")
EXACT = Tolerance(rtol=1e-9, atol=1e-12)

# Row 0 (label 0): margin at j = 1 is -1 - 0 + 1 = 0 exactly (a tie), at j = 2 it is 1.5 (active).
# Row 1 (label 2): margins -1.5 and -1.0 (both inactive): its gradient is 0 whatever the tie-break.
TIED = np.array([[0.0, -1.0, 0.5], [-0.5, 0.0, 2.0]])
TIED_LABELS = np.array([0, 2])


def svm_case(x=TIED, labels=TIED_LABELS, reduction="mean", upstream=1.0) -> Case:
    x = np.asarray(x, dtype=np.float64)
    geometry = LossGeometry(x.shape[0], x.shape[1], reduction)
    return Case("svm_loss", geometry, {"input": x}, np.asarray(upstream), np.asarray(labels))


def hinge_gradient(x: np.ndarray, labels: np.ndarray, tie: float, divisor: float, upstream: float = 1.0) -> np.ndarray:
    """The loop people write, with ``tie`` as the indicator taken at a margin of exactly 0."""
    dx = np.zeros_like(x)
    for i, y in enumerate(labels):
        for j in range(x.shape[1]):
            if j == y:
                continue
            margin = x[i, j] - x[i, y] + 1
            a = 1.0 if margin > 0 else tie if margin == 0 else 0.0
            dx[i, j] += a
            dx[i, y] -= a
    return dx * upstream / divisor


class TieBreak:
    """The hinge loss with the indicator at a tied margin taken as ``tie`` (0 and 1 are the one-sided choices)."""

    def __init__(self, case: Case, tie: float) -> None:
        self.labels, self.tie, self.reduction = case.labels, tie, case.geometry.reduction

    def forward(self, inputs):
        x = np.asarray(inputs["input"], dtype=np.float64)
        divisor = x.shape[0] if self.reduction == "mean" else 1
        self.grad = hinge_gradient(x, self.labels, self.tie, divisor)
        return KIND.forward(LossGeometry(*x.shape, self.reduction), inputs, self.labels)[0]

    def backward(self, upstream):
        return {"input": self.grad * float(upstream)}


def tie_break(tie: float):
    return lambda case: TieBreak(case, tie)


def test_the_kind_is_registered_user_checkable_with_kinks_and_its_mistakes():
    assert "svm_loss" in kinds.NAMES and "svm_loss" in kinds.USER_NAMES
    assert KIND.geometry is LossGeometry and KIND.membership is not None and "ties" in KIND.modes
    assert [m.name for m in KIND.mistakes] == ["svm_counts_correct_class", "svm_wrong_sign_correct_class"]
    assert KIND.params == ()


@given(cases("svm_loss", loss_geometries(reduction=("mean", "sum"))))
def test_the_reference_equals_torch_away_from_ties(case):
    z, sites = KIND.forward(case.geometry, case.inputs, case.labels)
    exact = torch_oracle.gradients(KIND.torch, case.geometry, case.inputs, case.upstream, case.labels)
    np.testing.assert_allclose(z, exact.output, rtol=1e-12, atol=1e-12)
    assert len(sites) == 1
    subject = kinds.reference_subject(case)
    subject.forward(case.inputs)
    np.testing.assert_allclose(subject.backward(case.upstream)["input"], exact.grads["input"], rtol=1e-12, atol=1e-14)


def test_the_margins_mark_exact_ties_and_never_the_label():
    m = kinds.get("svm_loss").forward(svm_case().geometry, {"input": TIED}, TIED_LABELS)[1][0].values
    assert m[0, 1] == 0.0 and m[0, 2] == 1.5 and m[0, 0] < 0 and m[1, 2] < 0


# -- membership at ties ---------------------------------------------------------------------------------------


def membership(case: Case, grad: np.ndarray):
    return KIND.membership(case.inputs, case.geometry, case.upstream, grad, None, EXACT, labels=case.labels)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("tie", [0.0, 0.25, 1.0])
def test_every_tie_break_between_the_one_sided_choices_is_a_valid_subgradient(tie, reduction):
    case = svm_case(reduction=reduction, upstream=-0.75)
    divisor = 2 if reduction == "mean" else 1
    m = membership(case, hinge_gradient(TIED, TIED_LABELS, tie, divisor, -0.75))
    assert m.ok, m.reason


@pytest.mark.parametrize("tie", [-0.5, 1.5])
def test_a_tie_break_outside_0_1_is_not_a_subgradient(tie):
    m = membership(svm_case(), hinge_gradient(TIED, TIED_LABELS, tie, 2))
    assert not m.ok and "margin == 0" in m.reason, m.reason


def test_the_label_entry_must_be_minus_the_sum_of_its_rows_others():
    grad = hinge_gradient(TIED, TIED_LABELS, 1.0, 2)
    grad[0, 0] += 0.5  # the tie taken as active at j = 1, but the label entry counts it as inactive
    m = membership(svm_case(), grad)
    assert not m.ok and "label's entry" in m.reason, m.reason


def test_an_inactive_margin_that_gets_gradient_is_not_a_subgradient():
    grad = hinge_gradient(TIED, TIED_LABELS, 0.0, 2)
    grad[1, 0], grad[1, 2] = 0.5, -0.5  # row 1 has no active margin at all
    assert not membership(svm_case(), grad).ok


@pytest.mark.parametrize("tie", [0.0, 0.5, 1.0])
def test_valid_tie_breaks_pass_the_whole_pipeline_by_subgradient_membership(tie, judge):
    verdict = judge(svm_case(), tie_break(tie))
    assert not verdict.failures, verdict.explain()
    assert verdict.trial.at_kink and verdict.statuses("grad_input", "subgradient") == {PASS}


@pytest.mark.parametrize("tie", [-1.0, 2.0])
def test_invalid_tie_breaks_fail_the_whole_pipeline(tie, judge):
    verdict = judge(svm_case(), tie_break(tie), props=["grad_input"])
    assert verdict.statuses("grad_input", "subgradient") == {FAIL}, verdict.explain(verdict.findings)


@given(cases("svm_loss", mode="ties"))
def test_the_tie_break_of_the_reference_and_the_other_one_sided_choice_pass_on_drawn_ties(case):
    x = np.asarray(case.inputs["input"], dtype=np.float64)
    divisor = x.shape[0] if case.geometry.reduction == "mean" else 1
    for tie in (0.0, 1.0):
        grad = hinge_gradient(x, case.labels, tie, divisor, float(case.upstream))
        m = membership(case, grad)
        assert m.ok, m.reason


# -- the known mistakes, against the loops that make them --------------------------------------------------------


def test_each_mistake_is_the_backward_people_write():
    case = svm_case(reduction="mean", upstream=1.0)
    right = hinge_gradient(TIED, TIED_LABELS, 0.0, 2)
    counts = right.copy()
    counts[0, 0] -= 0.5  # the label's own margin (1) counted as one more active one
    counts[1, 2] -= 0.5
    sign = right.copy()
    sign[0, 0] *= -1
    for name, wrong in (("svm_counts_correct_class", counts), ("svm_wrong_sign_correct_class", sign)):
        mistake = kinds.by_name(name)
        np.testing.assert_allclose(mistake.wrong(case, {})["input"], wrong, rtol=1e-12, err_msg=name)
        assert mistake.applies(case), name


def test_a_wrong_sign_needs_a_positive_margin():
    case = svm_case(x=[[2.0, 0.0, -1.0]], labels=[0])  # every margin negative: the gradient is 0 either way
    assert not kinds.by_name("svm_wrong_sign_correct_class").applies(case)


# -- the function pairs of examples/function_pairs ---------------------------------------------------------------


def pair(file: str):
    return targets.load(f"{REPO / 'examples' / 'function_pairs' / file}:", kind="svm_loss")


def test_the_loss_pair_is_one_function_returning_loss_and_dx():
    spec = presets.function_pair("svm_loss", {"svm_loss": lambda x, y: (0.0, np.zeros_like(x))})
    assert spec.input_layout == "ND" and spec.supports.reduction == "mean" and spec.params == {}


def test_the_correct_pair_passes():
    report = check(pair("losses_norms.py"), in_process=True, max_examples=10)
    assert report.passed, report.render()


@pytest.mark.parametrize(
    ("file", "failed", "mistake"),
    [
        ("svm_counts_correct_class.py", ["forward", "grad_input"], "svm_counts_correct_class"),
        ("svm_wrong_sign_correct_class.py", ["grad_input"], "svm_wrong_sign_correct_class"),
    ],
)
def test_a_buggy_pair_fails_with_its_mistake_named(file, failed, mistake):
    report = check(pair(file), in_process=True, max_examples=10)
    assert report.failed_properties == failed, report.render()
    found = next(p for p in report.properties if p.property == "grad_input")
    assert found.diagnosis.mistake == mistake, report.render()
