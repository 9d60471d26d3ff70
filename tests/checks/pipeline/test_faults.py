"""checks.pipeline.faults: one fault is said once, the properties after it judge the cases that do not meet
it (so a second, independent bug is still found), and a fault raised on a line that writes sizes down is
looked behind at those sizes."""

from __future__ import annotations

from pathlib import Path

import pytest

from checks import api
from checks import strategies as cs
from checks.findings import FAIL, NOT_JUDGED, PASS, Finding
from checks.geometry import ConvGeometry, DenseGeometry, PoolGeometry
from checks.job import Job
from checks.kinds import reference_subject
from checks.pipeline import faults
from checks.pipeline.runner import Runner
from checks.pipeline.trial import Options

REPO = Path(__file__).resolve().parents[3]
DENSE = cs.cases("dense", cs.dense_geometries(batch=(1, 3), features_ndim=1, side=(1, 3), out_features=(1, 3)))
PROPS = ["forward", "grad_input", "grad_weight", "grad_bias", "linearity"]


def raised(line: int, message: str = "raised ValueError: cannot reshape array of size 4 into shape (9,1)") -> Finding:
    origin = {"file": "layer.py", "line": line, "function": "backward", "text": "x.reshape(9, 1)"}
    return Finding(
        "grad_input", FAIL, f"backward: {message} (inputs: input (4,))", "structure", cause="raised", origin=origin
    )


# -- the same fault -------------------------------------------------------------------------------------------


def test_the_same_line_raising_at_other_sizes_is_the_same_fault_and_another_line_is_not():
    assert faults.key(raised(16)) == faults.key(
        raised(16, "raised ValueError: cannot reshape array of size 6 into (9,1)")
    )
    assert faults.key(raised(16)) != faults.key(raised(17))
    assert faults.key(Finding("grad_input", PASS, "ok")) is None  # not a fault
    assert faults.key(Finding("grad_input", FAIL, "3/4 entries differ", "torch")) is None  # a value, not a fault
    timeout = Finding("grad_input", FAIL, "backward: did not return within 2 s", "structure", cause="timeout")
    assert faults.key(timeout) is None  # ends the check: never grouped


def test_without_a_place_in_the_users_code_the_message_is_compared_with_its_numbers_taken_out():
    a = Finding("forward", FAIL, "forward: raised IndexError: index 5 is out of bounds", "structure", cause="raised")
    b = Finding("forward", FAIL, "forward: raised IndexError: index 7 is out of bounds", "structure", cause="raised")
    c = Finding("forward", FAIL, "forward: raised KeyError: 'x'", "structure", cause="raised")
    assert faults.key(a) == faults.key(b) != faults.key(c)


class Raising:
    """The reference dense layer whose backward raises for batch > 1 and, behind that, whose bias gradient is
    doubled (visible at batch 1)."""

    def __init__(self, case, bias_bug: bool = True) -> None:
        self.case, self.inner, self.bias_bug = case, reference_subject(case), bias_bug

    def forward(self, inputs):
        return self.inner.forward(inputs)

    def backward(self, upstream):
        if self.case.geometry.batch > 1:
            raise ValueError("batches are not supported")
        grads = self.inner.backward(upstream)
        if self.bias_bug and "bias" in grads:
            grads["bias"] = 2 * grads["bias"]
        return grads


def run(factory) -> dict:
    report = Runner(DENSE, factory, Options(oracles=("fd",)), max_examples=20, seed=3).run(
        PROPS, target="t", kind="dense"
    )
    return {p.property: p for p in report.properties}


def test_a_fault_is_reported_once_and_the_properties_after_it_judge_only_the_cases_without_it():
    found = run(lambda case: Raising(case, bias_bug=False))
    assert found["grad_input"].status == FAIL and found["grad_input"].findings[0].cause == "raised"
    for prop in ("grad_weight", "linearity"):
        assert found[prop].status == PASS  # judged on batch-1 cases
        assert found[prop].unjudged > 0  # and says how many met the fault
    assert [f.message for f in found["grad_weight"].findings][0].endswith("met the fault under grad_input")


def test_a_fault_does_not_hide_a_second_independent_bug():
    found = run(Raising)
    assert found["grad_input"].status == FAIL and found["grad_input"].findings[0].cause == "raised"
    bias = found["grad_bias"]
    assert bias.status == FAIL and bias.findings[0].cause is None  # a value failure, found behind the fault
    assert bias.trial.case.geometry.batch == 1


