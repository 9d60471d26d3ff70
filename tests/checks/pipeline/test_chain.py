"""checks.pipeline.chain: finite differences that never judge across a kink, the named step mistakes, and the
whole-network check end to end (through the worker: the networks are written as files, never imported here)."""

from __future__ import annotations

import shutil
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from checks import api
from checks.adapt.guard import Limits
from checks.findings import FAIL, NOT_JUDGED, PASS
from checks.pipeline import chain

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples" / "seed_network"


# -- the finite differences ----------------------------------------------------------------------------------


def _phi(f):
    return lambda points: np.array([f(p) for p in points])


def test_a_smooth_function_with_its_gradient_passes():
    p = np.linspace(-1, 1, 12).reshape(3, 4)
    judged = chain.judge(_phi(lambda q: np.sum(np.sin(q))), p, np.cos(p), np.random.default_rng(0))
    assert judged.status == PASS and len(judged.judged) == chain.DIRECTIONS


def test_a_gradient_wrong_in_one_entry_fails():
    p = np.linspace(-1, 1, 12).reshape(3, 4)
    wrong = np.cos(p)
    wrong[1, 2] *= 1.001
    judged = chain.judge(_phi(lambda q: np.sum(np.sin(q))), p, wrong, np.random.default_rng(0))
    assert judged.status == FAIL


def test_a_kink_at_the_point_is_not_judged_whatever_the_claim():
    # |q| at 0: the central differences agree (both 0), only the one-sided jump shows the kink
    p = np.zeros(1)
    for claimed in (np.ones(1), -np.ones(1), np.zeros(1)):
        judged = chain.judge(_phi(lambda q: float(np.abs(q).sum())), p, claimed, np.random.default_rng(0))
        assert judged.status == NOT_JUDGED and "kink at the point" in judged.probes[0].why


def test_a_kink_within_a_step_is_not_judged():
    h = chain.step_for(np.array([0.3]))
    p = np.array([0.3 - 0.3 * h])  # max(q, 0.3) switches between h/2 and h
    values = _phi(lambda q: float(np.maximum(q, 0.3).sum()))(chain._points(p, [np.ones(1)], h))
    probe = chain.difference(values, h, 1.0, 1.0)
    assert probe.fd is None and "disagree" in probe.why


def test_a_smooth_direction_is_judged_by_the_same_rule():
    h = chain.step_for(np.array([0.3]))
    values = _phi(lambda q: float(np.exp(q).sum()))(chain._points(np.array([0.3]), [np.ones(1)], h))
    probe = chain.difference(values, h, float(np.exp(0.3)), float(np.exp(0.3)))
    assert probe.fd == pytest.approx(np.exp(0.3), rel=1e-8) and not probe.failed


def test_sampled_entries_are_in_the_arrays_own_layout_worst_first():
    p = np.linspace(-1, 1, 24).reshape(2, 3, 4)
    wrong = np.cos(p)
    wrong[1, 2, 0] += 0.5
    entries = chain.sample_entries(_phi(lambda q: np.sum(np.sin(q))), p, wrong, np.random.default_rng(0))
    assert entries[0].index == (1, 2, 0) and entries[0].error == pytest.approx(0.5, rel=1e-6)
    assert all(e.error <= e.tol for e in entries[1:])


# -- naming a step's mistake ---------------------------------------------------------------------------------


def _probes(c: float, fd=(0.7, -1.3, 0.4)) -> list[chain.Probe]:
    return [chain.Probe(c * f, f, 1e-6 * 2) for f in fd]


@pytest.mark.parametrize(
    ("c", "moved", "named"),
    [
        (-1.0, True, "wrong sign"),
        (chain.LR, True, "learning rate applied twice"),
        (0.0, False, "never updated"),
        (0.5, True, "scaled by 0.5"),
        (1.0, True, None),  # a correct step names nothing
    ],
)
def test_a_step_is_named_only_when_its_gradient_is_exactly_that_multiple(c, moved, named):
    got = chain.name_step(_probes(c), moved, chain.LR)
    assert (got is None) if named is None else (named in got)


def test_a_step_wrong_in_some_other_way_names_nothing():
    probes = [chain.Probe(0.7, 0.7, 2e-6), chain.Probe(1.3, -1.3, 2e-6), chain.Probe(0.0, 0.4, 2e-6)]
    assert chain.name_step(probes, True, chain.LR) is None


