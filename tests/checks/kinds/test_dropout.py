"""checks.kinds.dropout: the layer's mask is its own, so it is judged from its own output. A correct inverted
dropout passes with either convention for p (drop or keep probability) and a mask of its own; any valid mask
entry passes where X == 0; the mask-less and the scale-less backwards fail and are named; an output that is no
dropout fails the forward; a layer whose mask changes between two forwards fails determinism with the fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from checks import check, kinds
from checks.adapt import presets, targets
from checks.case import Case
from checks.findings import FAIL, PASS
from checks.geometry import DropoutGeometry
from checks.oracles import torch_oracle
from checks.strategies import cases, dropout_geometries
from checks.tolerances import Tolerance

REPO = Path(__file__).resolve().parents[3]
KIND = kinds.get("dropout")
OWN = KIND.own_output
EXACT = Tolerance(rtol=1e-9, atol=1e-12)


def dropout_case(shape=(3, 4), p=0.3, seed=5, zeros=()) -> Case:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.5, 2, shape) * rng.choice([-1.0, 1.0], shape)
    for i in zeros:
        x[i] = 0.0
    g = rng.uniform(0.1, 2, shape) * rng.choice([-1.0, 1.0], shape)
    return Case("dropout", DropoutGeometry(shape, p, seed), {"input": x}, g)


def keep_of(p: float, convention: str) -> float:
    return p if convention == "keep" else 1 - p


class UserDropout:
    """An inverted dropout with a mask of its own (not the reference's), p read by ``convention``; ``backward``
    picks how dX is formed: "right" (G * m / keep), "no_mask" (G / keep), "no_scale" (G * m)."""

    calls = 0  # the unseeded variant's mask is the bits of a call counter: no two forwards share one

    def __init__(self, case: Case, convention: str = "drop", backward: str = "right", seeded: bool = True) -> None:
        g = case.geometry
        self.keep = keep_of(g.p, convention)
        self.base = np.random.default_rng(g.seed + 7).random(g.shape) < self.keep
        self.how, self.seeded = backward, seeded

    def forward(self, inputs):
        mask = self.base
        if not self.seeded:
            UserDropout.calls += 1
            bits = np.arange(self.base.size) % 62
            mask = ((UserDropout.calls >> bits) & 1).astype(bool).reshape(self.base.shape)
        self.mask = mask
        x = inputs["input"]
        return (x * mask / self.keep).astype(x.dtype)

    def backward(self, upstream):
        dx = {
            "right": upstream * self.mask / self.keep,
            "no_mask": upstream / self.keep,
            "no_scale": upstream * self.mask,
        }[self.how]
        return {"input": dx.astype(upstream.dtype)}


def user(**options):
    return lambda case: UserDropout(case, **options)


def test_the_kind_is_registered_user_checkable_and_judged_from_its_own_output():
    assert "dropout" in kinds.NAMES and "dropout" in kinds.USER_NAMES
    assert OWN is not None and "seed" in OWN.fix and KIND.params == ()
    assert [m.name for m in KIND.mistakes] == ["dropout_backward_without_mask", "dropout_backward_without_scale"]


@given(cases("dropout", dropout_geometries()))
def test_the_reference_equals_its_torch_twin(case):
    z, sites = KIND.forward(case.geometry, case.inputs, None)
    exact = torch_oracle.gradients(KIND.torch, case.geometry, case.inputs, case.upstream)
    np.testing.assert_allclose(z, exact.output, rtol=1e-12)
    subject = kinds.reference_subject(case)
    subject.forward(case.inputs)
    np.testing.assert_allclose(subject.backward(case.upstream)["input"], exact.grads["input"], rtol=1e-12)
    assert len(sites) == 1


# -- judged from the layer's own output ---------------------------------------------------------------------


@pytest.mark.parametrize("convention", ["drop", "keep"])
def test_an_output_of_either_convention_is_a_dropout_output(convention):
    case = dropout_case(zeros=[(0, 0)])
    layer = UserDropout(case, convention)
    z = layer.forward(case.inputs)
    assert OWN.forward(case.inputs, case.geometry, z, EXACT).ok


def test_an_output_scaled_by_neither_1_over_p_nor_1_over_1_minus_p_is_not():
    case = dropout_case()
    z = case.inputs["input"] * (np.arange(12).reshape(3, 4) % 2) / 0.9
    m = OWN.forward(case.inputs, case.geometry, z, EXACT)
    assert not m.ok and "neither 1 / p" in m.reason, m.reason


def test_an_output_with_two_scales_or_a_value_where_x_is_0_is_not():
    case = dropout_case(zeros=[(1, 1)])
    x = case.inputs["input"]
    z = x / 0.7
    z[0, 0] = x[0, 0] * 0.5 / 0.7  # half kept
    assert not OWN.forward(case.inputs, case.geometry, z, EXACT).ok
    z = x / 0.7
    z[1, 1] = 1.0  # something out of nothing
    assert not OWN.forward(case.inputs, case.geometry, z, EXACT).ok


@pytest.mark.parametrize("convention", ["drop", "keep"])
@pytest.mark.parametrize("at_zero", ["dropped", "kept"])
def test_the_gradient_is_g_z_over_x_and_any_mask_entry_where_x_is_0(convention, at_zero):
    case = dropout_case(zeros=[(0, 0), (2, 3)])
    layer = UserDropout(case, convention)
    z = layer.forward(case.inputs)
    grad = layer.backward(case.upstream)["input"]
    keep = keep_of(case.geometry.p, convention)
    grad[0, 0] = 0.0 if at_zero == "dropped" else case.upstream[0, 0] / keep
    m = OWN.gradient(case.inputs, case.geometry, case.upstream, z, grad, EXACT)
    assert m.ok, m.reason


def test_a_value_where_x_is_0_that_no_mask_entry_gives_fails():
    case = dropout_case(zeros=[(0, 0)])
    layer = UserDropout(case)
    z = layer.forward(case.inputs)
    grad = layer.backward(case.upstream)["input"]
    grad[0, 0] = 0.5 * case.upstream[0, 0]
    m = OWN.gradient(case.inputs, case.geometry, case.upstream, z, grad, EXACT)
    assert not m.ok and "X == 0" in m.reason, m.reason


# -- the whole pipeline ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("convention", ["drop", "keep"])
@given(case=cases("dropout", dropout_geometries(), mode=st.sampled_from(["separated", "zeros"])))
def test_a_correct_layer_with_its_own_mask_passes_with_either_convention(convention, case, judge):
    verdict = judge(case, user(convention=convention))
    assert not verdict.failures, verdict.explain()
    assert verdict.statuses("grad_input", "subgradient") == {PASS}, verdict.explain(verdict.findings)


@pytest.mark.parametrize("convention", ["drop", "keep"])
@pytest.mark.parametrize("backward", ["no_mask", "no_scale"])
def test_the_mask_less_and_the_scale_less_backwards_fail(backward, convention, judge):
    case = dropout_case()
    layer = UserDropout(case, convention)
    layer.forward(case.inputs)
    assert layer.mask.any() and not layer.mask.all()  # the case shows both kinds of entries
    verdict = judge(case, user(convention=convention, backward=backward), props=["grad_input"])
    assert verdict.statuses("grad_input", "subgradient") == {FAIL}, verdict.explain(verdict.findings)
    assert verdict.caught("grad_input", "fd"), verdict.explain(verdict.findings)


def test_a_layer_whose_mask_changes_between_forwards_fails_determinism_with_the_fix(judge):
    verdict = judge(dropout_case(), user(seeded=False), props=["determinism"])
    failed = [f for f in verdict.about("determinism") if f.status == FAIL]
    assert failed and OWN.fix in failed[0].message, verdict.explain(verdict.findings)


def test_an_unseeded_layer_gets_no_finite_difference_verdict_on_its_gradient(judge):
    verdict = judge(dropout_case(), user(seeded=False), props=["grad_input"])
    assert verdict.statuses("grad_input", "fd") <= {"inconclusive"}, verdict.explain(verdict.findings)


def test_a_seeded_layer_passes_determinism(judge):
    verdict = judge(dropout_case(), user(), props=["determinism"])
    assert verdict.statuses("determinism", "structure") == {PASS}, verdict.explain(verdict.findings)


# -- the function pairs of examples/function_pairs ------------------------------------------------------------


def test_the_pair_is_handed_p_mode_and_seed():
    seen = []
    pair = {"dropout_forward": lambda x, param: seen.append(param) or (x, None), "dropout_backward": lambda d, c: d}
    layer = presets.function_pair("dropout", pair).build(DropoutGeometry((2, 3), 0.25, 11))
    layer.forward(np.ones((2, 3)))
    assert seen == [{"p": 0.25, "mode": "train", "seed": 11}]


def pair(file: str):
    return targets.load(f"{REPO / 'examples' / 'function_pairs' / file}:", kind="dropout")


def test_the_correct_pair_passes():
    report = check(pair("losses_norms.py"), in_process=True, max_examples=10)
    assert report.passed, report.render()


@pytest.mark.parametrize(
    ("file", "mistake"),
    [
        ("dropout_without_mask.py", "dropout_backward_without_mask"),
        ("dropout_without_scale.py", "dropout_backward_without_scale"),
    ],
)
def test_a_buggy_pair_fails_on_grad_input_with_its_mistake_named(file, mistake):
    report = check(pair(file), in_process=True, max_examples=10)
    assert report.failed_properties == ["grad_input"], report.render()
    found = next(p for p in report.properties if p.property == "grad_input")
    assert found.diagnosis.mistake == mistake, report.render()


def test_the_unseeded_pair_fails_determinism_saying_how_to_fix_it():
    report = check(pair("dropout_unseeded.py"), in_process=True, max_examples=10)
    assert "determinism" in report.failed_properties, report.render()
    found = next(p for p in report.properties if p.property == "determinism")
    assert any(OWN.fix in f.message for f in found.findings), report.render()
