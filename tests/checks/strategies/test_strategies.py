"""checks.strategies: geometries valid by construction, bounds kept, corners reachable, minimal shrink
targets, value modes that mean what they say, Cases whose arrays match their geometry.

Property tests use the active hypothesis profile. Reachability uses ``find`` with derandomised
generation (deterministic, no shrinking); shrink targets use ``find`` with shrinking."""

from __future__ import annotations

import inspect
import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import checks.strategies as strategies
import cnn
from checks.case import Case
from checks.geometry import (
    BatchNormGeometry,
    ConvGeometry,
    DenseGeometry,
    DropoutGeometry,
    ElementwiseGeometry,
    FlattenGeometry,
    LeakyReluGeometry,
    LossGeometry,
    PoolGeometry,
    SoftmaxGeometry,
)
from checks.kinds import NAMES as KINDS
from checks.strategies import (
    MIN_ABS,
    MIN_GAP,
    MODES,
    batchnorm_geometries,
    cases,
    conv_geometries,
    dense_geometries,
    dropout_geometries,
    elementwise_geometries,
    flatten_geometries,
    leaky_relu_geometries,
    loss_geometries,
    network_geometries,
    parameters,
    pool_geometries,
    softmax_geometries,
    upstream,
    values,
)
from checks.strategies._values import DRAW_LIMIT, MIXED_RANGE, TIE_LEVELS, UPSTREAM_RANGE, WEIGHT_RANGE, WIDE_GAP

DTYPES = [np.float32, np.float64]
SLACK = 1e-6  # relative: float32 rounding of values up to ~500 moves a 0.1 gap by < 1e-4
REACH = settings(database=None, max_examples=2000, phases=[Phase.generate], derandomize=True)
SHRINK = settings(
    database=None, max_examples=200, phases=[Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck)
)


def reachable(strategy, condition):
    """An example satisfying ``condition`` (find raises NoSuchExample if none turns up)."""
    return find(strategy, condition, settings=REACH)


def _out(g, axis: int) -> int:
    return g.output_shape[2 + axis]


def _in(lo_hi, value) -> bool:
    lo, hi = (lo_hi, lo_hi) if isinstance(lo_hi, int) else lo_hi
    return lo <= value <= hi


# ---------------------------------------------------------------------------------------------------------
# Geometries are valid: the reference layers accept them and produce exactly geometry.output_shape.
# ---------------------------------------------------------------------------------------------------------


@given(conv_geometries())
def test_every_conv_geometry_runs_in_conv2d_with_its_output_shape(g):
    assert min(g.input_shape) >= 1  # cnn accepts an empty input when padding makes room: check it here
    bias = np.zeros(g.filters) if g.bias else None
    z = cnn.conv2d(np.zeros(g.input_shape), np.zeros(g.param_shapes["weight"]), bias, g.stride, g.padding, g.dilation)
    assert z.shape == g.output_shape
    for axis in (0, 1):
        assert 1 <= _out(g, axis) <= 5
        assert g.padding[axis] <= g.dilation[axis] * (g.kernel[axis] - 1)


