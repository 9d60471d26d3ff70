"""checks.front.many: `cnn-gradcheck check` on a bare file finds its layers, says what it inferred for each,
checks them all and ends with one table; several targets are each checked; the exit status is the worst
checked one, and 2 only when nothing could be checked."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from checks.front import cli, many
from checks.settings import Exit

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
MIXED = FIXTURES / "infer" / "mixed.py"
FAST = ["--max-examples", "5"]


def test_the_worst_checked_status_wins_and_nothing_checked_is_2():
    assert many.worst([0, 1, 4]) == Exit.FAILED
    assert many.worst([0, 4]) == Exit.UNJUDGED
    assert many.worst([0, 3, 1]) == Exit.INTERNAL
    assert many.worst([0, 0]) == Exit.OK
    assert many.worst([]) == Exit.UNUSABLE


def test_the_table_pads_its_columns():
    text = many.table(
        [many.Row("ConvLayer", "conv", "seed", "FAILED", "kernel_flipped"), many.Row("R", "relu", "seed", "PASSED")]
    )
    lines = text.splitlines()
    assert lines[0].split() == ["layer", "kind", "convention", "verdict", "mistake"]
    assert lines[1].split() == ["ConvLayer", "conv", "seed", "FAILED", "kernel_flipped"]
    assert lines[2].index("relu") == lines[1].index("conv")


def test_a_bare_file_is_surveyed_inferred_checked_and_summarised(capsys, tmp_path):
    out_json = tmp_path / "all.json"
    status = cli.main(["check", str(MIXED), *FAST, "--json", str(out_json)])
    out, err = capsys.readouterr()
    assert status == Exit.FAILED  # ConvLayer's forward is the identity: it fails as the conv its name says
    assert f"{MIXED}: 3 layers" in err
    assert "  Activation: sigmoid, nchw: no kind in its name" in err
    assert "  Mystery: cannot tell its kind" in err and "declare it" in err
    rows = {line.split()[0]: line.split() for line in out.splitlines()[-4:]}
    assert rows["Activation"][1:4] == ["sigmoid", "nchw", "PASSED"]
    assert rows["ConvLayer"][1:4] == ["conv", "seed", "FAILED"]
    assert rows["Mystery"][1:] == ["?", "?", "NOT", "CHECKED"]
    data = json.loads(out_json.read_text())
    assert [r["kind"] for r in data["reports"]] == ["sigmoid", "conv"]
    assert data["reports"][0]["settings"]["inferred"].startswith("sigmoid, nchw")
    assert data["not_checked"][0]["target"].endswith("mixed.py:Mystery")


def test_several_targets_are_each_checked(capsys):
    layers = FIXTURES / "relu_layers.py"
    status = cli.main(["check", f"{layers}:GoodReLU", f"{layers}:BadReLU", "--kind", "relu", "--preset", "seed", *FAST])
    out = capsys.readouterr().out
    assert status == Exit.FAILED
    assert out.count("(relu): PASS") == 1 and out.count("(relu): FAIL") == 1
    assert out.splitlines()[-2].split()[:4] == [f"{layers}:GoodReLU", "relu", "seed", "PASSED"]


def test_a_file_with_nothing_checkable_exits_2(tmp_path, capsys):
    odd = tmp_path / "odd.py"
    odd.write_text(
        textwrap.dedent(
            """
            class Odd:
                def __init__(self, a, b):
                    pass

                def forward(self, x):
                    return x[::-1]

                def backward(self, d):
                    return d
            """
        )
    )
    assert cli.main(["check", str(odd), *FAST]) == Exit.UNUSABLE
    assert "Odd: cannot tell its kind" in capsys.readouterr().err


def test_a_missing_file_exits_2_with_one_line(tmp_path, capsys):
    assert cli.main(["check", str(tmp_path / "nothing_here.py"), *FAST]) == Exit.UNUSABLE
    assert "cannot load" in capsys.readouterr().err
