"""The conv kind's generation for layers that take padding as a string: "valid" is no padding, "same" is stride 1,
an odd kernel and p = d*(k - 1)/2 (H' = H), and what admits no such geometry says so."""

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checks import LayerSpec, Supports, api
from checks.job import Job
from checks.kinds import conv, maxpool
from checks.strategies._spec import SupportsError, geometries

FIXTURES = Path(__file__).parents[2] / "fixtures" / "strategies"


@settings(max_examples=40)
@given(st.data())
def test_same_padding_keeps_the_size_with_stride_1_and_an_odd_kernel(data):
    g = data.draw(conv.user_geometries(Supports(padding="same", kernel=(1, 5), dilation=(1, 2)), "NCHW"))
    assert g.stride == (1, 1)
    for k, d, p in zip(g.kernel, g.dilation, g.padding, strict=True):
        assert k % 2 == 1 and p == d * (k - 1) // 2
    assert g.output_shape[2:] == (g.height, g.width)


@settings(max_examples=20)
@given(st.data())
def test_valid_padding_is_no_padding(data):
    assert data.draw(conv.user_geometries(Supports(padding="valid"), "NCHW")).padding == (0, 0)
    assert data.draw(maxpool.user_geometries(Supports(padding="valid"), "NCHW")).padding == (0, 0)


def test_what_admits_no_same_geometry_is_an_adaptation_error_naming_it():
    even = LayerSpec("conv", build=lambda g: None, supports=Supports(padding="same", kernel=2))
    with pytest.raises(SupportsError, match="padding='same' needs an odd kernel"):
        geometries(even)
    pool = LayerSpec("maxpool", build=lambda g: None, supports=Supports(padding="same"))
    with pytest.raises(SupportsError, match="a pool takes 'valid'"):
        geometries(pool)


def _check(name: str):
    return api.check_job(Job(target=f"{FIXTURES / 'same_padding.py'}:{name}", max_examples=10))


def test_a_layer_taking_same_passes_and_its_corner_crop_is_caught():
    assert _check("same").passed
    report = _check("same_cropped")
    assert not report.passed and "grad_input" in report.failed_properties
