"""checks.kinds.softmax_ce as a user-checkable kind: the reference against torch for both reductions, each known
mistake as the backward people write, the reduction a layer declares (Supports.reduction, through the
declaration's JSON), a loss class called forward(z, labels) / backward(G), and the example pairs
(softmax_loss(x, y) -> (loss, dx), mean over the batch). The network kind keeps using it inside (its tests in
tests/checks/pipeline)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import Phase, find, given, settings

from checks import LayerSpec, Supports, check, kinds
from checks.adapt import targets
from checks.adapt.adapters import Declaration
from checks.case import Case
from checks.geometry import LossGeometry
from checks.oracles import torch_oracle
from checks.strategies import cases, loss_geometries
from checks.strategies._spec import geometries

REPO = Path(__file__).resolve().parents[3]
KIND = kinds.get("softmax_ce")
FIRST = settings(database=None, max_examples=1, phases=[Phase.generate], derandomize=True)


def ce_case(reduction="mean", upstream=1.0) -> Case:
    x = np.array([[0.3, -0.45, 1.2], [-1.1, 0.6, 0.25], [0.9, 0.15, -0.7], [0.0, 2.0, -2.0]])
    return Case("softmax_ce", LossGeometry(4, 3, reduction), {"input": x}, np.asarray(upstream), np.array([0, 2, 1, 1]))


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_the_kind_is_user_checkable_and_still_internal_to_the_network():
    assert "softmax_ce" in kinds.USER_NAMES and "network" not in kinds.USER_NAMES
    assert KIND.user_geometries is not None and KIND.curved and KIND.params == ()
    assert [m.name for m in KIND.mistakes] == ["softmax_ce_not_averaged", "softmax_ce_labels_not_subtracted"]


@given(cases("softmax_ce", loss_geometries(reduction=("mean", "sum"))))
def test_the_reference_equals_torch_for_both_reductions(case):
    z, sites = KIND.forward(case.geometry, case.inputs, case.labels)
    exact = torch_oracle.gradients(KIND.torch, case.geometry, case.inputs, case.upstream, case.labels)
    np.testing.assert_allclose(z, exact.output, rtol=1e-12, atol=1e-14)
    assert sites == []
    subject = kinds.reference_subject(case)
    subject.forward(case.inputs)
    np.testing.assert_allclose(subject.backward(case.upstream)["input"], exact.grads["input"], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_each_mistake_is_the_backward_people_write(reduction):
    case = ce_case(reduction, upstream=0.75)
    x, y = case.inputs["input"], case.labels
    p, onehot = softmax(x), np.eye(3)[y]
    divisor = 4 if reduction == "mean" else 1
    expected = {
        "softmax_ce_not_averaged": 0.75 * (p - onehot),
        "softmax_ce_labels_not_subtracted": 0.75 * p / divisor,
    }
    for name, wrong in expected.items():
        mistake = kinds.by_name(name)
        np.testing.assert_allclose(mistake.wrong(case, {})["input"], wrong, rtol=1e-12, err_msg=name)
    assert kinds.by_name("softmax_ce_not_averaged").applies(case) == (reduction == "mean")
    assert kinds.by_name("softmax_ce_labels_not_subtracted").applies(case)


def test_not_averaged_is_invisible_in_a_batch_of_one():
    case = Case(
        "softmax_ce", LossGeometry(1, 3), {"input": np.array([[0.1, 0.2, 0.3]])}, np.asarray(1.0), np.array([1])
    )
    assert not kinds.by_name("softmax_ce_not_averaged").applies(case)


# -- the reduction a layer declares ------------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_a_declared_reduction_survives_the_declarations_json_and_fixes_the_geometry(reduction):
    declaration = Declaration("softmax_ce", "ND", supports=Supports(reduction=reduction, classes=(3, 4)))
    back = Declaration.from_dict(json.loads(json.dumps(declaration.to_dict())))
    assert back == declaration
    drawn = find(geometries(back), lambda g: True, settings=FIRST)
    assert drawn.reduction == reduction and 3 <= drawn.classes <= 4


def test_an_unknown_reduction_is_refused_in_a_declaration():
    data = Declaration("softmax_ce", "ND").to_dict()
    data["supports"]["reduction"] = "none"
    with pytest.raises(ValueError, match="reduction"):
        Declaration.from_dict(data)


class SummedCE:
    """A loss class: forward(z, labels) -> the SUM over the batch of -log softmax(z)[y], backward(G) -> dL/dz."""

    def forward(self, z, labels):
        p = softmax(z)
        self.dz = p - np.eye(z.shape[1])[labels]
        return -np.log(p[np.arange(len(labels)), labels]).sum()

    def backward(self, g):
        return self.dz * g


def summed_ce(reduction: str) -> LayerSpec:
    return LayerSpec("softmax_ce", lambda g: SummedCE(), input_layout="ND", supports=Supports(reduction=reduction))


def test_a_loss_class_declared_with_its_own_reduction_passes():
    report = check(summed_ce("sum"), in_process=True, max_examples=10)
    assert report.passed, report.render()


def test_a_summed_loss_checked_as_a_mean_fails_and_its_gradient_is_named_not_averaged():
    report = check(summed_ce("mean"), in_process=True, max_examples=10)
    assert {"forward", "grad_input"} <= set(report.failed_properties), report.render()
    found = next(p for p in report.properties if p.property == "grad_input")
    assert found.diagnosis.mistake == "softmax_ce_not_averaged", report.render()


# -- the function pairs of examples/function_pairs ---------------------------------------------------------------


def pair(file: str):
    return targets.load(f"{REPO / 'examples' / 'function_pairs' / file}:", kind="softmax_ce")


def test_the_correct_pair_passes():
    report = check(pair("losses_norms.py"), in_process=True, max_examples=10)
    assert report.passed, report.render()


@pytest.mark.parametrize(
    ("file", "mistake"),
    [
        ("softmax_loss_not_averaged.py", "softmax_ce_not_averaged"),
        ("softmax_loss_labels_not_subtracted.py", "softmax_ce_labels_not_subtracted"),
    ],
)
def test_a_buggy_pair_fails_on_grad_input_with_its_mistake_named(file, mistake):
    report = check(pair(file), in_process=True, max_examples=10)
    assert report.failed_properties == ["grad_input"], report.render()
    found = next(p for p in report.properties if p.property == "grad_input")
    assert found.diagnosis.mistake == mistake, report.render()
