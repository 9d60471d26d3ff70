"""checks.front.html: a Report as HTML for Jupyter. Every text from the report (so from the user's code) is
escaped; a passing, a not-judged and an errored report each say so in the header and the verdict table; a failing
gradient shows its worst entries or windows, the patterns, the named mistake with its right formula, the
reproduction in a <pre> and its heatmap (inline with matplotlib, a one-line note without); Report._repr_html_ and
_repr_pretty_ delegate to it and to render()."""

from __future__ import annotations

import base64
import html
import re

import numpy as np
import pytest

from checks import LayerSpec, check, explain
from checks.case import Case
from checks.explain import plots
from checks.explain.mistakes import mistaken
from checks.findings import FAIL, NOT_JUDGED, PASS, SKIP, Finding
from checks.front import html as page
from checks.geometry import ConvGeometry, PoolGeometry
from checks.pipeline import properties
from checks.pipeline.trial import Options, Trial
from checks.report import PropertyReport, Report

needs_matplotlib = pytest.mark.skipif(not plots.plots_available()[0], reason=plots.plots_available()[1])

HOSTILE_TARGET = '"><img src=x onerror="alert(1)">'
HOSTILE_TEXT = "<script>alert('pwned')</script> & \"quotes\""


class RaisesHostileText:
    """A ReLU whose backward raises with markup in its message, on a line that holds the same markup."""

    def forward(self, x):
        return np.maximum(x, 0)

    def backward(self, dout):
        raise ValueError("<script>alert('pwned')</script> & \"quotes\"")


def markup_problems(text: str) -> list[str]:
    """Every ``<`` must open one of the module's own tags (page.TAGS) and every ``>`` close one: text that was
    not escaped (``<script>``, ``x < 0``) breaks one of the two."""
    problems = [f"<{s}{t}" for s, t in re.findall(r"<(/?)([a-zA-Z0-9]*)", text) if t not in page.TAGS]
    if text.count("<") != text.count(">"):
        problems.append(f"{text.count('<')} '<' but {text.count('>')} '>'")
    return problems


def visible(markup: str) -> str:
    """The text a reader sees: tags dropped, entities unescaped."""
    return html.unescape(re.sub(r"<[^>]*>", "", markup))


