"""Failure explanations (checks.explain): worst entries in the user's own layout, kink verdicts, the
reproduction snippet, and the report fields (render, JSON, documented schema)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import cnn
from checks import explain
from checks.adapt import layouts, presets, targets
from checks.adapt.adapters import LayerSpec, Param
from checks.case import Case
from checks.explain.mistakes import mistaken
from checks.explain.rerun import as_case
from checks.findings import FAIL
from checks.geometry import ConvGeometry, ElementwiseGeometry, PoolGeometry
from checks.kinds import reference_subject
from checks.pipeline import properties
from checks.pipeline.trial import Trial
from checks.report import SCHEMA_VERSION, PropertyReport, Report

REPO = Path(__file__).resolve().parents[3]
ALL_TIES = "examples/seed_style/maxpool_all_ties.py:MaxPoolAllTies"


def failing_report(spec_or_factory, case: Case, prop: str, target: str = "layer.py:Layer") -> Report:
    """What the runner hands over for a property that failed on ``case``: findings plus the trial."""
    factory = spec_or_factory.subject if isinstance(spec_or_factory, LayerSpec) else spec_or_factory
    trial = Trial(case, factory)
    findings = properties.get(prop)(trial)
    assert any(f.failed for f in findings), "the fixture layer must fail this property"
    report = Report(target, case.kind, [PropertyReport(prop, FAIL, 1, {}, findings, "replay: --seed 0", trial=trial)])
    explain.annotate(report, spec_or_factory if isinstance(spec_or_factory, LayerSpec) else None)
    return report


def _values(rng, shape):
    return rng.uniform(0.1, 1.0, shape) * rng.choice([-1.0, 1.0], shape)


def conv_case(n=2, c=2, h=4, w=3, f=2, k=2, bias=True, seed=3) -> Case:
    g = ConvGeometry(n, c, h, w, f, (k, k), bias=bias)
    rng = np.random.default_rng(seed)
    inputs = {"input": _values(rng, g.input_shape), "weight": _values(rng, g.param_shapes["weight"])}
    if bias:
        inputs["bias"] = _values(rng, (f,))
    return Case("conv", g, inputs, _values(rng, g.output_shape) * 2)


# -- indices in the user's layout ------------------------------------------------------------------

WRONG = {"input": (1, 2, 0, 1), "weight": (1, 0, 1, 0), "bias": (1,)}  # NHWC, HWCF, (F,)


class ChannelsLastConv:
    """x (N, H, W, C), kernel (kh, kw, C, F); exact except for one entry of ``self.wrong``'s gradient."""

    def __init__(self, c, f, k, wrong):
        self.kernel, self.bias, self.k, self.wrong = np.zeros((k, k, c, f)), np.zeros(f), k, wrong

    def forward(self, x):
        self.x = x.transpose(0, 3, 1, 2)
        return cnn.conv2d(self.x, self.kernel.transpose(3, 2, 0, 1), self.bias).transpose(0, 2, 3, 1)

    def backward(self, dout):
        g = dout.transpose(0, 3, 1, 2)
        grads = {
            "input": cnn.conv2d_grad_input(g, self.kernel.transpose(3, 2, 0, 1), self.x.shape).transpose(0, 2, 3, 1),
            "weight": cnn.conv2d_grad_weight(g, self.x, self.k).transpose(2, 3, 1, 0),
            "bias": cnn.conv2d_grad_bias(g),
        }
        grads[self.wrong][WRONG[self.wrong]] += 0.5
        self.dkernel, self.dbias = grads["weight"], grads["bias"]
        return grads["input"]


def nhwc_spec(wrong: str) -> LayerSpec:
    return LayerSpec(
        "conv",
        lambda g: ChannelsLastConv(g.in_channels, g.filters, g.kernel[0], wrong),
        input_layout="NHWC",
        params={"weight": Param("kernel", "HWCF", grad="dkernel"), "bias": Param("bias", grad="dbias")},
    )


@pytest.mark.parametrize(("name", "axes"), [("input", "nhwc"), ("weight", "uvcf"), ("bias", None)])
def test_the_wrong_entry_is_reported_at_its_index_in_the_users_layout(name, axes):
    case = conv_case()
    details = failing_report(nhwc_spec(name), case, f"grad_{name}").properties[0].details
    assert details.error is None and details.verdict == "values"
    assert details.axes == axes and details.mismatched == 1 and details.total == case.inputs[name].size
    (entry,) = details.worst
    assert entry.index == WRONG[name]
    marker = np.zeros(case.inputs[name].shape)
    marker[entry.canonical] = 1
    user = {"input": lambda a: layouts.to_user(a, "NHWC"), "weight": lambda a: layouts.weight_to_user(a, "HWCF")}
    assert tuple(np.argwhere(user.get(name, lambda a: a)(marker))[0]) == WRONG[name]
    assert entry.layer - entry.expected == pytest.approx(0.5)
    assert entry.torch == pytest.approx(entry.expected) and entry.fd == pytest.approx(entry.expected, rel=1e-6)
    assert entry.rel_err == pytest.approx(0.5 / abs(entry.expected))


