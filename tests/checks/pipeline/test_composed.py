"""checks.pipeline.composed: layers identified as reference kinds by their forward, in the layouts real code uses,
and the torch composition's gradients, judged at a kink only where both tie-breaks agree."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import cnn
from checks.adapt import layouts
from checks.pipeline import composed
from checks.tolerances import tolerances_for

TOL = tolerances_for(np.float64)


def _seen(x, z, params=None, cases=2):
    return [composed.Seen(x[k], z[k], {n: v for n, v in (params or {}).items()}) for k in range(cases)]


def _identify(x, z, params=None, suggested=()):
    return composed.identify(0, _seen(x, z, params), suggested, TOL)


@given(
    layout=st.sampled_from(["HWC", "CHW", "NCHW", "NHWC"]),
    weight=st.sampled_from(["FCHW", "HWCF"]),
    stride=st.integers(1, 2),
    padding=st.integers(0, 1),
    bias=st.booleans(),
)
def test_a_conv_is_identified_in_its_layouts_with_its_stride_and_padding(layout, weight, stride, padding, bias):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 2, 3, 3))
    b = rng.standard_normal(4) if bias else None
    xs = [rng.standard_normal((1, 2, 7, 6)) for _ in range(2)]
    zs = [cnn.conv2d(x, w, b, (stride, stride), (padding, padding), (1, 1)) for x in xs]
    params = {"K": layouts.weight_to_user(w, weight)} | ({"c": b} if bias else {})
    found = _identify(
        [layouts.to_user(x, layout) for x in xs], [layouts.to_user(z, layout) for z in zs], params, ("conv",)
    )
    assert isinstance(found, composed.Piece) and found.kind == "conv"
    assert found.geometry.stride == (stride, stride) and found.geometry.padding == (padding, padding)
    assert f"input {layout}, weight {weight}" in found.shown
    assert ("no bias" in found.shown) is not bias


def test_the_seed_layouts_are_identified():
    rng = np.random.default_rng(1)
    filters = rng.standard_normal((8, 3, 3)) / 9  # (F, 3, 3) on one (H, W) image, output (H, W, F)
    xs = [rng.uniform(-0.5, 0.5, (10, 10)) for _ in range(2)]
    zs = [cnn.conv2d(x[None, None], filters[:, None], None, (1, 1), (0, 0), (1, 1))[0].transpose(1, 2, 0) for x in xs]
    conv = _identify(xs, zs, {"filters": filters})
    assert conv.shown == "conv 3x3, stride 1, padding 0, no bias; input HW, weight FHW, output HWC"
    pooled = [cnn.max_pool2d(z.transpose(2, 0, 1)[None], (2, 2), (2, 2), (0, 0))[0][0].transpose(1, 2, 0) for z in zs]
    pool = _identify(zs, pooled)
    assert pool.shown == "maxpool 2x2, stride 2, padding 0; input HWC, output HWC"
    weights, biases = rng.standard_normal((4 * 4 * 8, 10)) / 100, np.zeros(10)
    probs = [cnn.softmax(p.reshape(-1) @ weights + biases, -1) for p in pooled]
    last = _identify(pooled, probs, {"weights": weights, "biases": biases})
    assert last.kind == "dense+softmax" and "input one sample (4, 4, 8), weight DM, output D" in last.shown


def test_max_and_average_pooling_are_told_apart_by_their_output():
    rng = np.random.default_rng(2)
    xs = [rng.standard_normal((1, 3, 6, 6)) for _ in range(2)]
    averaged = [cnn.avg_pool2d(x, (2, 2), (2, 2), (0, 0)) for x in xs]
    found = _identify(xs, averaged, suggested=("maxpool",))  # the name is wrong: the output decides
    assert found.kind == "avgpool"


def test_a_dense_weight_stored_out_by_in_and_a_leaky_slope_are_recovered():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((5, 3))
    xs = [rng.standard_normal((4, 5)) for _ in range(2)]
    dense = _identify(xs, [x @ w for x in xs], {"W": w.T.copy()})
    assert dense.kind == "dense" and "weight MD" in dense.shown
    leaky = _identify(xs, [np.where(x > 0, x, 0.2 * x) for x in xs])
    assert leaky.kind == "leaky_relu" and leaky.geometry.alpha == pytest.approx(0.2)


def test_a_layer_that_is_no_reference_kind_is_unidentified_with_what_was_tried():
    rng = np.random.default_rng(4)
    xs = [rng.standard_normal((2, 3, 4, 4)) for _ in range(2)]
    found = _identify(xs, [2 * x for x in xs], suggested=("relu",))
    assert isinstance(found, composed.Unidentified) and found.suggested == ("relu",)
    assert found.tried["relu"] == 1 and found.tried["maxpool"] >= 1


def test_a_true_convolution_is_not_taken_for_the_reference_correlation():
    # flipping the kernel is a fine layer, but not our conv: the composition must not pretend it is
    rng = np.random.default_rng(5)
    w = rng.standard_normal((2, 1, 3, 3))
    xs = [rng.standard_normal((1, 1, 6, 6)) for _ in range(2)]
    zs = [cnn.conv2d(x, w[:, :, ::-1, ::-1].copy(), None, (1, 1), (0, 0), (1, 1)) for x in xs]
    assert isinstance(_identify(xs, zs, {"w": w}), composed.Unidentified)


def test_an_output_that_agrees_in_one_case_only_is_not_identified():
    rng = np.random.default_rng(6)
    xs = [rng.standard_normal((3, 4)) for _ in range(2)]
    zs = [np.maximum(xs[0], 0), np.abs(xs[1])]
    assert isinstance(_identify(xs, zs), composed.Unidentified)


# -- the composition's gradients -----------------------------------------------------------------------------


def _network(rng, dead_channel=False):
    """conv (HW in, FHW weights) -> relu -> maxpool -> dense (one sample) on 7x7 images, as pieces identified on
    three images (as the network check does: one image can agree with a wrong pool stride by chance);
    ``dead_channel``: positive images and a negative first filter, so that channel is all ReLU zeros."""
    filters = rng.standard_normal((3, 3, 3)) / 3
    weights = rng.standard_normal((2 * 2 * 3, 4))
    xs = [rng.uniform(-0.5, 0.5, (7, 7)) for _ in range(3)]
    if dead_channel:
        xs, filters[0] = [np.abs(x) + 0.1 for x in xs], -np.abs(filters[0]) - 0.1
    params = [{"filters": filters}, {}, {}, {"weights": weights}]
    steps = [
        lambda a: cnn.conv2d(a[None, None], filters[:, None], None, (1, 1), (0, 0), (1, 1))[0].transpose(1, 2, 0),
        lambda a: np.maximum(a, 0),
        lambda a: cnn.max_pool2d(a.transpose(2, 0, 1)[None], (2, 2), (2, 2), (0, 0))[0][0].transpose(1, 2, 0),
        lambda a: a.reshape(-1) @ weights,
    ]
    activations, pieces = list(xs), []
    for i, step in enumerate(steps):
        outputs = [step(a) for a in activations]
        seen = [composed.Seen(a, z, params[i]) for a, z in zip(activations, outputs, strict=True)]
        piece = composed.identify(i, seen, (), TOL)
        assert isinstance(piece, composed.Piece), piece
        pieces.append(piece)
        activations = outputs
    return pieces, xs[0], params


def _loss(pieces, x, params, label):
    a = x
    for piece, p in zip(pieces, params, strict=True):
        a = piece.forward(a, p)[0]
    shifted = a - a.max()
    return float(-(shifted[label] - np.log(np.exp(shifted).sum())))


def test_the_compositions_gradients_are_the_derivatives_of_the_composed_reference():
    rng = np.random.default_rng(7)
    pieces, x, params = _network(rng)
    label = np.array(2)
    grads = composed.gradients(pieces, x, params, label, "softmax_ce")
    assert grads.loss == pytest.approx(_loss(pieces, x, params, 2), rel=1e-12)
    h = 1e-6
    for index in [(0, 0), (3, 4), (6, 6), (2, 5)]:
        e = np.zeros_like(x)
        e[index] = h
        fd = (_loss(pieces, x + e, params, 2) - _loss(pieces, x - e, params, 2)) / (2 * h)
        assert grads.input[index] == pytest.approx(fd, rel=1e-6, abs=1e-9)
    w = params[0]["filters"]
    for index in [(0, 0, 0), (2, 1, 2)]:
        e = np.zeros_like(w)
        e[index] = h
        plus = [{"filters": w + e}, *params[1:]]
        minus = [{"filters": w - e}, *params[1:]]
        fd = (_loss(pieces, x, plus, 2) - _loss(pieces, x, minus, 2)) / (2 * h)
        assert grads.params[(0, "filters")][index] == pytest.approx(fd, rel=1e-6, abs=1e-9)
    assert grads.params[(0, "filters")].shape == (3, 3, 3)  # in the layer's own layout


def test_ties_among_zeros_a_relu_made_are_judged_ties_that_matter_are_not():
    rng = np.random.default_rng(8)
    pieces, x, params = _network(rng, dead_channel=True)
    sites = composed.kink_sites(pieces, x, params)
    assert composed.at_kink(pieces, x, params)  # pool windows of ReLU zeros tie
    assert any(s.op == "pool" for s in sites)
    judged = composed.judge_case(pieces, x, params, np.array(1), "softmax_ce", TOL)
    assert isinstance(judged, composed.Gradients)

    # a max-pool straight on an input with a tied window: the two tie-breaks route dL/dx differently
    tied = rng.standard_normal((1, 1, 4, 4))
    tied[0, 0, 0, 1] = tied[0, 0, 0, 0] = 5.0
    out = cnn.max_pool2d(tied, (2, 2), (2, 2), (0, 0))[0]
    pool = composed.identify(0, [composed.Seen(tied, out, {})], (), TOL)
    flat = composed.identify(1, [composed.Seen(out, out.reshape(1, -1), {})], (), TOL)
    pair = [pool, flat]
    assert composed.at_kink(pair, tied, [{}, {}])
    first = composed.gradients(pair, tied, [{}, {}], np.array([0]), "softmax_ce")
    last = composed.gradients(pair, tied, [{}, {}], np.array([0]), "softmax_ce", alternate=True)
    assert first.input[0, 0, 0, 0] != 0 and last.input[0, 0, 0, 1] != 0
    assert "tie-breaks give different gradients" in composed.judge_case(
        pair, tied, [{}, {}], np.array([0]), "softmax_ce", TOL
    )


def test_an_identified_piece_maps_gradients_back_through_its_layouts():
    # NHWC input, HWCF weights: the gradient of the weight comes back (kh, kw, C, F)
    rng = np.random.default_rng(9)
    w = rng.standard_normal((2, 3, 2, 2))
    x = rng.standard_normal((1, 3, 4, 4))
    z = cnn.conv2d(x, w, None, (1, 1), (0, 0), (1, 1))
    dense_w = rng.standard_normal((2 * 3 * 3, 3))
    xu, wu, zu = layouts.to_user(x, "NHWC"), layouts.weight_to_user(w, "HWCF"), layouts.to_user(z, "NHWC")
    conv = composed.identify(0, [composed.Seen(xu, zu, {"w": wu})], ("conv",), TOL)
    dense = composed.identify(1, [composed.Seen(zu, zu.reshape(1, -1) @ dense_w, {"W": dense_w})], (), TOL)
    grads = composed.gradients([conv, dense], xu, [{"w": wu}, {"W": dense_w}], np.array([1]), "softmax_ce")
    assert grads.input.shape == xu.shape and grads.params[(0, "w")].shape == wu.shape
    # the same gradient in canonical layout, from the canonical composition, laid out as HWCF
    canon_conv = composed.identify(0, [composed.Seen(x, z, {"w": w})], ("conv",), TOL)
    canon_dense = composed.identify(
        1, [composed.Seen(z, z.reshape(1, -1) @ _perm(dense_w), {"W": _perm(dense_w)})], (), TOL
    )
    canon = composed.gradients(
        [canon_conv, canon_dense], x, [{"w": w}, {"W": _perm(dense_w)}], np.array([1]), "softmax_ce"
    )
    np.testing.assert_allclose(
        grads.params[(0, "w")], layouts.weight_to_user(canon.params[(0, "w")], "HWCF"), rtol=1e-12
    )
    np.testing.assert_allclose(grads.input, layouts.to_user(canon.input, "NHWC"), rtol=1e-12, atol=1e-15)


def _perm(dense_w):
    """The dense weight's rows reordered from (H, W, C) flattening to (C, H, W) flattening (3x3 output, 2 ch)."""
    index = np.arange(2 * 3 * 3).reshape(3, 3, 2).transpose(2, 0, 1).reshape(-1)
    return dense_w[index]


