"""checks.kinds.function with SEVERAL inputs: LayerSpec(inputs=("a", "b")), forward(a, b), backward -> (dA, dB).

End to end through checks.api.check_job (the fixtures in tests/fixtures/function/several.py run in the sandboxed
worker and are never imported here): a correct layer of two inputs passes every property with each input judged on
its own; a backward wrong only for the second input fails that input alone; a wrong count, a lone array or a swapped
order of the returned gradients fails with a typed cause saying what came back; a write into the second input is
caught by no_mutation; a tie of max(A, B) is not judged, never failed. The declaration refuses what cannot be
checked (ValueError naming the change; exit 2 on the CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import Phase, find, settings

from checks import LayerSpec, Param
from checks.adapt.adapters import Declaration
from checks.adapt.serve import case_from
from checks.api import check_job, property_names
from checks.explain import where
from checks.findings import FAIL, PASS, SKIP
from checks.front import cli
from checks.geometry import FunctionGeometry
from checks.job import Job
from checks.pipeline.properties import USER_REFERENCE
from checks.strategies._spec import cases, geometries
from checks.tolerances import tolerances_for

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "function" / "several.py"
EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "function_kind" / "specs.py"
TOL = tolerances_for(np.float64)
FIRST = settings(database=None, max_examples=1, phases=[Phase.generate], derandomize=True)


def run(name: str, examples: int = 10):
    return check_job(Job(f"{FIXTURES}:{name}", max_examples=examples))


def by_property(report) -> dict:
    return {p.property: p for p in report.properties}


def failed(report) -> list[str]:
    return [p.property for p in report.properties if p.status == FAIL]


# -- judging, in the worker -----------------------------------------------------------------------------------------


def test_a_correct_layer_of_two_inputs_passes_every_property_each_input_judged_by_fd():
    report = run("correct")
    props = by_property(report)
    assert report.passed, report.render()
    assert list(props) == [
        "forward",
        "grad_a",
        "grad_b",
        "grad_W",
        "oracle_agreement",
        "linearity",
        "determinism",
        "no_mutation",
        "quiet",
    ]
    for name in ("grad_a", "grad_b", "grad_W"):
        assert props[name].status == PASS and props[name].oracles == {"fd": props[name].examples}
        assert props[name].unjudged == 0
    assert all(props[p].status == PASS for p in ("linearity", "determinism", "no_mutation", "quiet"))
    assert props["forward"].status == SKIP and props["oracle_agreement"].status == SKIP


def test_a_backward_wrong_only_for_the_second_input_fails_that_input_alone_explained_against_fd():
    report = run("second_wrong")
    props = by_property(report)
    assert failed(report) == ["grad_b"], report.render()
    assert any(f.failed and f.oracle == "fd" for f in props["grad_b"].findings)
    assert props["grad_a"].status == PASS and props["grad_W"].status == PASS
    details = props["grad_b"].details
    assert details.error is None and details.gradient == "b" and details.expected_source == where.ONLY_FD
    assert tuple(details.shape) == (4, 2) and details.unjudged == 0 and details.mismatched > 0
    for entry in details.worst:  # in b's own layout, each with the difference that judged it
        assert len(entry.index) == 2 and entry.fd is not None and entry.fd == entry.expected
        assert abs(entry.layer - entry.fd) > TOL.fd.bound(np.array(entry.fd), scale=abs(entry.fd))


def test_the_reproduction_snippet_rebuilds_both_inputs_and_reruns_the_verdict(capsys):
    details = by_property(run("second_wrong"))["grad_b"].details
    snippet = details.reproduction
    assert '"a": np.array(' in snippet and '"b": np.array(' in snippet and "inputs=(('a', (4, 3))" in snippet
    capsys.readouterr()
    exec(compile(snippet, "<snippet>", "exec"), {})  # noqa: S102 - the snippet the report prints, run as a user would
    out = capsys.readouterr().out
    assert "a as your layer receives it" in out and "b as your layer receives it" in out
    assert "FAIL         grad_b [fd]" in out


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("one_gradient", "returned an array of shape (4, 3); a layer of 2 inputs returns their gradients as a tuple"),
        ("three", "returned a tuple of length 3; a layer of 2 inputs returns their gradients as a tuple (da, db)"),
    ],
)
def test_a_wrong_count_of_input_gradients_fails_with_a_typed_cause_saying_what_came_back(name, says):
    report = run(name)
    props = by_property(report)
    assert report.error is None and failed(report) == ["grad_a"], report.render()
    fault = next(f for f in props["grad_a"].findings if f.failed)
    assert fault.cause == "type" and says in fault.message
    assert props["grad_b"].status == "not_judged"  # the same fault, said once
    assert props["grad_W"].status == PASS  # the parameter is still judged


def test_gradients_in_the_wrong_order_fail_naming_whose_shape_they_have():
    props = by_property(run("swapped"))
    for mine, theirs in (("a", "b"), ("b", "a")):
        fault = next(f for f in props[f"grad_{mine}"].findings if f.failed)
        assert fault.cause == "shape" and f"that is the shape of {theirs!r}" in fault.message
    assert props["grad_W"].status == PASS


def test_swapped_gradients_of_one_shape_fail_both_inputs_by_value():
    report = run("product_swapped")
    assert failed(report) == ["grad_a", "grad_b"], report.render()
    for name in ("grad_a", "grad_b"):
        assert any(f.failed and f.oracle == "fd" for f in by_property(report)[name].findings)
    assert run("product").passed


def test_a_write_into_the_second_input_is_caught_by_no_mutation():
    report = run("mutates_b")
    assert failed(report) == ["no_mutation"], report.render()
    message = next(f for f in by_property(report)["no_mutation"].findings if f.failed).message
    assert "forward modified its argument(s) ['b']" in message


def test_a_tie_of_max_of_two_inputs_is_not_judged_and_never_failed():
    """max(A, B) with G sent to A at a tie (any split is valid): the ties mode draws A == B entries, the guarded
    differences leave them unjudged, and the layer passes; the same layer with B's gradient on the wrong side fails
    grad_b away from the ties."""
    report = run("maximum", examples=25)
    props = by_property(report)
    assert report.passed, report.render()
    assert props["grad_a"].unjudged >= 1 and props["grad_b"].unjudged >= 1
    wrong = run("maximum_second_inverted", examples=25)
    assert failed(wrong) == ["grad_b"], wrong.render()


def test_one_input_of_its_own_name_is_judged_as_grad_of_that_name():
    report = run("named_one")
    assert report.passed and [p.property for p in report.properties][1] == "grad_x"


def test_the_reference_forward_takes_every_input_by_name():
    props = by_property(run("with_reference", examples=5))
    assert props["forward"].status == PASS and props["forward"].oracles == {USER_REFERENCE: 5}


def test_the_bundled_example_pair_fails_the_second_input_with_its_pattern():
    right = check_job(Job(f"{EXAMPLES}:scores", max_examples=10))
    assert right.passed and [p.property for p in right.properties][1:3] == ["grad_q", "grad_k"]
    wrong = check_job(Job(f"{EXAMPLES}:scores_key_unscaled", max_examples=10))
    assert failed(wrong) == ["grad_k"], wrong.render()
    diagnosis = by_property(wrong)["grad_k"].diagnosis
    assert [(p.name, p.value) for p in diagnosis.patterns if p.name == "scale"] == [("scale", pytest.approx(2.0))]


# -- the declaration ------------------------------------------------------------------------------------------------


class _Layer:
    pass


SHAPES = {"a": (4, 3), "b": (4, 2), "output": (4, 2), "W": (3, 2)}
GEOMETRY = FunctionGeometry((4, 3), (4, 2), (("W", (3, 2)),), (("a", (4, 3)), ("b", (4, 2))))


def _spec(**fields) -> LayerSpec:
    base = {"inputs": ("a", "b"), "shapes": SHAPES, "params": {"W": Param("W", grad="dW")}}
    return LayerSpec("function", build=lambda g: _Layer(), **{**base, **fields})


def test_the_declaration_carries_the_inputs_to_the_checker_and_the_cases():
    declaration = Declaration.from_dict(json.loads(json.dumps(_spec().declaration().to_dict())))
    assert declaration.inputs == ("a", "b") and declaration.shapes == SHAPES
    assert property_names(declaration)[:4] == ["forward", "grad_a", "grad_b", "grad_W"]
    geometry = find(geometries(declaration), lambda g: True, settings=FIRST)
    assert geometry == GEOMETRY and hash(geometry) == hash(GEOMETRY)
    assert geometry.input_shape == (4, 3) and geometry.input_shapes == {"a": (4, 3), "b": (4, 2)}
    case = find(cases(declaration), lambda c: True, settings=FIRST)
    assert list(case.inputs) == ["a", "b", "W"] and case.dtype == np.float64
    assert case.inputs["b"].shape == (4, 2) and case.upstream.shape == (4, 2)


def test_the_geometry_crosses_to_the_worker_whole_and_reads_back_from_its_repr():
    fields = json.loads(json.dumps(GEOMETRY._asdict()))
    arrays = {"input:a": np.zeros((4, 3)), "input:b": np.zeros((4, 2)), "upstream": np.zeros((4, 2))}
    crossed = case_from({"kind": "function", "geometry": {"type": "FunctionGeometry", "fields": fields}}, arrays)
    assert crossed.geometry == GEOMETRY and hash(crossed.geometry) == hash(GEOMETRY)
    assert eval(repr(GEOMETRY), {"FunctionGeometry": FunctionGeometry}) == GEOMETRY  # noqa: S307 - the snippet's line
    # a layer of one input reads as it always did
    assert repr(FunctionGeometry((2, 3), (2, 3))) == "FunctionGeometry(input=(2, 3), output=(2, 3), params=())"
    assert FunctionGeometry((2, 3), (2, 3)).input_shapes == {"input": (2, 3)}


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"shapes": {"a": (4, 3), "output": (4, 2), "W": (3, 2)}}, "LayerSpec(shapes={'a': (...), 'b': (...), "),
        ({"inputs": ("a", "W")}, "inputs names 'W', which is also a parameter's name (params=): rename the input"),
        ({"inputs": ("a", "output")}, "inputs names 'output', which is the output's name in shapes="),
        ({"inputs": ("a", "b-c")}, "inputs names 'b-c', not a Python identifier"),
        ({"inputs": ("a", "lambda")}, "inputs names 'lambda', not a Python identifier"),
        ({"inputs": ("a", "a")}, "inputs names 'a' twice"),
        ({"inputs": "ab"}, "inputs='ab': name forward's arguments in its order, e.g. inputs=('a', 'b')"),
        ({"inputs": ()}, "name forward's arguments in its order"),
    ],
)
def test_a_wrong_declaration_of_inputs_is_refused_naming_what_to_change(fields, says):
    with pytest.raises(ValueError) as caught:
        _spec(**fields)
    assert says in str(caught.value)


def test_inputs_on_another_kind_is_refused():
    with pytest.raises(ValueError, match="inputs= is for a 'function' layer; a 'relu' layer takes one input"):
        LayerSpec("relu", build=lambda g: _Layer(), inputs=("a", "b"))
    assert LayerSpec("relu", build=lambda g: _Layer()).inputs == ("input",)


def test_a_declaration_of_inputs_read_from_the_worker_is_checked_too():
    data = json.loads(json.dumps(_spec().declaration().to_dict()))
    with pytest.raises(ValueError, match="also a parameter's name"):
        Declaration.from_dict({**data, "inputs": ["a", "W"]})


def test_a_wrong_declaration_is_an_adaptation_error_on_the_cli(tmp_path, capsys):
    (tmp_path / "mine.py").write_text(
        "from checks import LayerSpec\n"
        "class Mine:\n"
        "    def forward(self, a, b):\n        return a * b\n"
        "    def backward(self, g):\n        return g, g\n"
        "spec = LayerSpec('function', build=lambda g: Mine(), inputs=('a', 'b'),\n"
        "                 shapes={'a': (2,), 'output': (2,)})\n"
    )
    assert cli.main(["check", f"{tmp_path}/mine.py:spec"]) == 2
    assert "LayerSpec(shapes={'a': (...), 'b': (...), 'output': (...)})" in capsys.readouterr().err


def test_a_gradient_with_another_inputs_shape_blames_no_order_when_the_shapes_are_no_permutation():
    # db returned unsummed has a's shape (2, 3), but (2, 3), (2, 3) is no reordering of (2, 3), (3,)
    props = by_property(run("unsummed_broadcast"))
    fault = next(f for f in props["grad_b"].findings if f.failed)
    assert fault.cause == "shape" and "expected (3,)" in fault.message
    assert "that is the shape of" not in fault.message and props["grad_a"].status == PASS
