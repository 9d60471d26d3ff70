"""Heatmaps of failing gradients (checks.explain.plots): a PNG per explained failure, a clear error without
matplotlib."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from checks import explain
from checks.case import Case
from checks.explain import plots
from checks.explain.mistakes import mistaken
from checks.findings import FAIL
from checks.geometry import ConvGeometry
from checks.pipeline import properties
from checks.pipeline.trial import Options, Trial
from checks.report import PropertyReport, Report

needs_matplotlib = pytest.mark.skipif(not plots.plots_available()[0], reason=plots.plots_available()[1])


def explained_report(mistake: str, name: str, batch: int = 1) -> Report:
    g = ConvGeometry(batch, 1, 4, 4, 1, (2, 2))  # one image, one filter: one row of heatmaps
    rng = np.random.default_rng(5)
    inputs = {k: rng.uniform(0.1, 1.0, s) for k, s in {"input": g.input_shape, **g.param_shapes}.items()}
    trial = Trial(Case("conv", g, inputs, rng.uniform(-2, 2, g.output_shape)), mistaken(mistake), Options(()))
    findings = properties.get(f"grad_{name}")(trial)
    report = Report(
        "my layers/conv.py:Conv", "conv", [PropertyReport(f"grad_{name}", FAIL, 1, {}, findings, trial=trial)]
    )
    explain.annotate(report)
    return report


@needs_matplotlib
def test_a_png_is_written_per_failing_gradient(tmp_path):
    report = explained_report("kernel_flipped", "input")
    report.properties += explained_report("conv_weight_transposed", "weight").properties
    report.properties.append(PropertyReport("grad_bias", "pass", 4))
    paths = plots.write_plots(report, tmp_path / "plots")
    assert [p.name for p in paths] == [
        "my_layers_conv.py_Conv.grad_input.png",
        "my_layers_conv.py_Conv.grad_weight.png",
    ]
    for path in paths:
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000


@needs_matplotlib
def test_a_gradient_of_the_wrong_shape_has_nothing_to_draw(tmp_path):
    report = explained_report("empty_crop_at_pad0", "input", batch=2)
    assert report.properties[0].details.verdict == "shape"
    assert plots.write_plots(report, tmp_path) == []


def test_without_matplotlib_there_is_a_clear_message_not_a_crash(monkeypatch, tmp_path):
    real = importlib.import_module

    def no_matplotlib(name, *args, **kwargs):
        if name.split(".")[0] == "matplotlib":
            raise ImportError("No module named 'matplotlib'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(plots.importlib, "import_module", no_matplotlib)
    ok, why = plots.plots_available()
    assert not ok and "pip install" in why and "matplotlib" in why
    with pytest.raises(plots.PlotsUnavailable, match="pip install"):
        plots.write_plots(Report("t", "conv", []), tmp_path)
    assert not any(tmp_path.iterdir())
