"""Shared fixtures, tolerances and geometry tables for the tests of the reference layers in ``cnn/``.

The test modules run with ``--import-mode=importlib`` and cannot import each other (nor this file), so
everything shared is reached through fixtures:

- ``rng``: a NumPy generator seeded from the test id (every test is reproducible on its own).
- ``close``: the one comparison used everywhere, with the tolerance table below.
- ``oracle``: PyTorch autograd in float64 (requesting it marks the test ``torch`` and skips it, with a
  reason, when torch is not installed).
- ``conv_case`` / ``conv_case_unreached`` / ``pool_case`` / ``pool_case_unreached``: the fixed, named
  geometries below, parametrized by ``pytest_generate_tests`` with readable ids.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import pytest

# ----------------------------------------------------------------------------------------------------------
# Tolerances: every numerical comparison in tests/cnn goes through ``close`` and one of these rows.
# ----------------------------------------------------------------------------------------------------------
TOLERANCES: dict[str, dict[str, float]] = {
    # Our float64 result against PyTorch's float64 result (or a float64 loop formula).
    "float64": {"rtol": 1e-10, "atol": 1e-12},
    # Our float32 result against PyTorch float32 (same inputs rounded once).
    "float32": {"rtol": 1e-5, "atol": 1e-5},
    # Our float32 result against our own float64 result on the same (float32-representable) inputs.
    "float32_vs_float64": {"rtol": 1e-4, "atol": 1e-4},
}


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _out_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    # Written here independently of cnn/: floor((H + 2p - d(k-1) - 1) / s) + 1.
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _unreached(size: int, kernel: int, stride: int, padding: int, dilation: int) -> tuple[int, ...]:
    """Input rows (unpadded coordinates) that no window touches."""
    out = _out_size(size, kernel, stride, padding, dilation)
    touched = {i * stride + u * dilation - padding for i in range(out) for u in range(kernel)}
    return tuple(y for y in range(size) if y not in touched)


class ConvCase(NamedTuple):
    """One conv2d geometry. stride/padding/dilation are kept as written (int or pair) and passed as is."""

    id: str
    n: int
    c: int
    h: int
    w: int
    f: int
    kernel: int | tuple[int, int]
    stride: int | tuple[int, int] = 1
    padding: int | tuple[int, int] = 0
    dilation: int | tuple[int, int] = 1

    @property
    def kernel_hw(self) -> tuple[int, int]:
        return _pair(self.kernel)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.c, self.h, self.w)

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        return (self.f, self.c, *self.kernel_hw)

    @property
    def geometry(self) -> dict[str, int | tuple[int, int]]:
        return {"stride": self.stride, "padding": self.padding, "dilation": self.dilation}

    def _axis(self, a: int) -> tuple[int, int, int, int, int]:
        size = (self.h, self.w)[a]
        return size, self.kernel_hw[a], _pair(self.stride)[a], _pair(self.padding)[a], _pair(self.dilation)[a]

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.f, _out_size(*self._axis(0)), _out_size(*self._axis(1)))

    @property
    def unreached_rows(self) -> tuple[int, ...]:
        return _unreached(*self._axis(0))

    @property
    def unreached_cols(self) -> tuple[int, ...]:
        return _unreached(*self._axis(1))


class PoolCase(NamedTuple):
    """One max_pool2d geometry; stride None means "the kernel", as in torch."""

    id: str
    n: int
    c: int
    h: int
    w: int
    kernel: int | tuple[int, int]
    stride: int | tuple[int, int] | None = None
    padding: int | tuple[int, int] = 0

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.c, self.h, self.w)

    @property
    def kernel_hw(self) -> tuple[int, int]:
        return _pair(self.kernel)

    @property
    def stride_hw(self) -> tuple[int, int]:
        return self.kernel_hw if self.stride is None else _pair(self.stride)

    @property
    def padding_hw(self) -> tuple[int, int]:
        return _pair(self.padding)

    @property
    def geometry(self) -> dict[str, int | tuple[int, int] | None]:
        return {"kernel_size": self.kernel, "stride": self.stride, "padding": self.padding}

    def _axis(self, a: int) -> tuple[int, int, int, int, int]:
        return (self.h, self.w)[a], self.kernel_hw[a], self.stride_hw[a], self.padding_hw[a], 1

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.c, _out_size(*self._axis(0)), _out_size(*self._axis(1)))

    @property
    def unreached_rows(self) -> tuple[int, ...]:
        return _unreached(*self._axis(0))

    @property
    def unreached_cols(self) -> tuple[int, ...]:
        return _unreached(*self._axis(1))


# ----------------------------------------------------------------------------------------------------------
# The fixed geometries. Every row says in its id what it covers.
# ----------------------------------------------------------------------------------------------------------
CONV_CASES: list[ConvCase] = [
    ConvCase("seed-1img-1ch-k3", 1, 1, 8, 8, 1, 3),
    ConvCase("batch2-c3-f4-k3", 2, 3, 7, 7, 4, 3),
    ConvCase("nonsquare-in6x9-k2x4", 2, 2, 6, 9, 3, (2, 4)),
    ConvCase("stride2-pad1", 2, 3, 8, 7, 2, 3, stride=2, padding=1),
    ConvCase("stride3-uneven-rows-cols-unreached", 2, 2, 10, 11, 3, 3, stride=3),
    ConvCase("stride2x3-pad1x2-k3x2", 2, 3, 9, 8, 2, (3, 2), stride=(2, 3), padding=(1, 2)),
    ConvCase("dilation2", 2, 2, 9, 10, 3, 3, dilation=2),
    ConvCase("dilation2x3-stride2-pad1-k2x3", 2, 2, 11, 12, 2, (2, 3), stride=2, padding=1, dilation=(2, 3)),
    ConvCase("stride2-dilation2-interior-gaps", 2, 2, 7, 8, 2, 2, stride=2, dilation=2),
    ConvCase("kernel-equals-padded-input", 2, 3, 4, 5, 2, (6, 7), padding=1),
    ConvCase("kernel-equals-input-1x1-out", 1, 2, 3, 4, 3, (3, 4)),
    ConvCase("stride3-1x1-out-unreached", 2, 2, 5, 5, 2, 3, stride=3),
    ConvCase("k1x1-stride2-odd-unreached", 2, 3, 5, 6, 2, 1, stride=2),
    ConvCase("padding-exceeds-kernel", 1, 2, 3, 4, 2, 2, padding=(3, 2)),
    ConvCase("stride3-pad2-dilation2-k3x2", 2, 2, 12, 10, 3, (3, 2), stride=3, padding=2, dilation=2),
]

POOL_CASES: list[PoolCase] = [
    PoolCase("k2-default-stride", 2, 3, 6, 8, 2),
    PoolCase("overlap-k3-s1", 2, 2, 6, 7, 3, 1),
    PoolCase("overlap-k3-s2-pad1", 2, 2, 7, 8, 3, 2, 1),
    PoolCase("nonsquare-k2x3-s1x2", 2, 2, 6, 9, (2, 3), (1, 2)),
    PoolCase("non-divisible-k2-on-7x5", 2, 2, 7, 5, 2),
    PoolCase("non-divisible-k3-s2-on-8x8", 1, 2, 8, 8, 3, 2),
    PoolCase("stride-exceeds-kernel-k2-s3", 2, 2, 8, 8, 2, 3),
    PoolCase("pad1x0-k2x3-s1x2", 2, 2, 5, 7, (2, 3), (1, 2), (1, 0)),
    PoolCase("pad1-k2-s1-overlap", 1, 3, 4, 5, 2, 1, 1),
    PoolCase("global-kernel-equals-input", 2, 3, 4, 5, (4, 5)),
    PoolCase("pad1-k4-1x1-out", 2, 2, 3, 3, 4, 4, 1),
    PoolCase("k1-identity", 2, 2, 3, 4, 1),
]


def _has_unreached(case: ConvCase | PoolCase) -> bool:
    return bool(case.unreached_rows or case.unreached_cols)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    tables = {
        "conv_case": CONV_CASES,
        "conv_case_unreached": [c for c in CONV_CASES if _has_unreached(c)],
        "pool_case": POOL_CASES,
        "pool_case_unreached": [c for c in POOL_CASES if _has_unreached(c)],
    }
    for name, cases in tables.items():
        if name in metafunc.fixturenames:
            metafunc.parametrize(name, cases, ids=[c.id for c in cases])


# ----------------------------------------------------------------------------------------------------------
# Fixtures
# ----------------------------------------------------------------------------------------------------------
@pytest.fixture
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    """A generator seeded from the test id: fixed across runs and workers, different between tests."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture(scope="session")
def case_tables() -> dict[str, list]:
    """The geometry tables themselves, for tests that check what the tables cover."""
    return {"conv": CONV_CASES, "pool": POOL_CASES}


