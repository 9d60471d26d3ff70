"""A Report as HTML, for Jupyter (``Report._repr_html_``): the facts of ``Report.render()`` laid out as tables.

| part | what it shows (read from) |
|---|---|
| header | the verdict (the word ``render()`` uses), target, kind, why it failed, where it ran (``Report``) |
| verdict table | per property: status, examples, oracles, examples no oracle judged, a note (``PropertyReport``) |
| a failing property | the failed findings with the user's line that raised, the case, where shrinking stopped, |
| | the replay (``Finding``, ``PropertyReport.shrink_stopped``); |
| | where it is wrong (worst entries or pool windows), patterns, the named mistake and its right formula |
| | (``Details``, ``Diagnosis``); the reproduction snippet in a ``<pre>``; the heatmap as an inline PNG |
| footer | the oracles that judged it (``Report.judged_by``) |

Every text in a report may come from the user's code (an exception message, a line of their source, a target
name), so none of it is trusted: markup is made only by ``_el`` and ``_void``, which escape every part that is not
already ``Markup`` with ``html.escape``. The heatmap needs matplotlib (the ``plot`` extra); without it the section
says so in one line. It is drawn on a ``matplotlib.figure.Figure`` directly, never through pyplot, because
``plots.write_plots`` switches pyplot to the Agg backend, which would close the notebook's own figures and silence
its inline plots.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable

import numpy as np

from checks.explain import plots
from checks.explain.where import ONLY_FD
from checks.findings import FAIL, INCONCLUSIVE, NOT_JUDGED, SKIP
from checks.report import PropertyReport, Report, replay_for

__all__ = ["TAGS", "Markup", "heatmap_png", "property_html", "report_html", "verdict"]

TAGS = frozenset("b br code details div h4 img li p pre span summary table tbody td th thead tr ul".split())
"""Every element this module writes: any other tag in its output came from text that was not escaped."""

COLOURS = {"PASS": "#1a7f37", "FAIL": "#cf222e", "NOT JUDGED": "#9a6700"}
"""Verdict word -> the colour it is shown in (anything else: black)."""

SOURCES = {
    "torch": "torch",
    "reference": "the NumPy reference",
    "fd": "finite differences (torch agrees with the layer)",
    "subgradient": "the allowed range",
    ONLY_FD: "finite differences of your own forward",
}
"""What a gradient was compared with (``Details.expected_source``, or its verdict at a kink) -> words."""

_TABLE = "border-collapse: collapse; margin: 0.3em 0"
_CELL = "border: 1px solid #d0d7de; padding: 2px 6px; text-align: right; font-family: monospace"
_HEAD = "border: 1px solid #d0d7de; padding: 2px 6px; text-align: left"


class Markup(str):
    """A string that is HTML already (made by this module); any other string is escaped when it is inserted."""


def _esc(value: object) -> Markup:
    """``value`` as HTML: Markup as it is, anything else as ``html.escape(str(value))`` (quotes included)."""
    return value if isinstance(value, Markup) else Markup(html.escape(str(value), quote=True))


def _attrs(attrs: dict[str, object]) -> str:
    """`` name="value"`` pairs, escaped; a trailing underscore is dropped (``class_`` -> ``class``)."""
    return "".join(f' {k.rstrip("_")}="{html.escape(str(v), quote=True)}"' for k, v in attrs.items())


def _el(tag: str, *children: object, **attrs: object) -> Markup:
    """``<tag attrs>children</tag>``, each child escaped unless it is Markup."""
    assert tag in TAGS, tag
    return Markup(f"<{tag}{_attrs(attrs)}>{''.join(_esc(c) for c in children)}</{tag}>")


def _void(tag: str, **attrs: object) -> Markup:
    """An element without content (``<img ...>``)."""
    assert tag in TAGS, tag
    return Markup(f"<{tag}{_attrs(attrs)}>")


def _join(parts: Iterable[object]) -> Markup:
    return Markup("".join(_esc(p) for p in parts))


def _table(header: list[str], rows: list[list[object]]) -> Markup:
    head = _el("tr", *(_el("th", h, style=_HEAD) for h in header))
    body = [_el("tr", *(_el("td", c, style=_CELL) for c in row)) for row in rows]
    return _el("table", _el("thead", head), _el("tbody", *body), style=_TABLE)


def _fmt(value: float | None) -> str:
    """A number as the console report prints it (6 significant digits), "-" for none."""
    return "-" if value is None else f"{value:.6g}"


def verdict(report: Report) -> str:
    """PASS, NOT JUDGED or FAIL: the word that heads ``Report.render()``."""
    if report.passed:
        return "PASS"
    return "NOT JUDGED" if report.outcome()[0] == "not_judged" else "FAIL"


# -- the report --------------------------------------------------------------------------------------


def report_html(report: Report, *, heatmaps: bool = True) -> str:
    """The whole report: header, verdict table, each failing property, and the oracles that judged it;
    ``heatmaps=False`` leaves the pictures out (and matplotlib unimported)."""
    parts: list[Markup] = [_header(report)]
    if report.error:
        parts.append(_el("p", _el("b", "error: "), report.error))
    if report.properties:
        parts.append(_verdict_table(report.properties))
    for p in report.properties:
        if p.status == FAIL:
            parts.append(_failure(p, report.target, report.kind, heatmaps))
    if not report.error:
        parts.append(_el("p", "judged by: ", ", ".join(report.judged_by) or "no oracle", style="color: #57606a"))
    return _el("div", *parts, class_="cnn-gradcheck-report")


def property_html(p: PropertyReport, *, heatmaps: bool = True) -> str:
    """One property on its own: its row of the verdict table (with its note), and its failure."""
    parts = [_verdict_table([p])]
    if p.status == FAIL:
        parts.append(_failure(p, "", "", heatmaps))
    return _el("div", *parts, class_="cnn-gradcheck-property")


def _header(report: Report) -> Markup:
    word = verdict(report)
    badge = _el("span", word, style=f"color: {COLOURS.get(word, '#000')}; font-weight: bold")
    lines = [_el("div", badge, " ", _el("code", report.target), f" ({report.kind})", style="font-size: 1.15em")]
    _, reason, where = report.outcome()
    if reason and not report.error:  # an error has its own line below
        lines.append(_el("div", reason))
    if where:
        lines.append(_el("div", "in ", _el("code", where)))
    sandbox = report.settings.get("sandbox")
    if sandbox:
        lines.append(_el("div", sandbox, style="color: #57606a; font-size: 0.9em"))
    return _el("div", *lines, style="margin-bottom: 0.4em")


def _verdict_table(properties: list[PropertyReport]) -> Markup:
    rows = []
    for p in properties:
        status = p.status.upper().replace("_", " ")
        oracles = ", ".join(f"{k} {v}" for k, v in sorted(p.oracles.items())) or "-"
        cell = _el("span", status, style=f"color: {COLOURS.get(status, '#000')}; font-weight: bold")
        rows.append([p.property, cell, p.examples, oracles, p.unjudged, _note(p)])
    return _table(["property", "status", "examples", "oracles", "not judged", "note"], rows)


def _note(p: PropertyReport) -> str:
    """The row's note: the named mistake of a failure, the reason a property was not judged or skipped."""
    if p.status == FAIL:
        behind = getattr(p, "behind", None)
        mistake = behind.MISTAKE if behind is not None else getattr(p.diagnosis, "mistake", None)
        return mistake or ""
    if p.status in (SKIP, INCONCLUSIVE, NOT_JUDGED) and p.findings:
        return p.findings[0].message.removeprefix("not judged: ")
    return ""


