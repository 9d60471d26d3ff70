"""checks.sandbox.worker: the user's layer runs in a worker process and every way that process can go wrong
is a clean, typed verdict: a hang (in Python or in C) is a time-out located in the user's code, a death (an
exit status, a signal) is a crash, anything but a reply is garbled; nothing the worker sends is trusted, and
the worker cannot import the checker. The fixture submissions are those of the grading tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from checks import api
from checks.adapt.targets import TargetError
from checks.job import Job
from checks.sandbox import jail, worker

pytest.importorskip("resource")
SUBMISSIONS = Path(__file__).resolve().parents[2] / "fixtures" / "submissions"
CALL = 2.0  # s per call: only a hang reaches it (a call takes milliseconds)

RELU = """
import numpy as np

class ReLULayer:
    def forward(self, x):
        self.x = x
        return np.maximum(x, 0)

    def backward(self, grad):
        {backward}
"""


def fixture(student: str, file: str, cls: str, kind: str, **options) -> api.Report:
    job = Job(f"{student}/{file}:{cls}", kind, "seed", root=str(SUBMISSIONS), max_examples=5, **options)
    return api.check_job(job)


def own(tmp_path: Path, backward: str, *, head: str = "", **options) -> api.Report:
    """Check a ReLU layer written for the test, whose backward is ``backward``."""
    source = textwrap.dedent(head) + RELU.format(backward=backward)
    (tmp_path / "layer.py").write_text(source)
    job = Job(f"{tmp_path}/layer.py:ReLULayer", "relu", "seed", max_examples=5, call_seconds=CALL, **options)
    return api.check_job(job)


def failed(report: api.Report, prop: str = "grad_input"):
    found = [f for p in report.properties if p.property == prop for f in p.findings if f.failed]
    assert found, report.render()
    return found[0]


# -- checks that finish ------------------------------------------------------------------------------------


def test_a_correct_layer_passes_and_the_report_says_where_it_ran():
    report = fixture("alice_correct", "cnn.py", "ReLULayer", "relu")
    assert report.passed and report.outcome() == ("passed", "", "")
    assert report.settings["sandbox"] == worker.sandbox().reason and report.settings["sandbox"].startswith("sandbox: ")


def test_a_buggy_layer_fails_naming_the_property_and_the_mistake():
    report = fixture("bob_buggy", "dense.py", "FullyConnectedLayer", "dense")
    assert report.outcome()[:2] == ("failed", "failed: grad_bias [bias_grad_wrong_axes]")


# -- hangs, deaths, garbage ----------------------------------------------------------------------------------


def test_a_hang_inside_a_c_call_is_a_timeout_located_in_the_users_code():
    report = fixture("carol_hangs", "layers.py", "ReLULayer", "relu", call_seconds=CALL)  # einsum never ends
    status, reason, where = report.outcome()
    assert status == "timeout" and "did not return within 7 s" in reason and "in property grad_input" in reason
    assert where == "carol_hangs/layers.py line 41 in backward"  # the einsum line: the stack was in C
    assert failed(report).origin["text"].startswith("scale = np.einsum(")


def test_a_python_loop_is_stopped_by_the_workers_own_limit_and_located():
    report = fixture("carol_hangs", "layers.py", "ConvLayer", "conv", call_seconds=CALL)
    status, reason, where = report.outcome()
    assert status == "timeout" and "did not return within 2 s" in reason
    assert where.startswith("carol_hangs/layers.py line ") and where.endswith(" in backward")


def test_os_exit_in_backward_is_a_crash_with_the_exit_status():
    report = fixture("frank_exits", "layers.py", "ReLULayer", "relu")
    status, reason, _ = report.outcome()
    assert status == "crashed" and "the layer's process exited with status 7" in reason
    assert failed(report).cause == "crash"


def test_a_segfault_is_a_crash_located_in_the_users_code():
    report = fixture("grace_segfault", "layers.py", "ConvLayer", "conv")
    status, reason, where = report.outcome()
    assert status == "crashed" and "segmentation fault (SIGSEGV)" in reason and "in property forward" in reason
    assert where == "grace_segfault/layers.py line 15 in forward"


def test_an_exit_status_of_zero_from_the_layer_is_still_a_crash(tmp_path):
    report = own(tmp_path, "import os; os._exit(0)")
    assert report.outcome()[0] == "crashed" and not report.passed


def test_garbage_written_to_the_reply_pipe_is_garbled_never_a_verdict(tmp_path):
    head = "import os, sys\n"
    report = own(tmp_path, "os.write(int(sys.argv[2]), b'\\x00' * 7 + b'\\x10{not a frame}'); return grad", head=head)
    assert report.outcome()[0] == "crashed" and failed(report).cause == "garbled"
    report = own(tmp_path, "os.write(int(sys.argv[2]), b'\\xff' * 64); return grad", head=head)
    assert report.outcome()[0] == "crashed" and "answered" in failed(report).message


def test_the_whole_check_has_a_wall_clock_limit(tmp_path):
    (tmp_path / "layer.py").write_text(RELU.format(backward="import time; time.sleep(60)"))
    job = Job(f"{tmp_path}/layer.py:ReLULayer", "relu", "seed", max_examples=5, call_seconds=None)
    report = api.check_job(job, wall_seconds=3)
    assert report.outcome()[0] == "timeout" and "the whole check ran out of time" in failed(report).message


# -- what the worker can import --------------------------------------------------------------------------


@pytest.mark.parametrize("module", ["checks.pipeline.runner", "checks.compare", "hypothesis", "torch", "cnn"])
def test_the_worker_cannot_import_the_checker(tmp_path, module):
    report = own(tmp_path, f"import {module}; return grad")
    finding = failed(report)
    assert finding.cause == "raised" and "is not available inside the layer's sandbox" in finding.message


def test_the_users_spec_may_import_the_spec_classes(tmp_path):
    (tmp_path / "spec.py").write_text(
        "from checks import LayerSpec\n"
        "class ReLU:\n"
        "    def forward(self, x):\n        self.x = x\n        return x * (x > 0)\n"
        "    def backward(self, g):\n        return g * (self.x > 0)\n"
        "spec = LayerSpec('relu', lambda g: ReLU(), input_layout='ND')\n"
    )
    assert api.check_job(Job(f"{tmp_path}/spec.py:spec", max_examples=5)).passed


# -- loading -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("student", "cls", "kind", "words"),
    [
        ("heidi_syntax_error", "ReLULayer", "relu", "heidi_syntax_error/layers.py: line 7: SyntaxError"),
        ("ivan_missing_dependency", "ConvLayer", "conv", "No module named 'ivan_helpers'"),
        ("alice_correct", "NoSuchLayer", "relu", "no name 'NoSuchLayer'"),
    ],
)
def test_a_target_that_cannot_be_loaded_is_a_target_error(student, cls, kind, words):
    with pytest.raises(TargetError) as info:
        fixture(student, "layers.py" if student != "alice_correct" else "cnn.py", cls, kind)
    assert words in str(info.value)


def test_sys_exit_and_os_exit_at_import_are_load_failures(tmp_path):
    (tmp_path / "a.py").write_text("import sys\nsys.exit(3)\n")
    with pytest.raises(TargetError, match=r"sys.exit\(3\)"):
        api.check_job(Job(f"{tmp_path}/a.py:X", "relu", "seed"))
    (tmp_path / "b.py").write_text("import os\nos._exit(0)\n")
    with pytest.raises(TargetError, match="exited with status 0") as info:
        api.check_job(Job(f"{tmp_path}/b.py:X", "relu", "seed"))
    assert info.value.cause.value == "crash"


# -- the fallback ----------------------------------------------------------------------------------------


def test_where_namespaces_are_unavailable_the_check_runs_with_process_isolation_and_says_so(monkeypatch):
    monkeypatch.setitem(worker._CAPS, "caps", jail.probe(force="process"))
    report = fixture("bob_buggy", "dense.py", "FullyConnectedLayer", "dense")
    assert report.settings["sandbox"].startswith("sandbox: process only")
    assert report.outcome()[:2] == ("failed", "failed: grad_bias [bias_grad_wrong_axes]")
    report = fixture("frank_exits", "layers.py", "ReLULayer", "relu")
    assert report.outcome()[0] == "crashed"


def test_the_in_process_escape_hatch_is_marked_not_a_gate():
    report = api.check_job(
        Job("alice_correct/cnn.py:ReLULayer", "relu", "seed", root=str(SUBMISSIONS)), in_process=True
    )
    assert report.passed and "not a gate" in report.settings["sandbox"]


@pytest.mark.parametrize("in_process", [False, True])
def test_an_array_of_objects_as_a_gradient_is_a_failed_check_not_an_internal_error(tmp_path, in_process):
    (tmp_path / "layer.py").write_text(
        RELU.format(backward="return np.array([object()] * grad.size, dtype=object).reshape(grad.shape)")
    )
    job = Job(f"{tmp_path}/layer.py:ReLULayer", "relu", "seed", max_examples=5, call_seconds=CALL)
    report = api.check_job(job, in_process=in_process)
    assert report.outcome()[0] == "failed"
    assert failed(report).cause in ("dtype", "type")


# -- the worker's bounded store of layers ----------------------------------------------------------------------


def test_a_layer_the_worker_evicted_is_built_again_and_answers_the_same(tmp_path):
    # A trial kept for the report (the minimal failing case) outlives its layer in the worker, which keeps
    # at most MAX_SUBJECTS: asking it again must not turn into a garbled reply or a failed property.
    from checks.adapt.serve import MAX_SUBJECTS
    from checks.case import Case
    from checks.geometry import ElementwiseGeometry

    (tmp_path / "layer.py").write_text(textwrap.dedent(RELU.format(backward="return grad * (self.x > 0)")))
    x = np.array([[1.0, -2.0, 3.0]])
    case = Case("relu", ElementwiseGeometry((1, 3)), {"input": x}, np.array([[0.5, 0.5, 2.0]]))
    with worker.Session.start(Job(f"{tmp_path}/layer.py:ReLULayer", "relu", "seed")) as session:
        kept = session.subject(case)
        z, grads = kept.forward_backward(case.inputs, case.upstream)
        for _ in range(MAX_SUBJECTS):
            session.subject(case)
        assert np.array_equal(kept.backward(case.upstream)["input"], grads["input"])  # built, forward redone
        assert np.array_equal(kept.forward(case.inputs), z)