def test_a_square_weight_that_reads_the_same_both_ways_is_ambiguous_not_guessed():
    # W stored (M, D) and used as x @ W.T: with W = 0 the (D, M) reading computes the same output, but its
    # weight gradient is the transpose: the layer is not identified rather than identified the wrong way
    rng = np.random.default_rng(10)
    xs = [rng.standard_normal((3, 4)) for _ in range(2)]
    b = rng.standard_normal(4)
    found = _identify(xs, [x @ np.zeros((4, 4)).T + b for x in xs], {"W": np.zeros((4, 4)), "b": b})
    assert isinstance(found, composed.Unidentified) and len(found.ambiguous) == 2
    assert "weight DM" in found.ambiguous[0] and "weight MD" in found.ambiguous[1]
    w = rng.standard_normal((4, 4))  # a general square weight: only one reading agrees
    found = _identify(xs, [x @ w.T + b for x in xs], {"W": w, "b": b})
    assert isinstance(found, composed.Piece) and "weight MD" in found.shown


def test_a_scalar_input_fits_no_kind_and_does_not_crash():
    found = composed.identify(0, [composed.Seen(np.array(1.0), np.zeros(3), {"W": np.ones((1, 3))})], (), TOL)
    assert isinstance(found, composed.Unidentified) and not found.tried