@given(pool_geometries())
def test_every_pool_geometry_runs_in_max_pool2d_with_its_output_shape(g):
    assert min(g.input_shape) >= 1  # cnn accepts an empty input when padding makes room: check it here
    y, _ = cnn.max_pool2d(np.zeros(g.input_shape), g.kernel, g.stride, g.padding)
    assert y.shape == g.output_shape
    assert all(p <= k // 2 for p, k in zip(g.padding, g.kernel, strict=True))


@given(dense_geometries())
def test_every_dense_geometry_runs_in_dense_with_its_output_shape(g):
    bias = np.zeros(g.out_features) if g.bias else None
    assert cnn.dense(np.zeros(g.input_shape), np.zeros(g.param_shapes["weight"]), bias).shape == g.output_shape


@given(elementwise_geometries(), flatten_geometries())
def test_every_elementwise_and_flatten_geometry_runs_with_its_output_shape(relu_g, flat_g):
    assert cnn.relu(np.zeros(relu_g.input_shape)).shape == relu_g.output_shape
    assert cnn.flatten(np.zeros(flat_g.input_shape)).shape == flat_g.output_shape


@given(leaky_relu_geometries(), softmax_geometries(ndim=(3, 4), axis=1), pool_geometries())
def test_every_leaky_relu_softmax_and_avg_pool_geometry_runs_with_its_output_shape(leaky, soft, pool):
    assert cnn.leaky_relu(np.zeros(leaky.input_shape), leaky.alpha).shape == leaky.output_shape
    assert 0.01 <= leaky.alpha <= 0.3
    assert cnn.softmax(np.zeros(soft.input_shape), soft.axis).shape == soft.output_shape and soft.axis == 1
    assert cnn.avg_pool2d(np.zeros(pool.input_shape), pool.kernel, pool.stride, pool.padding).shape == pool.output_shape


@given(leaky_relu_geometries(alpha=0.125), leaky_relu_geometries(alpha=(0.0, 0.5)), softmax_geometries(axis=-2))
def test_a_fixed_slope_and_axis_stay_fixed_and_a_slope_range_is_kept(fixed, ranged, soft):
    assert fixed.alpha == 0.125
    assert 0.0 <= ranged.alpha <= 0.5 and str(ranged.alpha) != "-0.0"
    assert soft.axis == -2


def test_the_slope_bounds_are_reachable():
    reachable(leaky_relu_geometries(), lambda g: g.alpha == 0.01)
    reachable(leaky_relu_geometries(), lambda g: 0.25 < g.alpha <= 0.3)


@given(cases("network"))
def test_every_network_geometry_chains_through_the_reference_layers(case):
    g, a = case.geometry, case.inputs
    assert min(g.input_shape) >= 1
    assert (g.conv1.input_shape, g.conv1.in_channels) == (g.input_shape, g.in_channels)
    z = cnn.conv2d(a["input"], a["conv1.weight"], a.get("conv1.bias"), g.conv1.stride, g.conv1.padding)
    assert z.shape == g.conv1.output_shape == g.pool1.input_shape
    z, _ = cnn.max_pool2d(cnn.relu(z), g.pool1.kernel, g.pool1.stride, g.pool1.padding)
    assert z.shape == g.pool1.output_shape == g.conv2.input_shape
    z = cnn.conv2d(z, a["conv2.weight"], a.get("conv2.bias"), g.conv2.stride, g.conv2.padding)
    assert z.shape == g.conv2.output_shape == g.pool2.input_shape
    z, _ = cnn.max_pool2d(cnn.relu(z), g.pool2.kernel, g.pool2.stride, g.pool2.padding)
    assert z.shape == g.pool2.output_shape == g.dense.input_shape
    logits = cnn.dense(z, a["dense.weight"], a.get("dense.bias"))
    assert logits.shape == (g.batch, g.dense.out_features)
    loss, _ = cnn.softmax_cross_entropy(logits, case.labels)
    assert np.isfinite(loss)
    assert 4 <= g.height <= 17 and 4 <= g.width <= 17


# ---------------------------------------------------------------------------------------------------------
# Bounds are respected: ranges stay in range, fixed values stay fixed, square stays square.
# ---------------------------------------------------------------------------------------------------------


def bounds(lo: int, hi: int):
    """A Bound inside [lo, hi]: a fixed int or an ordered pair."""
    pairs = st.tuples(st.integers(lo, hi), st.integers(lo, hi)).map(lambda t: (min(t), max(t)))
    return st.one_of(st.integers(lo, hi), pairs)


@given(st.data())
def test_conv_geometries_keep_every_bound(data):
    b = {
        "batch": data.draw(bounds(1, 4)),
        "in_channels": data.draw(bounds(1, 4)),
        "filters": data.draw(bounds(1, 4)),
        "kernel": data.draw(bounds(1, 4)),
        "stride": data.draw(bounds(1, 3)),
        "dilation": data.draw(bounds(1, 2)),
        "output": data.draw(bounds(1, 5)),
        "padding": (0, data.draw(st.integers(0, 2))),
    }
    square, bias = data.draw(st.booleans()), data.draw(st.sampled_from([None, True, False]))
    g = data.draw(conv_geometries(**b, square=square, bias=bias))
    assert _in(b["batch"], g.batch) and _in(b["in_channels"], g.in_channels) and _in(b["filters"], g.filters)
    for axis in (0, 1):
        assert _in(b["kernel"], g.kernel[axis]) and _in(b["stride"], g.stride[axis])
        assert _in(b["dilation"], g.dilation[axis]) and _in(b["padding"], g.padding[axis])
        assert _in(b["output"], _out(g, axis))
    if square:  # the window is square; the input only with square_input (tests/checks/strategies/test_squareness.py)
        assert all(v[0] == v[1] for v in (g.kernel, g.stride, g.padding, g.dilation))
    if bias is not None:
        assert g.bias is bias


@given(st.data())
def test_pool_geometries_keep_every_bound(data):
    b = {
        "batch": data.draw(bounds(1, 4)),
        "channels": data.draw(bounds(1, 4)),
        "kernel": data.draw(bounds(1, 3)),
        "stride": data.draw(bounds(1, 3)),
        "output": data.draw(bounds(1, 4)),
        "padding": (0, data.draw(st.integers(0, 1))),
    }
    square = data.draw(st.booleans())
    g = data.draw(pool_geometries(**b, square=square))
    assert _in(b["batch"], g.batch) and _in(b["channels"], g.channels)
    for axis in (0, 1):
        assert _in(b["kernel"], g.kernel[axis]) and _in(b["stride"], g.stride[axis])
        assert _in(b["padding"], g.padding[axis]) and _in(b["output"], _out(g, axis))
    if square:
        assert g.kernel[0] == g.kernel[1] and g.stride[0] == g.stride[1] and g.padding[0] == g.padding[1]


@given(
    conv_geometries(batch=2, in_channels=3, filters=1, kernel=3, stride=2, padding=1, dilation=1, output=4, bias=True),
    pool_geometries(batch=3, channels=2, kernel=2, stride=2, padding=1, output=3),
    dense_geometries(batch=2, features_ndim=3, side=2, out_features=4, bias=False),
    elementwise_geometries(ndim=3, side=2),
    loss_geometries(batch=3, classes=5, reduction="sum"),
)
def test_fixed_bounds_stay_fixed(conv, pool, dense, elementwise, loss):
    # r in [0, s-1]: the input may hold one row (column) the stride never reaches, so H, W in {7, 8}
    assert conv._replace(height=0, width=0) == ConvGeometry(2, 3, 0, 0, 1, (3, 3), (2, 2), (1, 1), (1, 1), True)
    assert {conv.height, conv.width} <= {7, 8} and conv.output_shape == (2, 1, 4, 4)
    assert pool._replace(height=0, width=0) == PoolGeometry(3, 2, 0, 0, (2, 2), (2, 2), (1, 1))
    assert {pool.height, pool.width} <= {4, 5} and pool.output_shape == (3, 2, 3, 3)
    assert dense == DenseGeometry(2, (2, 2, 2), 4, False)
    assert elementwise == ElementwiseGeometry((2, 2, 2))
    assert loss == LossGeometry(3, 5, "sum")


@given(conv_geometries(remainder=False), pool_geometries(remainder=False))
def test_remainder_false_makes_the_windows_cover_the_padded_input_exactly(conv, pool):
    for axis, size in enumerate((conv.height, conv.width)):
        covered = (_out(conv, axis) - 1) * conv.stride[axis] + conv.dilation[axis] * (conv.kernel[axis] - 1) + 1
        assert size + 2 * conv.padding[axis] == covered
    for axis, size in enumerate((pool.height, pool.width)):
        assert size + 2 * pool.padding[axis] == (_out(pool, axis) - 1) * pool.stride[axis] + pool.kernel[axis]
    assert min(conv.input_shape) >= 1 and min(pool.input_shape) >= 1


@given(conv_geometries(padding=1, kernel=1, output=(3, 5)), network_geometries(batch=2, in_channels=1, bias=True))
def test_a_padding_min_beyond_the_soft_cap_is_honoured(conv, net):
    assert conv.padding == (1, 1) and conv.height >= 1  # more than d*(k-1) = 0, because min asks for it
    assert net.batch == 2 and net.in_channels == 1 and net.conv1.bias and net.conv2.bias and net.dense.bias


# ---------------------------------------------------------------------------------------------------------
# Corners are reachable.
# ---------------------------------------------------------------------------------------------------------

CONV_CORNERS = {
    "kernel exactly the padded input": lambda g: (
        g.output_shape[2:] == (1, 1)
        and g.height + 2 * g.padding[0] == g.dilation[0] * (g.kernel[0] - 1) + 1
        and g.kernel[0] >= 3
        and g.padding[0] >= 1
    ),
    "stride larger than the kernel": lambda g: g.stride[0] > g.kernel[0] and _out(g, 0) >= 2,
    "1x1 output from a larger input": lambda g: g.output_shape[2:] == (1, 1) and g.height * g.width > 1,
    "rows the stride never reaches": lambda g: (
        (g.height + 2 * g.padding[0] - g.dilation[0] * (g.kernel[0] - 1) - 1) % g.stride[0] != 0
    ),
    "dilated, strided and padded at once": lambda g: (
        g.dilation == (2, 2) and min(g.stride) >= 2 and min(g.padding) >= 1
    ),
    "batch 4, 4 channels, 4 filters": lambda g: (g.batch, g.in_channels, g.filters) == (4, 4, 4),
    "non-square": lambda g: g.height != g.width and g.kernel[0] != g.kernel[1],
    "largest output": lambda g: g.output_shape[2:] == (5, 5),
}

POOL_CORNERS = {
    "overlapping windows": lambda g: g.overlapping and _out(g, 0) >= 2 and g.stride[0] < g.kernel[0],
    "tiling windows": lambda g: g.stride == g.kernel and min(g.kernel) >= 2 and min(g.output_shape[2:]) >= 2,
    "stride larger than the kernel": lambda g: g.stride[0] > g.kernel[0] >= 2 and _out(g, 0) >= 2,
    "size the stride does not divide": lambda g: (g.height + 2 * g.padding[0] - g.kernel[0]) % g.stride[0] != 0,
    "padded": lambda g: g.padding == (1, 1),
    "batch 4, 4 channels": lambda g: (g.batch, g.channels) == (4, 4),
    "1x1 output from a larger input": lambda g: g.output_shape[2:] == (1, 1) and g.height * g.width > 1,
}


@pytest.mark.parametrize("corner", list(CONV_CORNERS))
def test_conv_corner_is_reachable(corner):
    reachable(conv_geometries(), CONV_CORNERS[corner])


@pytest.mark.parametrize("corner", list(POOL_CORNERS))
def test_pool_corner_is_reachable(corner):
    reachable(pool_geometries(), POOL_CORNERS[corner])


def test_network_image_sizes_span_their_documented_range():
    reachable(network_geometries(), lambda g: g.height == 4 or g.width == 4)
    reachable(network_geometries(), lambda g: g.height == 17 or g.width == 17)


# ---------------------------------------------------------------------------------------------------------
# Shrinking goes to the smallest geometry.
# ---------------------------------------------------------------------------------------------------------

MINIMAL = [
    (conv_geometries(), ConvGeometry(1, 1, 1, 1, 1, (1, 1), (1, 1), (0, 0), (1, 1), False)),
    (pool_geometries(), PoolGeometry(1, 1, 1, 1, (1, 1), (1, 1), (0, 0))),
    (elementwise_geometries(), ElementwiseGeometry((1, 1))),
    (flatten_geometries(), FlattenGeometry((1, 1))),
    (dense_geometries(), DenseGeometry(1, (1,), 1, False)),
    (loss_geometries(), LossGeometry(1, 2)),
    (leaky_relu_geometries(), LeakyReluGeometry((1, 1), 0.01)),
    (softmax_geometries(), SoftmaxGeometry((1, 1), -1)),
]


@pytest.mark.parametrize(("strategy", "smallest"), MINIMAL, ids=lambda v: type(v).__name__)
def test_geometries_shrink_to_the_smallest_geometry(strategy, smallest):
    assert find(strategy, lambda g: True, settings=SHRINK) == smallest


def test_shrinking_keeps_only_what_the_condition_needs():
    conv = find(conv_geometries(), lambda g: _out(g, 0) >= 3 and g.stride[0] >= 2, settings=SHRINK)
    assert conv == ConvGeometry(1, 1, 5, 1, 1, (1, 1), (2, 1), (0, 0), (1, 1), False)
    pool = find(pool_geometries(), lambda g: g.padding[1] == 1, settings=SHRINK)
    # padding 1 needs kernel 3 at output 1 (kernel 2 would leave an empty input): output is drawn first
    assert pool == PoolGeometry(1, 1, 1, 1, (1, 3), (1, 1), (0, 1))


def test_network_geometries_shrink_to_the_smallest_network():
    g = find(network_geometries(), lambda g: True, settings=SHRINK)
    assert (g.batch, g.in_channels, g.height, g.width) == (1, 1, 10, 10)
    assert g.pool2.output_shape == (1, 1, 1, 1) and g.dense == DenseGeometry(1, (1, 1, 1), 2, False)
    assert g.conv1.padding == g.conv2.padding == (0, 0) and not (g.conv1.bias or g.conv2.bias)


def test_a_case_shrinks_to_the_smallest_geometry_and_plain_values():
    case = find(cases("conv"), lambda c: True, settings=SHRINK)
    assert case.geometry == MINIMAL[0][1]
    assert case.inputs["input"].ravel().tolist() == [MIN_ABS] and case.upstream.ravel()[0] > 0


# ---------------------------------------------------------------------------------------------------------
# Values: each mode means what it says, in both dtypes, on both drawing paths (bytes and seed).
# ---------------------------------------------------------------------------------------------------------

SHAPES = st.one_of(
    hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=6),
    st.sampled_from([(DRAW_LIMIT + 1,), (3000,), (4, 4, 15, 15)]),
)


