"""``cnn-gradcheck check NET --kind network``: exit 0 for a correct network, 1 naming the layer at fault, 2 for
a network that cannot be adapted (the layers do not chain, no input shape), the JSON report."""

from __future__ import annotations

import json
import shutil
import tempfile
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


# -- other method names, parameters nested in containers (tests/fixtures/network; run in the worker) -------------

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "network"
_JSON: dict[str, tuple[int, dict]] = {}


def _run(name: str, *options: str) -> tuple[int, dict]:
    """(exit status, JSON report) of ``check FIXTURE:build --kind network``, each run once."""
    key = " ".join((name, *options))
    if key not in _JSON:
        with tempfile.TemporaryDirectory() as folder:
            report = Path(folder) / "report.json"
            argv = ["check", f"{FIXTURES / name}:build", "--kind", "network", "-q", "--json", str(report), *options]
            code = cli.main(argv)
            _JSON[key] = (code, json.loads(report.read_text()))
    return _JSON[key]


def _props(data: dict) -> dict[str, str]:
    return {p["property"]: p["status"] for p in data["properties"]}


def _messages(data: dict, name: str) -> str:
    return " ".join(f["message"] for p in data["properties"] if p["property"] == name for f in p["findings"])


def test_parameters_in_a_params_dict_and_parameter_objects_are_found_and_a_correct_network_passes():
    code, data = _run("nested_net.py")
    assert code == 0, data
    layers = data["settings"]["network"]["layers"]
    assert layers[0]["params"] == {"W.data": [5, 4], "b.data": [4]}
    assert layers[0]["grads"] == {"W.data": "W.grad", "b.data": "b.grad"}
    assert layers[1]["calls"] == "__call__(x), bprop(d), no learning rate" and layers[1]["params"] == {}
    assert layers[2]["params"] == {"params['W']": [4, 3], "params['b']": [3]}
    assert layers[2]["grads"] == {"params['W']": "grads['W']", "params['b']": "grads['b']"}
    assert "gradients read from self.grads['W'], self.grads['b']" in layers[2]["calls"]
    props = _props(data)
    nested = ["grad_W.data@1", "grad_b.data@1", "grad_params['W']@3", "grad_params['b']@3"]
    assert [props[n] for n in nested] == ["pass"] * 4 and props["layer@2"] == "pass"


def test_a_wrong_bias_gradient_kept_in_a_grads_dict_fails_naming_the_layer_and_the_spelling():
    code, data = _run("nested_net_buggy.py")
    assert code == 1
    props = _props(data)
    assert props["grad_params['b']@3"] == "fail" and props["grad_params['W']@3"] == "pass"
    assert props["grad_W.data@1"] == props["grad_b.data@1"] == "pass" and props["layer@1"] == "pass"
    assert "dL/dparams['b'] of layer 3 MeanBiasDense (index 2) (read from self.grads['b'])" in _messages(
        data, "grad_params['b']@3"
    )
    assert "layer at fault: layer 3 MeanBiasDense (index 2)" in _messages(data, "layer@3")
    assert "(d/dparams['b'] (self.grads['b']))" in _messages(data, "layer@3")
    at_fault = data["settings"]["network"]["at_fault"]
    assert at_fault["index"] == 2 and at_fault["gradients"] == ["params['b']"]


def test_a_parameter_list_stepped_in_place_is_found_and_checked():
    code, data = _run("list_net.py")
    assert code == 0, data
    layers = data["settings"]["network"]["layers"]
    assert layers[0]["params"] == {"weights[0]": [6, 5], "weights[1]": [5]}
    assert layers[1]["calls"] == "fprop(x), bprop(d, lr)"
    props = _props(data)
    assert props["grad_weights[1]@3"] == props["sgd_update"] == props["training"] == "pass"


def test_a_wrong_sign_in_one_listed_parameters_step_is_named_for_that_parameter():
    code, data = _run("list_net_buggy.py")
    assert code == 1
    props = _props(data)
    assert props["sgd_update"] == "fail" and props["grad_weights[1]@3"] == "fail"
    assert props["grad_weights[0]@3"] == "pass"
    update = _messages(data, "sgd_update")
    assert "`weights[1]` of layer 3 SignFlippedAffine (index 2): wrong sign" in update
    assert "`weights[0]`" not in update  # its step is right: no failure names it


def test_the_text_json_and_html_reports_take_the_nested_names():
    from checks import api
    from checks.adapt.guard import Limits

    report = api.check_network(str(FIXTURES / "nested_net_buggy.py:build"), limits=Limits(seconds=3.0))
    assert report.failed_properties == ["grad_params['b']@3", "layer@3"]
    assert "FAIL         grad_params['b']@3" in report.render()
    assert [p["property"] for p in json.loads(report.to_json())["properties"]][5:7] == [
        "grad_params['W']@3",
        "grad_params['b']@3",
    ]
    html = report._repr_html_()
    assert "grad_params[&#x27;b&#x27;]@3" in html and "grad_params['b']@3" not in html  # escaped, as any text


def test_declared_method_names_drive_the_layers():
    code, data = _run("go_learn_declared.py")
    assert code == 0, data
    assert [la["calls"] for la in data["settings"]["network"]["layers"]] == [
        "go(x), learn(d, lr)",
        "go(x), learn(d, lr)",
        "go(x), learn(d, lr)",
    ]


def test_unknown_method_names_exit_2_saying_how_to_declare_them_and_methods_declares_them(capsys):
    target = f"{FIXTURES / 'go_learn_net.py'}:build"
    assert cli.main(["check", target, "--kind", "network", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "layer 1 GoAffine (index 0) is not a layer: expected a forward / " in err
    assert "METHODS = {'forward': 'go', 'backward': 'learn'}" in err and "--methods forward=go,backward=learn" in err
    assert cli.main(["check", target, "--kind", "network", "-q", "--methods", "forward=go,backward=learn"]) == 0


def test_a_declared_method_a_layer_lacks_exits_2_naming_the_layer_and_the_method(capsys):
    assert cli.main(["check", f"{FIXTURES / 'go_learn_missing.py'}:build", "--kind", "network", "-q"]) == 2
    err = capsys.readouterr().err
    assert "layer 2 GoBackTanh (index 1) has no method 'learn', declared as every layer's backward method" in err
    assert "(METHODS in go_learn_missing.py)" in err


def test_methods_given_in_python_replace_the_files_and_are_checked_by_the_worker():
    from checks import api
    from checks.adapt.targets import TargetError

    target = str(FIXTURES / "go_learn_declared.py:build")
    with pytest.raises(TargetError, match="layer 1 GoAffine \\(index 0\\) has no method 'fprop'"):
        api.check_network(target, methods={"forward": "fprop"})
    with pytest.raises(TargetError, match="expected the method names"):
        api.check_network(target, methods={"forwards": "go"})
    with pytest.raises(TypeError, match="methods="):
        api.check_network(target, methods="go")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["go", "forward=", "forward=go,forward=run", "sideways=go", "forward=not-a-name"])
def test_a_malformed_methods_option_is_a_usage_error(bad, capsys):
    assert cli.main(["check", "x.py:build", "--kind", "network", "--methods", bad]) == 2
    assert "--methods" in capsys.readouterr().err


def test_methods_without_kind_network_is_a_usage_error(capsys):
    assert cli.main(["check", "x.py:Layer", "--kind", "relu", "--preset", "seed", "--methods", "forward=go"]) == 2
    assert "--methods is for --kind network" in capsys.readouterr().err
