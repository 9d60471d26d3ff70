"""examples/notebook/check_a_layer.ipynb runs top to bottom in a real Jupyter kernel (nbclient + ipykernel, the
``notebook`` extra) on this venv's interpreter, and each report cell shows its report as HTML: the verdict table,
the buggy layers' named mistakes with their right formulas, where each layer ran, and no markup but the report's
own (every text escaped: a ``<`` in a mistake's explanation arrives as ``&lt;``)."""

from __future__ import annotations

import html
import json
import re
import sys
from pathlib import Path

import pytest

from checks.front.html import TAGS

NEEDS = "needs the notebook extra (pip install -e '.[notebook]'): "
nbclient = pytest.importorskip("nbclient", reason=NEEDS + "nbclient is not installed")
nbformat = pytest.importorskip("nbformat", reason=NEEDS + "nbformat is not installed")
pytest.importorskip("ipykernel", reason=NEEDS + "ipykernel is not installed")
kernelspec = pytest.importorskip("jupyter_client.kernelspec", reason=NEEDS + "jupyter_client is not installed")
manager = pytest.importorskip("jupyter_client.manager", reason=NEEDS + "jupyter_client is not installed")

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "notebook" / "check_a_layer.ipynb"
KERNEL = "cnn-gradcheck-venv"
CELL_SECONDS = 240  # one check is ~5 s; the bound is for a stuck kernel, not a speed target
START_SECONDS = 120
PROBE = "import sys\nprint(sys.executable)"
HEADER = ["property", "status", "examples", "oracles", "not judged", "note"]
PROPERTIES = ["forward", "grad_input", "oracle_agreement", "linearity", "determinism", "no_mutation", "quiet"]


def _markup_problems(text: str) -> list[str]:
    """Every ``<`` must open one of the report's own tags and every ``>`` close one: text that was not escaped
    (``<script>``, ``output < 0``) breaks one of the two."""
    opened = re.findall(r"<(/?)([a-zA-Z0-9]*)", text)
    problems = [f"<{slash}{tag}" for slash, tag in opened if tag not in TAGS]
    if text.count("<") != text.count(">"):
        problems.append(f"{text.count('<')} '<' but {text.count('>')} '>'")
    return problems


def _kernel(directory: Path) -> manager.KernelManager:
    """A kernel manager whose only kernelspec runs ipykernel on this interpreter (not whatever 'python3' means)."""
    spec = directory / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": KERNEL, "language": "python"}))
    specs = kernelspec.KernelSpecManager(kernel_dirs=[str(directory)], ensure_native_kernel=False)
    return manager.KernelManager(kernel_name=KERNEL, kernel_spec_manager=specs)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The notebook after a run in a fresh kernel, with one probe cell appended that prints the interpreter."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE, metadata={"tags": ["probe"]}, id="probe"))
    client = nbclient.NotebookClient(
        nb,
        km=_kernel(tmp_path_factory.mktemp("kernels")),
        timeout=CELL_SECONDS,
        startup_timeout=START_SECONDS,
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},  # the working directory a user gets
    )
    client.execute()
    return nb


def _cell(nb, tag: str):
    [cell] = [c for c in nb.cells if tag in c.metadata.get("tags", [])]
    return cell


def _display(nb, tag: str) -> tuple[str, str]:
    """(text/html, text/plain) of the tagged cell's result."""
    [result] = [o for o in _cell(nb, tag).outputs if o.output_type == "execute_result"]
    return result.data["text/html"], result.data["text/plain"]


def _rows(page: str) -> dict[str, list[str]]:
    """The verdict table: property -> its cells, tags stripped and text unescaped."""
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", page):
        cells = [html.unescape(re.sub(r"<[^>]*>", "", c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        if cells:
            rows[cells[0]] = cells
    return rows


def test_the_notebook_runs_in_a_kernel_on_this_venvs_interpreter_without_errors(executed):
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in errors if o.output_type == "error"]
    [printed] = [o for o in _cell(executed, "probe").outputs if o.output_type == "stream"]
    assert Path(printed.text.strip()) == Path(sys.executable)


def test_the_correct_layer_shows_its_verdict_table_all_passed_in_the_sandbox(executed):
    page, text = _display(executed, "report-correct")
    assert _markup_problems(page) == []
    assert re.search(r">PASS</span> <code>[^<]*seed_style/layers\.py:ReLULayer</code> \(relu\)", page)
    assert re.findall(r"<th[^>]*>([^<]*)</th>", page)[: len(HEADER)] == HEADER
    rows = _rows(page)
    assert list(rows) == PROPERTIES and {r[1] for r in rows.values()} == {"PASS"}
    assert "<h4>" not in page  # no failure section
    assert "in-process" not in page and "sandbox: " in page  # a file's layer runs in the worker
    assert text.splitlines()[0].endswith("ReLULayer (relu): PASS")  # the text fallback is render()


def test_the_buggy_layer_shows_its_named_mistake_and_the_right_formula_escaped(executed):
    page, text = _display(executed, "report-buggy")
    assert _markup_problems(page) == []
    assert re.search(r">FAIL</span> <code>[^<]*relu_output_below_zero\.py:ReLUOutputBelowZero</code>", page)
    assert _rows(page)["grad_input"][1:2] == ["FAIL"] and _rows(page)["grad_input"][-1] == "relu_never_masks"
    assert "diagnosis: <b>relu_never_masks</b>" in page
    assert "right formula: <code>dX = G * (X &gt; 0)</code>" in page
    assert "`output &lt; 0`" in page and "output < 0" not in page
    assert re.search(r"<pre>[^<]*from checks\.explain import reproduce", page)
    assert "in-process" not in page
    assert "relu_never_masks" in text and text.splitlines()[0].endswith("(relu): FAIL")


def test_the_notebook_defined_layer_ran_in_process_and_says_so(executed):
    page, _ = _display(executed, "report-notebook")
    assert _markup_problems(page) == []
    assert ">FAIL</span> <code>dense</code> (dense)" in page
    assert "in-process: the layer ran in the checker&#x27;s own process (no file to load it from: not a gate)" in page
    assert _rows(page)["grad_bias"][-1] == "dense_bias_over_batch"
    assert "diagnosis: <b>dense_bias_over_batch</b>" in page


def test_the_markup_check_catches_text_that_was_not_escaped():
    assert _markup_problems("<div>fine &lt;script&gt;</div>") == []
    assert _markup_problems("<div><script>alert(1)</script></div>") == ["<script", "</script"]
    assert _markup_problems("<div>mask on output < 0</div>") != []
    assert _markup_problems("<div>x > 0</div>") != []
