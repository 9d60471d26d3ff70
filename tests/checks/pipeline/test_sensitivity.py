"""Sensitivity of the verdicts, through the whole pipeline, with the numbers of checks.tolerances.TOLERANCES.

- float64: a relative error of ERROR (1e-5) in ONE entry of one gradient is caught by PyTorch and, where
  the differences are taken element-wise, by finite differences; and the report points at that entry.
- A layer that computes in float32 (inputs cast down, the reference layer run in float32, results cast
  back) passes at float32 tolerance against the float64 oracles; the float64 row does not let it pass.
- Tolerances are not scaled by the array's size: the same single-entry error is caught in a small and
  in a large array.

ERROR is the only number invented here; every bound is computed from the tolerance table.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import event, find, given
from hypothesis import strategies as st

from checks import kinds
from checks.case import Case
from checks.compare import compare
from checks.kinds import reference_subject
from checks.oracles import fd, torch_oracle
from checks.strategies import cases, conv_geometries, dense_geometries, pool_geometries
from checks.tolerances import TOLERANCES, Tolerance

ERROR = 1e-5
"""The injected relative error, in one entry of one gradient."""
F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
KINDS = ["conv", "dense", "maxpool", "relu", "flatten"]
# Cost: element-wise finite differences of inputs of up to ~3,000 (pool) and ~7,000 (conv) entries take
# seconds per case; outputs of at most 3x3 keep every case well under a second.
GEOMETRIES = {"maxpool": pool_geometries(output=(1, 3)), "conv": conv_geometries(output=(1, 3))}


def exact_gradient(case: Case, name: str) -> np.ndarray:
    return torch_oracle.gradients(
        kinds.get(case.kind).torch, case.geometry, case.inputs, case.upstream, case.labels
    ).grads[name]


def visible(gradient: np.ndarray, tol: Tolerance, noise: np.ndarray | float = 0.0) -> np.ndarray:
    """Entries where an ERROR relative error exceeds the comparison's bound (atol * max|g| + rtol * |g|,
    plus the estimate's own rounding ``noise``) at least twice over."""
    g = np.abs(gradient)
    bound = tol.atol * g.max(initial=0.0) + tol.rtol * g * (1 + ERROR) + noise
    return ERROR * g > 2 * bound


def fd_noise(case: Case, name: str, tol_eps: float) -> np.ndarray:
    """The finite-difference estimate's rounding allowance per entry, as checks.oracles.fd computes it."""
    loss = abs(float(np.sum(np.asarray(reference_subject(case).forward(case.inputs), np.float64) * case.upstream)))
    h = tol_eps * np.maximum(1.0, np.abs(case.inputs[name].astype(np.float64)))
    return fd.rounding_noise(loss, h)


def one_entry_off(name: str, index: int):
    """A backward hook: the reference gradients, with entry ``index`` (flat) of ``name`` times (1 + ERROR)."""

    def backward(inner, upstream):
        grads = {k: np.array(v, copy=True) for k, v in inner(upstream).items()}
        grads[name].reshape(-1)[index] *= 1 + ERROR
        return grads

    return backward


@pytest.mark.parametrize("oracle", ["torch", "fd"])
@pytest.mark.parametrize("kind", KINDS)
@given(data=st.data())
def test_in_float64_one_entry_off_by_1e_5_is_caught_and_located(kind: str, oracle: str, data, judge, tweak) -> None:
    case = data.draw(cases(kind, GEOMETRIES.get(kind)), label="case")
    name = data.draw(st.sampled_from(sorted(case.inputs)), label="gradient")
    row = TOLERANCES[F64]
    exact = exact_gradient(case, name)
    if oracle == "torch":
        candidates = visible(exact, row.exact)
    else:
        assert case.inputs[name].size <= row.max_elementwise  # element-wise differences at these bounds
        candidates = visible(exact, row.fd, fd_noise(case, name, row.eps))
    if not np.any(exact):
        event(f"{kind}: {name} is identically zero here (no window reaches it): nothing to perturb")
        return
    flat = np.flatnonzero(candidates)
    assert flat.size, f"not even the largest entry of {name} is visible? {case.describe()}"
    index = data.draw(st.sampled_from(flat.tolist()), label="entry")
    event(f"{kind}: {flat.size}/{exact.size} entries of {name} can show a 1e-5 error")
    prop = f"grad_{name}"
    verdict = judge(case, tweak(backward=one_entry_off(name, index)), oracles=(oracle,), props=[prop])
    assert verdict.caught(prop, oracle), verdict.explain(verdict.findings, title="findings")
    [finding] = [f for f in verdict.about(prop, oracle) if f.failed]
    assert finding.comparison.mismatched == 1
    assert finding.comparison.worst_index == tuple(int(i) for i in np.unravel_index(index, exact.shape))