# -- a failing property ------------------------------------------------------------------------------


def _failure(p: PropertyReport, target: str, kind: str, heatmaps: bool) -> Markup:
    parts: list[Markup] = [_el("h4", p.property, ": ", _el("span", "FAIL", style=f"color: {COLOURS['FAIL']}"))]
    failed = [f for f in p.findings if f.failed]
    items = []
    for f in failed:
        item = [_el("code", f"[{f.oracle or '-'}]"), " ", f.message]
        if f.origin:
            o = f.origin
            at = f"{o.get('file', '?')} line {o.get('line', '?')} in {o.get('function', '?')}"
            item += [_void("br"), "at ", _el("code", at), ": ", _el("code", o.get("text", ""))]
        items.append(_el("li", *item))
    behind = getattr(p, "behind", None)
    if behind is not None:
        items += [_el("li", line) for line in behind.render_lines()]
    if items:
        parts.append(_el("ul", *items))
    if failed and failed[0].case:
        parts.append(_el("div", "case: ", _el("code", failed[0].case)))
    if p.shrink_stopped is not None:  # the case above may not be the smallest: say so, as render() does
        stopped = f"shrinking stopped after {p.shrink_stopped:g} s at the smallest failing case so far"
        parts.append(_el("div", stopped, " (more time: ", _el("code", "check(..., shrink_seconds=S)"), ")"))
    replay = replay_for(p.replay, "api")  # in the API's words, as render(front="api") says it
    if replay:
        parts.append(_el("div", _el("code", replay)))
    details = getattr(p, "details", None)
    if details is not None:
        parts.append(_details(details, getattr(p, "diagnosis", None)))
        if heatmaps:
            parts.append(_heatmap(p, target, kind))
    return _el("div", *parts, style="margin: 0.6em 0 0.6em 1em")


