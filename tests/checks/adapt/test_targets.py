"""checks.adapt.targets: TARGET strings become LayerSpecs, and every way that can fail is one readable line."""

from __future__ import annotations

import sys
import textwrap
import threading
from pathlib import Path

import pytest

from checks.adapt import targets
from checks.adapt.adapters import LayerSpec
from checks.adapt.targets import TargetError, load, parse

SEED_RELU = """
import numpy as np

class ReLULayer:
    def forward(self, x):
        self.x = x
        return np.maximum(x, 0)

    def backward(self, d):
        return d * (self.x > 0)

class Helper:
    pass

def function():
    pass

value = 3
"""

RELU_PAIR = """
import numpy as np

def relu_forward(x):
    return np.maximum(x, 0), x

def relu_backward(dout, cache):
    return dout * (cache > 0)
"""

SPEC_MODULE = """
from checks import LayerSpec

class Identity:
    def forward(self, x):
        return x

    def backward(self, d):
        return d

identity = LayerSpec("relu", lambda g: Identity(), input_layout="ND", name="identity")
"""


def write(directory: Path, name: str, source: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(source))
    return path


def reason(text: str, **options: object) -> str:
    with pytest.raises(TargetError) as info:
        load(text, **options)
    message = str(info.value)
    assert "\n" not in message, message
    return message


# -- parsing ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "location", "name", "is_file"),
    [
        ("a/b.py:Conv", "a/b.py", "Conv", True),
        ("a/b.py:", "a/b.py", None, True),
        ("a/b.py", "a/b.py", None, True),
        ("b.py:Conv", "b.py", "Conv", True),
        ("pkg.mod:Conv", "pkg.mod", "Conv", False),
        ("pkg.mod", "pkg.mod", None, False),
        ("a/b.py:Outer.Inner", "a/b.py", "Outer.Inner", True),
    ],
)
def test_a_target_splits_into_a_location_and_a_name(text, location, name, is_file):
    target = parse(text)
    assert (target.location, target.name, target.is_file) == (location, name, is_file)


def test_an_empty_or_malformed_target_is_rejected_in_one_line():
    assert "empty TARGET" in reason("  ")
    assert "not a .py file or a dotted module name" in reason("not a module!")


def test_the_label_is_the_name_or_the_stem_and_kind():
    assert targets.label("x/layers.py:ConvLayer") == "ConvLayer"
    assert targets.label("x/layers_naive.py:", "conv") == "layers_naive.conv"
    assert targets.label("pkg.pairs", "relu") == "pairs.relu"


# -- what a target can name -------------------------------------------------------------------------


def test_a_class_with_a_preset_becomes_a_spec_of_that_kind(tmp_path):
    path = write(tmp_path, "layers.py", SEED_RELU)
    spec = load(f"{path}:ReLULayer", kind="relu", preset="seed")
    assert isinstance(spec, LayerSpec)
    assert (spec.kind, spec.name) == ("relu", "ReLULayer")


def test_a_layerspec_is_used_as_is(tmp_path):
    path = write(tmp_path, "specs.py", SPEC_MODULE)
    spec = load(f"{path}:identity")
    assert (spec.kind, spec.name) == ("relu", "identity")
    again = load(f"{path}:identity", kind="relu")
    assert again == spec and again.build is spec.build and again.origin.target == f"{path}:identity"


def test_function_pairs_are_found_in_a_file_without_a_name_and_the_kind_is_inferred(tmp_path):
    path = write(tmp_path, "pairs.py", RELU_PAIR)
    for text in (str(path), f"{path}:"):
        spec = load(text)
        assert (spec.kind, spec.name) == ("relu", "relu_forward")


def test_a_relative_path_starts_at_the_root(tmp_path):
    write(tmp_path / "sub", "layers.py", SEED_RELU)
    spec = load("sub/layers.py:ReLULayer", kind="relu", preset="seed", root=tmp_path)
    assert spec.kind == "relu"


def test_a_dotted_module_is_imported_from_the_root(tmp_path):
    write(tmp_path / "mypkg_for_targets", "__init__.py", "")
    write(tmp_path / "mypkg_for_targets", "layers.py", SEED_RELU)
    try:
        spec = load("mypkg_for_targets.layers:ReLULayer", kind="relu", preset="seed", root=tmp_path)
        assert spec.name == "ReLULayer"
        assert str(tmp_path) not in sys.path  # the root is on sys.path only while importing
    finally:
        for name in [m for m in sys.modules if m.startswith("mypkg_for_targets")]:
            del sys.modules[name]