def assert_close(actual: np.ndarray, expected: np.ndarray, tol: str = "float64", what: str = "") -> None:
    """Same shape, and allclose with the named row of TOLERANCES."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != expected {expected.shape}"
    np.testing.assert_allclose(actual, expected, err_msg=what, **TOLERANCES[tol])


@pytest.fixture(scope="session")
def close() -> Callable[..., None]:
    return assert_close


@pytest.fixture(scope="session")
def torch():
    module = pytest.importorskip("torch", reason="the PyTorch oracle is not installed (pip install -e '.[torch]')")
    module.set_num_threads(1)
    return module


class Oracle:
    """PyTorch autograd as the reference: forward value and vector-Jacobian product with a given G."""

    def __init__(self, torch) -> None:
        self.torch = torch
        self.F = torch.nn.functional

    def tensor(self, a: np.ndarray, requires_grad: bool = False):
        return self.torch.tensor(np.asarray(a), requires_grad=requires_grad)

    def vjp(
        self, fn: Callable[..., object], inputs: dict[str, np.ndarray | None], upstream: np.ndarray | None
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """out = fn(**inputs) in torch; out.backward(G) (or out.backward() for a scalar when G is None).

        Returns (out, {name: d(sum(out * G))/d(name)}) as NumPy arrays; None inputs are passed as None.
        """
        leaves = {k: None if v is None else self.tensor(v, requires_grad=True) for k, v in inputs.items()}
        out = fn(**leaves)
        if upstream is None:
            out.backward()
        else:
            out.backward(self.tensor(upstream))
        grads = {k: t.grad.numpy() for k, t in leaves.items() if t is not None}
        return out.detach().numpy(), grads


@pytest.fixture(scope="session")
def oracle(torch) -> Oracle:
    return Oracle(torch)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Any test that asks for the torch oracle carries the ``torch`` marker (so ``-m "not torch"`` works)."""
    for item in items:
        if {"torch", "oracle"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.torch)
