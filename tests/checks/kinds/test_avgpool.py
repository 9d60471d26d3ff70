"""checks.kinds.avgpool: the reference against torch (zero padding counted in the divisor), the known mistakes as
torch computes them (count_include_pad=False for the padding one, no divisor for the other), the corner where
both show and cannot pass for each other, the function-pair preset's pool_param ("pad" only when padded), and
the example pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from checks import check, kinds
from checks.adapt import presets, targets
from checks.adapt.adapters import Declaration, Supports
from checks.case import Case
from checks.geometry import PoolGeometry
from checks.oracles import torch_oracle
from checks.strategies import cases
from checks.strategies._spec import corner, geometries

REPO = Path(__file__).resolve().parents[3]
KIND = kinds.get("avgpool")
PADDED = PoolGeometry(2, 2, 4, 5, (2, 3), (1, 2), (1, 1))


def pool_case(geometry: PoolGeometry = PADDED, seed: int = 0) -> Case:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, geometry.input_shape)
    g = rng.uniform(0.1, 2, geometry.output_shape) * rng.choice([-1.0, 1.0], geometry.output_shape)
    return Case("avgpool", geometry, {"input": x}, g)


def right(case: Case) -> np.ndarray:
    subject = kinds.reference_subject(case)
    subject.forward(case.inputs)
    return subject.backward(case.upstream)["input"]


def torch_grad(case: Case, **options) -> np.ndarray:
    torch = pytest.importorskip("torch")
    g = case.geometry
    x = torch.tensor(case.inputs["input"], requires_grad=True)
    y = torch.nn.functional.avg_pool2d(x, g.kernel, g.stride, g.padding, **options)
    y.backward(torch.tensor(case.upstream))
    return x.grad.numpy()


def test_the_kind_is_registered_user_checkable_and_linear():
    assert "avgpool" in kinds.NAMES and "avgpool" in kinds.USER_NAMES
    assert KIND.geometry is PoolGeometry and KIND.membership is None and not KIND.curved
    assert [m.name for m in KIND.mistakes] == ["avgpool_forgets_divisor", "avgpool_excludes_padding"]


@given(cases("avgpool", mode=st.sampled_from(["separated", "mixed"])))
def test_the_reference_equals_torch_with_the_padding_counted(case):
    z, sites = KIND.forward(case.geometry, case.inputs, None)
    exact = torch_oracle.gradients(KIND.torch, case.geometry, case.inputs, case.upstream)
    np.testing.assert_allclose(z, exact.output, rtol=1e-12, atol=1e-12)
    assert sites == []
    np.testing.assert_allclose(right(case), exact.grads["input"], rtol=1e-12, atol=1e-15)


def test_the_padding_mistake_is_torchs_count_include_pad_false():
    case = pool_case()
    wrong = kinds.by_name("avgpool_excludes_padding").wrong(case, {})["input"]
    np.testing.assert_allclose(wrong, torch_grad(case, count_include_pad=False), rtol=1e-12, atol=1e-15)
    assert not np.allclose(wrong, right(case))


def test_the_divisor_mistake_is_kh_times_kw_the_right_gradient():
    case = pool_case()
    wrong = kinds.by_name("avgpool_forgets_divisor").wrong(case, {})["input"]
    np.testing.assert_allclose(wrong, 6 * right(case), rtol=1e-12)


def test_when_each_mistake_applies():
    padded, plain, single = (
        pool_case(),
        pool_case(PADDED._replace(padding=(0, 0))),
        pool_case(PoolGeometry(1, 1, 3, 3, (1, 1), (1, 1))),
    )
    excludes, forgets = kinds.by_name("avgpool_excludes_padding"), kinds.by_name("avgpool_forgets_divisor")
    assert excludes.applies(padded) and not excludes.applies(plain)
    np.testing.assert_allclose(excludes.wrong(plain, {})["input"], right(plain), rtol=1e-12)  # nothing to exclude
    assert forgets.applies(plain) and not forgets.applies(single)


def test_with_one_real_row_and_column_the_two_mistakes_look_the_same():
    """Why the corner asks for three outputs: on a 1x1 input every window holds one real tap, so dividing by
    the real taps IS dividing by nothing; the diagnosis can only say both."""
    case = pool_case(PoolGeometry(1, 1, 1, 1, (2, 2), (1, 1), (1, 1)))
    excludes, forgets = (
        kinds.by_name(n).wrong(case, {})["input"] for n in ("avgpool_excludes_padding", "avgpool_forgets_divisor")
    )
    np.testing.assert_allclose(excludes, forgets)


@given(st.data())
def test_the_corner_pads_overlaps_and_keeps_an_inner_window(data):
    declaration = Declaration("avgpool", supports=presets.function_pair("avgpool", PAIR).supports)
    narrowed = corner(KIND, declaration.supports)
    g = data.draw(KIND.user_geometries(narrowed, "NCHW"))
    assert min(g.padding) >= 1 and g.stride == (1, 1) and min(g.output_shape[2:]) >= 3 and g.batch >= 2
    assert g.overlapping and g.kernel[0] == g.kernel[1] >= 2


# -- the function-pair preset ------------------------------------------------------------------------------

SEEN: list[dict] = []


def avg_pool_forward(x, pool_param):
    SEEN.append(dict(pool_param))
    return x, None


PAIR = {"avg_pool_forward": avg_pool_forward, "avg_pool_backward": lambda dout, cache: dout}


@pytest.mark.parametrize(
    ("padding", "expected"),
    [
        ((0, 0), {"pool_height": 2, "pool_width": 2, "stride": 1}),
        ((1, 1), {"pool_height": 2, "pool_width": 2, "stride": 1, "pad": 1}),
    ],
)
def test_the_function_pair_gets_pool_param_with_pad_only_when_padded(padding, expected):
    spec = presets.function_pair("avgpool", PAIR)
    assert spec.input_layout == "NCHW" and spec.supports.square and spec.supports.padding == (0, 1)
    SEEN.clear()
    spec.build(PoolGeometry(1, 1, 3, 3, (2, 2), (1, 1), padding)).forward(np.zeros((1, 1, 3, 3)))
    assert SEEN == [expected]


def test_a_users_avgpool_is_drawn_inside_its_supports():
    declaration = Declaration("avgpool", supports=Supports(kernel=2, stride="kernel", padding=0, output=(1, 2)))
    strategy = geometries(declaration)

    @given(strategy)
    def inside(g):
        assert g.kernel == g.stride == (2, 2) and g.padding == (0, 0) and max(g.output_shape[2:]) <= 2

    inside()


# -- the function pairs of examples/function_pairs ----------------------------------------------------------


def pair(file: str):
    return targets.load(f"{REPO / 'examples' / 'function_pairs' / file}:", kind="avgpool")


def test_the_correct_pair_passes():
    report = check(pair("activations.py"), in_process=True, max_examples=10)
    assert report.passed, report.render()


@pytest.mark.parametrize(
    ("file", "mistake"),
    [
        ("avgpool_excludes_padding.py", "avgpool_excludes_padding"),
        ("avgpool_forgets_divisor.py", "avgpool_forgets_divisor"),
    ],
)
def test_a_buggy_pair_fails_on_grad_input_with_its_mistake_named(file, mistake):
    report = check(pair(file), in_process=True, max_examples=10)
    assert report.failed_properties == ["grad_input"], report.render()
    found = next(p for p in report.properties if p.property == "grad_input")
    assert [m.mistake for m in found.diagnosis.matches] == [mistake], report.render()