def test_two_files_with_the_same_name_do_not_collide(tmp_path):
    a = write(tmp_path / "a", "layers.py", "class Layer:\n    origin = 'a'\n")
    b = write(tmp_path / "b", "layers.py", "class Layer:\n    origin = 'b'\n")
    module_a, module_b = targets.import_file(a), targets.import_file(b)
    assert (module_a.Layer.origin, module_b.Layer.origin) == ("a", "b")
    assert module_a.__name__ != module_b.__name__
    assert sys.modules[module_a.__name__] is module_a and sys.modules[module_b.__name__] is module_b
    assert "layers" not in sys.modules or sys.modules["layers"] not in (module_a, module_b)


def test_importing_a_chatty_file_prints_nothing(tmp_path, capsys):
    path = write(tmp_path, "chatty.py", "print('hello from the import')\nimport sys\nprint('e', file=sys.stderr)\n")
    targets.import_file(path)
    assert capsys.readouterr() == ("", "")


# -- every failure is one line ----------------------------------------------------------------------


def test_a_missing_file(tmp_path):
    assert reason(f"{tmp_path}/nope.py:X") == f"{tmp_path}/nope.py: no such file"


def test_a_syntax_error_names_the_file_and_line(tmp_path):
    path = write(tmp_path, "broken.py", "import numpy\nx = = 1\n")
    assert reason(f"{path}:X") == f"{path}: line 2: SyntaxError: invalid syntax"


def test_a_missing_dependency_names_the_module_and_line(tmp_path):
    path = write(tmp_path, "needs.py", "import os\nimport not_a_module_cnn_gradcheck\n")
    message = reason(f"{path}:X")
    assert message == f"{path}: line 2: ModuleNotFoundError: No module named 'not_a_module_cnn_gradcheck'"


def test_an_exception_at_import_names_the_line_of_the_users_file(tmp_path):
    path = write(tmp_path, "raises.py", "def f():\n    raise RuntimeError('boom')\n\nf()\n")
    assert reason(f"{path}:X") == f"{path}: line 2: RuntimeError: boom"


def test_sys_exit_at_import_is_contained(tmp_path):
    path = write(tmp_path, "exits.py", "import sys\nsys.exit(3)\n")
    assert reason(f"{path}:X") == f"{path}: line 2: importing it called sys.exit(3)"


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="SIGALRM: main thread only")
def test_a_hanging_import_times_out(tmp_path):
    path = write(tmp_path, "hangs.py", "while True:\n    pass\n")
    assert "importing it did not return within 0.2 s" in reason(f"{path}:X", import_seconds=0.2)


def test_a_failed_import_leaves_no_module_behind(tmp_path):
    path = write(tmp_path, "raises.py", "raise ValueError('no')\n")
    reason(f"{path}:X")
    assert targets.module_name_for(path) not in sys.modules


def test_a_missing_name_lists_what_the_file_defines(tmp_path):
    path = write(tmp_path, "layers.py", SEED_RELU)
    assert reason(f"{path}:Conv") == f"no name 'Conv' in {path} (found: ReLULayer, Helper)"


def test_a_name_that_is_neither_a_class_nor_a_spec(tmp_path):
    path = write(tmp_path, "layers.py", SEED_RELU)
    assert reason(f"{path}:function") == f"{path}:function is a function, not a class or a LayerSpec"
    assert reason(f"{path}:value") == f"{path}:value is an int, not a class or a LayerSpec"


def test_a_class_without_a_preset_says_to_give_one(tmp_path):
    path = write(tmp_path, "layers.py", SEED_RELU)
    message = reason(f"{path}:ReLULayer")
    assert message.startswith(f"{path}:ReLULayer is a class: say how to drive it with --preset seed|function_pair|nchw")


def test_a_preset_without_a_kind_says_to_give_one(tmp_path):
    path = write(tmp_path, "layers.py", SEED_RELU)
    assert "--preset seed needs --kind" in reason(f"{path}:ReLULayer", preset="seed")


def test_an_unknown_kind_or_preset(tmp_path):
    path = write(tmp_path, "layers.py", SEED_RELU)
    assert reason(f"{path}:ReLULayer", kind="convv", preset="seed").startswith("--kind must be one of conv, maxpool")
    assert reason(f"{path}:ReLULayer", kind="relu", preset="nope").startswith("--preset must be one of seed")
    assert "--layer-kind must be one of" in reason(f"{path}:ReLULayer", kind="x", kind_option="--layer-kind")