def _gaps(x: np.ndarray) -> np.ndarray:
    return np.diff(np.sort(x.ravel().astype(np.float64)))


@given(SHAPES, st.sampled_from(DTYPES), st.data())
def test_separated_values_are_pairwise_apart_and_away_from_zero(shape, dtype, data):
    x = data.draw(values(shape, dtype, "separated"))
    assert x.shape == shape and x.dtype == dtype
    assert np.all(np.abs(x) >= MIN_ABS * (1 - SLACK))
    assert np.all(_gaps(x) >= MIN_GAP * (1 - SLACK) - 1e-4 * (dtype == np.float32))


@given(SHAPES, st.sampled_from(DTYPES), st.data())
def test_zeros_values_hold_exact_zeros_and_separated_nonzeros(shape, dtype, data):
    x = data.draw(values(shape, dtype, "zeros"))
    assert x.shape == shape and x.dtype == dtype
    zeros = int(np.sum(x == 0))
    assert 1 <= zeros <= math.ceil(x.size / 2)
    rest = x[x != 0]
    assert np.all(np.abs(rest) >= MIN_ABS * (1 - SLACK))
    assert np.all(_gaps(rest) >= MIN_GAP * (1 - SLACK) - 1e-4 * (dtype == np.float32))


@given(SHAPES, st.sampled_from(DTYPES), st.data())
def test_ties_values_use_only_the_tie_levels(shape, dtype, data):
    x = data.draw(values(shape, dtype, "ties"))
    assert x.shape == shape and x.dtype == dtype
    assert set(np.unique(x).tolist()) <= set(TIE_LEVELS)