def test_a_property_whose_every_case_meets_the_fault_is_not_judged_never_passed():
    class AlwaysRaises(Raising):
        def backward(self, upstream):
            raise ValueError("never")

    found = run(AlwaysRaises)
    assert found["grad_input"].status == FAIL
    for prop in ("grad_weight", "linearity"):
        assert found[prop].status == NOT_JUDGED
        assert found[prop].findings[0].message == "not judged: every case met the fault under grad_input"
        assert 0 < found[prop].examples <= 60  # gave up early, not after hypothesis's ten-fold retries
    # a case without a bias is no case for grad_bias: the others met the fault, so it is not judged either
    assert found["grad_bias"].status == NOT_JUDGED
    assert found["grad_bias"].findings[0].message.endswith("they met the fault under grad_input")


# -- sizes written down ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, sizes",
    [
        ("dL_dW = self.input.reshape(1352, 1) @ dL_dout.reshape(1, 10) #for 28x28 images", [1352, 10]),
        ('raise ValueError("expected 784 features")', []),  # a string is not code
        ("x = x.reshape(n, -1)", []),
        ("w = w[:, :3, 0:3]", [3]),
        ("y = np.zeros((13, 13, 8)) + 0.5", [13, 8]),
        ("def broken(:", []),
    ],
)
def test_the_sizes_a_line_writes_down_are_its_integer_literals_of_two_or_more(line, sizes):
    assert faults.sizes_in(line) == sizes


def test_geometries_built_from_the_sizes_use_the_most_of_them_first_and_stay_valid_and_bounded():
    g = DenseGeometry(batch=1, features=(1,), out_features=1, bias=True)
    found = faults.sized(g, [1352, 10])
    assert found[0] == g._replace(features=(1352,), out_features=10)
    assert len(found) <= faults.MAX_SIZED and g not in found
    assert faults.describe(found[0], g) == "features=1352, out_features=10"
    assert all(x.out_features == 1 for x in faults.sized(g, [1352, 10], {"out_features": None}))  # fixed
    assert faults.sized(g, [10**7]) == []  # a 1e7-feature layer is not run
    pool = PoolGeometry(batch=1, channels=1, height=2, width=2, kernel=(2, 2), stride=(2, 2), padding=(0, 0))
    assert pool._replace(height=3) in faults.sized(pool, [3])
    assert all(min(p.output_shape[2:]) >= 1 for p in faults.sized(pool, [3, 7]))
    conv = ConvGeometry(1, 1, 4, 4, 1, (3, 3), (1, 1), (0, 0), (1, 1), True)
    assert all(min(c.output_shape[2:]) >= 1 for c in faults.sized(conv, [9, 2]))


def test_a_hard_coded_reshape_is_named_and_the_layer_is_judged_behind_it_at_those_sizes():
    # The example's backward is right at 1352 features and 10 classes, and raises at every other size.
    job = Job("examples/seed_style/dense_hardcoded.py:FullyConnectedHardcoded", "dense", "seed", root=str(REPO))
    report = api.check_job(job)
    fault = next(p for p in report.properties if p.status == FAIL)
    assert fault.behind is not None and fault.behind.where == "features=1352, out_features=10"
    assert fault.behind.failed == [] and "grad_bias" in fault.behind.passed
    assert report.outcome()[1] == f"failed: {fault.property} [hard_coded_sizes]"
    text = report.render(front="cli")
    assert "mistake: hard_coded_sizes: line 25 writes sizes down" in text
    assert "at examples/seed_style/dense_hardcoded.py line 25 in backward: dL_dW =" in text
    assert len(text.splitlines()) <= 45


def test_behind_the_hard_coded_line_a_second_bug_is_judged_and_named(tmp_path):
    source = (REPO / "examples" / "seed_style" / "dense_hardcoded.py").read_text()
    (tmp_path / "fc.py").write_text(source.replace("dL_dB = dL_dout\n", "dL_dB = dL_dout.sum(axis=0)\n"))
    report = api.check_job(Job(f"{tmp_path}/fc.py:FullyConnectedHardcoded", "dense", "seed"))
    behind = next(p for p in report.properties if p.status == FAIL).behind
    assert [prop for prop, _, _ in behind.failed] == ["grad_bias"]
    assert behind.mistakes == {"grad_bias": "bias_grad_wrong_axes"}
    assert "grad_input" in behind.passed and "grad_weight" in behind.passed


def test_a_fault_on_a_line_without_sizes_is_not_looked_behind_and_one_with_sizes_is():
    from hypothesis import find

    from checks.pipeline.trial import Trial

    case = find(cs.cases("dense", cs.dense_geometries(batch=2, features_ndim=1, side=2, out_features=1)), bool)
    written = Finding(**{**raised(3).__dict__, "origin": {**raised(3).origin, "text": "x = x.reshape(n, -1)"}})
    assert faults.behind(Trial(case, Raising), "grad_input", written, [], Raising, Options()) is None
    # Raising raises for batch > 1: sizes set on the line never reach the batch, so it raises at each of them
    assert faults.behind(Trial(case, Raising), "grad_input", raised(3), [], Raising, Options()) is None
