"""The newer patterns of checks.explain.patterns: a shifted input gradient, a bias gradient summed over too
few axes (or of the first sample alone), and a windowed scatter that assigns where it should accumulate;
plus the window algebra they stand on (checks.windows: dilated conv windows).

Each pattern is shown to be (a) said for a wrong gradient built here, by plain loops, to have it, (b) not said
for the right gradient, and (c) not said for unrelated wrong gradients: near misses built here, and every
mistake of the catalogue (checks.kinds.mistakes) on fixed cases of every kind; the ones that legitimately
show a new pattern are listed in LEGITIMATE. One real layer is run end to end in a sandboxed worker.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from checks import api, explain, kinds, windows
from checks.case import Case
from checks.explain.evidence import Evidence, Pattern
from checks.explain.patterns import patterns
from checks.findings import FAIL
from checks.geometry import (
    ConvGeometry,
    DenseGeometry,
    ElementwiseGeometry,
    LeakyReluGeometry,
    PoolGeometry,
    SoftmaxGeometry,
)
from checks.job import Job
from checks.pipeline.trial import Options, Trial
from checks.tolerances import tolerances_for

REPO = Path(__file__).resolve().parents[3]
TOL = tolerances_for(np.float64).exact
NEW = ("shifted", "unsummed", "first_sample", "assigned")


def _values(rng: np.random.Generator, shape: tuple[int, ...], low: float = 0.1, high: float = 1.0) -> np.ndarray:
    """Signed values with |v| in [low, high]: no zeros, so no accidental kinks or cancellations."""
    return rng.uniform(low, high, shape) * rng.choice([-1.0, 1.0], shape)


def case_of(kind: str, geometry, seed: int = 0, ties: bool = False) -> Case:
    rng = np.random.default_rng(seed)
    inputs = {"input": _values(rng, geometry.input_shape)}
    inputs.update({name: _values(rng, shape) for name, shape in geometry.param_shapes.items()})
    if ties:  # multiples of 1/2: max-pool windows with tied maxima
        inputs["input"] = np.round(inputs["input"] * 2) / 2
    return Case(
        kind, geometry, inputs, _values(rng, geometry.output_shape, 0.1, 2.0), mode="ties" if ties else "separated"
    )


def conv(n=1, c=1, size=5, f=1, k=3, s=1, p=1, d=1, seed=0) -> Case:
    return case_of("conv", ConvGeometry(n, c, size, size, f, (k, k), (s, s), (p, p), (d, d)), seed)


def right_grads(case: Case) -> dict[str, np.ndarray]:
    subject = kinds.reference_subject(case)
    subject.forward({k: v.copy() for k, v in case.inputs.items()})
    return {k: np.asarray(v) for k, v in subject.backward(case.upstream.copy()).items() if k in case.inputs}


def found(case: Case, name: str, actual, raw=None, out_layout: str | None = None) -> dict[str, Pattern]:
    """The patterns of ``actual`` as the gradient ``name`` of ``case``, by name."""
    e = Evidence(case, name, actual, right_grads(case), TOL, raw=raw, out_layout=out_layout)
    return {p.name: p for p in patterns(e)}


# -- loop references: the conv input gradient as a scatter, right and wrong ----------------------------


def conv_scatter(case: Case, *, assign: bool = False, start: int = 0, order: str = "rows") -> np.ndarray:
    """dL/dX~ on the padded grid (one spare row at the bottom), window by window:
    dX~[n, :, i*s + u*d + start, j*s + v*d] (+)= sum_f G[n, f, i, j] K[f, :, u, v];
    ``assign``: `=` for the whole window instead of `+=`, windows visited in ``order``."""
    g = case.geometry
    w, up = case.inputs["weight"], case.upstream
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = g.kernel, g.stride, g.padding, g.dilation
    out = np.zeros((g.batch, g.in_channels, g.height + 2 * ph + 1, g.width + 2 * pw))
    ho, wo = g.output_shape[2:]
    cells = [(i, j) for i in range(ho) for j in range(wo)]
    if order == "columns":
        cells = [(i, j) for j in range(wo) for i in range(ho)]
    for i, j in cells:
        rows = slice(i * sh + start, i * sh + start + dh * (kh - 1) + 1, dh)
        cols = slice(j * sw, j * sw + dw * (kw - 1) + 1, dw)
        part = np.einsum("nf,fcuv->ncuv", up[:, :, i, j], w)
        if assign:
            out[:, :, rows, cols] = part
        else:
            out[:, :, rows, cols] += part
    return out


def crop(padded: np.ndarray, case: Case, top: int | None = None, left: int | None = None) -> np.ndarray:
    g = case.geometry
    top = g.padding[0] if top is None else top
    left = g.padding[1] if left is None else left
    return padded[:, :, top : top + g.height, left : left + g.width]


def test_the_loop_scatter_is_the_right_gradient():
    for case in (conv(), conv(n=2, c=2, f=2, size=6, k=3, s=2, p=2), conv(size=7, k=2, s=2, p=1, d=2)):
        np.testing.assert_allclose(crop(conv_scatter(case), case), right_grads(case)["input"], rtol=1e-12)


# -- shifted -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "corner", "shift"),
    [
        (conv(), (0, 0), [-1, -1]),  # dX~[:H, :W]: the top-left corner of the padded gradient
        (conv(n=2, c=2, f=2, size=6, k=3, s=2, p=2, seed=1), (0, 0), [-2, -2]),
        (conv(n=2, c=2, f=2, size=6, k=3, s=2, p=2, seed=1), (4, 4), [2, 2]),  # dX~[2p:, 2p:]
        (conv(size=6, p=1, seed=2), (1, 0), [0, -1]),  # the columns' crop only
    ],
)
def test_a_crop_from_the_wrong_corner_of_the_padded_gradient_is_a_shift(case, corner, shift):
    wrong = crop(conv_scatter(case), case, *corner)
    shifted = found(case, "input", wrong)["shifted"]
    assert shifted.value == shift
    assert f"shifted by ({shift[0]}, {shift[1]}) (rows, columns)" in shifted.text
    assert "a crop or a window start is off by that much" in shifted.text


def test_a_window_start_off_by_one_row_is_a_shift_of_one_row():
    case = conv(n=2, c=2, f=2, size=6, k=3, s=2, p=1, seed=3)
    wrong = crop(conv_scatter(case, start=1), case)
    assert found(case, "input", wrong)["shifted"].value == [-1, 0]


def test_a_shift_with_zeros_past_the_edge_is_found_for_a_max_pool_and_an_average_pool():
    pool = case_of("maxpool", PoolGeometry(1, 2, 5, 5, (2, 2), (2, 2), (1, 1)), seed=4)
    r = right_grads(pool)["input"]
    moved = np.zeros_like(r)
    moved[..., :, 1:] = r[..., :, :-1]  # a[y, x] = r[y, x - 1]: 0 in the first column (X~'s padding has none)
    assert found(pool, "input", moved)["shifted"].value == [0, -1]
    avg = case_of("avgpool", PoolGeometry(1, 1, 4, 4, (2, 2), (1, 1), (1, 1)), seed=5)
    padded = np.zeros((1, 1, 6, 6))  # each window's G / 4 on each of its taps, the padding's too
    for i, j in itertools.product(range(5), range(5)):
        padded[..., i : i + 2, j : j + 2] += avg.upstream[..., i, j, None, None] / 4
    assert found(avg, "input", padded[..., 2:, 2:])["shifted"].value == [1, 1]


def test_the_smallest_shift_is_reported():
    case = conv(size=6, k=3, p=2, seed=6)
    wrong = crop(conv_scatter(case), case, 1, 2)  # rows off by -1, columns right
    assert found(case, "input", wrong)["shifted"].value == [-1, 0]


def test_no_shift_for_the_right_gradient_a_wrap_around_or_a_near_miss():
    case = conv(n=2, c=2, f=2, size=6, k=3, s=2, p=1, seed=7)
    r = right_grads(case)["input"]
    assert "shifted" not in found(case, "input", r)
    assert "shifted" not in found(case, "input", np.roll(r, 1, axis=-1))  # the wrapped column is no padding
    near = crop(conv_scatter(case), case, 0, 0)
    near[0, 0, 3, 3] += 1e-3
    assert "shifted" not in found(case, "input", near)
    outside = crop(conv_scatter(case), case, 0, 0)
    outside[1, 1, 0, 0] += 0.5  # the padding's part is checked too
    assert "shifted" not in found(case, "input", outside)


def test_a_shift_by_the_stride_remainder_agrees_with_what_the_failure_was_shown_to_need():
    # dX computed for the rows the windows reach, then put at the bottom instead of the top: off by the remainder.
    # checks.pipeline.needs says "wrong when the stride leaves a remainder"; the shift must not say otherwise.
    from checks.pipeline.needs import Need

    case = conv(n=2, c=1, f=2, size=5, k=2, s=2, p=0, seed=22)  # rows 0..3 reached, row 4 is the remainder
    r = right_grads(case)["input"]
    moved = np.zeros_like(r)
    moved[..., 1:, 1:] = r[..., :-1, :-1]
    shown = [Need("remainder", "some", 0, "wrong when the stride leaves a remainder: the windows reach every row")]
    e = Evidence(case, "input", moved, right_grads(case), TOL, needs=shown)
    got = {p.name: p for p in patterns(e)}
    assert got["shifted"].value == [-1, -1] and got["minimal"].text == shown[0].text
    assert "stride" not in got["shifted"].text and "remainder" not in got["shifted"].text


def test_no_shift_beyond_the_padding_and_kernel_extent():
    case = conv(size=9, k=2, p=0, seed=8)  # at most 2 rows or columns
    r = right_grads(case)["input"]
    moved = np.zeros_like(r)
    moved[..., 3:, :] = r[..., :-3, :]
    assert "shifted" not in found(case, "input", moved)
    moved = np.zeros_like(r)
    moved[..., 2:, :] = r[..., :-2, :]
    assert found(case, "input", moved)["shifted"].value == [-2, 0]


def test_no_shift_is_said_along_a_dense_feature_axis():
    case = case_of("dense", DenseGeometry(2, (5,), 3, True), seed=9)
    r = right_grads(case)["input"]
    moved = np.zeros_like(r)
    moved[:, 1:] = r[:, :-1]
    assert "shifted" not in found(case, "input", moved)


def test_no_shift_that_rests_on_the_padding_alone():
    # kernel 1, padding 1: the corner window reads only padding, so with G on it alone r is 0 and dL/dX~ is not;
    # a gradient holding that padding value is a window of dL/dX~, but no part of r backs the claim
    case = conv(size=3, k=1, p=1, seed=10)
    upstream = np.zeros_like(case.upstream)
    upstream[0, 0, 0, 0] = 1.5
    case = Case("conv", case.geometry, case.inputs, upstream)
    assert not right_grads(case)["input"].any()
    wrong = np.zeros((1, 1, 3, 3))
    wrong[0, 0, 0, 0] = 1.5 * case.inputs["weight"][0, 0, 0, 0]
    got = found(case, "input", wrong)
    assert "shifted" not in got and "everywhere" not in got and "count" in got


# -- unsummed / first_sample --------------------------------------------------------------------------


def test_a_conv_bias_gradient_summed_over_too_few_axes_names_the_kept_ones():
    case = conv(n=2, c=1, f=3, size=4, k=2, p=0, seed=11)
    g = case.upstream  # (N, F, Ho, Wo)
    for raw, kept, words in [
        (g.sum(axis=(2, 3)), ["n"], "not summed over the batch axis (n)"),
        (g.sum(axis=0), ["i", "j"], "not summed over the spatial axes (H, W)"),
        (g.sum(axis=(0, 3)), ["i"], "not summed over the rows (H)"),
        (g, ["n", "i", "j"], "it is G itself"),
    ]:
        got = found(case, "bias", None, raw=raw)["unsummed"]
        assert got.value == kept and words in got.text and "dL/dB sums G over (n, i, j)" in got.text


def test_a_bias_summed_in_a_channels_last_layout_is_read_in_that_layout():
    case = conv(n=2, c=1, f=3, size=4, k=2, p=0, seed=12)
    g = case.upstream.transpose(0, 2, 3, 1)  # (N, Ho, Wo, F)
    assert found(case, "bias", None, raw=g.sum(axis=(1, 2)), out_layout="NHWC")["unsummed"].value == ["n"]
    assert found(case, "bias", None, raw=g.sum(axis=0), out_layout="NHWC")["unsummed"].value == ["i", "j"]
    # the same sums in the other order are not what a layer holding (N, Ho, Wo, F) computes
    assert "unsummed" not in found(case, "bias", None, raw=case.upstream.sum(axis=0), out_layout="NHWC")


def test_the_first_sample_alone_is_named():
    case = conv(n=3, c=1, f=2, size=4, k=2, p=0, seed=13)
    got = found(case, "bias", case.upstream[0].sum(axis=(1, 2)))["first_sample"]
    assert got.value == 0 and "first sample alone summed over (i, j)" in got.text and "other 2 sample(s)" in got.text
    dense = case_of("dense", DenseGeometry(3, (4,), 2, True), seed=14)
    assert "first_sample" in found(dense, "bias", dense.upstream[0].copy())
    assert found(dense, "bias", None, raw=dense.upstream)["unsummed"].value == ["n"]


def test_no_bias_pattern_for_the_right_gradient_a_mean_a_multiple_or_a_near_miss():
    case = conv(n=2, c=1, f=3, size=4, k=2, p=0, seed=15)
    g, r = case.upstream, right_grads(case)["bias"]
    assert not set(NEW) & set(found(case, "bias", r.copy()))
    for wrong in (g.mean(axis=(0, 2, 3)), r * 1.37, g.mean(axis=0), g[1].sum(axis=(1, 2))):
        assert not set(NEW) & set(
            found(case, "bias", None, raw=wrong) if wrong.shape != r.shape else found(case, "bias", wrong)
        )
    near = g.sum(axis=(2, 3))
    near[0, 0] += 1e-3
    assert "unsummed" not in found(case, "bias", None, raw=near)


def test_no_bias_pattern_where_the_unsummed_gradient_is_the_right_one():
    # batch 1 and one output position: G itself IS the sum over (n, i, j), so there is nothing to claim
    case = conv(n=1, c=1, f=3, size=2, k=2, p=0, seed=16)
    assert list(found(case, "bias", case.upstream.reshape(-1))) == ["agrees"]
    assert not set(NEW) & set(found(case, "bias", None, raw=case.upstream))


def test_a_wrongly_shaped_bias_gradient_is_explained_through_a_trial():
    class BiasKeepsBatch:  # the reference conv, with db = G summed over (H, W) only: shape (N, F)
        def __init__(self, case):
            self.inner = kinds.reference_subject(case)

        def forward(self, inputs):
            return self.inner.forward(inputs)

        def backward(self, upstream):
            grads = dict(self.inner.backward(upstream))
            grads["bias"] = np.asarray(upstream).sum(axis=(2, 3))
            return grads

    case = conv(n=2, c=1, f=3, size=4, k=2, p=0, seed=17)
    diagnosis = explain.explain(Trial(case, BiasKeepsBatch, Options(oracles=())), "bias")[1]
    by_name = {p.name: p for p in diagnosis.patterns}
    assert by_name["unsummed"].value == ["n"] and "shape" in by_name
    assert diagnosis.mistake == "bias_grad_wrong_axes"  # the detector agrees: summed over (i, j) only


# -- assigned (and the conv overlap region) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "order"),
    [
        (conv(size=4, k=2, p=0), "rows"),
        (conv(n=2, c=2, f=2, size=5, k=3, s=2, p=1, seed=18), "rows"),
        (conv(n=2, c=1, f=2, size=5, k=2, s=1, p=0, seed=19), "columns"),
        (conv(size=7, k=2, s=2, p=1, d=2, seed=20), "rows"),  # dilated taps two apart: overlap at every other
    ],
)
def test_an_assigning_conv_scatter_is_wrong_only_where_windows_overlap(case, order):
    wrong = crop(conv_scatter(case, assign=True, order=order), case)
    got = found(case, "input", wrong)
    assert got["overlap"].text == "only where conv windows overlap"
    assert "an assignment where an accumulation belongs" in got["assigned"].text


def test_no_assignment_for_the_right_gradient_or_other_bugs_where_windows_overlap():
    case = conv(n=2, c=1, f=2, size=5, k=3, s=1, p=0, seed=21)
    r = right_grads(case)["input"]
    assert not set(NEW) & set(found(case, "input", r))
    coverage = windows.window_coverage(case.geometry)
    averaged = r / coverage  # each position divided by its window count: wrong where windows overlap, no `=`
    got = found(case, "input", averaged)
    assert "overlap" in got and "assigned" not in got
    # window (1, 1) left out: wrong only on its taps, which other windows reach too; no single window is left there
    skipped = crop(conv_scatter(case), case).copy()
    skipped[:, :, 1:4, 1:4] -= np.einsum("nf,fcuv->ncuv", case.upstream[:, :, 1, 1], case.inputs["weight"])
    got = found(case, "input", skipped)
    assert "overlap" in got and "assigned" not in got


def test_no_assignment_is_claimed_past_the_budget_of_window_contributions():
    # 47 x 47 windows over a 48 x 48 image: 5.1e6 contributions > 4e6, so `assigned` is left unsaid (not tested)
    case = conv(size=48, k=2, p=0, seed=24)
    got = found(case, "input", crop(conv_scatter(case, assign=True), case))
    assert "overlap" in got and "assigned" not in got
    small = conv(size=40, k=2, p=0, seed=24)  # 39 x 39 windows over 40 x 40: 2.4e6, within the budget
    assert "assigned" in found(small, "input", crop(conv_scatter(small, assign=True), small))


def test_the_conv_overlap_region_counts_windows_with_dilation_stride_and_padding():
    g = ConvGeometry(1, 1, 7, 6, 1, (2, 3), (2, 1), (1, 0), (2, 1))
    count = np.zeros((7, 6), dtype=np.int64)
    for i, j in itertools.product(range(g.output_shape[2]), range(g.output_shape[3])):
        for u, v in itertools.product(range(2), range(3)):
            y, x = i * 2 + u * 2 - 1, j + v
            if 0 <= y < 7 and 0 <= x < 6:
                count[y, x] += 1
    np.testing.assert_array_equal(windows.window_coverage(g)[0, 0], count)
    ((name, region, text),) = kinds.get("conv").regions(case_of("conv", g), "input")
    np.testing.assert_array_equal(region[0, 0], count >= 2)
    assert kinds.get("conv").regions(case_of("conv", g), "weight") == []


@pytest.mark.parametrize(
    "g",
    [
        PoolGeometry(2, 3, 5, 7, (2, 3), (2, 1), (1, 1)),
        PoolGeometry(1, 1, 4, 4, (2, 2), (2, 2)),
        PoolGeometry(1, 2, 6, 5, (3, 1), (1, 3), (1, 0)),
    ],
)
def test_window_coverage_of_a_pool_is_its_coverage_and_the_masks_hold_each_window(g):
    np.testing.assert_array_equal(windows.window_coverage(g), windows.coverage(g))
    masks = windows.window_masks(g)
    (kh, kw), (sh, sw), (ph, pw) = g.kernel, g.stride, g.padding
    for i, j in itertools.product(range(g.output_shape[2]), range(g.output_shape[3])):
        expected = np.zeros(g.input_shape[2:], dtype=bool)
        for u, v in itertools.product(range(kh), range(kw)):
            y, x = i * sh + u - ph, j * sw + v - pw
            if 0 <= y < g.height and 0 <= x < g.width:
                expected[y, x] = True
        np.testing.assert_array_equal(masks[i, j], expected)


# -- the catalogue: only the mistakes that really have a new pattern show it ----------------------------

LEGITIMATE = {("overwrite_overlaps", "input"): {"assigned"}}
"""Catalogue mistakes that show a new pattern, and why that is right: overwrite_overlaps IS a max-pool scatter
with `=` (each window's maximum, or its whole window, written over the earlier windows'), wherever its
windows overlap."""


def catalogue_cases() -> list[Case]:
    out = []
    for seed, (n, c, size, f, k, s, p, d) in enumerate(
        [(2, 2, 5, 2, 3, 2, 0, 1), (2, 2, 5, 2, 3, 1, 1, 1), (1, 1, 6, 1, 2, 1, 1, 1), (1, 2, 7, 1, 2, 2, 1, 2)]
    ):
        out.append(conv(n, c, size, f, k, s, p, d, seed=seed))
    for seed, (n, c, size, k, s, p) in enumerate([(1, 2, 4, 2, 1, 0), (2, 1, 5, 3, 2, 1), (1, 2, 5, 2, 1, 1)]):
        for ties in (False, True):
            out.append(case_of("maxpool", PoolGeometry(n, c, size, size, (k, k), (s, s), (p, p)), seed, ties))
        out.append(case_of("avgpool", PoolGeometry(n, c, size, size, (k, k), (s, s), (p, p)), seed))
    out += [
        case_of("dense", DenseGeometry(n, (d,), m, True), seed) for seed, (n, d, m) in enumerate([(3, 3, 3), (2, 4, 2)])
    ]
    for kind in ("relu", "sigmoid", "tanh"):
        out += [case_of(kind, ElementwiseGeometry((2, 3)), 1), case_of(kind, ElementwiseGeometry((1, 2, 3, 3)), 2)]
    out.append(case_of("leaky_relu", LeakyReluGeometry((2, 3), 0.1), 3))
    out += [case_of("softmax", SoftmaxGeometry((2, 4), axis), 4) for axis in (-1, 0)]
    return out


def test_the_catalogue_shows_a_new_pattern_only_where_the_mistake_has_it():
    seen: dict[tuple[str, str], set[str]] = {}
    checked = set()
    for case in catalogue_cases():
        right = right_grads(case)
        for mistake in kinds.mistakes():
            if mistake.kind != case.kind or not mistake.applies(case):
                continue
            for form in mistake.forms:
                for name, wrong in form(case.copy(), {k: v.copy() for k, v in right.items()}).items():
                    e = Evidence(case, name, wrong, right, TOL, raw=wrong)
                    new = {p.name for p in patterns(e)} & set(NEW)
                    checked.add(mistake.name)
                    assert new <= LEGITIMATE.get((mistake.name, name), set()), (mistake.name, name, case.geometry)
                    seen.setdefault((mistake.name, name), set()).update(new)
    covered = {case.kind for case in catalogue_cases()}  # test_diagnosis.py sweeps every kind on its own cases
    assert checked == {m.name for m in kinds.mistakes() if m.kind in covered}, "each must be visible in some case"
    assert {k: v for k, v in seen.items() if v} == LEGITIMATE


def test_every_new_pattern_is_documented_in_the_schema():
    doc = (REPO / "docs" / "report-schema.md").read_text()
    table = doc[doc.index("| `name` | meaning | `value` |") :]
    for name in NEW:
        assert f"| `{name}` |" in table, name


def test_a_multiple_above_two_that_is_no_whole_number_is_said_as_it_is():
    # 1/c rounds to 0 for |c| > 2: the simple-fraction test must not divide by it
    case = conv(seed=23)
    r = right_grads(case)["input"]
    scale = found(case, "input", r * 2.5)["scale"]
    assert scale.value == pytest.approx(2.5) and "2.5 times the right one" in scale.text
    assert "exactly 3 times" in found(case, "input", r * 3)["scale"].text
    assert "exactly 1/3 times" in found(case, "input", r / 3)["scale"].text


# -- end to end: a real layer in a sandboxed worker ----------------------------------------------------


def test_a_conv_layer_that_crops_the_wrong_corner_is_reported_as_shifted():
    job = Job("tests/fixtures/explain/conv_wrong_corner.py:", "conv", root=str(REPO), only=("grad_input",))
    report = api.check_job(job)
    (prop,) = report.properties
    assert prop.status == FAIL and prop.diagnosis is not None
    shifted = next(p for p in prop.diagnosis.patterns if p.name == "shifted")
    g = prop.trial.pristine.geometry
    # the crop is off by the padding on both axes; on an axis of size 1 no shift keeps a right value in view
    # (the claim must rest on the right gradient), so there the minimal case can only show 0
    for shift, pad, size in zip(shifted.value, g.padding, (g.height, g.width), strict=True):
        assert shift == -pad or (size == 1 and shift == 0), (shifted.value, g)
    assert any(shifted.value)
    text = report.render()
    assert f"equals the right gradient shifted by ({shifted.value[0]}, {shifted.value[1]}) (rows, columns)" in text


def test_no_multiple_is_claimed_of_a_right_gradient_that_is_rounding_noise():
    # a right gradient of ~1e-17 (a softmax input gradient whose upstream is constant along the row): a layer
    # value of 0.04 is "exactly 4e15 times" it only in the arithmetic, so nothing is said
    case = conv(seed=3)
    r = right_grads(case)["input"]
    assert "scale" in found(case, "input", r * 1e5)
    noise = r / np.abs(r).max() * 4e-17
    layer = noise * (0.04 / 4e-17)
    shown = {p.name for p in patterns(Evidence(case, "input", layer, {**right_grads(case), "input": noise}, TOL))}
    assert "scale" not in shown