def _details(d, diagnosis) -> Markup:
    """Where the gradient is wrong, the diagnosis, the reproduction: ``Details.render_lines`` as HTML."""
    if d.error:
        return _el("p", f"(could not explain this failure: {d.error})")
    unread = d.verdict == "fault" and d.actual_shape is None  # the fault is the finding above: nothing to locate
    parts = [] if unread else [_where(d)]
    if diagnosis is not None and not (unread and not diagnosis.mistake):
        parts.append(_diagnosis(diagnosis))
    if d.reproduction:
        parts.append(_el("details", _el("summary", "reproduce (Python)"), _el("pre", d.reproduction)))
    return _join(parts)


def _where(d) -> Markup:
    where = f"your layout {d.layout}" if d.layout else "as the layer stores it"
    axes = f", index ({', '.join(d.axes)})" if d.axes else ""
    grad = f"dL/d{d.gradient}"
    if d.verdict in ("shape", "fault"):
        if d.actual_shape is None:
            return _el("p", f"where: {grad} could not be read: {d.message}")
        return _el("p", f"where: {grad} has shape {tuple(d.actual_shape)} ({where}); expected shape {tuple(d.shape)}")
    if d.verdict == "nonfinite":
        return _el("p", f"where: {d.mismatched} of {d.total} entries of {grad} are NaN or infinite ({where}{axes})")
    if d.windows:
        out_axes = f"window ({', '.join(d.window_axes)}), " if d.window_axes else ""
        head = (
            f"where: {d.mismatched} of {d.total} pool windows break the max-pool rule ({where}; {out_axes}"
            f"input index ({', '.join(d.axes or '')}))"
        )
        return _join([_el("p", head), _windows(d.windows)])
    versus = SOURCES["subgradient"] if d.verdict == "subgradient" else SOURCES.get(d.expected_source, "")
    head = f"where: {d.mismatched} of {d.total} entries of {grad} are wrong against {versus} ({where}{axes})"
    return _join([_el("p", head), _entries(d.worst, d.expected_source)]) if d.worst else _el("p", head)


def _entries(entries: list, source: str) -> Markup:
    """The worst entries; the exact column is named for the oracle that gave it (torch, else the reference)."""
    exact = "torch" if any(e.torch is not None for e in entries) else {"reference": "reference"}.get(source, "exact")
    if entries[0].allowed is not None:  # a ReLU kink: the verdict is the allowed range
        rows = [
            [str(e.index), _fmt(e.layer), f"[{_fmt(e.allowed[0])}, {_fmt(e.allowed[1])}]", _fmt(e.torch)]
            for e in entries
            if e.allowed is not None
        ]
        header = ["index", "layer", "allowed", exact]
        return _table(header, rows) if exact == "torch" else _table(header[:3], [r[:3] for r in rows])
    if source == ONLY_FD:  # the differences are the right column (a kind with no reference): no second one
        rows = [[str(e.index), _fmt(e.layer), _fmt(e.fd), _rel(e)] for e in entries]
        return _table(["index", "layer", "fd", "rel err"], rows)
    rows = [
        [
            str(e.index),
            _fmt(e.layer),
            _fmt(e.fd),
            _fmt(e.torch if e.torch is not None else e.expected),
            _rel(e),
        ]
        for e in entries
    ]
    return _table(["index", "layer", "fd", exact, "rel err"], rows)