@given(SHAPES, st.sampled_from(DTYPES), st.data())
def test_mixed_values_are_finite_normal_and_spread(shape, dtype, data):
    x = data.draw(values(shape, dtype, "mixed"))
    assert x.shape == shape and x.dtype == dtype
    low, high = MIXED_RANGE
    assert np.all(np.isfinite(x)) and np.all(np.abs(x) >= low * (1 - SLACK)) and np.all(np.abs(x) <= high * (1 + SLACK))


def test_mixed_values_reach_both_ends_and_both_signs():
    reachable(values((64,), np.float64, "mixed"), lambda x: x.min() < -100 and x.max() > 100)
    reachable(values((64,), np.float64, "mixed"), lambda x: np.abs(x).min() < 0.01)


@given(SHAPES, st.sampled_from(DTYPES), st.data())
def test_upstream_is_signed_nonzero_in_range_and_never_constant(shape, dtype, data):
    g = data.draw(upstream(shape, dtype))
    assert isinstance(g, np.ndarray) and g.shape == shape and g.dtype == dtype
    low, high = UPSTREAM_RANGE
    assert np.all(np.abs(g) > low) and np.all(np.abs(g) < high)
    assert np.unique(g).size == g.size  # distinct, so never constant once it has two entries


def test_upstream_takes_both_signs():
    reachable(upstream((2, 3)), lambda g: g.min() < 0 < g.max())


