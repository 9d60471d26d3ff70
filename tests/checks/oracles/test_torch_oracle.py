"""checks.oracles.torch_oracle: for every kind, torch autograd in float64 gives our reference's
gradients; and without torch everything else still works, the torch checks reported as skipped."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from checks import kinds
from checks.case import Case
from checks.compare import compare
from checks.explain.mistakes import mistaken
from checks.findings import FAIL, PASS, SKIP
from checks.geometry import (
    ConvGeometry,
    DenseGeometry,
    ElementwiseGeometry,
    FlattenGeometry,
    LossGeometry,
    NetworkGeometry,
    PoolGeometry,
)
from checks.kinds import reference_subject
from checks.oracles import torch_oracle
from checks.pipeline import properties
from checks.pipeline.trial import Options, Trial
from checks.tolerances import TOLERANCES

HAVE_TORCH = importlib.util.find_spec("torch") is not None


def with_torch(test):
    """Only the oracle's own tests need torch; the "without torch" ones run either way."""
    return pytest.mark.torch(pytest.mark.skipif(not HAVE_TORCH, reason="torch is not installed")(test))


REPO = Path(__file__).resolve().parents[3]
EXACT = TOLERANCES[np.dtype(np.float64)].exact

GEOMETRIES = {
    # stride, padding and dilation all different per axis, and a remainder the stride does not reach
    "conv": ConvGeometry(2, 3, 8, 6, 4, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(2, 1)),
    "conv_no_bias": ConvGeometry(1, 2, 5, 5, 3, (2, 2), stride=(3, 2), padding=(0, 1), bias=False),
    "maxpool": PoolGeometry(2, 2, 5, 6, (3, 2), (2, 1), (1, 1)),
    "relu": ElementwiseGeometry((2, 3, 4)),
    "flatten": FlattenGeometry((2, 3, 2, 2)),
    "dense": DenseGeometry(3, (2, 3), 4),
    "softmax_ce": LossGeometry(4, 5),
    "network": NetworkGeometry(
        2,
        2,
        10,
        10,
        conv1=ConvGeometry(2, 2, 10, 10, 3, (3, 3)),
        pool1=PoolGeometry(2, 3, 8, 8, (2, 2), (2, 2)),
        conv2=ConvGeometry(2, 3, 4, 4, 2, (3, 3), padding=(1, 1)),
        pool2=PoolGeometry(2, 2, 4, 4, (2, 2), (2, 2)),
        dense=DenseGeometry(2, (2, 2, 2), 5),
    ),
}


def make_case(name: str, dtype=np.float64, seed: int = 0) -> Case:
    """Random normal values: no exact zeros or ties, so every gradient is unique."""
    geometry = GEOMETRIES[name]
    kind = name.removesuffix("_no_bias")
    rng = np.random.default_rng(seed)
    inputs = {"input": rng.standard_normal(geometry.input_shape)}
    inputs.update({k: rng.standard_normal(s) for k, s in geometry.param_shapes.items()})
    inputs = {k: v.astype(dtype) for k, v in inputs.items()}
    upstream = rng.standard_normal(geometry.output_shape).astype(dtype)
    labels = None
    if kind == "softmax_ce":
        labels = rng.integers(0, geometry.classes, geometry.batch)
    elif kind == "network":
        labels = rng.integers(0, geometry.dense.out_features, geometry.batch)
    return Case(kind, geometry, inputs, upstream, labels)


def compare_ok(actual, expected) -> bool:
    return compare(actual, expected, EXACT).ok


def reference(case: Case) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    subject = reference_subject(case)
    z = subject.forward({k: v.copy() for k, v in case.inputs.items()})
    return z, dict(subject.backward(case.upstream.copy()))


@pytest.mark.parametrize("name", list(GEOMETRIES))
@with_torch
def test_torch_gradients_equal_the_reference_for_every_kind(name):
    case = make_case(name)
    z, grads = reference(case)
    result = torch_oracle.gradients(kinds.get(case.kind).torch, case.geometry, case.inputs, case.upstream, case.labels)
    assert compare_ok(result.output, z)
    assert set(result.grads) == set(case.inputs)
    for key, expected in grads.items():
        assert compare_ok(result.grads[key], expected), key


@with_torch
def test_torch_catches_a_reference_gradient_that_is_off():
    """The comparison above can fail: a conv input gradient with a flipped kernel is not torch's."""
    case = make_case("conv")
    wrong = mistaken("kernel_flipped")(case)
    wrong.forward({k: v.copy() for k, v in case.inputs.items()})
    grads = wrong.backward(case.upstream.copy())
    result = torch_oracle.gradients(kinds.get(case.kind).torch, case.geometry, case.inputs, case.upstream, case.labels)
    assert not compare_ok(result.grads["input"], grads["input"])


@pytest.mark.parametrize("name", ["conv", "maxpool", "softmax_ce"])
@with_torch
def test_the_results_are_float64_numpy_arrays_in_the_canonical_shapes_even_for_float32_inputs(name):
    case = make_case(name, dtype=np.float32)
    result = torch_oracle.gradients(kinds.get(case.kind).torch, case.geometry, case.inputs, case.upstream, case.labels)
    assert isinstance(result.output, np.ndarray) and result.output.dtype == np.float64
    assert result.output.shape == case.geometry.output_shape
    for key, grad in result.grads.items():
        assert isinstance(grad, np.ndarray) and grad.dtype == np.float64
        assert grad.shape == case.inputs[key].shape