def test_a_gradient_that_is_zero_names_no_frozen_parameter():
    assert chain.name_step(_probes(0.0, fd=(0.0, 0.0, 0.0)), False, chain.LR) is None


# -- whole networks, through the worker ----------------------------------------------------------------------

VARIANTS = """
import numpy as np
from net import Conv3x3, MaxPool2, Softmax

INPUT_SHAPE = (10, 10)


class TwiceLR(Softmax):
    def backprop(self, d, lr):
        return super().backprop(d, lr * lr)


class StepFirst(Softmax):
    def backprop(self, d_probs, lr):
        p = self.last_probs
        d_totals = p * (d_probs - np.dot(d_probs, p))
        self.weights -= lr * np.outer(self.last_flat, d_totals)
        self.biases -= lr * d_totals
        return (self.weights @ d_totals).reshape(self.last_shape)


class FrozenBias(Softmax):
    def backprop(self, d, lr):
        b = self.biases.copy()
        out = super().backprop(d, lr)
        self.biases[...] = b
        return out


class Ascends(Softmax):
    def backprop(self, d, lr):
        return super().backprop(d, -lr)


class Raises(MaxPool2):
    def backprop(self, d, lr):
        raise RuntimeError("boom")


class Hangs(MaxPool2):
    def forward(self, x):
        while True:
            pass


def net(last=Softmax, pool=MaxPool2):
    return [Conv3x3(2), pool(), last(4 * 4 * 2, 3)]


def correct(): return net()
def twice(): return net(TwiceLR)
def step_first(): return net(StepFirst)
def frozen(): return net(FrozenBias)
def ascends(): return net(Ascends)
def raises(): return net(pool=Raises)
def hangs(): return net(pool=Hangs)


class Doubler:
    # y = 2x: a fine layer, but none of the reference kinds

    def forward(self, x):
        return 2 * x

    def backprop(self, d, lr):
        return 2 * d


def doubled(): return [Conv3x3(2), Doubler(), MaxPool2(), Softmax(4 * 4 * 2, 3)]


class SlightlyOff(MaxPool2):
    # every routed gradient 3e-7 too large: below what finite differences can tell, not below exact rounding
    def backprop(self, d, lr):
        return super().backprop(d, lr) * (1 + 3e-7)


def slightly_off(): return net(pool=SlightlyOff)


class KeepsNoGradient:
    # backward(d) with no learning rate, and its weight's gradient kept nowhere
    def __init__(self):
        self.params = {"W": np.random.default_rng(0).standard_normal((4 * 4 * 2, 3)) / 10}

    def forward(self, x):
        self.shape = x.shape
        return x.reshape(-1) @ self.params["W"]

    def backward(self, d):
        return (self.params["W"] @ d).reshape(self.shape)


def no_gradient(): return [Conv3x3(2), MaxPool2(), KeepsNoGradient()]
"""