@given(SHAPES, st.sampled_from(DTYPES), st.data())
def test_parameters_are_nonzero_and_moderate(shape, dtype, data):
    w = data.draw(parameters(shape, dtype))
    low, high = WEIGHT_RANGE
    assert w.shape == shape and w.dtype == dtype
    assert np.all(np.abs(w) >= low * (1 - SLACK)) and np.all(np.abs(w) <= high * (1 + SLACK))


@pytest.mark.parametrize("size", [6, DRAW_LIMIT + 1], ids=["drawn-bytes", "drawn-seed"])
@pytest.mark.parametrize("mode", MODES)
def test_values_vary_between_examples(mode, size):
    first = find(values((size,), np.float64, mode), lambda x: True, settings=SHRINK)
    reachable(values((size,), np.float64, mode), lambda x: not np.array_equal(x, first))


def _has_tied_window(x: np.ndarray, g: PoolGeometry) -> bool:
    (kh, kw), (sh, sw), (ph, pw) = g.kernel, g.stride, g.padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
    n, c, ho, wo = g.output_shape
    for i in range(ho):
        for j in range(wo):
            window = xp[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw].reshape(n, c, -1)
            if np.any(np.sum(window == window.max(axis=2, keepdims=True), axis=2) > 1):
                return True
    return False


