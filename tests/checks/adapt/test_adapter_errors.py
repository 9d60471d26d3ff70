"""A mistake in the description of a layer is exit 2 with one line that says what to declare, never a gradient
failure.

Each case is a fixture under tests/fixtures/adapt/ checked through ``checks.front.cli.main``, so the layer runs in
the sandboxed worker, never in this process: a seed layer without an accepted method name or with its filters
under an unknown name, a backward that needs an argument the preset has no value for, a constructor the nchw
preset cannot call, ``Supports`` that admit no geometry, a ``checks.py`` or ``checks/`` of the user's own. Next to
each, a correct layer described the same way still passes, so no refusal fires on a layer that fits.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from checks.adapt.adapters import Declaration, Param, Supports
from checks.adapt.targets import TargetError
from checks.front import cli
from checks.strategies._spec import SupportsError, cases, geometries

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "adapt"
SEED_CONV = ["--kind", "conv", "--preset", "seed"]
SEED_RELU = ["--kind", "relu", "--preset", "seed"]
FAST = ["--max-examples", "3", "-q"]


def fixture(name: str) -> str:
    return str(FIXTURES / name)


def refusal(capsys: pytest.CaptureFixture, target: str, *options: str) -> str:
    """The one line ``cnn-gradcheck check`` prints for a target it cannot use, after its exit 2 (and nothing on
    stdout, no traceback)."""
    code = cli.main(["check", target, *options, *FAST])
    out, err = capsys.readouterr()
    assert (code, out) == (cli.Exit.UNUSABLE, ""), err
    prefix = f"cnn-gradcheck: cannot load {target}: "
    assert err.startswith(prefix) and err.count("\n") == 1 and "Traceback" not in err, err
    return err[len(prefix) : -1]


def adapting(target: str, preset: str, kind: str) -> str:
    """How targets.load words a preset that cannot adapt the class."""
    return f"cannot adapt {target} with --preset {preset} --kind {kind}: "


def passes(capsys: pytest.CaptureFixture, target: str, *options: str) -> None:
    code = cli.main(["check", target, *options, *FAST])
    out, err = capsys.readouterr()
    assert code == cli.Exit.OK, out + err


# -- the seed preset: methods, parameters and the learning rate, found by name or refused ----------------


def test_a_seed_layer_without_a_backward_by_any_accepted_name_is_refused(capsys):
    target = fixture("seed_misnamed.py:ConvGradientMethod")
    assert refusal(capsys, target, *SEED_CONV) == adapting(target, "seed", "conv") + (
        "ConvGradientMethod has no backward method: expected one named backward / backprop / back_prop / "
        "backward_pass / backward_prop; rename it, or describe the layer with a LayerSpec (backward_method='...')"
    )


def test_filters_under_a_name_the_preset_does_not_know_are_refused_not_created(capsys):
    # before: the preset installed the case's weights at a new attribute `filters` the layer never read, and the
    # check failed forward, grad_weight (all zeros) and determinism
    target = fixture("seed_misnamed.py:ConvFilterBank")
    assert refusal(capsys, target, *SEED_CONV) == adapting(target, "seed", "conv") + (
        "ConvFilterBank(num_filters=F, filter_size=k) has no filters: none of `filters`, `kernels`, `weights`, `W` "
        "exists after construction and a forward; name them so, or describe the layer with a LayerSpec "
        "(params={'weight': Param('<attribute>', ...)})"
    )


def test_filters_without_the_expected_number_of_entries_are_refused(capsys):
    target = fixture("seed_misnamed.py:ConvOneKernel")
    line = refusal(capsys, target, *SEED_CONV)
    assert line.endswith(
        "ConvOneKernel(num_filters=F, filter_size=k): its filters `kernels` have shape (2, 2) (4 entries), expected "
        "(F, k, k) = (2, 2, 2); store them so, or describe the layer with a LayerSpec (params={'weight': Param(...)})"
    )


def test_filters_a_lazy_layer_creates_on_its_first_forward_are_found(capsys):
    passes(capsys, fixture("seed_misnamed.py:LazyConv"), *SEED_CONV)


def test_a_backward_argument_the_preset_has_no_value_for_is_refused(capsys):
    line = refusal(capsys, fixture("seed_misnamed.py:ConvBackwardNeedsCache"), *SEED_CONV)
    assert line.endswith(
        "ConvBackwardNeedsCache.backward(self, d, cache) cannot be called as backward(d) or backward(d, lr) (the "
        "learning rate's parameter named lr / alpha / learning_rate / learn_rate): cache would get no value; give it "
        "a default, or describe the layer with a LayerSpec"
    )


def test_an_sgd_step_with_no_learning_rate_the_preset_can_read_is_refused(capsys):
    line = refusal(capsys, fixture("seed_misnamed.py:ConvNoRate"), *SEED_CONV)
    assert "backward(d) takes no learning rate and the layer keeps none at self.lr" in line
    assert line.endswith("describe the layer with a LayerSpec (gradients='attributes', ...)")


# -- the nchw preset: the constructor it calls ---------------------------------------------------------


def test_a_constructor_that_does_not_take_the_nchw_arguments_is_refused(capsys):
    target = fixture("nchw_layers.py:ConvFromConfig")
    assert refusal(capsys, target, "--kind", "conv", "--preset", "nchw") == adapting(target, "nchw", "conv") + (
        "ConvFromConfig(config) cannot be built as ConvFromConfig(in_channels, out_channels, kernel_size, stride=s, "
        "padding=p): too many positional arguments; describe other constructors with a LayerSpec "
        "(build=lambda g: ...)"
    )


def test_a_conv_whose_constructor_takes_the_nchw_arguments_passes(capsys):
    passes(capsys, fixture("nchw_layers.py:Conv"), "--kind", "conv", "--preset", "nchw")


def test_a_required_argument_the_nchw_preset_has_no_value_for_is_refused_and_a_plain_relu_passes(capsys):
    line = refusal(capsys, fixture("nchw_layers.py:ReLUWithName"), "--kind", "relu", "--preset", "nchw")
    assert line.endswith(
        "ReLUWithName(name) cannot be built as ReLUWithName(): missing a required argument: 'name'; "
        "describe other constructors with a LayerSpec (build=lambda g: ...)"
    )
    passes(capsys, fixture("nchw_layers.py:ReLU"), "--kind", "relu", "--preset", "nchw")


# -- Supports that admit no geometry -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        (
            "padding_wider_than_window",
            "its Supports admit no maxpool geometry: padding=2: min 2 is more than half the smallest kernel 2; "
            "max-pool needs padding <= kernel // 2 (raise kernel or lower padding)",
        ),
        ("window_min_above_max", "its Supports admit no maxpool geometry: kernel=(3, 2): min 3 is larger than max 2"),
        (
            "batch_without_an_axis",
            "its Supports admit no maxpool geometry: batch=(2, 3), but the input layout HWC holds exactly one",
        ),
        ("no_dtype", "its declaration cannot be used: dtypes=(): expected one or more of 'float32', 'float64'"),
    ],
)
def test_supports_that_admit_no_geometry_are_refused_naming_the_fields(capsys, name, reason):
    # before: a hypothesis traceback from the first draw, or a 'garbled' declaration: exit 3
    assert refusal(capsys, fixture(f"supports_specs.py:{name}")) == reason


def test_supports_that_admit_some_geometry_pass(capsys):
    passes(capsys, fixture("supports_specs.py:fits"))


@pytest.mark.parametrize(
    ("supports", "fields"),
    [
        (Supports(channels=3), ("channels",)),
        (Supports(batch=(2, 3), channels=(0, 2)), ("batch",)),
        (Supports(padding=3, kernel=1), ()),
    ],
)
def test_a_supports_error_is_typed_when_the_strategy_is_built_not_at_its_first_draw(supports, fields):
    declaration = Declaration("conv", "HW", "HWC", {"weight": Param("filters", "FHW")}, supports)
    with pytest.raises(SupportsError) as info:
        geometries(declaration)
    assert isinstance(info.value, TargetError) and isinstance(info.value, ValueError)
    assert info.value.fields == fields and "\n" not in str(info.value)


def test_a_dtype_no_layer_is_checked_in_is_a_supports_error_naming_dtypes():
    with pytest.raises(SupportsError, match=r"no relu dtype: dtypes=\('float16',\)") as info:
        cases(Declaration("relu", "ND", supports=Supports(dtypes=("float16",))))
    assert info.value.fields == ("dtypes",)


def test_supports_a_layout_narrows_to_one_are_not_a_conflict():
    # batch (1, 3) and channels (1, 3) hold 1: an HW layer is checked at 1, as before
    assert geometries(Declaration("conv", "HW", "HWC", {"weight": Param("filters", "FHW")}, Supports())) is not None


# -- a checks.py or checks/ of the user's own ------------------------------------------------------------


def test_a_layer_using_its_own_checks_module_is_refused_before_it_runs(capsys):
    # before: AttributeError: module 'checks' has no attribute 'numerical_grad', a grad_input failure (exit 1)
    target = fixture("shadow_module/layers.py:ReLULayer")
    assert refusal(capsys, target, *SEED_RELU) == (
        f"{fixture('shadow_module/layers.py')}: line 14 uses `checks.numerical_grad` from your own "
        f"{fixture('shadow_module/checks.py')}, but `checks` is cnn-gradcheck's package and a checked layer always "
        "gets that one; rename your checks.py (e.g. to my_checks.py) and import it by its new name"
    )


def test_a_layer_importing_from_its_own_checks_package_is_refused(capsys):
    # before: "checks.tools is not available inside the layer's sandbox (it belongs to the checker ...)"
    line = refusal(capsys, fixture("shadow_package/layers.py:ReLULayer"), *SEED_RELU)
    assert line.endswith(
        f"layers.py: line 4 uses `checks.tools` from your own {fixture('shadow_package/checks')}/, but `checks` is "
        "cnn-gradcheck's package and a checked layer always gets that one; rename your checks (e.g. to my_checks/) "
        "and import it by its new name"
    )


def test_a_sibling_module_importing_from_the_users_checks_is_named(capsys):
    line = refusal(capsys, fixture("shadow_package/through_helper.py:ReLULayer"), *SEED_RELU)
    assert ": helpers.py line 1 uses `checks.tools` from your own " in line


def test_a_spec_importing_cnn_gradchecks_own_names_next_to_a_users_checks_py_passes(capsys):
    passes(capsys, fixture("shadow_module/specs.py:relu"))