class SeedConv:
    """Seed-article conv: (H, W) -> (H', W', F), filters (F, k, k), SGD in backward; one wrong entry
    in dL/dinput at (h=2, w=1) and in dL/dfilters at (f=1, u=0, v=1)."""

    def __init__(self, num_filters, filter_size, lr=0.1):
        self.filters, self.lr = np.zeros((num_filters, filter_size, filter_size)), lr

    def forward(self, x):
        self.x = x
        return cnn.conv2d(x[None, None], self.filters[:, None])[0].transpose(1, 2, 0)

    def backward(self, d):
        g = d.transpose(2, 0, 1)[None]
        dx = cnn.conv2d_grad_input(g, self.filters[:, None], (1, 1, *self.x.shape))[0, 0]
        dk = cnn.conv2d_grad_weight(g, self.x[None, None], self.filters.shape[-1])[:, 0]
        dx[2, 1] += 1.0
        dk[1, 0, 1] -= 1.0
        self.filters -= self.lr * dk
        return dx


@pytest.mark.parametrize(("name", "axes", "index"), [("input", "hw", (2, 1)), ("weight", "fuv", (1, 0, 1))])
def test_seed_layouts_name_entries_as_h_w_and_f_u_v(name, axes, index):
    spec = presets.seed("conv", SeedConv)
    details = failing_report(spec, conv_case(1, 1, 4, 4, 2, bias=False), f"grad_{name}").properties[0].details
    assert (details.layout, details.axes) == (spec.input_layout if name == "input" else "FHW", axes)
    assert [e.index for e in details.worst] == [index]


def test_at_most_k_worst_entries_are_listed_worst_first():
    case = conv_case()
    trial = Trial(case, mistaken("kernel_flipped"))
    details, _ = explain.explain(trial, "input", k=3)
    assert len(details.worst) == 3 and details.mismatched > 3
    ratios = [e.abs_err for e in details.worst]
    assert ratios == sorted(ratios, reverse=True)


def test_an_fd_only_failure_is_located_against_finite_differences():
    class DoubledForward:  # right backward, forward off by a factor: only the fd oracle disagrees
        def __init__(self, case):
            self.inner = reference_subject(case)

        def forward(self, inputs):
            return self.inner.forward(inputs) * 2.0

        def backward(self, g):
            return self.inner.backward(g)

    x = np.array([[0.5, -0.25, 0.75]])
    case = Case("relu", ElementwiseGeometry((1, 3)), {"input": x}, np.array([[1.5, -0.5, 1.25]]))
    p = failing_report(DoubledForward, case, "grad_input").properties[0]
    assert p.details.expected_source == "fd" and p.details.mismatched == 2
    assert p.diagnosis.patterns[0].name == "agrees" and p.diagnosis.mistake is None


# -- kinks -----------------------------------------------------------------------------------------


def ties_case() -> Case:
    x = np.array([[[0.5, 0.5, 0.1, 0.2], [0.3, 0.1, 0.9, 0.4], [0.7, 0.7, 0.2, 0.6], [0.7, 0.1, 0.6, 0.3]]])[None]
    g = PoolGeometry(1, 1, 4, 4, (2, 2), (2, 2))
    return Case("maxpool", g, {"input": x}, np.array([[[[1.5, -0.5], [0.25, -1.0]]]]), mode="ties")


def test_a_max_pool_tie_failure_lists_the_windows_with_their_maxima_in_the_users_layout():
    spec = targets.load(ALL_TIES, kind="maxpool", preset="seed")
    p = failing_report(spec, ties_case(), "grad_input", ALL_TIES).properties[0]
    d = p.details
    assert (d.verdict, d.unit, d.mismatched, d.total) == ("subgradient", "windows", 3, 4)
    assert (d.layout, d.axes, d.window_axes) == ("HWC", "hwc", "ijc")
    first = d.windows[0]  # window (0, 0): two tied maxima, each given the full G
    assert first.window == (0, 0, 0) and first.maxima == [(0, 0, 0), (0, 1, 0)]
    assert (first.upstream, first.sent, first.elsewhere, first.share_range) == (1.5, 3.0, 0.0, (0.0, 1.5))
    assert [w.window for w in d.windows] == [(0, 0, 0), (1, 1, 0), (1, 0, 0)]  # worst first
    assert d.windows[1].maxima == [(2, 3, 0), (3, 2, 0)] and d.windows[1].share_range == (-1.0, 0.0)
    assert d.windows[2].maxima == [(2, 0, 0), (2, 1, 0), (3, 0, 0)] and d.windows[2].sent == pytest.approx(0.75)
    assert p.diagnosis.mistake == "route_to_all_ties"