def test_ties_mode_ties_some_pool_window_in_most_cases():
    found = []

    @settings(database=None, max_examples=100, phases=[Phase.generate], derandomize=True)
    @given(cases("maxpool", pool_geometries(kernel=(2, 3)), mode="ties"))
    def measure(case):
        found.append(_has_tied_window(case.inputs["input"], case.geometry))

    measure()
    assert sum(found) >= 0.8 * len(found), f"only {sum(found)} of {len(found)} tie cases tie a pool window"
    reachable(
        cases("maxpool", pool_geometries(kernel=2, output=1, batch=1, channels=1), mode="ties"),
        lambda c: _has_tied_window(c.inputs["input"], c.geometry),
    )


# ---------------------------------------------------------------------------------------------------------
# Cases: arrays match the geometry, one dtype, labels where they belong, mode recorded.
# ---------------------------------------------------------------------------------------------------------


@given(st.sampled_from(KINDS), st.sampled_from(DTYPES), st.sampled_from(MODES), st.data())
def test_case_arrays_match_their_geometry_and_dtype(kind, dtype, mode, data):
    case = data.draw(cases(kind, mode=mode, dtype=dtype))
    assert isinstance(case, Case) and case.kind == kind and case.mode == mode and case.dtype == dtype
    g = case.geometry
    assert set(case.inputs) == {"input", *g.param_shapes}
    assert case.inputs["input"].shape == g.input_shape
    for name, shape in g.param_shapes.items():
        assert case.inputs[name].shape == shape and case.inputs[name].dtype == dtype
        assert np.all(case.inputs[name] != 0)
    assert case.upstream.shape == g.output_shape and case.upstream.dtype == dtype
    if kind in ("softmax_ce", "svm_loss", "network"):
        classes = g.dense.out_features if kind == "network" else g.classes
        assert case.labels.shape == (g.batch,) and case.labels.dtype == np.int64
        assert np.all((case.labels >= 0) & (case.labels < classes))
        assert case.upstream.shape == () and case.upstream != 0
    else:
        assert case.labels is None


@given(cases("relu", mode=st.sampled_from(["separated", "ties"])))
def test_a_mode_strategy_is_drawn_and_recorded(case):
    assert case.mode in ("separated", "ties")
    if case.mode == "ties":
        assert set(np.unique(case.inputs["input"]).tolist()) <= set(TIE_LEVELS)


