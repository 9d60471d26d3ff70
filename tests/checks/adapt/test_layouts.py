"""checks.adapt.layouts: every activation and weight layout round-trips to and from the canonical one,
lands in the documented user shape, refuses arrays that cannot be in it, and hands the user a
contiguous copy of their own."""

from __future__ import annotations

import numpy as np
import pytest

from checks.adapt import layouts

# canonical shape -> the user's shape, per layout (N=1/C=1 where the layout requires it)
ACTIVATIONS = {
    "NCHW": ((2, 3, 4, 5), (2, 3, 4, 5)),
    "NHWC": ((2, 3, 4, 5), (2, 4, 5, 3)),
    "CHW": ((1, 3, 4, 5), (3, 4, 5)),
    "HWC": ((1, 3, 4, 5), (4, 5, 3)),
    "HW": ((1, 1, 4, 5), (4, 5)),
    "ND": ((2, 7), (2, 7)),
    "D": ((1, 7), (7,)),
}
WEIGHTS = {
    "FCHW": ((2, 3, 4, 5), (2, 3, 4, 5)),
    "HWCF": ((2, 3, 4, 5), (4, 5, 3, 2)),
    "FHW": ((2, 1, 4, 5), (2, 4, 5)),
    "DM": ((6, 7), (6, 7)),
    "MD": ((6, 7), (7, 6)),
}


def distinct(shape: tuple[int, ...]) -> np.ndarray:
    """Every entry different, so a wrong transpose cannot go unnoticed."""
    return np.arange(float(np.prod(shape))).reshape(shape)


def test_the_tables_cover_every_documented_layout():
    assert set(ACTIVATIONS) == set(layouts.ACTIVATION_LAYOUTS)
    assert set(WEIGHTS) == set(layouts.WEIGHT_LAYOUTS)


@pytest.mark.parametrize("layout", list(ACTIVATIONS))
def test_an_activation_round_trips_through_the_users_layout(layout):
    canonical_shape, user_shape = ACTIVATIONS[layout]
    a = distinct(canonical_shape)
    user = layouts.to_user(a, layout)
    assert user.shape == user_shape
    assert np.array_equal(layouts.to_canonical(user, layout), a)


def test_channels_last_puts_the_channel_axis_last():
    a = distinct((2, 3, 4, 5))
    assert layouts.to_user(a, "NHWC")[1, 2, 3, 0] == a[1, 0, 2, 3]
    assert layouts.to_user(a[:1], "HWC")[2, 3, 1] == a[0, 1, 2, 3]


@pytest.mark.parametrize("layout", list(WEIGHTS))
def test_a_weight_round_trips_through_the_users_layout(layout):
    canonical_shape, user_shape = WEIGHTS[layout]
    w = distinct(canonical_shape)
    user = layouts.weight_to_user(w, layout)
    assert user.shape == user_shape
    assert np.array_equal(layouts.weight_to_canonical(user, layout), w)


def test_weight_layouts_put_each_axis_where_documented():
    w = distinct((2, 3, 4, 5))  # (F, C, kh, kw)
    assert layouts.weight_to_user(w, "HWCF")[3, 4, 2, 1] == w[1, 2, 3, 4]
    assert layouts.weight_to_user(w[:, :1], "FHW")[1, 3, 4] == w[1, 0, 3, 4]
    d = distinct((6, 7))  # (D, M); torch.nn.Linear keeps (M, D)
    assert layouts.weight_to_user(d, "MD")[5, 2] == d[2, 5]


@pytest.mark.parametrize(
    "layout, shape",
    [("CHW", (2, 3, 4, 5)), ("HWC", (2, 3, 4, 5)), ("HW", (1, 2, 4, 5)), ("HW", (2, 1, 4, 5)), ("D", (3, 7))],
)
def test_a_layout_for_one_image_or_one_channel_refuses_more_naming_the_layout(layout, shape):
    with pytest.raises(ValueError, match=f"layout {layout} needs size 1") as info:
        layouts.to_user(distinct(shape), layout)
    assert str(shape) in str(info.value)


def test_a_single_channel_weight_layout_refuses_several_channels():
    with pytest.raises(ValueError, match="layout FHW needs size 1"):
        layouts.weight_to_user(distinct((2, 3, 4, 5)), "FHW")


@pytest.mark.parametrize("layout, shape", [("NHWC", (4, 5, 3)), ("HW", (1, 4, 5)), ("D", (1, 7)), ("CHW", (3, 4))])
def test_a_user_array_of_the_wrong_rank_is_refused_naming_the_layout_and_shape(layout, shape):
    with pytest.raises(ValueError, match=f"layout {layout}, got shape \\{str(shape)[:-1]}"):
        layouts.to_canonical(distinct(shape), layout)


def test_a_user_weight_of_the_wrong_rank_is_refused():
    with pytest.raises(ValueError, match="4-d array in layout HWCF"):
        layouts.weight_to_canonical(distinct((3, 3, 2)), "HWCF")


@pytest.mark.parametrize("call", [layouts.to_user, layouts.to_canonical, layouts.weight_to_user, layouts.unit_axes])
def test_an_unknown_layout_is_refused_naming_it_and_the_known_ones(call):
    args = ("NCWH",) if call is layouts.unit_axes else (distinct((1, 1, 2, 2)), "NCWH")
    with pytest.raises(ValueError, match="'NCWH'") as info:
        call(*args)
    assert "known" in str(info.value)


def test_an_activation_layout_is_not_a_weight_layout_and_vice_versa():
    with pytest.raises(ValueError, match="activation layout 'HWCF'"):
        layouts.to_user(distinct((1, 2, 3, 4)), "HWCF")
    with pytest.raises(ValueError, match="weight layout 'NHWC'"):
        layouts.weight_to_user(distinct((1, 2, 3, 4)), "NHWC")


def test_unit_axes_name_the_canonical_axes_a_layout_fixes_to_one():
    assert layouts.unit_axes("NCHW") == ()
    assert layouts.unit_axes("HWC") == (0,)
    assert layouts.unit_axes("HW") == (0, 1)
    assert layouts.unit_axes("FHW") == (1,)


@pytest.mark.parametrize("layout", list(ACTIVATIONS))
def test_to_user_returns_a_contiguous_array(layout):
    user = layouts.to_user(distinct(ACTIVATIONS[layout][0]), layout)
    assert user.flags.c_contiguous


@pytest.mark.parametrize("layout", list(WEIGHTS))
def test_weight_to_user_returns_a_contiguous_array(layout):
    assert layouts.weight_to_user(distinct(WEIGHTS[layout][0]), layout).flags.c_contiguous


@pytest.mark.parametrize(
    "layout",
    ACTIVATIONS,
)
def test_writing_into_what_to_user_returned_leaves_the_canonical_array_alone(layout):
    a = distinct(ACTIVATIONS[layout][0])
    keep = a.copy()
    user = layouts.to_user(a, layout)
    user[...] = -1.0
    assert np.array_equal(a, keep)
