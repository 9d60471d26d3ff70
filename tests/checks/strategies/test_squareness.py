"""Squareness of the window and of the input are separate declarations, and the seed max-pool meets sizes its
window does not divide: the two blind spots whose bugs were never drawn (issue 10)."""

import dataclasses
from pathlib import Path

from hypothesis import find, given, settings
from hypothesis import strategies as st

from checks import api
from checks.job import Job
from checks.strategies import conv_geometries, pool_geometries

FIXTURES = Path(__file__).parents[2] / "fixtures" / "strategies"


@given(st.data())
def test_a_square_window_keeps_its_hyper_parameters_on_both_axes_and_square_input_the_input(data):
    square_input = data.draw(st.booleans())
    g = data.draw(conv_geometries(square=True, square_input=square_input, padding=(0, 2)))
    assert all(v[0] == v[1] for v in (g.kernel, g.stride, g.padding, g.dilation))
    assert g.height >= 1 and g.width >= 1
    if square_input:
        assert g.height == g.width
    p = data.draw(pool_geometries(square=True, square_input=square_input))
    assert p.kernel[0] == p.kernel[1] and p.stride[0] == p.stride[1] and p.padding[0] == p.padding[1]
    if square_input:
        assert p.height == p.width


def test_a_square_window_still_meets_non_square_inputs():
    quiet = settings(database=None, derandomize=True)
    g = find(conv_geometries(square=True, kernel=(3, 4), padding=(1, 2)), lambda g: g.height != g.width, settings=quiet)
    assert g.kernel[0] == g.kernel[1] and g.height != g.width
    p = find(
        pool_geometries(square=True, kernel=(2, 3), padding=1, output=(2, 4)),
        lambda p: p.height != p.width,
        settings=quiet,
    )
    assert p.padding == (1, 1) and p.height != p.width


def _check(name: str, kind: str):
    job = Job(target=f"{FIXTURES / 'seed_shapes.py'}:{name}", kind=kind, preset="seed", max_examples=15)
    return api.check_job(job)


def test_a_conv_that_takes_the_height_for_the_width_is_caught_by_a_non_square_image():
    report = _check("ConvRowsForColumns", "conv")
    assert not report.passed
    assert "forward" in report.failed_properties


def test_the_seed_pool_meets_sizes_the_window_does_not_divide():
    report = _check("PoolStepsPastTheEdge", "maxpool")
    assert not report.passed
    text = report.render()
    assert "raised IndexError" in text and "(inputs: input (" in text, text


def test_square_input_is_a_declared_support_that_crosses_to_the_worker():
    from checks.adapt.adapters import Supports

    assert dataclasses.replace(Supports(), square_input=True).square_input
