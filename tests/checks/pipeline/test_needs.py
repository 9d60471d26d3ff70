"""checks.pipeline.needs: "the error needs X" is claimed only after the minimal case with X reduced was run and
passed. A bug that shows at batch 1, one filter, stride 1 (a zero gradient, a crop from the wrong corner) gets no
such claim; a gradient averaged over the batch needs batch > 1, a stride ignored in backward needs stride > 1, a
bug in the remainder rows needs a remainder; and a reduction changes one feature only (the output size stays)."""

from __future__ import annotations

import numpy as np

from checks.case import Case
from checks.explain.mistakes import mistaken
from checks.geometry import ConvGeometry, PoolGeometry
from checks.kinds import reference_subject
from checks.pipeline import needs, properties
from checks.pipeline.trial import Options, Trial

OPTIONS = Options(oracles=("torch", "fd"))
GEOMETRY = ConvGeometry(2, 2, 6, 6, 2, (3, 3), (2, 2), (1, 1), (1, 1), True)  # remainder 1 on both axes


def conv_case(g: ConvGeometry = GEOMETRY, seed: int = 0) -> Case:
    rng = np.random.default_rng(seed)
    inputs = {k: rng.uniform(0.1, 1.0, s) * rng.choice([-1.0, 1.0], s) for k, s in g.param_shapes.items()}
    inputs["input"] = rng.uniform(0.1, 1.0, g.input_shape) * rng.choice([-1.0, 1.0], g.input_shape)
    return Case("conv", g, inputs, rng.uniform(0.1, 2.0, g.output_shape) * rng.choice([-1.0, 1.0], g.output_shape))


def claimed(factory, prop: str = "grad_input", case: Case | None = None) -> list[str]:
    trial = Trial(case or conv_case(), factory, OPTIONS)
    findings = properties.get(prop)(trial)
    assert any(f.failed for f in findings), "the fixture layer must fail on the case"
    return [n.field for n in needs.verified(trial, prop, factory, OPTIONS, None)]


class Changed:
    """The reference conv with its input gradient replaced by ``change(case, right)``."""

    def __init__(self, case: Case, change) -> None:
        self.case, self.inner, self.change = case, reference_subject(case), change

    def forward(self, inputs):
        self.inputs = inputs
        return self.inner.forward(inputs)

    def backward(self, upstream):
        grads = dict(self.inner.backward(upstream))
        grads["input"] = self.change(self.case, grads["input"])
        return grads


def changed(change):
    return lambda case: Changed(case, change)


def _zeros(case, right):
    return np.zeros_like(right)


def _wrong_corner(case, right):
    g = case.geometry
    padded = np.pad(right, ((0, 0), (0, 0), (g.padding[0],) * 2, (g.padding[1],) * 2))
    return np.ascontiguousarray(padded[:, :, : right.shape[2], : right.shape[3]])  # crop from the top left


def _wrong_with_a_remainder(case, right):
    """Right when the windows reach every padded row and column, scaled by 2 when the stride leaves some."""
    g = case.geometry
    remainders = [
        (n + 2 * p - (k - 1) - 1) % s
        for n, p, k, s in zip((g.height, g.width), g.padding, g.kernel, g.stride, strict=True)
    ]
    return right * (2.0 if any(remainders) else 1.0)


def test_a_bug_that_shows_on_the_smallest_geometry_needs_nothing():
    assert claimed(changed(_zeros)) == []


def test_a_crop_from_the_wrong_corner_needs_padding_and_nothing_else():
    assert claimed(changed(_wrong_corner)) == ["padding"]  # with no padding both corners are the same


def test_a_weight_gradient_averaged_over_the_batch_needs_a_batch():
    assert claimed(mistaken("weight_grad_over_batch"), "grad_weight") == ["batch"]


def test_a_stride_ignored_in_backward_needs_a_stride():
    assert "stride" in claimed(mistaken("stride_ignored"))
    assert "batch" not in claimed(mistaken("stride_ignored"))


def test_a_bug_that_shows_only_when_the_stride_leaves_a_remainder_needs_the_remainder():
    found = claimed(changed(_wrong_with_a_remainder))
    assert "remainder" in found and "stride" in found  # stride 1 never leaves a remainder: also true
    assert "padding" not in found and "batch" not in found


def test_a_reduction_keeps_the_output_size_and_changes_one_feature():
    for name, _, reduced in needs.reductions(GEOMETRY, None):
        if name != "remainder":
            assert reduced.output_shape[2:] == GEOMETRY.output_shape[2:], name
        changed_fields = [f for f in GEOMETRY._fields if getattr(reduced, f) != getattr(GEOMETRY, f)]
        assert set(changed_fields) <= {name, "height", "width"}, (name, changed_fields)


def test_a_field_the_layer_fixes_or_cannot_lower_is_not_reduced():
    names = [n for n, _, _ in needs.reductions(GEOMETRY, {"batch": None, "stride": 2})]
    assert "batch" not in names and "stride" not in names and "padding" in names
    pool = PoolGeometry(1, 1, 4, 4, (2, 2), (1, 1), (1, 1))
    assert all(r.padding[0] <= r.kernel[0] // 2 for _, _, r in needs.reductions(pool, None))
