"""checks.infer and checks.adapt.survey: pointed at a file, the checker lists its layers, guesses each one's kind
and convention from names and signatures, and believes a guess only when the layer's forward agrees with that
kind's reference; what it cannot tell is listed with what to declare."""

from __future__ import annotations

from pathlib import Path

import pytest

from checks import api, infer
from checks.adapt.survey import Found, class_guesses, name_kinds, signature_kinds
from checks.job import Job

REPO = Path(__file__).resolve().parents[2]
MIXED = Path(__file__).resolve().parents[1] / "fixtures" / "infer" / "mixed.py"


@pytest.mark.parametrize(
    "name, kinds",
    [
        ("ConvLayer", ["conv"]),
        ("MaxPoolLayer", ["maxpool", "avgpool"]),
        ("AvgPool2D", ["avgpool", "maxpool"]),
        ("LeakyReLU", ["leaky_relu", "relu"]),
        ("ReLULayer", ["relu", "leaky_relu"]),
        ("FullyConnectedLayer", ["dense"]),
        ("Affine", ["dense"]),
        ("SigmoidLayer", ["sigmoid"]),
        ("Mystery", []),
    ],
)
def test_a_class_name_suggests_kinds_in_order(name, kinds):
    assert name_kinds(name) == kinds


def test_constructor_arguments_suggest_kinds_and_no_arguments_an_activation():
    assert signature_kinds(["num_filters", "filter_size"]) == ["conv"]
    assert signature_kinds(["input_size", "num_classes"]) == ["dense"]
    assert signature_kinds([]) == ["relu", "sigmoid", "tanh", "softmax"]
    assert signature_kinds(["a", "b"]) == []


def test_guesses_put_the_preset_the_signature_suggests_first():
    class SeedConv:
        def __init__(self, num_filters, filter_size): ...

    class Anonymous:
        def __init__(self): ...

    assert class_guesses(SeedConv)[0][:2] == [("conv", "seed"), ("conv", "nchw")]
    guesses, why = class_guesses(Anonymous)
    assert guesses[0] == ("relu", "seed") and "no kind in its name" in why and len(guesses) <= 4


def test_a_softmax_built_like_a_dense_layer_is_guessed_as_the_fused_kind_first():
    class Softmax:  # the seed article's last layer: flatten, dense, softmax
        def __init__(self, input_len, nodes): ...

    class PlainSoftmax:
        def __init__(self): ...

    guesses, _ = class_guesses(Softmax)
    assert guesses[0] == ("dense+softmax", "seed") and ("softmax", "nchw") in guesses
    assert all(kind != "dense+softmax" for kind, _ in class_guesses(PlainSoftmax)[0])


def test_a_found_layer_crosses_the_wire_as_plain_data():
    found = Found("ConvLayer", (("conv", "seed"), ("conv", "nchw")), "name ConvLayer")
    assert Found.from_dict(found.to_dict()) == found


def test_the_seed_articles_layers_are_found_and_each_kind_is_confirmed_by_its_forward():
    layers = infer.infer(Job("examples/seed_style/layers.py", root=str(REPO)), api.check_job)
    got = {i.name: (i.kind, i.preset) for i in layers}
    assert got == {
        "ConvLayer": ("conv", "seed"),
        "Conv3x3": ("conv", "seed"),
        "MaxPoolLayer": ("maxpool", "seed"),
        "ReLULayer": ("relu", "seed"),
        "FullyConnectedLayer": ("dense", "seed"),
    }
    assert all("its forward agrees with" in i.why for i in layers)


def test_a_file_of_function_pairs_gives_one_layer_per_kind():
    layers = infer.infer(Job("examples/function_pairs/activations.py", root=str(REPO)), api.check_job)
    assert sorted(i.kind for i in layers) == ["avgpool", "leaky_relu", "sigmoid", "softmax", "tanh"]
    assert {i.preset for i in layers} == {"function_pair"}
    assert {i.target for i in layers} == {"examples/function_pairs/activations.py"}


def test_forward_decides_names_only_suggest_and_what_cannot_be_told_says_what_to_declare():
    layers = {i.name: i for i in infer.infer(Job(str(MIXED)), api.check_job)}
    assert set(layers) == {"Activation", "ConvLayer", "Mystery"}  # Helper has no backward: not a layer
    assert (layers["Activation"].kind, layers["Activation"].preset) == ("sigmoid", "nchw")
    assert "its forward agrees with sigmoid" in layers["Activation"].why
    conv = layers["ConvLayer"]
    assert conv.kind == "conv" and "does NOT agree with conv: checked as conv by its name" in conv.why
    mystery = layers["Mystery"]
    assert not mystery.checkable and "declare it:" in mystery.why and "--kind KIND" in mystery.why


def test_the_api_checks_a_class_or_an_object_by_its_inferred_kind(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("mixed_for_api", MIXED)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # the test's own import of a trusted fixture; the check runs in a worker
    import sys

    sys.modules["mixed_for_api"] = module
    try:
        report = api.check(module.Activation, max_examples=5)
        assert report.passed and report.kind == "sigmoid"
        assert report.settings["inferred"].startswith("sigmoid, nchw: no kind in its name")
        again = api.check(module.Activation(), max_examples=5)
        assert again.passed and "an instance: its class Activation" in again.settings["inferred"]
        with pytest.raises(TypeError, match="declare it"):
            api.check(module.Mystery)
    finally:
        del sys.modules["mixed_for_api"]


def test_a_class_defined_outside_any_file_cannot_be_sent_to_the_worker_and_says_what_to_do():
    class Local:
        def forward(self, x):
            return x

        def backward(self, d):
            return d

    with pytest.raises(TypeError, match="save it in a file, or describe it with a LayerSpec"):
        api.check(Local)