def _rel(e) -> str:
    return "inf" if e.rel_err is None else f"{e.rel_err:.3g}"


def _windows(windows: list) -> Markup:
    """Max-pool windows that break the routing rule: each must send its G to its maxima and 0 elsewhere."""
    rows = [
        [
            str(w.window),
            _fmt(w.upstream),
            ", ".join(str(m) for m in w.maxima),
            _fmt(w.sent),
            f"[{_fmt(w.share_range[0])}, {_fmt(w.share_range[1])}]",
            _fmt(w.elsewhere),
        ]
        for w in windows
    ]
    return _table(["window", "G", "maxima", "sent there (must be G)", "each share in", "elsewhere (must be 0)"], rows)


def _diagnosis(diagnosis) -> Markup:
    parts = []
    if diagnosis.patterns:
        parts.append(_el("ul", *(_el("li", "pattern: ", pattern.text) for pattern in diagnosis.patterns)))
    if not diagnosis.matches:
        return _join([*parts, _el("p", "diagnosis: no known mistake matches")])
    first, *others = diagnosis.matches
    lines = [
        _el("div", "diagnosis: ", _el("b", first.mistake), ": ", first.explanation),
        _el("div", "right formula: ", _el("code", first.formula)),
        _el("div", "evidence: ", first.evidence),
        *(_el("div", "equally consistent with: ", _el("b", m.mistake), ": ", m.explanation) for m in others),
    ]
    return _join([*parts, _el("div", *lines, style="margin: 0.3em 0")])


# -- the heatmap -------------------------------------------------------------------------------------


def _heatmap(p: PropertyReport, target: str, kind: str) -> Markup:
    """The heatmap inline, a one-line note without matplotlib, nothing when there is nothing to draw."""
    if _drawable(p.details) is None:
        return Markup("")
    ok, why = plots.plots_available()
    if not ok:
        return _el("p", f"no heatmap: {why}", style="color: #57606a")
    try:
        png = heatmap_png(p, target, kind)
    except Exception as exc:  # noqa: BLE001 - a picture that cannot be drawn must not take the report with it
        return _el("p", f"no heatmap: {type(exc).__name__}: {exc}", style="color: #57606a")
    if png is None:
        return Markup("")
    src = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    return _void("img", src=src, alt=f"heatmap of {p.property}: layer, expected, difference", style="max-width: 100%")


def _drawable(details):
    """(layer, expected) as float64 arrays of one non-empty shape, or None (a wrong shape has nothing to draw)."""
    layer = getattr(details, "layer_value", None)
    expected = getattr(details, "expected_value", None)
    if layer is None or expected is None or np.shape(layer) != np.shape(expected) or np.size(layer) == 0:
        return None
    return np.asarray(layer, dtype=np.float64), np.asarray(expected, dtype=np.float64)


class _FigureMaker:
    """The one pyplot call ``plots.draw_figure`` makes (``subplots``), answered with a bare Figure: no backend is
    selected and no figure is registered with pyplot."""

    @staticmethod
    def subplots(nrows: int, ncols: int, *, figsize, squeeze: bool, layout: str):
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize, layout=layout)
        return fig, fig.subplots(nrows, ncols, squeeze=squeeze)


def heatmap_png(p: PropertyReport, target: str = "", kind: str = "") -> bytes | None:
    """The PNG of ``p``'s heatmap (layer, expected, layer - expected; wrong entries circled), the picture
    ``plots.write_plots`` writes, or None when there is nothing to draw. Needs matplotlib."""
    drawn = _drawable(getattr(p, "details", None))
    if drawn is None:
        return None
    layer, expected = drawn
    mistake = getattr(getattr(p, "diagnosis", None), "mistake", None)
    title = (f"{target} ({kind}): " if target else "") + p.property + (f" -- {mistake}" if mistake else "")
    bad = plots.mismatch_mask(p.details, layer, expected)
    fig = plots.draw_figure(_FigureMaker, title, np.nan_to_num(layer), expected, bad, p.details.gradient)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=100)
    return out.getvalue()