def test_a_relu_kink_failure_gives_each_entrys_allowed_range():
    x = np.array([[0.0, -0.5, 0.75, 0.0]])
    case = Case("relu", ElementwiseGeometry((1, 4)), {"input": x}, np.array([[1.5, -0.5, 1.25, -2.0]]), mode="zeros")
    d = failing_report(mistaken("relu_never_masks"), case, "grad_input").properties[0].details
    assert d.verdict == "subgradient" and d.mismatched == 1
    (entry,) = d.worst
    assert entry.index == (0, 1) and entry.allowed == (0.0, 0.0) and entry.layer == -0.5


# -- reproduction ----------------------------------------------------------------------------------


def test_the_snippet_rebuilds_the_case_exactly_and_reproduces_the_failure(monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    report = failing_report(targets.load(ALL_TIES, kind="maxpool", preset="seed"), ties_case(), "grad_input", ALL_TIES)
    p = report.properties[0]
    code = p.details.reproduction
    assert f'reproduce("{ALL_TIES}", case, kind="maxpool", preset="seed", gradient="input")' in code
    namespace: dict = {}
    exec(code.rsplit("\n", 1)[0], namespace)  # everything but the reproduce() call
    rebuilt = as_case(namespace["case"])
    assert np.array_equal(rebuilt.inputs["input"], p.trial.pristine.inputs["input"])
    assert np.array_equal(rebuilt.upstream, p.trial.pristine.upstream) and rebuilt.geometry == p.trial.case.geometry
    exec(code, {})
    out = capsys.readouterr().out
    assert "dL/dinput from your layer (layout HWC)" in out and "expected (torch)" in out
    assert "FAIL         grad_input [subgradient]: window (0, 0, 1, 0) sends 0.75" in out and "kink" in out


def test_the_snippet_without_a_file_target_asks_for_the_spec_and_keeps_every_digit():
    case = conv_case()
    case.inputs["input"][0, 0, 0, 0] = 1 / 3 + 1e-12  # 17 significant digits to keep
    code = explain.snippet("conv", None, case, "input")
    assert "spec = ..." in code and 'reproduce(spec, case, gradient="input")' in code
    namespace: dict = {}
    exec(code.replace("spec = ...", "spec = None").rsplit("\n", 1)[0], namespace)
    rebuilt = as_case(namespace["case"])
    for name, value in case.inputs.items():
        assert np.array_equal(rebuilt.inputs[name], value), name
    assert np.array_equal(rebuilt.upstream, case.upstream)


def test_reproduce_says_whether_the_layer_is_right():
    case = conv_case()
    lines: list[str] = []
    results = explain.reproduce(nhwc_spec("weight"), case, out=lines.append)
    assert {k: v["ok"] for k, v in results.items()} == {"input": True, "weight": False, "bias": True}
    assert results["weight"]["layer"].shape == (2, 2, 2, 2) and "layout HWCF" in "\n".join(lines)


# -- the report fields -----------------------------------------------------------------------------


def test_render_and_json_carry_the_explanation():
    report = failing_report(mistaken("kernel_flipped"), conv_case(), "grad_input", "conv_flipped")
    text = report.render()
    for part in ("where: ", "diagnosis: kernel_flipped", "right formula:", "reproduce (Python):"):
        assert part in text
    data = json.loads(report.to_json())
    assert data["schema_version"] == SCHEMA_VERSION == 2
    prop = data["properties"][0]
    assert prop["diagnosis"]["mistake"] == "kernel_flipped"
    assert prop["details"]["worst"][0]["index"] == list(report.properties[0].details.worst[0].index)
    assert prop["details"]["case"]["inputs"]["input"] == report.properties[0].trial.pristine.inputs["input"].tolist()


def test_every_json_field_is_documented_in_the_schema():
    report = failing_report(mistaken("kernel_flipped"), conv_case(), "grad_input", "conv_flipped")
    doc = (REPO / "docs" / "report-schema.md").read_text()
    documented = set(re.findall(r"`([a-z_]+)`", doc))

    def keys(value, prefix=""):
        if isinstance(value, dict) and prefix not in ("oracles", "inputs", "settings", "geometry"):
            for key, item in value.items():
                yield key
                yield from keys(item, key)
        elif isinstance(value, list):
            for item in value:
                yield from keys(item, prefix)

    missing = set(keys(report.to_dict())) - documented
    assert not missing, f"fields not documented in docs/report-schema.md: {sorted(missing)}"
    assert f"schema_version` is {SCHEMA_VERSION}" in doc


def test_annotate_only_touches_failing_gradients_and_never_raises(monkeypatch):
    report = failing_report(mistaken("kernel_flipped"), conv_case(), "grad_input")
    trial = report.properties[0].trial
    report.properties.append(PropertyReport("grad_weight", "pass", 3, trial=trial))
    report.properties.append(PropertyReport("linearity", FAIL, 1, trial=trial))

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(explain, "explain", boom)
    explain.annotate(report)
    first, passing, structural = report.properties
    assert first.details.error == "RuntimeError: boom" and "could not explain" in report.render()
    assert passing.details is None and structural.details is None