# ---------------------------------------------------------------------------------------------------------
# A layer computing in float32.
# ---------------------------------------------------------------------------------------------------------
class Float32Inside:
    """Whatever dtype it is given, computes in float32: inputs cast to float32, the reference layer built
    and run in float32, output and gradients cast back to the dtype of the input it was given."""

    def __init__(self, case: Case) -> None:
        as32 = {k: v.astype(np.float32) for k, v in case.inputs.items()}
        self.inner = reference_subject(
            dataclasses.replace(case, inputs=as32, upstream=case.upstream.astype(np.float32))
        )

    def forward(self, inputs):
        self.dtype = inputs["input"].dtype
        return self.inner.forward({k: v.astype(np.float32) for k, v in inputs.items()}).astype(self.dtype)

    def backward(self, upstream):
        grads = self.inner.backward(upstream.astype(np.float32))
        return {k: v.astype(self.dtype) for k, v in grads.items()}


FLOAT32_KINDS = ["conv", "dense", "maxpool", "relu", "softmax_ce"]


@pytest.mark.parametrize("kind", FLOAT32_KINDS)
@given(data=st.data())
def test_a_layer_computing_in_float32_passes_at_float32_tolerance(kind: str, data, judge) -> None:
    case = data.draw(cases(kind, GEOMETRIES.get(kind), dtype=F32), label="case")
    verdict = judge(case, Float32Inside)
    assert not verdict.unexplained(), verdict.explain()  # known checker bugs excused: see conftest.py
    assert verdict.trial.tol == TOLERANCES[F32]
    assert verdict.statuses("forward", "torch") == {"pass"}  # judged against the float64 oracle


@pytest.mark.parametrize("kind", ["conv", "dense"])
def test_the_same_float32_layer_fails_the_float64_tolerance(kind: str, judge) -> None:
    """Its float32 rounding is visible to the float64 row: it is the float32 row that lets it pass."""
    props = ["forward", "grad_input", "grad_weight"]

    def caught(case: Case) -> bool:
        verdict = judge(case, Float32Inside, oracles=("torch",), props=props)
        return any(verdict.caught(p, "torch") for p in props)

    case = find(cases(kind), caught, settings=_search())
    assert caught(case)


def _search():
    from hypothesis import HealthCheck, Phase, settings

    return settings(
        settings.default,
        max_examples=50,
        phases=[Phase.generate],
        database=None,
        suppress_health_check=list(HealthCheck),
    )


# ---------------------------------------------------------------------------------------------------------
# Tolerances are not scaled by size.
# ---------------------------------------------------------------------------------------------------------
# Dense weights of a few entries, and of 6,000 to 20,000 (beyond element-wise finite differences,
# so PyTorch alone judges them element-wise; a directional difference cannot localise one entry).
SIZES = {
    "small": dense_geometries(batch=(1, 2), features_ndim=1, side=(2, 4), out_features=(2, 3)),
    "large": dense_geometries(batch=(1, 2), features_ndim=1, side=(3000, 4000), out_features=(2, 5)),
}


@pytest.mark.parametrize("size", list(SIZES))
@given(data=st.data())
def test_the_same_single_entry_error_is_caught_in_a_small_and_a_large_array(size: str, data, judge, tweak) -> None:
    case = data.draw(cases("dense", SIZES[size]), label="case")
    exact = exact_gradient(case, "weight")
    index = int(np.argmax(np.abs(exact)))  # one entry, the same rank in every size: the largest
    verdict = judge(case, tweak(backward=one_entry_off("weight", index)), oracles=("torch",), props=["grad_weight"])
    assert verdict.caught("grad_weight", "torch"), verdict.explain(verdict.findings, title="findings")
    event(f"weight of {exact.size} entries")


@pytest.mark.parametrize("size", [10, 10**6])
@pytest.mark.parametrize("kind", ["exact", "fd", "forward"])
def test_compare_catches_one_entry_off_at_any_size(kind: str, size: int) -> None:
    tol = getattr(TOLERANCES[F64], kind)
    expected = np.linspace(1.0, 2.0, size)
    actual = expected.copy()
    actual[size // 2] *= 1 + ERROR
    result = compare(actual, expected, tol)
    assert not result.ok and result.mismatched == 1 and result.worst_index == (size // 2,)