def rows(markup: str) -> dict[str, list[str]]:
    """The verdict table: property -> its cells as text."""
    out = {}
    for row in re.findall(r"<tr>(.*?)</tr>", markup):
        cells = [visible(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        if cells:
            out[cells[0]] = cells
    return out


def explained(kind: str, g, mistake: str, name: str, inputs: dict, upstream: np.ndarray) -> Report:
    """A one-property report of the reference layer with ``mistake``, judged and explained as a check would."""
    trial = Trial(Case(kind, g, inputs, upstream), mistaken(mistake), Options(()))
    report = Report(
        "my layers/layer.py:Layer",
        kind,
        [PropertyReport(f"grad_{name}", FAIL, 1, {}, properties.get(f"grad_{name}")(trial), trial=trial)],
    )
    explain.annotate(report)
    return report


def flipped_conv() -> Report:
    g = ConvGeometry(1, 1, 4, 4, 1, (2, 2))
    rng = np.random.default_rng(5)
    inputs = {k: rng.uniform(0.1, 1.0, s) for k, s in {"input": g.input_shape, **g.param_shapes}.items()}
    return explained("conv", g, "kernel_flipped", "input", inputs, rng.uniform(-2, 2, g.output_shape))


@pytest.fixture(scope="module")
def hostile() -> Report:
    """A real (in-process) check of a layer that raises markup, under a target name that is markup."""
    spec = LayerSpec("relu", lambda g: RaisesHostileText(), input_layout="ND")
    return check(spec, in_process=True, max_examples=5, target=HOSTILE_TARGET)


# -- escaping ------------------------------------------------------------------------------------------


def test_a_layers_hostile_exception_message_source_line_and_target_are_escaped(hostile):
    out = page.report_html(hostile)
    assert markup_problems(out) == []
    assert "<script" not in out.lower() and 'onerror="' not in out  # the target's <img> is text, not an element
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt; &amp; &quot;quotes&quot;" in out
    text = visible(out)
    assert f"raised ValueError: {HOSTILE_TEXT}" in text  # escaped, not lost
    line = next(i for i, s in enumerate(open(__file__).read().splitlines(), 1) if "raise ValueError(" in s)
    assert f"test_html.py line {line} in backward: " in text  # the user's file and line
    assert 'raise ValueError("<script>alert(\'pwned\')</script> & \\"quotes\\"")' in text
    assert text.lstrip().startswith(f"FAIL {HOSTILE_TARGET} (relu)")


def test_without_escaping_the_same_report_would_break_the_markup(hostile, monkeypatch):
    monkeypatch.setattr(page, "_esc", lambda value: page.Markup(str(value)))  # a renderer that forgot to escape
    out = page.report_html(hostile, heatmaps=False)
    assert "<script" in markup_problems(out) and 'onerror="' in out


def test_an_attribute_value_cannot_close_its_quotes():
    assert (
        page._void("img", alt=HOSTILE_TARGET) == '<img alt="&quot;&gt;&lt;img src=x onerror=&quot;alert(1)&quot;&gt;">'
    )
    assert markup_problems(page._void("img", alt=HOSTILE_TARGET)) == []


# -- the verdicts ----------------------------------------------------------------------------------------


def test_a_passing_report_says_pass_with_its_table_and_no_failure_section():
    report = Report(
        "layers.py:ReLU",
        "relu",
        [
            PropertyReport("forward", PASS, 25, {"torch": 25}),
            PropertyReport("grad_input", PASS, 25, {"fd": 15, "subgradient": 10, "torch": 15}),
        ],
        {"sandbox": "sandbox: process only (not root)"},
    )
    out = page.report_html(report)
    assert markup_problems(out) == []
    assert page.verdict(report) == "PASS" == report.render().splitlines()[0].split()[-1]
    assert rows(out) == {
        "forward": ["forward", "PASS", "25", "torch 25", "0", ""],
        "grad_input": ["grad_input", "PASS", "25", "fd 15, subgradient 10, torch 15", "0", ""],
    }
    assert "<h4>" not in out and "FAIL" not in out
    assert "sandbox: process only (not root)" in visible(out)
    assert "judged by: fd, subgradient, torch" in visible(out)


def test_a_not_judged_report_is_never_shown_as_a_pass():
    why = "not judged: no oracle could compare it (--oracles torch and torch does not import)"
    report = Report(
        "layers.py:ReLU",
        "relu",
        [
            PropertyReport("forward", SKIP, 25, {}, [Finding("forward", SKIP, "torch is missing", "torch")]),
            PropertyReport("grad_input", NOT_JUDGED, 25, {}, [Finding("grad_input", SKIP, why)], unjudged=25),
        ],
    )
    out = page.report_html(report)
    assert markup_problems(out) == []
    assert page.verdict(report) == "NOT JUDGED" and report.render().splitlines()[0].endswith(": NOT JUDGED")
    assert visible(out).lstrip().startswith("NOT JUDGED layers.py:ReLU (relu)")
    assert "not judged: grad_input (no oracle could compare them)" in visible(out)
    assert rows(out)["grad_input"] == ["grad_input", "NOT JUDGED", "25", "-", "25", why[len("not judged: ") :]]
    assert rows(out)["forward"][1::4] == ["SKIP", "torch is missing"]
    assert "PASS" not in out and "judged by: no oracle" in visible(out)


def test_a_report_with_an_error_shows_the_error_escaped_and_no_table():
    report = Report("broken.py:<Conv>", "conv", [], error="could not load broken.py: <class 'SyntaxError'>")
    out = page.report_html(report)
    assert markup_problems(out) == []
    assert visible(out).lstrip().startswith("FAIL broken.py:<Conv> (conv)")
    assert "error: could not load broken.py: <class 'SyntaxError'>" in visible(out)
    assert "<table" not in out and "judged by" not in out  # as render(): an error ends the report


def test_a_layer_that_hung_says_how_the_check_ended_and_where_in_its_code():
    origin = {"file": "layers/<spin>.py", "line": 7, "function": "backward", "text": "while x < 1: pass"}
    hung = Finding("grad_input", FAIL, "the layer did not return within 10 s", cause="timeout", origin=origin)
    report = Report("layers/<spin>.py:Spin", "relu", [PropertyReport("grad_input", FAIL, 1, {}, [hung])])
    out = page.report_html(report, heatmaps=False)
    assert markup_problems(out) == []
    header = visible(re.search(r'<div style="margin-bottom: 0.4em">(.*?)</div></div>', out).group(1))
    assert "timeout: the layer did not return within 10 s (in property grad_input)" in header
    assert "in layers/<spin>.py line 7 in backward" in header
    assert "at layers/<spin>.py line 7 in backward: while x < 1: pass" in visible(out)  # the finding's own line


# -- a failing gradient ------------------------------------------------------------------------------------


def test_a_failing_gradient_shows_worst_entries_pattern_named_mistake_formula_and_reproduction():
    report = flipped_conv()
    p = report.properties[0]
    out = page.report_html(report, heatmaps=False)
    assert markup_problems(out) == []
    text = visible(out)
    assert "where: 16 of 16 entries of dL/dinput are wrong against the NumPy reference" in text
    header = [visible(h) for h in re.findall(r"<th[^>]*>(.*?)</th>", out)]
    assert header[-5:] == ["index", "layer", "fd", "reference", "rel err"]
    for e in p.details.worst:  # the reference column is the exact value; no fd without the fd oracle
        assert rows(out)[str(e.index)] == [str(e.index), f"{e.layer:.6g}", "-", f"{e.expected:.6g}", f"{e.rel_err:.3g}"]
    assert "pattern: wrong everywhere: 16 of 16 entries" in text
    assert "diagnosis: <b>kernel_flipped</b>" in out
    assert f"right formula: {p.diagnosis.matches[0].formula}" in text
    [snippet] = re.findall(r"<pre>(.*?)</pre>", out, re.S)
    assert html.unescape(snippet) == p.details.reproduction
    assert rows(out)["grad_input"][-1] == "kernel_flipped"


def test_a_max_pool_failure_at_ties_lists_the_windows_that_break_the_rule():
    g = PoolGeometry(1, 1, 4, 4, (2, 2), (2, 2))
    ties = {"input": np.zeros(g.input_shape)}  # every window is one four-way tie
    report = explained("maxpool", g, "route_to_all_ties", "input", ties, np.ones(g.output_shape))
    out = page.report_html(report, heatmaps=False)
    assert markup_problems(out) == []
    assert "where: 4 of 4 pool windows break the max-pool rule" in visible(out)
    maxima = "(0, 0, 0, 0), (0, 0, 0, 1), (0, 0, 1, 0), (0, 0, 1, 1)"
    assert rows(out)["(0, 0, 0, 0)"] == ["(0, 0, 0, 0)", "1", maxima, "4", "[0, 1]", "0"]  # G 1 sent 4 times
    assert "diagnosis: <b>route_to_all_ties</b>" in out


def test_a_case_whose_shrinking_ran_out_of_time_says_it_may_not_be_the_smallest():
    report = flipped_conv()
    assert "shrinking" not in page.report_html(report, heatmaps=False)  # shrinking finished: nothing to say
    report.properties[0].shrink_stopped = 20.0
    out = page.report_html(report, heatmaps=False)
    said = "shrinking stopped after 20 s at the smallest failing case so far (more time: check(..., shrink_seconds=S))"
    assert said in visible(out)
    assert said in " ".join(report.render().split())  # the API's words, as render(front="api") (it wraps lines)


def test_a_correct_gradient_in_a_failing_report_is_not_explained():
    report = flipped_conv()
    report.properties.append(PropertyReport("grad_weight", PASS, 4, {"reference": 4}))
    out = page.report_html(report, heatmaps=False)
    assert out.count("<h4>") == 1 and "<h4>grad_input: " in out


# -- the heatmap ---------------------------------------------------------------------------------------------


@needs_matplotlib
def test_the_heatmap_is_an_inline_png_drawn_without_pyplot(monkeypatch):
    def no_pyplot():
        raise AssertionError("pyplot would switch the notebook's backend and close its figures")

    monkeypatch.setattr(plots, "_pyplot", no_pyplot)
    out = page.report_html(flipped_conv())
    [src] = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', out)
    png = base64.b64decode(src)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    assert "no heatmap" not in out


def test_without_matplotlib_there_is_no_image_and_one_line_says_why(monkeypatch):
    monkeypatch.setattr(plots, "plots_available", lambda: (False, "matplotlib is not importable; pip install it"))
    out = page.report_html(flipped_conv())
    assert "<img" not in out
    notes = [line for line in re.findall(r"<p[^>]*>(.*?)</p>", out) if "heatmap" in line]
    assert notes == ["no heatmap: matplotlib is not importable; pip install it"]


def test_a_heatmap_that_cannot_be_drawn_is_a_note_not_a_broken_report(monkeypatch):
    if not plots.plots_available()[0]:
        pytest.skip(plots.plots_available()[1])

    def broken(*args, **kwargs):
        raise ValueError("<no picture>")

    monkeypatch.setattr(plots, "draw_figure", broken)
    out = page.report_html(flipped_conv())
    assert "no heatmap: ValueError: &lt;no picture&gt;" in out and "<img" not in out
    assert "diagnosis: <b>kernel_flipped</b>" in out


def test_a_gradient_of_the_wrong_shape_has_nothing_to_draw_and_says_its_shape(monkeypatch):
    monkeypatch.setattr(plots, "plots_available", lambda: (False, "no matplotlib"))
    g = ConvGeometry(2, 1, 4, 4, 1, (2, 2))
    rng = np.random.default_rng(5)
    inputs = {k: rng.uniform(0.1, 1.0, s) for k, s in {"input": g.input_shape, **g.param_shapes}.items()}
    report = explained("conv", g, "empty_crop_at_pad0", "input", inputs, rng.uniform(-2, 2, g.output_shape))
    out = page.report_html(report)
    assert "where: dL/dinput has shape (2, 1, 0, 0) (your layout NCHW); expected shape (2, 1, 4, 4)" in visible(out)
    assert "<img" not in out and "heatmap" not in out  # no picture, and no note about a missing one


# -- the delegates -------------------------------------------------------------------------------------------


class Printer:
    """IPython's pretty printer, as far as _repr_pretty_ uses it."""

    def __init__(self) -> None:
        self.out: list[str] = []

    def text(self, s: str) -> None:
        self.out.append(s)


def test_report_and_property_display_through_the_html_module_and_render():
    report = flipped_conv()
    assert report._repr_html_() == page.report_html(report)
    p = report.properties[0]
    assert p._repr_html_() == page.property_html(p)
    assert "<h4>grad_input: " in p._repr_html_() and markup_problems(p._repr_html_()) == []
    printer = Printer()
    report._repr_pretty_(printer, False)
    assert printer.out == [report.render()]
    assert repr(report).startswith("Report(target=")  # repr() is left to the dataclass


def test_a_function_layer_failure_is_tabled_against_its_own_differences_only():
    # no reference: the finite differences are the right column, named for what they are, never repeated as "exact"
    from pathlib import Path

    from checks.api import check_job
    from checks.job import Job

    spec = Path(__file__).parents[3] / "examples" / "function_kind" / "specs.py"
    report = check_job(Job(f"{spec}:glu_gate_derivative_missing", only=("grad_input",), max_examples=10))
    out = page.report_html(report, heatmaps=False)
    assert markup_problems(out) == []
    assert "wrong against finite differences of your own forward" in visible(out)
    header = [visible(h) for h in re.findall(r"<th[^>]*>(.*?)</th>", out)]
    assert header[-4:] == ["index", "layer", "fd", "rel err"] and "exact" not in header
