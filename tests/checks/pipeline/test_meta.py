"""Meta tests: each oracle and each verdict catches deliberately broken layers and passes valid alternatives.

- Every known mistake (checks.explain.mistakes.MISTAKES) is caught by each verdict that can see it, one at a
  time: PyTorch alone (Options(oracles=("torch",))), finite differences alone (("fd",)), and, at exact
  ties and zeros, subgradient membership alone (no oracle at all). ``find`` searches generated cases
  (restricted to those the mistake applies to) for one the verdict fails, on the right property.
- Valid alternatives pass at kinks: last-max routing and an even split among tied maxima (and the
  reference's first-max), any ReLU slope in [0, 1] and any leaky ReLU slope in [alpha, 1] at exact zeros;
  sending the full gradient to every tied maximum, or a slope outside those intervals, fails.
- The structural properties catch what they are for: a backward not linear in G, a non-deterministic
  backward, a forward writing into its input, a backward writing into G, a layer that prints; and
  oracle agreement fails when finite differences of the layer's forward disagree with PyTorch.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, event, find, given, settings
from hypothesis import strategies as st

import cnn
from checks.case import Case
from checks.explain.mistakes import MISTAKES, Mistake, mistaken
from checks.findings import PASS, SKIP
from checks.geometry import PoolGeometry
from checks.oracles.kinks import pool_argmax_sets
from checks.strategies import cases, conv_geometries, dense_geometries, pool_geometries, softmax_geometries


def search_budget(max_examples: int) -> settings:
    """Settings for ``find``: the active profile's (derandomised under ci), with its own example budget
    (the number of cases tried before concluding the checker misses the mistake), no shrinking (the
    case is reported as found) and no example database (a search must not depend on earlier runs)."""
    return settings(
        settings.default,
        max_examples=max_examples,
        phases=[Phase.generate],
        database=None,
        suppress_health_check=list(HealthCheck),
    )


SEARCH = search_budget(200)

# Geometries under which the mistakes apply often (batch > 1, square kernels, square dense weights,
# overlapping pools), kept small: each tried case is a whole trial, finite differences included.
GEOMETRIES = {
    "conv": conv_geometries(batch=(1, 3), kernel=(1, 3), output=(1, 3), bias=True),
    "maxpool": pool_geometries(kernel=(2, 3), stride=(1, 2)),
    "dense": dense_geometries(batch=(1, 3), features_ndim=1, side=(1, 4), out_features=(1, 4), bias=True),
    "avgpool": pool_geometries(kernel=(2, 3), stride=(1, 2)),
    "softmax": softmax_geometries(side=(1, 4)),
}
# Cost: the valid-alternative tests run every property, finite differences included, on each case.
TIED_POOLS = pool_geometries(output=(1, 3))
KINK_MODE = {"maxpool": "ties", "relu": "zeros", "leaky_relu": "zeros", "svm_loss": "ties"}
"""The value mode that puts a kind at its kinks (for the subgradient verdict)."""
OWN_OUTPUT = {"dropout"}
"""Kinds judged from the layer's own output (Kind.own_output): no twin of ours computes the layer's choice, so
torch takes no part; the verdict from its own output (filed as subgradient, at any value) and fd do."""
ONLY_AT_KINKS = {"route_to_all_ties"}
"""Mistakes that only exist at a tie: no oracle but subgradient membership ever sees them."""
WRONG_SHAPE = {"empty_crop_at_pad0"}
"""Mistakes whose gradient has the wrong shape: the shape check fails them before any oracle looks."""


def verdicts_for(mistake: Mistake) -> list[str]:
    if mistake.name in ONLY_AT_KINKS:
        return ["subgradient"]
    if mistake.kind in OWN_OUTPUT:
        return ["subgradient", "fd"]
    return ["torch", "fd", *(["subgradient"] if mistake.kind in KINK_MODE else [])]


def test_the_tables_name_real_mistakes() -> None:
    names = {m.name for m in MISTAKES}
    assert ONLY_AT_KINKS | WRONG_SHAPE <= names


MATRIX = [pytest.param(m, v, id=f"{m.name}-{v}") for m in MISTAKES for v in verdicts_for(m)]


@pytest.mark.parametrize(("mistake", "verdict"), MATRIX)
def test_each_mistake_is_caught_by_each_verdict_alone(mistake: Mistake, verdict: str, judge) -> None:
    prop = f"grad_{mistake.gradient}"
    oracles = () if verdict == "subgradient" else (verdict,)
    mode = KINK_MODE[mistake.kind] if verdict == "subgradient" and mistake.kind in KINK_MODE else "separated"
    expected = "structure" if mistake.name in WRONG_SHAPE else verdict
    factory = mistaken(mistake)

    def caught(case: Case) -> bool:
        if not mistake.applies(case):
            return False
        return judge(case, factory, oracles=oracles, props=[prop]).caught(prop, expected)

    case = find(cases(mistake.kind, GEOMETRIES.get(mistake.kind), mode=mode), caught, settings=SEARCH)
    found = judge(case, factory, oracles=oracles)
    assert found.caught(prop, expected), found.explain()
    if verdict == "subgradient" and mistake.kind not in OWN_OUTPUT:
        assert found.trial.at_kink and [f.oracle for f in found.about(prop)] == ["subgradient"]
    unused = {"torch", "fd"} - set(oracles)
    for oracle in unused:  # the other oracle took no part
        assert found.statuses(prop, oracle) <= {SKIP}, found.explain(found.about(prop))


# ---------------------------------------------------------------------------------------------------------
# Valid alternatives at ties pass; sending the full gradient to every tie fails.
# ---------------------------------------------------------------------------------------------------------
def _scatter(shares: np.ndarray, upstream: np.ndarray, geometry: PoolGeometry) -> np.ndarray:
    """dX from per-window tap shares (N, C, Ho, Wo, kh, kw): window (i, j) adds G[i, j] * share[u, v] to
    X~[i*sh + u, j*sw + v]; overlapping windows add up; then the padding is cropped."""
    n, c, h, w = geometry.input_shape
    (kh, kw), (sh, sw), (ph, pw) = geometry.kernel, geometry.stride, geometry.padding
    ho, wo = geometry.output_shape[2:]
    dxp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=upstream.dtype)
    for u in range(kh):
        for v in range(kw):
            dxp[:, :, u : u + sh * (ho - 1) + 1 : sh, v : v + sw * (wo - 1) + 1 : sw] += upstream * shares[..., u, v]
    return dxp[:, :, ph : ph + h, pw : pw + w]


class Routing:
    """max_pool2d forward; backward routes each window's G by ``rule`` over its argmax set (a boolean
    (N, C, Ho, Wo, kh, kw) array from checks.oracles.kinks.pool_argmax_sets): "last" (the last maximum in
    row-major order), "split" (evenly among the tied maxima), "all" (the full G to every one)."""

    def __init__(self, case: Case, rule: str) -> None:
        self.geometry, self.rule = case.geometry, rule

    def forward(self, inputs):
        self.x, g = inputs["input"], self.geometry
        return cnn.max_pool2d(self.x, g.kernel, g.stride, g.padding)[0]

    def backward(self, upstream):
        g = self.geometry
        sets = pool_argmax_sets(self.x, g)
        if self.rule == "last":
            flat = sets.reshape(*sets.shape[:4], -1)
            last = flat.shape[-1] - 1 - np.argmax(flat[..., ::-1], axis=-1)
            return {"input": cnn.max_pool2d_backward(upstream, last, self.x.shape, g.kernel, g.stride, g.padding)}
        shares = sets / sets.sum(axis=(-2, -1), keepdims=True) if self.rule == "split" else sets.astype(float)
        return {"input": _scatter(shares.astype(upstream.dtype), upstream, g)}


def _has_multiway_tie(case: Case) -> bool:
    return bool((pool_argmax_sets(case.inputs["input"], case.geometry).sum(axis=(-2, -1)) > 1).any())


@pytest.mark.parametrize("rule", ["last", "split"])
@given(case=cases("maxpool", TIED_POOLS, mode="ties"))
def test_last_max_and_split_routing_pass_at_ties(rule: str, case: Case, judge) -> None:
    verdict = judge(case, lambda c: Routing(c, rule))
    assert not verdict.failures, verdict.explain()
    if verdict.trial.at_kink:
        event("tie: judged by subgradient membership")
        assert verdict.statuses("grad_input", "subgradient") == {PASS}, verdict.explain(verdict.findings)


@given(case=cases("maxpool", TIED_POOLS, mode="ties"))
def test_sending_the_full_gradient_to_every_tied_maximum_fails(case: Case, judge) -> None:
    verdict = judge(case, lambda c: Routing(c, "all"), props=["grad_input"])
    if _has_multiway_tie(case):
        event("a window with tied maxima: must fail")
        assert verdict.caught("grad_input", "subgradient"), verdict.explain(verdict.findings)
    else:  # no window has two maxima: "all" is the unique routing, and right
        event("no tied maxima: must pass")
        assert not verdict.failures, verdict.explain()


class ReluSlopeAtZero:
    """ReLU with dX = G where X > 0, 0 where X < 0, and ``slope * G`` where X == 0."""

    def __init__(self, case: Case, slope: float) -> None:
        self.slope = slope

    def forward(self, inputs):
        self.x = inputs["input"]
        return cnn.relu(self.x)

    def backward(self, upstream):
        mask = np.where(self.x > 0, 1.0, np.where(self.x == 0, self.slope, 0.0))
        return {"input": (upstream * mask).astype(upstream.dtype)}


@pytest.mark.parametrize("slope", [0.0, 0.5, 1.0])
@given(case=cases("relu", mode=st.sampled_from(["zeros", "ties"])))
def test_any_relu_slope_between_0_and_1_passes_at_exact_zeros(slope: float, case: Case, judge) -> None:
    verdict = judge(case, lambda c: ReluSlopeAtZero(c, slope))
    assert not verdict.failures, verdict.explain()
    if verdict.trial.at_kink:
        assert verdict.statuses("grad_input", "subgradient") == {PASS}, verdict.explain(verdict.findings)


@pytest.mark.parametrize("slope", [-0.5, 1.5])
def test_a_relu_slope_outside_0_1_at_exact_zeros_fails(slope: float, judge) -> None:
    factory = lambda c: ReluSlopeAtZero(c, slope)  # noqa: E731
    case = find(
        cases("relu", mode="zeros"), lambda c: judge(c, factory).caught("grad_input", "subgradient"), settings=SEARCH
    )
    assert judge(case, factory).caught("grad_input", "subgradient")


class LeakySlopeAtZero:
    """Leaky ReLU with dX = G where X > 0, alpha * G where X < 0, and ``slope(alpha) * G`` where X == 0."""

    def __init__(self, case: Case, slope) -> None:
        self.alpha = case.geometry.alpha
        self.slope = slope(self.alpha)

    def forward(self, inputs):
        self.x = inputs["input"]
        return cnn.leaky_relu(self.x, self.alpha)

    def backward(self, upstream):
        mask = np.where(self.x > 0, 1.0, np.where(self.x < 0, self.alpha, self.slope))
        return {"input": (upstream * mask).astype(upstream.dtype)}


VALID_LEAKY_SLOPES = {"alpha": lambda a: a, "midway": lambda a: (a + 1) / 2, "one": lambda a: 1.0}
INVALID_LEAKY_SLOPES = {"zero": lambda a: 0.0, "below_alpha": lambda a: a / 2, "above_one": lambda a: 1.5}


@pytest.mark.parametrize("slope", list(VALID_LEAKY_SLOPES))
@given(case=cases("leaky_relu", mode=st.sampled_from(["zeros", "ties"])))
def test_any_leaky_relu_slope_between_alpha_and_1_passes_at_exact_zeros(slope: str, case: Case, judge) -> None:
    verdict = judge(case, lambda c: LeakySlopeAtZero(c, VALID_LEAKY_SLOPES[slope]))
    assert not verdict.failures, verdict.explain()
    if verdict.trial.at_kink:
        event("exact zero: judged by subgradient membership")
        assert verdict.statuses("grad_input", "subgradient") == {PASS}, verdict.explain(verdict.findings)


@pytest.mark.parametrize("slope", list(INVALID_LEAKY_SLOPES))
def test_a_leaky_relu_slope_outside_alpha_1_at_exact_zeros_fails(slope: str, judge) -> None:
    factory = lambda c: LeakySlopeAtZero(c, INVALID_LEAKY_SLOPES[slope])  # noqa: E731
    case = find(
        cases("leaky_relu", mode="zeros"),
        lambda c: judge(c, factory).caught("grad_input", "subgradient"),
        settings=SEARCH,
    )
    verdict = judge(case, factory)
    assert verdict.caught("grad_input", "subgradient") and "X == 0" in verdict.about("grad_input")[0].message


# ---------------------------------------------------------------------------------------------------------
# Structural properties.
# ---------------------------------------------------------------------------------------------------------
def _print_then(backward, upstream):
    print("dL/dX computed")
    return backward(upstream)


def _noisy(backward, upstream):
    rng = np.random.default_rng()  # fresh OS entropy each call: a different answer every time
    return {k: v * (1 + 1e-12 * rng.standard_normal(v.shape)).astype(v.dtype) for k, v in backward(upstream).items()}


def _writes_into_g(backward, upstream):
    grads = {k: np.array(v, copy=True) for k, v in backward(upstream).items()}
    upstream *= 2
    return grads


def _writes_into_input(forward, inputs):
    z = forward(inputs)
    inputs["input"] += 1
    return z


def _leaky_forward(forward, inputs):
    """A forward that is not the intended ReLU (leaky, slope 0.25 below 0); backward stays ReLU's."""
    z = forward(inputs)
    return np.where(inputs["input"] > 0, z, 0.25 * inputs["input"]).astype(z.dtype)


