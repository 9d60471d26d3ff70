"""checks.kinds.batchnorm: the reference against torch (plain and spatial, any eps), the finite-difference
truncation bound (it holds, and a correct layer with a small spread passes), each known mistake against torch's
autograd of the computation that makes it, parameters named by the kind (gamma, beta) in a LayerSpec and its
declaration, and the example pairs (plain, spatial, batchnorm_backward_alt)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from checks import LayerSpec, Param, check, kinds
from checks.adapt import presets, targets
from checks.adapt.adapters import Declaration, Supports
from checks.case import Case
from checks.geometry import BatchNormGeometry
from checks.oracles import torch_oracle
from checks.strategies import batchnorm_geometries, cases

REPO = Path(__file__).resolve().parents[3]
KIND = kinds.get("batchnorm")


def bn_case(shape=(4, 3), eps=1e-5, seed=0, alt=False) -> Case:
    rng = np.random.default_rng(seed)
    c = shape[1]
    inputs = {
        "input": rng.uniform(-2, 2, shape),
        "gamma": rng.uniform(0.5, 1.5, c) * rng.choice([-1.0, 1.0], c),
        "beta": rng.uniform(-1, 1, c),
    }
    upstream = rng.uniform(0.1, 2, shape) * rng.choice([-1.0, 1.0], shape)
    return Case("batchnorm", BatchNormGeometry(shape, eps, alt), inputs, upstream)


def right(case: Case) -> dict[str, np.ndarray]:
    subject = kinds.reference_subject(case)
    subject.forward(case.inputs)
    return dict(subject.backward(case.upstream))


def autograd(case: Case, *, unbiased: bool = False) -> dict[str, np.ndarray]:
    """dL/d(input, gamma, beta) of L = sum(G * BN(x)) by torch's autograd of the formula written out, with the
    biased (or, ``unbiased``, the N - 1) variance."""
    x, gamma, beta = (torch.tensor(case.inputs[k], requires_grad=True) for k in ("input", "gamma", "beta"))
    axes = (0, *range(2, x.ndim))
    shape = (1, -1, *([1] * (x.ndim - 2)))
    mu = x.mean(dim=axes, keepdim=True)
    var = x.var(dim=axes, keepdim=True, unbiased=unbiased)
    y = gamma.reshape(shape) * (x - mu) / torch.sqrt(var + case.geometry.eps) + beta.reshape(shape)
    (y * torch.tensor(case.upstream)).sum().backward()
    return {"input": x.grad.numpy(), "gamma": gamma.grad.numpy(), "beta": beta.grad.numpy()}


def test_the_kind_is_registered_user_checkable_curved_with_gamma_and_beta():
    assert "batchnorm" in kinds.NAMES and "batchnorm" in kinds.USER_NAMES
    assert KIND.params == ("gamma", "beta") and KIND.curved and KIND.membership is None
    assert KIND.fd_truncation is not None
    names = [m.name for m in KIND.mistakes]
    assert names == ["batchnorm_stats_as_constants", "batchnorm_var_unbiased", "batchnorm_gamma_grad_unnormalised"]


@given(cases("batchnorm", batchnorm_geometries(eps=(1e-5, 0.5)), mode=st.sampled_from(["wide", "separated"])))
def test_the_reference_equals_torch_plain_and_spatial(case):
    z, sites = KIND.forward(case.geometry, case.inputs, None)
    exact = torch_oracle.gradients(KIND.torch, case.geometry, case.inputs, case.upstream)
    np.testing.assert_allclose(z, exact.output, rtol=1e-9, atol=1e-9)
    assert sites == []
    grads = right(case)
    for name in ("input", "gamma", "beta"):
        np.testing.assert_allclose(grads[name], exact.grads[name], rtol=1e-7, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("shape", [(4, 3), (2, 2, 3, 2)])
def test_the_reference_equals_autograd_of_the_formula(shape):
    case = bn_case(shape)
    expected, grads = autograd(case), right(case)
    for name in ("input", "gamma", "beta"):
        np.testing.assert_allclose(grads[name], expected[name], rtol=1e-10, atol=1e-12, err_msg=name)


# -- finite differences ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("shape", "spread"), [((3, 2), 1e-2), ((2, 1, 2, 2), 3e-3), ((5, 1), 0.1)])
def test_the_truncation_bound_holds_for_a_central_difference(shape, spread):
    case = bn_case(shape)
    case.inputs["input"] = case.inputs["input"] * spread
    x, g = case.inputs["input"], case.upstream
    h = 1e-4 * np.ones_like(x)
    bound = KIND.fd_truncation(case.inputs, case.geometry, g, "input", h)
    exact = autograd(case)["input"]

    def loss(v: np.ndarray) -> float:
        return float((KIND.forward(case.geometry, {**case.inputs, "input": v}, None)[0] * g).sum())

    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h[i]
        fd = (loss(x + e) - loss(x - e)) / (2 * h[i])
        assert abs(fd - exact[i]) <= bound[i] + 1e-7 * (1 + abs(exact[i])), (i, fd, exact[i], bound[i])
    assert KIND.fd_truncation(case.inputs, case.geometry, g, "gamma", h) == 0.0


def test_a_correct_layer_with_a_small_spread_passes_every_oracle(judge):
    case = bn_case((3, 2))
    case.inputs["input"] = case.inputs["input"] * 0.05  # sigma ~ 0.03: curvature ~ 1 / sigma^3
    verdict = judge(case)
    assert not verdict.failures, verdict.explain()
    for prop in ("grad_input", "grad_gamma", "grad_beta"):
        assert verdict.statuses(prop, "fd") == {"pass"} and verdict.statuses(prop, "torch") == {"pass"}, prop


# -- the known mistakes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(4, 3), (2, 2, 3, 2)])
def test_each_mistake_is_the_computation_people_write(shape):
    case = bn_case(shape)
    x, g = case.inputs["input"], case.upstream
    axes = (0, *range(2, x.ndim))
    gamma = case.inputs["gamma"].reshape(1, -1, *([1] * (x.ndim - 2)))
    sigma = np.sqrt(x.var(axis=axes, keepdims=True) + case.geometry.eps)
    unbiased = autograd(case, unbiased=True)
    expected = {
        "batchnorm_stats_as_constants": {"input": g * gamma / sigma},
        "batchnorm_var_unbiased": {"input": unbiased["input"], "gamma": unbiased["gamma"]},
        "batchnorm_gamma_grad_unnormalised": {"gamma": (g * x).sum(axis=axes)},
    }
    correct = right(case)
    for name, wrong in expected.items():
        mistake = kinds.by_name(name)
        made = mistake.wrong(case, correct)
        assert set(made) == set(wrong), name
        for grad, value in wrong.items():
            np.testing.assert_allclose(made[grad], value, rtol=1e-9, atol=1e-12, err_msg=f"{name} {grad}")
            assert not np.allclose(value, correct[grad]), f"{name} {grad} is invisible"
        assert mistake.applies(case), name


def test_the_unbiased_variance_needs_two_values_per_channel():
    case = bn_case((1, 2, 1, 1))
    assert not kinds.by_name("batchnorm_var_unbiased").applies(case)


# -- parameters named by the kind -----------------------------------------------------------------------------


def test_a_batchnorm_layer_declares_gamma_and_beta_and_nothing_else():
    params = {"gamma": Param("gamma", None, "dgamma"), "beta": Param("beta", None, "dbeta")}
    assert LayerSpec("batchnorm", lambda g: None, input_layout="ND", params=params).params == params
    with pytest.raises(ValueError, match="'gamma' and 'beta'.*\\['weight'\\]"):
        LayerSpec("batchnorm", lambda g: None, input_layout="ND", params={"weight": Param("w")})


@pytest.mark.parametrize(("kind", "allowed"), [("conv", "'weight' and 'bias'"), ("relu", "no parameters")])
def test_a_parameter_the_kind_lacks_is_refused_naming_the_allowed_ones(kind, allowed):
    with pytest.raises(ValueError, match=allowed):
        LayerSpec(kind, lambda g: None, params={"gamma": Param("g")})


def test_the_declaration_of_a_batchnorm_layer_survives_json_and_refuses_other_names():
    params = {"gamma": Param("g", None, "dg"), "beta": Param("b", None, "db")}
    declaration = Declaration("batchnorm", "ND", params=params, supports=Supports(eps=(1e-5, 1e-3), alt=None))
    data = json.loads(json.dumps(declaration.to_dict()))
    assert Declaration.from_dict(data) == declaration
    data["params"]["weight"] = ["w", None, "dw"]
    with pytest.raises(ValueError, match="'gamma' and 'beta'"):
        Declaration.from_dict(data)


# -- the function pairs of examples/function_pairs ------------------------------------------------------------


def test_the_pairs_found_set_the_ranks_and_the_alternative_backward():
    plain = {"batchnorm_forward": lambda *a: a, "batchnorm_backward": lambda d, c: c}
    spatial = {"spatial_batchnorm_forward": lambda *a: a, "spatial_batchnorm_backward": lambda d, c: c}
    assert presets.function_pair("batchnorm", plain).supports.ndim == 2
    assert presets.function_pair("batchnorm", spatial).supports.ndim == 4
    both = presets.function_pair("batchnorm", {**plain, **spatial, "batchnorm_backward_alt": lambda d, c: c})
    assert both.supports.ndim == (2, 4) and both.supports.alt is None
    assert set(both.params) == {"gamma", "beta"}
    with pytest.raises(ValueError, match="no functions batchnorm_forward"):
        presets.function_pair("batchnorm", {})


def test_the_alternative_backward_runs_on_the_cases_that_say_alt():
    calls = []
    pair = {
        "batchnorm_forward": lambda x, gamma, beta, p: (x, None),
        "batchnorm_backward": lambda d, c: calls.append("main") or (d, d[0], d[0]),
        "batchnorm_backward_alt": lambda d, c: calls.append("alt") or (d, d[0], d[0]),
    }
    spec = presets.function_pair("batchnorm", pair)
    for alt in (False, True):
        layer = spec.build(BatchNormGeometry((2, 3), 1e-5, alt))
        layer.forward(np.ones((2, 3)))
        layer.backward(np.ones((2, 3)))
    assert calls == ["main", "alt"]


def pair(file: str):
    return targets.load(f"{REPO / 'examples' / 'function_pairs' / file}:", kind="batchnorm")


def test_the_correct_pairs_pass():
    report = check(pair("losses_norms.py"), in_process=True, max_examples=10)
    assert report.passed, report.render()


@pytest.mark.parametrize(
    ("file", "failed", "mistake"),
    [
        ("bn_stats_as_constants.py", ["grad_input"], "batchnorm_stats_as_constants"),
        ("bn_gamma_grad_unnormalised.py", ["grad_gamma"], "batchnorm_gamma_grad_unnormalised"),
    ],
)
def test_a_buggy_pair_fails_with_its_mistake_named(file, failed, mistake):
    report = check(pair(file), in_process=True, max_examples=10)
    assert report.failed_properties == failed, report.render()
    found = next(p for p in report.properties if p.property == failed[0])
    assert found.diagnosis.mistake == mistake, report.render()


def test_the_unbiased_variance_pair_fails_its_forward_and_is_named_on_dx_and_dgamma():
    report = check(pair("bn_var_unbiased.py"), in_process=True, max_examples=10)
    assert {"forward", "grad_input", "grad_gamma"} <= set(report.failed_properties), report.render()
    for prop in ("grad_input", "grad_gamma"):
        found = next(p for p in report.properties if p.property == prop)
        assert found.diagnosis.mistake == "batchnorm_var_unbiased", report.render()