def test_softmax_ce_cases_run_in_the_reference_loss():
    case = reachable(cases("softmax_ce"), lambda c: c.geometry.batch == 4)
    loss, dlogits = cnn.softmax_cross_entropy(case.inputs["input"], case.labels)
    assert np.isfinite(loss) and dlogits.shape == case.geometry.input_shape


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_draws_its_own_geometry_type_by_default(kind):
    from checks import kinds

    case = find(cases(kind), lambda c: True, settings=SHRINK)
    assert isinstance(case.geometry, kinds.get(kind).geometry)


# ---------------------------------------------------------------------------------------------------------
# Invalid arguments raise ValueError naming the argument, its value and the problem.
# ---------------------------------------------------------------------------------------------------------

INVALID = [
    (lambda: conv_geometries(kernel=(3, 2)), "kernel=(3, 2): min 3 is larger than max 2"),
    (lambda: conv_geometries(stride=0), "stride=0: min 0 is below 1"),
    (lambda: conv_geometries(padding=(-1, 2)), "padding=(-1, 2): min -1 is below 0"),
    (lambda: conv_geometries(batch=(1, 2, 3)), "batch=(1, 2, 3): expected an int (fixed) or an inclusive (min, max)"),
    (lambda: conv_geometries(kernel=1.5), "kernel=1.5: expected an int"),
    (lambda: conv_geometries(dilation=True), "dilation=True: expected an int"),
    (lambda: conv_geometries(bias="yes"), "bias='yes': expected None (draw it) or a bool"),
    (lambda: conv_geometries(square=1), "square=1: expected a bool"),
    (lambda: pool_geometries(remainder=None), "remainder=None: expected a bool"),
    (lambda: conv_geometries(padding=3, kernel=2, output=1), "padding=3: min 3 does not fit the smallest geometry"),
    (lambda: pool_geometries(padding=1, kernel=(1, 3)), "padding=1: min 1 is more than half the smallest kernel 1"),
    (lambda: pool_geometries(padding=1, kernel=2, stride=1, output=1), "input would have 0 rows"),
    (lambda: elementwise_geometries(ndim=0), "ndim=0: min 0 is below 1"),
    (lambda: flatten_geometries(side=(2, 1)), "side=(2, 1): min 2 is larger than max 1"),
    (lambda: dense_geometries(out_features=(5, 1)), "out_features=(5, 1): min 5 is larger than max 1"),
    (lambda: loss_geometries(classes=0), "classes=0: min 0 is below 1"),
    (lambda: network_geometries(padding=2), "padding=2: min 2 does not fit"),
    (lambda: values((2,), np.float64, "spread"), "mode='spread': expected one of"),
    (lambda: values((2,), np.int32), "expected float32 or float64"),
    (lambda: values("ab"), "shape='ab': expected a tuple of non-negative ints"),
    (lambda: upstream((2,), np.float16), "expected float32 or float64"),
    (lambda: cases("softmax_loss"), "kind='softmax_loss': expected one of"),
    (lambda: leaky_relu_geometries(alpha=(0.3, 0.1)), "alpha=(0.3, 0.1): min 0.3 is larger than max 0.1"),
    (lambda: leaky_relu_geometries(alpha=1.0), "alpha=1.0: a leaky ReLU's negative slope lies in [0, 1)"),
    (lambda: leaky_relu_geometries(alpha=(-0.1, 0.2)), "alpha=(-0.1, 0.2): a leaky ReLU's negative slope lies in"),
    (lambda: leaky_relu_geometries(alpha="small"), "alpha='small': expected a number (fixed) or an inclusive"),
    (lambda: leaky_relu_geometries(alpha=float("nan")), "alpha=nan: expected a number"),
    (lambda: softmax_geometries(axis=2), "axis=2: not an axis of the smallest shape the bounds allow (2 dimensions)"),
    (lambda: softmax_geometries(ndim=3, axis=-4), "needs -3 <= axis < 3"),
    (lambda: softmax_geometries(axis=1.0), "axis=1.0: expected an int"),
    (lambda: cases("relu", mode="bogus"), "mode='bogus': expected one of"),
    (lambda: cases("relu", mode=3), "mode=3: expected a mode name or a strategy"),
    (lambda: cases("relu", geometries=ElementwiseGeometry((1, 1))), "expected a hypothesis strategy"),
    (lambda: cases("relu", dtype="int8"), "dtype='int8': expected float32 or float64"),
]