@pytest.fixture(scope="module")
def variants(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("networks")
    shutil.copy(EXAMPLES / "net.py", folder / "net.py")
    (folder / "variants.py").write_text(textwrap.dedent(VARIANTS))
    return folder / "variants.py"


_REPORTS: dict[str, object] = {}


def _check(target: str, **options) -> object:
    if target not in _REPORTS:
        _REPORTS[target] = api.check_network(target, limits=Limits(seconds=3.0), **options)
    return _REPORTS[target]


def _status(report, name: str) -> str:
    return next(p.status for p in report.properties if p.property == name)


def _text(report, name: str) -> str:
    return " ".join(f.message for p in report.properties if p.property == name for f in p.findings)


def test_the_seed_example_network_passes_every_property():
    report = _check(str(EXAMPLES / "net.py:build"))
    assert report.passed, report.render()
    names = [p.property for p in report.properties]
    assert names == [
        "forward", "composition", "grad_input", "grad_filters@1", "grad_biases@3", "grad_weights@3",
        "layer@3", "layer@2", "layer@1", "sgd_update", "sgd_order", "training",
    ]  # fmt: skip
    assert report.settings["network"]["loss"] == "nll"  # the last layer outputs probabilities
    assert report.settings["network"]["at_fault"] is None


def test_a_pool_routing_to_the_wrong_entry_is_named_as_the_layer_at_fault():
    report = _check(str(EXAMPLES / "net_buggy_pool.py:build"))
    assert not report.passed
    assert _status(report, "grad_input") == FAIL and _status(report, "layer@2") == FAIL
    assert _status(report, "layer@3") == PASS and _status(report, "layer@1") == PASS
    assert report.settings["network"]["at_fault"]["number"] == 2
    assert "layer at fault: layer 2 TopLeftPool (index 1)" in _text(report, "layer@2")
    assert _status(report, "sgd_update") == PASS  # the conv after it steps right: not blamed


def test_a_bias_step_with_the_wrong_sign_is_named_on_that_parameter():
    report = _check(str(EXAMPLES / "net_buggy_step.py:build"))
    assert _status(report, "grad_biases@3") == FAIL and _status(report, "grad_weights@3") == PASS
    assert "`biases` of layer 3 SignFlippedSoftmax (index 2): wrong sign" in _text(report, "sgd_update")
    assert "weights" not in _text(report, "sgd_update").split("FAIL")[0] or _status(report, "grad_weights@3") == PASS


def test_the_correct_variant_passes(variants):
    report = _check(f"{variants}:correct")
    assert report.passed, report.render()
    assert report.settings["network"]["input_shape"] == [10, 10]


def test_lr_applied_twice_is_named(variants):
    report = _check(f"{variants}:twice")
    assert "learning rate applied twice" in _text(report, "sgd_update")
    assert report.settings["network"]["at_fault"]["number"] == 3


def test_an_update_before_the_input_gradient_is_named_and_nothing_before_it_is_blamed(variants):
    report = _check(f"{variants}:step_first")
    assert _status(report, "sgd_order") == FAIL
    assert "layer 3 StepFirst (index 2): its input gradient changes with the learning rate" in _text(
        report, "sgd_order"
    )
    assert _status(report, "sgd_update") == PASS and _status(report, "layer@1") == PASS


def test_a_parameter_never_updated_is_named(variants):
    report = _check(f"{variants}:frozen")
    assert "`biases` of layer 3 FrozenBias (index 2): never updated" in _text(report, "sgd_update")


def test_steps_that_climb_the_loss_fail_training(variants):
    report = _check(f"{variants}:ascends")
    assert _status(report, "training") == FAIL and "did not go down" in _text(report, "training")
    assert _status(_check(f"{variants}:correct"), "training") == PASS


def test_a_layer_that_raises_inside_the_network_is_a_failed_check_naming_it(variants):
    report = _check(f"{variants}:raises")
    assert report.outcome()[0] == "failed"
    assert "layer 2 Raises (index 1): backward: raised RuntimeError: boom" in _text(report, "forward")


def test_a_layer_that_hangs_inside_the_network_is_a_timeout_naming_it(variants):
    report = _check(f"{variants}:hangs")
    assert report.outcome()[0] == "timeout"
    assert "layer 2 Hangs (index 1): forward: did not return within 3 s" in _text(report, "forward")


# -- the layer at fault, checked on its own ------------------------------------------------------------------


def test_the_pool_at_fault_is_checked_on_its_own_and_its_own_check_fails_its_input_gradient():
    report = _check(str(EXAMPLES / "net_buggy_pool.py:build"))
    at_fault = report.settings["network"]["at_fault"]
    assert "TopLeftPool in net_buggy_pool.py checked as maxpool, seed" in at_fault["own_check"]
    own = report.at_fault_report
    assert own.kind == "maxpool" and own.failed_properties == ["grad_input"]
    assert _status(own, "forward") == PASS  # its forward is right: only its backward is wrong
    assert at_fault["report"]["outcome"] == "failed" and at_fault["report"]["kind"] == "maxpool"


def test_a_network_without_a_layer_at_fault_runs_no_own_check():
    report = _check(str(EXAMPLES / "net.py:build"))
    assert report.at_fault_report is None and report.settings["network"]["at_fault"] is None


def test_a_layer_at_fault_whose_kind_cannot_be_told_says_so_in_one_line():
    report = _check(str(FIXTURES / "grads_net_buggy.py:build"))
    line = report.settings["network"]["at_fault"]["own_check"]
    assert report.at_fault_report is None and report.settings["network"]["at_fault"]["report"] is None
    assert line.startswith("layer 1 FirstImageConv (index 0) on its own: not checked: cannot tell its kind")
    assert "\n" not in line


# -- layers that keep their gradients in attributes ----------------------------------------------------------

FIXTURES = REPO / "tests" / "fixtures" / "network"


def test_gradients_kept_in_attributes_are_read_and_a_correct_network_passes():
    report = _check(str(FIXTURES / "grads_net.py:build"))
    assert report.passed, report.render()
    layers = report.settings["network"]["layers"]
    assert layers[0]["grads"] == {"W": "dW", "b": "db"}
    assert layers[2]["grads"] == {"W": "grads['W']", "b": "grads['b']"}
    assert "gradients read from self.dW, self.db" in layers[0]["calls"]
    assert [_status(report, f"grad_{p}@{n}") for n in (1, 3) for p in ("W", "b")] == [PASS] * 4


def test_a_wrong_weight_gradient_in_an_attribute_is_caught_and_its_layer_named():
    report = _check(str(FIXTURES / "grads_net_buggy.py:build"))
    assert _status(report, "grad_W@1") == FAIL and _status(report, "grad_b@1") == PASS
    assert _status(report, "layer@1") == FAIL and _status(report, "layer@3") == PASS
    assert report.settings["network"]["at_fault"]["index"] == 0
    assert "layer at fault: layer 1 FirstImageConv (index 0)" in _text(report, "layer@1")
    assert "(d/dW (self.dW))" in _text(report, "layer@1")


# -- the torch composition of the reference kinds ------------------------------------------------------------


def _prop(report, name: str):
    return next(p for p in report.properties if p.property == name)


def test_the_seed_network_is_composed_from_reference_kinds_and_torch_judges_every_gradient():
    report = _check(str(EXAMPLES / "net.py:build"))
    assert _status(report, "composition") == PASS
    assert report.settings["network"]["composition"]["layers"] == [
        "conv 3x3, stride 1, padding 0, no bias; input HW, weight FHW, output HWC",
        "maxpool 2x2, stride 2, padding 0; input HWC, output HWC",
        "dense+softmax 1352 -> 10, bias; input one sample (13, 13, 8), weight DM, output D",
    ]
    for name in ("grad_input", "grad_filters@1", "grad_biases@3", "grad_weights@3"):
        assert _prop(report, name).oracles == {"fd": 3, "torch": 3}


def test_the_torch_composition_catches_the_wrong_pool_and_the_wrong_conv_gradient_on_its_own():
    pool = _check(str(EXAMPLES / "net_buggy_pool.py:build"))
    failed = [f for f in _prop(pool, "grad_input").findings if f.failed and f.oracle == "torch"]
    assert failed and "disagrees with the torch composition" in failed[0].message
    assert "(index in the layer's own layout (28, 28))" in failed[0].message
    conv = _check(str(FIXTURES / "grads_net_buggy.py:build"))
    assert any(f.failed and f.oracle == "torch" for f in _prop(conv, "grad_W@1").findings)
    assert all(f.oracle == "torch" or not f.failed for f in _prop(conv, "grad_b@1").findings)
    step = _check(str(EXAMPLES / "net_buggy_step.py:build"))
    assert any(f.failed and f.oracle == "torch" for f in _prop(step, "grad_biases@3").findings)


def test_a_layer_that_is_no_reference_kind_skips_the_composition_and_says_which(variants):
    report = _check(f"{variants}:doubled")
    assert report.passed, report.render()
    assert _status(report, "composition") == "skip"
    assert "layer 2 Doubler (index 1): its output is not that of any reference kind tried" in _text(
        report, "composition"
    )
    assert _prop(report, "grad_input").oracles == {"fd": 3}  # judged, by finite differences alone
    assert report.settings["network"]["composition"] == {"built": False, "unidentified": 1}


def test_without_torch_the_composition_is_skipped_with_the_reason_and_fd_still_judges(monkeypatch):
    from checks.oracles import torch_oracle

    monkeypatch.setitem(sys.modules, "torch", None)
    torch_oracle._torch.cache_clear()
    try:
        report = api.check_network(str(EXAMPLES / "net.py:build"), limits=Limits(seconds=3.0))
    finally:
        torch_oracle._torch.cache_clear()
    assert report.passed, report.render()
    assert _status(report, "composition") == "skip" and "torch is not importable" in _text(report, "composition")
    assert _prop(report, "grad_input").oracles == {"fd": 3}
    assert report.settings["network"]["composition"] == {"built": False, "unidentified": None}


def test_an_error_below_what_differences_can_tell_is_caught_by_the_twin_and_its_layer_named(variants):
    report = _check(f"{variants}:slightly_off")
    assert all(f.oracle == "torch" for f in _prop(report, "grad_input").findings if f.failed)
    assert _status(report, "grad_input") == FAIL and _status(report, "layer@2") == FAIL
    assert _status(report, "layer@3") == PASS and _status(report, "layer@1") == PASS
    text = _text(report, "layer@2")
    assert "layer at fault: layer 2 SlightlyOff (index 1): its backward disagrees with the torch twin" in text
    assert "maxpool 2x2, stride 2, padding 0; input HWC, output HWC: d/dinput" in text
    at_fault = report.settings["network"]["at_fault"]
    assert at_fault["number"] == 2 and at_fault["gradients"] == ["input"] and "torch" in at_fault["worst"][0]


def test_a_gradient_kept_nowhere_is_not_judged_and_the_places_looked_at_are_named(variants):
    report = _check(f"{variants}:no_gradient")
    assert _status(report, "grad_params['W']@3") == NOT_JUDGED and not report.passed
    text = _text(report, "grad_params['W']@3")
    assert "layer 3 KeepsNoGradient (index 2) takes no learning rate and keeps no gradient of params['W']" in text
    assert "(grads['W'], gradients['W'], dparams['W']" in text


# -- a step taken by an optimizer the layer holds --------------------------------------------------------------


def test_a_step_taken_through_the_layers_optimizer_is_checked_at_the_optimizers_learning_rate():
    report = _check(str(FIXTURES / "optimizer_net.py:build"))
    assert report.passed, report.render()
    calls = [la["calls"] for la in report.settings["network"]["layers"]]
    assert calls[0] == calls[2] == "forward(x), backward(d) with self.optimizer.lr"
    assert calls[1] == "forward(x), backward(d), no learning rate"  # its alpha is a slope, not a learning rate
    assert [_status(report, p) for p in ("sgd_update", "sgd_order", "training")] == [PASS] * 3


def test_an_optimizer_that_climbs_is_named_per_parameter_and_training_fails():
    report = _check(str(FIXTURES / "optimizer_net_buggy.py:build"))
    update = " ".join(f.message for p in report.properties if p.property == "sgd_update" for f in p.findings)
    assert "`W` of layer 1 Affine (index 0): wrong sign" in update and "`b` of layer 1 Affine (index 0)" in update
    assert _status(report, "training") == FAIL and _status(report, "grad_input") == PASS


def test_a_float32_parameter_stepped_in_float32_is_allowed_its_steps_rounding():
    report = _check(str(FIXTURES / "float32_step.py:build"))
    assert report.passed, report.render()
    assert report.settings["network"]["layers"][0]["params"] == {"W": [6, 5], "b": [5]}
    assert _prop(report, "grad_W@1").oracles.get("torch") == 3


def test_an_upstream_gradient_of_the_wrong_shape_from_the_worker_is_garbled_not_judged():
    report = _check(str(FIXTURES / "forged_upstream.py:build"))
    assert report.outcome()[0] == "crashed" and not report.passed
    assert "the layer's process answered a network run that does not parse" in _text(report, "forward")
    assert [p.property for p in report.properties] == ["forward"]


def test_an_oracle_that_judged_nothing_is_not_listed(variants):
    report = _check(f"{variants}:doubled")
    assert _prop(report, "composition").oracles == {} and "torch" not in report.judged_by


def test_a_pool_after_a_relu_is_judged_by_its_twin_away_from_the_tied_zeros():
    # the pool routes ties to the last maximum (valid; torch takes the first): the tied entries are left out
    report = _check(str(FIXTURES / "relu_pool_net.py:build"))
    assert report.passed, report.render()
    assert _prop(report, "layer@3").oracles.get("torch") == 3
    assert "input entries at a tie or zero not judged" in _text(report, "layer@3")


def test_a_pool_routing_to_its_top_left_is_named_by_its_twin_where_differences_cannot_judge():
    report = _check(str(FIXTURES / "relu_pool_net.py:build_top_left"))
    assert report.settings["network"]["at_fault"]["number"] == 3
    assert "layer at fault: layer 3 TopLeftPool (index 2): its backward disagrees with the torch twin" in _text(
        report, "layer@3"
    )