def test_a_spec_of_another_kind_or_with_a_preset_is_refused(tmp_path):
    path = write(tmp_path, "specs.py", SPEC_MODULE)
    assert (
        reason(f"{path}:identity", kind="conv") == f"{path}:identity is a 'relu' LayerSpec, but --kind conv was given"
    )
    assert "is a LayerSpec already: drop --preset seed" in reason(f"{path}:identity", preset="seed")


def test_a_preset_that_cannot_adapt_the_class(tmp_path):
    path = write(tmp_path, "layers.py", "class Conv:\n    def __init__(self):\n        pass\n")
    message = reason(f"{path}:Conv", kind="conv", preset="seed")
    assert message.startswith(
        f"cannot adapt {path}:Conv with --preset seed --kind conv: Conv() cannot be built as Conv(F): too many "
        "positional arguments; the preset builds it as Cls(num_filters[, filter_size])"
    )


def test_a_file_without_function_pairs(tmp_path):
    path = write(tmp_path, "layers.py", SEED_RELU)
    assert reason(str(path)) == f"{path}: function pairs need --kind (it has no complete function pair)"
    assert "cannot adapt it as conv function pairs: no function conv_forward" in reason(str(path), kind="conv")


def test_a_class_preset_on_a_file_without_a_name(tmp_path):
    path = write(tmp_path, "pairs.py", RELU_PAIR)
    assert "--preset seed needs a class" in reason(str(path), kind="relu", preset="seed")


# -- a checks.py or checks/ of the user's own ---------------------------------------------------------------


THEIR_CHECKS = """
import numpy as np
import checks
from checks import LayerSpec, numerical_grad
from checks.tools import clip
import checks.helpers as h

def f():
    return checks.gradient_check(h.x) + checks.presets.seed
"""


def test_uses_of_names_cnn_gradchecks_package_lacks_are_found_in_the_source(tmp_path):
    path = write(tmp_path, "layers.py", THEIR_CHECKS)
    assert targets._foreign_use(path) == (4, "checks.numerical_grad")
    path.write_text("import checks\n\n\nclass C:\n    def f(self):\n        return checks.gradient_check()\n")
    assert targets._foreign_use(path) == (6, "checks.gradient_check")
    path.write_text("import checks.helpers as h\n\nh.anything()\n")
    assert targets._foreign_use(path) == (1, "checks.helpers")


def test_names_cnn_gradchecks_package_has_are_not_a_foreign_use(tmp_path):
    source = "import checks\nfrom checks import LayerSpec, Param, presets\nfrom checks.adapt import presets as p\n"
    path = write(tmp_path, "specs.py", source + "spec = checks.presets.seed\n")
    assert targets._foreign_use(path) is None


def test_a_shadow_is_a_checks_py_or_checks_folder_that_is_not_the_package_itself(tmp_path):
    assert targets._shadow(tmp_path) is None
    (tmp_path / "checks").mkdir()
    assert targets._shadow(tmp_path) == tmp_path / "checks"
    assert targets._shadow(targets._PACKAGE_DIR.parent) is None  # the repository holds the package itself


def test_a_file_using_its_own_checks_module_is_refused_before_it_runs(tmp_path):
    write(tmp_path, "checks.py", "def numerical_grad():\n    return 0\n")
    path = write(tmp_path, "layers.py", "from checks import numerical_grad\nraise SystemExit('ran')\n")
    assert reason(f"{path}:X") == (
        f"{path}: line 1 uses `checks.numerical_grad` from your own {tmp_path / 'checks.py'}, but `checks` is "
        "cnn-gradcheck's package and a checked layer always gets that one; rename your checks.py (e.g. to "
        "my_checks.py) and import it by its new name"
    )


def test_the_same_file_without_a_checks_py_beside_it_is_imported_as_usual(tmp_path):
    path = write(tmp_path, "layers.py", "from checks import numerical_grad\n")
    assert "ImportError" in reason(f"{path}:X")  # no claim about a module of theirs that is not there


# -- a declaration the checker could not read ---------------------------------------------------------------


def test_a_spec_whose_declaration_cannot_reach_the_checker_is_refused_in_one_line(tmp_path):
    source = SPEC_MODULE.replace('name="identity")', 'name="identity", supports=Supports(dtypes=()))')
    path = write(
        tmp_path, "specs.py", source.replace("from checks import LayerSpec", "from checks import LayerSpec, Supports")
    )
    assert reason(f"{path}:identity") == (
        "its declaration cannot be used: dtypes=(): expected one or more of 'float32', 'float64'"
    )