@with_torch
def test_the_callers_arrays_are_not_touched():
    case = make_case("conv")
    before = case.copy()
    torch_oracle.gradients(kinds.get(case.kind).torch, case.geometry, case.inputs, case.upstream, case.labels)
    for key in case.inputs:
        assert np.array_equal(case.inputs[key], before.inputs[key])
    assert np.array_equal(case.upstream, before.upstream)


@with_torch
def test_available_reports_true_and_the_torch_version():
    import torch

    assert torch_oracle.available() == (True, torch.__version__)


# -- without torch -----------------------------------------------------------------------------


@pytest.fixture
def no_torch(monkeypatch):
    """torch made unimportable: None in sys.modules, and the cached importer forgotten. Yields the
    real module (None when torch is not installed), to put back."""
    real = importlib.import_module("torch") if HAVE_TORCH else None
    monkeypatch.setitem(sys.modules, "torch", None)
    torch_oracle._torch.cache_clear()
    yield real
    torch_oracle._torch.cache_clear()


def test_without_torch_available_reports_false_and_the_reason(no_torch):
    ok, reason = torch_oracle.available()
    assert ok is False
    assert "torch is not importable" in reason and "ModuleNotFoundError" in reason


@with_torch
def test_torch_is_importable_again_once_it_is_back(no_torch, monkeypatch):
    assert torch_oracle.available()[0] is False
    monkeypatch.setitem(sys.modules, "torch", no_torch)
    torch_oracle._torch.cache_clear()
    assert torch_oracle.available() == (True, no_torch.__version__)


def by_property(findings):
    out: dict[str, list] = {}
    for f in findings:
        out.setdefault(f.property, []).append(f)
    return out


@pytest.mark.parametrize("name", ["conv", "maxpool", "dense"])
def test_without_torch_the_torch_checks_are_skipped_with_the_reason_and_fd_still_judges(no_torch, name):
    case = make_case(name)
    trial = Trial(case, reference_subject, Options(seed=0))
    assert trial.torch is None
    found = by_property(properties.run(trial))
    assert not any(f.failed for fs in found.values() for f in fs)
    for key in case.inputs:
        statuses = {f.oracle: (f.status, f.message) for f in found[f"grad_{key}"]}
        assert statuses["torch"][0] == SKIP
        assert "torch is not importable" in statuses["torch"][1]
        assert statuses["fd"][0] == PASS
    assert [f.status for f in found["oracle_agreement"]] == [SKIP]
    assert [(f.status, f.oracle) for f in found["forward"]] == [(PASS, "reference")]


def test_without_torch_a_broken_layer_still_fails_on_finite_differences(no_torch):
    case = make_case("conv")
    trial = Trial(case, mistaken("weight_grad_over_batch"), Options(seed=0))
    findings = properties.get("grad_weight")(trial)
    assert [(f.oracle, f.status) for f in findings] == [("torch", SKIP), ("fd", FAIL)]


def test_torch_requested_out_gives_its_own_skip_reason():
    trial = Trial(make_case("relu"), reference_subject, Options(oracles=("fd",)))
    assert trial.torch is None
    assert trial.torch_skip_reason == "torch oracle not requested"


def test_importing_the_checker_does_not_import_torch():
    code = (
        "import sys, checks, checks.api, checks.pipeline.runner, checks.pipeline.properties, checks.pipeline.trial, "
        "checks.oracles.torch_oracle;"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def only_torch_run(factory):
    from checks import strategies as cs
    from checks.pipeline.runner import Runner

    cases = cs.cases("dense", cs.dense_geometries())
    runner = Runner(cases, factory, Options(oracles=("torch",)), max_examples=5, seed=1)
    return runner.run(["forward", "grad_input", "grad_weight"], target="t", kind="dense")


@pytest.mark.parametrize("layer", ["reference", "dense_weight_over_batch"])
def test_with_torch_the_only_oracle_and_missing_no_gradient_is_judged_and_nothing_passes(no_torch, layer):
    from checks.findings import NOT_JUDGED
    from checks.settings import STATUS_EXIT, Exit

    report = only_torch_run(reference_subject if layer == "reference" else mistaken(layer))
    statuses = {p.property: p.status for p in report.properties}
    assert statuses == {"forward": PASS, "grad_input": NOT_JUDGED, "grad_weight": NOT_JUDGED}
    assert not report.passed and report.unjudged == ["grad_input", "grad_weight"]
    assert report.outcome()[0] == "not_judged" and STATUS_EXIT["not_judged"] == Exit.UNJUDGED == 4
    text = report.render()
    assert text.splitlines()[0] == "t (dense): NOT JUDGED"
    assert "torch is not importable" in text and "judged by: reference" in text


@with_torch
def test_with_torch_importable_the_same_run_judges_and_tells_the_layers_apart():
    assert only_torch_run(reference_subject).outcome()[0] == "passed"
    failed = only_torch_run(mistaken("dense_weight_over_batch"))
    assert failed.outcome()[0] == "failed" and failed.failed_properties == ["grad_weight"]
    assert failed.judged_by == ["torch"]


def test_without_torch_the_table_of_wrong_entries_names_the_reference_not_torch(no_torch):
    from checks import explain
    from checks import strategies as cs
    from checks.pipeline.runner import Runner

    cases = cs.cases("dense", cs.dense_geometries())
    runner = Runner(cases, mistaken("dense_weight_over_batch"), Options(), max_examples=5, seed=1)
    report = runner.run(["grad_weight"], target="t", kind="dense")
    explain.annotate(report)
    text = report.render()
    header = next(line.split() for line in text.splitlines() if line.split()[:2] == ["index", "layer"])
    assert header == ["index", "layer", "fd", "reference", "rel", "err"]
    assert "judged by: fd" in text and "torch" not in " ".join(header)
