"""``cnn-gradcheck check NET --kind network``: exit 0 for a correct network, 1 naming the layer at fault, 2 for
a network that cannot be adapted (the layers do not chain, no input shape), the JSON report."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from checks.front import cli

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "seed_network"
SMALL = """
from net import Conv3x3, MaxPool2, Softmax


def build():
    return [Conv3x3(2), MaxPool2(), Softmax({features}, 3)]
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    shutil.copy(EXAMPLES / "net.py", tmp_path / "net.py")
    return tmp_path


def _write(folder: Path, name: str, features: str, shape: str = "") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(SMALL.format(features=features)) + shape)
    return path


def test_the_example_network_exits_0(capsys):
    assert cli.main(["check", f"{EXAMPLES / 'net.py'}:build", "--kind", "network", "-q"]) == 0
    out = capsys.readouterr().out
    assert "(network): PASS" in out and "layer@2" in out and "training" in out


def test_the_buggy_pool_exits_1_naming_the_layer_in_the_report_and_the_json(tmp_path, capsys):
    report = tmp_path / "report.json"
    target = f"{EXAMPLES / 'net_buggy_pool.py'}:build"
    assert cli.main(["check", target, "--kind", "network", "-q", "--json", str(report)]) == 1
    captured = capsys.readouterr()
    assert "layer at fault: layer 2 TopLeftPool (index 1)" in captured.out
    assert f"replay: cnn-gradcheck check {target} --kind network --seed 0" in captured.err
    data = json.loads(report.read_text())
    assert data["kind"] == "network" and data["outcome"] == "failed"
    assert data["settings"]["network"]["at_fault"]["name"] == "TopLeftPool"
    # then the pool's own ordinary check, printed after the network's report and in the JSON under at_fault
    own = captured.out.index("layer 2 TopLeftPool (index 1) on its own: TopLeftPool in net_buggy_pool.py")
    assert captured.out.index("(network): FAIL") < own < captured.out.index("TopLeftPool (maxpool): FAIL")
    nested = data["settings"]["network"]["at_fault"]["report"]
    assert nested["kind"] == "maxpool" and [p["status"] for p in nested["properties"]][:2] == ["pass", "fail"]


def test_layers_that_do_not_chain_exit_2_naming_both_layers_and_the_shape(folder, capsys):
    path = _write(folder, "nochain.py", "5 * 5 * 2", "INPUT_SHAPE = (10, 10)\n")
    assert cli.main(["check", f"{path}:build", "--kind", "network", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "the layers do not chain: layer 2 MaxPool2 (index 1) gives shape (4, 4, 2)" in err
    assert "layer 3 Softmax (index 2) does not accept" in err


def test_a_first_layer_refusing_the_declared_shape_exits_2(folder, capsys):
    path = _write(folder, "badshape.py", "4 * 4 * 2", "INPUT_SHAPE = (10,)\n")
    assert cli.main(["check", f"{path}:build", "--kind", "network", "-q"]) == 2
    assert "layer 1 Conv3x3 (index 0) does not accept the declared input shape (10,)" in capsys.readouterr().err


def test_a_missing_input_shape_exits_2_saying_how_to_declare_it(folder, capsys):
    path = _write(folder, "noshape.py", "4 * 4 * 2")
    assert cli.main(["check", f"{path}:build", "--kind", "network", "-q"]) == 2
    err = capsys.readouterr().err
    assert "no input shape: declare INPUT_SHAPE = (28, 28) in noshape.py or pass --input-shape 28,28" in err
    assert cli.main(["check", f"{path}:build", "--kind", "network", "-q", "--input-shape", "10,10"]) == 0


@pytest.mark.parametrize("bad", ["28,-1", "a,b", ""])
def test_a_malformed_input_shape_is_a_usage_error(bad, capsys):
    assert cli.main(["check", "x.py:build", "--kind", "network", "--input-shape", bad]) == 2
    assert "--input-shape" in capsys.readouterr().err


def test_input_shape_without_kind_network_is_a_usage_error(capsys):
    assert cli.main(["check", "x.py:Layer", "--kind", "relu", "--preset", "seed", "--input-shape", "4"]) == 2
    assert "--input-shape is for --kind network" in capsys.readouterr().err