def test_only_the_entries_at_a_tie_or_zero_are_left_unjudged_in_place():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((1, 1, 4, 4))
    x[0, 0, 0, 0] = x[0, 0, 0, 1] = x[0, 0, 1, 0] = 9.0  # a three-way tie in the first window
    x[0, 0, 1, 3] = x[0, 0, 3, 1] = x[0, 0, 3, 3] = 5.0  # the other maxima away from their windows' corners
    out = cnn.max_pool2d(x, (2, 2), (2, 2), (0, 0))[0]
    pool = composed.identify(0, [composed.Seen(x, out, {})], ("maxpool",), TOL)
    assert pool.shown.startswith("maxpool 2x2, stride 2")
    verdict = composed.judge_layer(pool, x, {}, rng.standard_normal(out.shape), TOL)
    assert isinstance(verdict, composed.Gradients)
    expected = np.zeros(x.shape, dtype=bool)
    expected[0, 0, 0, 0] = expected[0, 0, 0, 1] = expected[0, 0, 1, 0] = True  # the middle one too
    np.testing.assert_array_equal(verdict.at_kink, expected)
    relu_in = np.array([[1.0, 0.0, -2.0]])
    relu = composed.identify(0, [composed.Seen(relu_in, np.maximum(relu_in, 0), {})], ("relu",), TOL)
    verdict = composed.judge_layer(relu, relu_in, {}, np.ones((1, 3)), TOL)
    np.testing.assert_array_equal(verdict.at_kink, [[False, True, False]])