@pytest.mark.parametrize(("make", "message"), INVALID, ids=[m for _, m in INVALID])
def test_invalid_arguments_raise_value_error_with_a_useful_message(make, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make()


@pytest.mark.parametrize(
    ("strategy", "message"),
    [
        (cases("relu", conv_geometries()), "cases('relu') needs ElementwiseGeometry geometries"),
        (cases("flatten", elementwise_geometries()), "(use flatten_geometries())"),
        (cases("relu", mode=st.just("bogus")), "mode='bogus': expected one of"),
    ],
)
def test_mismatched_draws_raise_value_error(strategy, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        find(strategy, lambda c: True, settings=REACH)


def test_public_api_is_listed_and_documented():
    assert sorted(strategies.__all__) == sorted(set(strategies.__all__))
    for name in strategies.__all__:
        obj = getattr(strategies, name)
        if inspect.isfunction(obj):
            assert obj.__doc__ and "hrinks towards" in obj.__doc__, f"{name}: say what it shrinks towards"


# ---------------------------------------------------------------------------------------------------------
# Batch norm, dropout and the losses' reductions.
# ---------------------------------------------------------------------------------------------------------


@given(batchnorm_geometries(eps=(1e-5, 0.1), alt=None))
def test_every_batchnorm_geometry_runs_in_batch_norm_with_two_values_per_channel(g):
    assert isinstance(g, BatchNormGeometry) and len(g.shape) in (2, 4) and 1e-5 <= g.eps <= 0.1
    x = np.linspace(-1, 1, math.prod(g.shape)).reshape(g.shape)
    gamma, beta = np.ones(g.shape[1]), np.zeros(g.shape[1])
    assert cnn.batch_norm(x, gamma, beta, g.eps).shape == g.output_shape
    assert math.prod(g.shape) // g.shape[1] >= 2
    assert not g.alt or len(g.shape) == 2  # the alternative backward people write is the plain one


def test_batchnorm_draws_both_backwards_when_alt_is_open_and_keeps_a_fixed_eps():
    assert reachable(batchnorm_geometries(alt=None), lambda g: g.alt).alt
    assert not reachable(batchnorm_geometries(alt=None), lambda g: not g.alt).alt
    assert reachable(batchnorm_geometries(eps=0.25), lambda g: True).eps == 0.25


@pytest.mark.parametrize(
    ("bounds", "message"),
    [({"ndim": 3}, "2-D"), ({"batch": 1, "side": 1}, "2 or more values"), ({"eps": 0.0}, "eps")],
)
def test_batchnorm_bounds_that_admit_nothing_are_refused(bounds, message):
    with pytest.raises(ValueError, match=message):
        batchnorm_geometries(**bounds)


@given(dropout_geometries(p=(0.3, 0.6)), dropout_geometries(p=0.25, seed=9))
def test_dropout_geometries_keep_p_and_seed_inside_their_bounds(ranged, fixed):
    assert isinstance(ranged, DropoutGeometry) and 0.3 <= ranged.p <= 0.6 and 0 <= ranged.seed <= 2**16
    assert fixed.p == 0.25 and fixed.seed == 9 and ranged.output_shape == ranged.input_shape


@pytest.mark.parametrize("p", [0.0, 1.0, (0.5, 1.0), "0.5"])
def test_a_dropout_parameter_outside_0_1_is_refused(p):
    with pytest.raises(ValueError, match="p="):
        dropout_geometries(p=p)


def test_losses_draw_both_reductions_by_default_and_keep_a_fixed_one():
    assert reachable(loss_geometries(), lambda g: g.reduction == "sum").reduction == "sum"
    assert reachable(loss_geometries(reduction="sum"), lambda g: True).reduction == "sum"
    with pytest.raises(ValueError, match="reduction"):
        loss_geometries(reduction="none")


@given(SHAPES, st.sampled_from(DTYPES), st.data())
def test_wide_values_are_pairwise_a_whole_unit_apart(shape, dtype, data):
    x = data.draw(values(shape, dtype, "wide"))
    assert x.shape == shape and x.dtype == dtype
    assert np.all(_gaps(x) >= WIDE_GAP * (1 - SLACK) - 1e-3 * (dtype == np.float32))
