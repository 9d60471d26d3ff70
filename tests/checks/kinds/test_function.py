"""checks.kinds.function: a layer of any computation, judged by kink-guarded differences of its own forward.

End to end through checks.api.check_job (the fixtures under tests/fixtures/function run in the sandboxed worker and
are never imported here): a correct smooth layer passes with every gradient judged by fd, a wrong backward fails
naming its gradient, a kink drawn at the point is not judged (and never failed) while a wrong gradient away from it
is still caught. The guarded differences themselves are tested on known functions: they keep the smooth entries,
drop the ones at or within a step of a kink, where plain central differences would have judged a valid
subgradient wrong."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import Phase, find, settings

from checks import LayerSpec, Param, kinds
from checks.adapt import targets
from checks.adapt.adapters import Declaration
from checks.api import check_job
from checks.case import Case
from checks.explain import explain, where
from checks.findings import FAIL, PASS, SKIP
from checks.geometry import FunctionGeometry
from checks.job import Job
from checks.kinds import function
from checks.oracles import fd
from checks.pipeline.properties import USER_REFERENCE
from checks.pipeline.trial import Options, Trial
from checks.strategies._spec import cases, geometries
from checks.tolerances import tolerances_for

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "function"
TOL = tolerances_for(np.float64)
FIRST = settings(database=None, max_examples=1, phases=[Phase.generate], derandomize=True)


def run(target: str, examples: int = 15):
    return check_job(Job(f"{FIXTURES}/{target}", max_examples=examples))


def by_property(report) -> dict:
    return {p.property: p for p in report.properties}


# -- end to end, in the worker -------------------------------------------------------------------------------------


def test_a_correct_smooth_layer_passes_every_gradient_judged_by_fd():
    report = run("smooth.py:correct")
    props = by_property(report)
    assert report.passed, report.render()
    for name in ("grad_input", "grad_W", "grad_b"):
        assert props[name].status == PASS and props[name].oracles == {"fd": props[name].examples}
        assert props[name].unjudged == 0  # a smooth layer: every case judged
    assert props["forward"].status == SKIP and "no reference forward" in props["forward"].findings[0].message
    assert props["oracle_agreement"].status == SKIP and "one oracle" in props["oracle_agreement"].findings[0].message
    assert report.judged_by == ["fd", "structure"]


@pytest.mark.parametrize(("target", "wrong"), [("missing_factor", "grad_W"), ("rows_reversed", "grad_input")])
def test_a_wrong_backward_fails_naming_its_gradient(target, wrong):
    props = by_property(run(f"smooth.py:{target}"))
    assert props[wrong].status == FAIL
    assert any(f.failed and f.oracle == "fd" for f in props[wrong].findings)
    assert [p for p, r in props.items() if r.status == FAIL] == [wrong]  # the others still pass


def test_a_kink_drawn_at_the_point_is_not_judged_and_never_failed():
    """abs(X) with the subgradient +1 at X == 0: central differences read 0 there; the kink is drawn (zeros and
    ties modes), the entries on it are left unjudged, and the layer passes."""
    report = run("kinked.py:correct", examples=20)
    props = by_property(report)
    assert report.passed, report.render()
    assert props["grad_input"].status == PASS and props["grad_input"].unjudged >= 1


def test_a_wrong_gradient_away_from_the_kink_is_still_caught():
    props = by_property(run("kinked.py:sign_flipped"))
    assert props["grad_input"].status == FAIL
    assert props["grad_s"].status == PASS and props["grad_W"].status == PASS


def test_an_output_unlike_the_declared_shape_fails_forward():
    props = by_property(run("smooth.py:wrong_output_shape", examples=3))
    assert props["forward"].status == FAIL and "expected (2, 3)" in props["forward"].findings[0].message


# -- the guarded differences ---------------------------------------------------------------------------------------


def _abs_plus_square(point):
    """L = sum(|x| + x^2 / 2): dL/dx = sign(x) + x away from 0, anything in [-1, 1] at 0."""
    x = point["input"]
    return float(np.sum(np.abs(x) + x * x / 2))


def test_guarded_differences_drop_exactly_the_entries_at_a_kink():
    x = np.array([[0.0, 0.7, -1.3], [0.0, -0.2, 2.5]])
    estimate = function.elementwise(_abs_plus_square, {"input": x}, "input", TOL, np.float64)
    at_kink = x == 0
    np.testing.assert_array_equal(estimate.trusted, ~at_kink)
    np.testing.assert_allclose(estimate.value[~at_kink], (np.sign(x) + x)[~at_kink], rtol=1e-8)
    # what they guard against: unguarded central differences read 0 at the kink and trust it, so the valid
    # subgradient +1 there (np.where(x >= 0, 1, -1)) would be judged wrong
    plain = fd.elementwise(_abs_plus_square, {"input": x}, "input", TOL.eps)
    assert plain.trusted[at_kink].all() and np.allclose(plain.value[at_kink], 0.0)


def test_a_kink_within_a_step_is_not_judged_either():
    x = np.array([TOL.eps / 3, -TOL.eps / 5, 0.9])  # |x| < h: the kink at 0 lies inside the step
    estimate = function.elementwise(_abs_plus_square, {"input": x}, "input", TOL, np.float64)
    np.testing.assert_array_equal(estimate.trusted, [False, False, True])


def test_a_smooth_curved_function_is_judged_everywhere():
    x = np.linspace(-2.0, 2.0, 12).reshape(3, 4)
    w = np.linspace(0.3, -0.8, 8).reshape(4, 2)

    def loss(point):
        return float(np.sum(np.tanh(point["input"] @ w)))

    estimate = function.elementwise(loss, {"input": x}, "input", TOL, np.float64)
    assert estimate.trusted.all()
    np.testing.assert_allclose(estimate.value, (1 - np.tanh(x @ w) ** 2) @ w.T, rtol=1e-8, atol=1e-10)


def test_directions_through_a_kink_are_not_judged_and_smooth_ones_are():
    small = replace(TOL, max_elementwise=2)  # force the directional branch
    rng = np.random.default_rng(0)
    smooth = function.blind_fd(
        lambda p: float(np.sum(np.sin(p["input"]))), {"input": np.full((2, 3), 0.4)}, "input", small, np.float64, rng
    )
    assert isinstance(smooth, fd.FDDirectional) and all(p is not None for p in smooth.projections)
    for u, p in zip(smooth.directions, smooth.projections, strict=True):
        assert abs(p - float(np.sum(np.cos(0.4) * u))) < 1e-8
    kinked = function.blind_fd(_abs_plus_square, {"input": np.zeros((2, 3))}, "input", small, np.float64, rng)
    assert kinked.projections and all(p is None for p in kinked.projections)


# -- the declaration ----------------------------------------------------------------------------------------------


class _Layer:
    pass


SHAPES = {"input": (3, 4), "output": (3,), "W": (4,)}


def test_the_spec_declares_its_shapes_and_any_parameter_names():
    spec = LayerSpec("function", build=lambda g: _Layer(), shapes=SHAPES, params={"W": Param("W")})
    assert spec.input_layout == spec.out_layout == "ND" and kinds.any_params("function")
    declaration = Declaration.from_dict(json.loads(json.dumps(spec.declaration().to_dict())))
    assert declaration.shapes == SHAPES
    assert find(geometries(declaration), lambda g: True, settings=FIRST) == FunctionGeometry(
        (3, 4), (3,), (("W", (4,)),)
    )
    case = find(cases(declaration), lambda c: True, settings=FIRST)
    assert case.inputs["input"].shape == (3, 4) and case.inputs["W"].shape == (4,) and case.upstream.shape == (3,)


@pytest.mark.parametrize(
    ("shapes", "params", "says"),
    [
        (None, {}, "needs its shapes declared"),
        ({"input": (3,)}, {}, "needs its shapes declared"),
        ({"input": (3,), "output": (3,)}, {"W": Param("W")}, "'W': (...)"),
        ({"input": (3, 0), "output": (3,)}, {}, "positive ints"),
        ({"input": (), "output": (3,)}, {}, "only the output may be a scalar"),
        ({"input": (3,), "output": (3,)}, {"input": Param("x")}, "any name but"),
    ],
)
def test_a_wrong_declaration_is_refused_naming_what_to_write(shapes, params, says):
    with pytest.raises(ValueError) as caught:
        LayerSpec("function", build=lambda g: _Layer(), shapes=shapes, params=params)
    assert says in str(caught.value)


def test_a_drawn_kind_may_not_declare_shapes():
    with pytest.raises(ValueError, match="drawn, not declared"):
        LayerSpec("relu", build=lambda g: _Layer(), shapes={"input": (2,), "output": (2,)})


def test_a_class_target_as_function_is_an_adaptation_error(tmp_path):
    (tmp_path / "mine.py").write_text(
        "class Mine:\n    def forward(self, x):\n        return x\n    def backward(self, g):\n        return g\n"
    )
    with pytest.raises(targets.TargetError, match="write a LayerSpec"):
        targets.load(f"{tmp_path}/mine.py:Mine", kind="function", preset="seed")


# -- explaining a failure against the differences ---------------------------------------------------------------


EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "function_kind"


def test_the_buggy_example_is_explained_in_the_users_layout_against_fd():
    report = check_job(Job(f"{EXAMPLES}/specs.py:glu_gate_derivative_missing", max_examples=10))
    props, text = by_property(report), report.render()
    assert "could not explain" not in text
    for name in ("grad_input", "grad_V"):
        details = props[name].details
        assert details.error is None and details.expected_source == where.ONLY_FD and details.unjudged == 0
        assert details.axes == ("ni" if name == "grad_input" else None)  # a parameter: its own shape, no letters
        assert 0 < details.mismatched <= details.total == int(np.prod(details.shape))
        for entry in details.worst:  # each a wrong entry the differences judged: its fd value shown
            assert entry.fd is not None and entry.fd == entry.expected and len(entry.index) == 2
            assert abs(entry.layer - entry.fd) > TOL.fd.bound(np.array(entry.fd), scale=abs(entry.fd))
    assert any(line.split() == ["index", "layer", "fd", "rel", "err"] for line in text.splitlines())
    assert props["grad_W"].details is None  # a passing gradient is not explained


def test_a_pattern_is_read_off_the_differences():
    details = by_property(run("smooth.py:rows_reversed"))["grad_input"]
    assert "flipped" in [p.name for p in details.diagnosis.patterns]
    assert details.diagnosis.mistake is None  # no right formula to name a mistake by


class _Abs:
    """Z = |X| with dX = G * sign (sign(0) = +1), or its negation (wrong wherever X != 0): an in-process subject."""

    def __init__(self, sign: float) -> None:
        self.sign = sign

    def forward(self, inputs):
        self.x = inputs["input"]
        return np.abs(self.x)

    def backward(self, g):
        return {"input": self.sign * g * np.where(self.x >= 0, 1.0, -1.0)}


def _abs_trial(sign: float) -> Trial:
    x = np.array([[0.0, 0.7, -1.3], [0.4, -0.2, 2.5]])
    g = np.array([[0.5, -1.5, 0.75], [1.25, 0.25, -2.0]])
    case = Case("function", FunctionGeometry((2, 3), (2, 3)), {"input": x}, g)
    return Trial(case, lambda c: _Abs(sign), Options(oracles=("fd",)))


def test_entries_the_differences_did_not_judge_are_counted_not_shown_and_claim_no_pattern():
    details, diagnosis = explain(_abs_trial(-1.0), "input")
    assert details.unjudged == 1 and details.total == 5 and details.mismatched == 5
    assert (0, 0) not in [e.index for e in details.worst] and len(details.worst) == 5
    assert "1 more not judged" in details.render_lines(diagnosis)[0]
    assert diagnosis.patterns == []  # "-1 times" over entries nobody judged would be a claim not shown


def test_a_correct_layer_has_nothing_wrong_against_the_differences():
    details, diagnosis = explain(_abs_trial(1.0), "input")
    assert details.mismatched == 0 and details.worst == [] and details.unjudged == 1


# -- the layer's own reference forward ----------------------------------------------------------------------------


def test_a_correct_forward_with_a_correct_reference_passes_forward():
    report = run("smooth.py:with_reference", examples=5)
    props = by_property(report)
    assert report.passed and props["forward"].status == PASS
    assert props["forward"].oracles == {USER_REFERENCE: props["forward"].examples}
    assert "user_reference" in report.judged_by


def test_a_forward_that_disagrees_with_its_reference_fails_forward_only():
    props = by_property(run("smooth.py:forward_disagrees", examples=5))
    assert props["forward"].status == FAIL
    assert any(f.failed and f.oracle == USER_REFERENCE for f in props["forward"].findings)
    assert [p for p, r in props.items() if r.status == FAIL] == ["forward"]  # the gradients never read it


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("reference_raises", "reference forward: raised ValueError: reference not written yet"),
        ("reference_wrong_shape", "reference forward: reference output has shape (2, 3), expected (3, 2)"),
    ],
)
def test_a_reference_that_fails_is_a_forward_failure_naming_it(target, says):
    props = by_property(run(f"smooth.py:{target}", examples=5))
    failed = [f for f in props["forward"].findings if f.failed]
    assert props["forward"].status == FAIL and failed and says in failed[0].message
    assert all(props[g].status == PASS for g in ("grad_input", "grad_W", "grad_b"))


def test_the_declaration_says_whether_a_reference_exists():
    def ref(inputs):
        return inputs["input"][:, 0]

    with_ref = LayerSpec("function", build=lambda g: _Layer(), shapes=SHAPES, params={"W": Param("W")}, reference=ref)
    without = LayerSpec("function", build=lambda g: _Layer(), shapes=SHAPES, params={"W": Param("W")})
    for spec, expected in ((with_ref, True), (without, False)):
        data = json.loads(json.dumps(spec.declaration().to_dict()))
        assert data["reference"] is expected and Declaration.from_dict(data).reference is expected
    bad = json.loads(json.dumps(with_ref.declaration().to_dict()))
    with pytest.raises(TypeError, match="not a bool"):
        Declaration.from_dict({**bad, "reference": "yes"})


@pytest.mark.parametrize(
    ("kind", "shapes", "reference", "says"),
    [
        ("relu", None, lambda inputs: inputs["input"], "not for a 'relu' layer"),
        ("function", {"input": (2,), "output": (2,)}, "np.abs", "a function fn"),
    ],
)
def test_a_reference_where_none_can_be_is_refused(kind, shapes, reference, says):
    with pytest.raises(ValueError, match=says):
        LayerSpec(kind, build=lambda g: _Layer(), shapes=shapes, reference=reference)


def test_a_float32_function_layer_is_judged_and_its_mistake_still_caught():
    right = run("smooth.py:correct_f32")
    assert right.passed, right.render()
    statuses = {p.property: (p.status, p.oracles) for p in right.properties}
    assert all(statuses[g][0] == "pass" and "fd" in statuses[g][1] for g in ("grad_input", "grad_W", "grad_b"))
    wrong = run("smooth.py:missing_factor_f32")
    assert wrong.failed_properties == ["grad_W"], wrong.render()
    assert "dtype float32" in wrong.render()