BROKEN = {
    # what is broken: (forward hook, backward hook, the property that must fail)
    "backward uses sign(G)": (None, lambda bw, g: bw(np.sign(g)), "linearity"),
    "backward uses G*|G|": (None, lambda bw, g: bw(g * np.abs(g)), "linearity"),
    "backward adds noise": (None, _noisy, "determinism"),
    "forward writes into its input": (_writes_into_input, None, "no_mutation"),
    "backward writes into G": (None, _writes_into_g, "no_mutation"),
    "layer prints": (None, _print_then, "quiet"),
}


@pytest.mark.parametrize(
    "kind",
    [
        "conv",
        "maxpool",
        "relu",
        "dense",
        "sigmoid",
        "tanh",
        "leaky_relu",
        "softmax",
        "avgpool",
        "batchnorm",
        "dropout",
        "dense+softmax",
    ],
)
@pytest.mark.parametrize("broken", list(BROKEN))
def test_the_structural_properties_catch_what_they_are_for(broken: str, kind: str, judge, tweak) -> None:
    forward, backward, prop = BROKEN[broken]
    factory = tweak(forward=forward, backward=backward)
    case = find(
        cases(kind, GEOMETRIES.get(kind)),
        lambda c: judge(c, factory, props=[prop]).caught(prop, "structure"),
        settings=SEARCH,
    )
    verdict = judge(case, factory, props=[prop])
    assert verdict.caught(prop, "structure"), verdict.explain(verdict.findings)


@given(case=cases("relu"))
def test_oracle_agreement_fails_when_the_forward_is_not_the_intended_math(case: Case, judge, tweak) -> None:
    verdict = judge(case, tweak(forward=_leaky_forward), props=["forward", "grad_input", "oracle_agreement"])
    if (case.inputs["input"] < 0).any():
        event("negative inputs: leaky and ReLU differ")
        assert verdict.caught("oracle_agreement", "fd+torch"), verdict.explain(verdict.findings)
        assert verdict.caught("forward", "torch"), verdict.explain(verdict.findings)
    else:
        event("no negative input: leaky is ReLU")
        assert not verdict.failures, verdict.explain()
