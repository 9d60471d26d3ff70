"""Array strategies: inputs in a chosen value mode, weights, and the upstream gradient G.

Every value comes from a hypothesis draw, never from the global NumPy RNG (hypothesis reseeds it, so
such values would neither vary nor shrink). Drawing each cell as its own choice is too slow and too
big: ~13 us per cell (a 3,000-cell array takes ~36 ms), and hypothesis caps one test case at 8 KiB
of choices, which a 3,000-cell permutation already overruns. So an array of n cells is ONE
hypothesis choice, a byte string of n (or 2n) bytes, decoded with NumPy into per-cell codes:

- up to DRAW_LIMIT cells: st.binary, which replays, varies and shrinks byte by byte (towards zero
  bytes: sorted ranks, code 0, positive signs);
- above it (a case must stay within the 8 KiB budget): one 64-bit seed, expanded by a private
  ``np.random.Generator`` into the same codes (what ``st.randoms(use_true_random=True)`` does for
  ``random.Random``). It replays and varies; it only shrinks to seed 0, but the geometry, drawn
  first, still shrinks to small arrays that take the byte path.

Both paths feed the same code -> value maps. Measured draw times: see the comment below DRAW_LIMIT.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

MODES = ("separated", "ties", "zeros", "mixed", "wide")
"""Value modes of ``values``: see its docstring."""

MIN_GAP = 0.1
""""separated" values: every two entries differ by at least MIN_GAP (so does a pool window's top two)."""
MIN_ABS = MIN_GAP / 2
""""separated" values: every entry has |x| >= MIN_ABS (no zeros)."""
WIDE_GAP = 1.0
""""wide" values: "separated" values scaled so that every two entries differ by at least WIDE_GAP."""
TIE_LEVELS = (0.0, 0.5, -0.5, 1.0, -1.0)
""""ties" values: the only values used, so windows tie and ReLU sees exact zeros; code 0 (0.0) first."""
MIXED_RANGE = (1e-3, 1e3)
""""mixed" values: |x| is log-uniform in this range, both signs."""
WEIGHT_RANGE = (0.1, 1.0)
"""Parameters (weights, biases): |w| log-uniform in this range, both signs, never zero."""
UPSTREAM_RANGE = (0.1, 2.0)
"""Upstream gradient G: |g| in this range, pairwise distinct, random signs."""
DRAW_LIMIT = 1024
"""Arrays up to this many cells are decoded from drawn bytes (<= 2 bytes per cell, so a case's arrays
fit hypothesis's 8 KiB budget); larger ones from one drawn seed."""

# Measured draw times (hypothesis 6.170, numpy 2.4, 2 shared cores, median / p90 of 100 draws; the first
# draw of a new shape also builds the cached strategy, ~40 ms once):
#   values((1024,))  separated 0.46/0.63 ms, zeros 0.66/0.86, ties 0.12/0.13, mixed 0.16/0.18
#   values((3000,))  separated 0.77/0.94 ms, zeros 1.09/1.29, ties 0.17/0.21, mixed 0.29/0.41
#   upstream((3000,)) 1.28/1.51 ms; parameters((256,)) 0.16/0.18 ms
#   cases(kind) with default bounds: 1.1-1.8 ms (conv 1.80/2.77), network 2.31/4.67 ms
# For comparison, one hypothesis choice per cell (hnp.arrays with fill=nothing()): 36 ms for 3,000 cells,
# and a 3,000-cell st.permutations overruns the 8 KiB budget (every example discarded).

_SEEDS = st.integers(0, 2**64 - 1)


def _rng(seed: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(seed))


def _words(n: int, width: int) -> st.SearchStrategy[np.ndarray]:
    """n unsigned ints of ``width`` bytes (1 or 2) as int64: drawn bytes up to DRAW_LIMIT, else a seed.

    Big-endian, so hypothesis's byte shrinker lowers each word's high byte first; all-zero bytes
    (the shrink target) give all-zero words.
    """
    if n <= DRAW_LIMIT:
        raw = st.binary(min_size=n * width, max_size=n * width)
        return raw.map(lambda b: np.frombuffer(b, dtype=f">u{width}").astype(np.int64))
    return _SEEDS.map(lambda seed: _rng(seed).integers(0, 256**width, size=n))


def _ranks(n: int) -> st.SearchStrategy[np.ndarray]:
    """A permutation of range(n): each cell's rank among random 16-bit keys (ties broken by position).

    All-zero keys (the shrink target) give the identity, i.e. sorted ranks.
    """
    return _words(n, 2).map(lambda keys: np.argsort(np.argsort(keys, kind="stable"), kind="stable"))


def _signs(n: int) -> st.SearchStrategy[np.ndarray]:
    """n bits (1 = negative), eight per drawn byte; shrinks to all 0 (positive)."""
    return _words(-(-n // 8), 1).map(lambda b: np.unpackbits(b.astype(np.uint8))[:n].astype(bool))


def _signed_log(words: np.ndarray, low: float, high: float) -> np.ndarray:
    """16-bit word -> value: the low bit is the sign (0 = +), the high 15 bits pick |x| in [low, high].

    The exponent steps 0, +1, -1, +2, ... away from the geometric middle of [low, high] (a zigzag), so
    word 0, the shrink target, is the positive middle magnitude: 1.0 in MIXED_RANGE, 10**-0.5 in WEIGHT_RANGE.
    """
    q = words >> 1  # 0 .. 2**15 - 1
    t = 0.5 + np.where(q % 2 == 1, (q + 1) // 2, -(q // 2)) / 2**15  # in (0, 1]
    magnitude = np.exp(math.log(low) + t * (math.log(high) - math.log(low)))
    return np.where(words & 1, -magnitude, magnitude)


@st.composite
def _separated(draw, n: int) -> np.ndarray:
    """(rank - centre + 1/2) * MIN_GAP for a random permutation of ranks: gaps >= MIN_GAP, |x| >= MIN_ABS."""
    ranks = draw(_ranks(n))
    centre = draw(st.integers(0, n))  # how many entries are negative; shrinks to 0 (all positive)
    return (ranks - centre + 0.5) * MIN_GAP


@st.composite
def _zeros(draw, n: int) -> np.ndarray:
    """Separated values with the m entries nearest zero set to exactly 0.0, m in [1, ceil(n/2)]."""
    x = draw(_separated(n))
    if n == 0:
        return x
    m = draw(st.integers(1, (n + 1) // 2))
    x[np.argsort(np.abs(x), kind="stable")[:m]] = 0.0
    return x


def _wide(n: int) -> st.SearchStrategy[np.ndarray]:
    """Separated values scaled by WIDE_GAP / MIN_GAP: gaps >= WIDE_GAP, |x| >= WIDE_GAP / 2."""
    return _separated(n).map(lambda x: x * (WIDE_GAP / MIN_GAP))


def _ties(n: int) -> st.SearchStrategy[np.ndarray]:
    """One byte per cell, cut into len(TIE_LEVELS) equal buckets; byte 0 gives TIE_LEVELS[0] = 0.0."""
    levels = np.asarray(TIE_LEVELS)
    return _words(n, 1).map(lambda b: levels[b * len(levels) >> 8])


def _mixed(n: int) -> st.SearchStrategy[np.ndarray]:
    return _words(n, 2).map(lambda w: _signed_log(w, *MIXED_RANGE))


def _parameters(n: int) -> st.SearchStrategy[np.ndarray]:
    return _words(n, 2).map(lambda w: _signed_log(w, *WEIGHT_RANGE))


@st.composite
def _upstream(draw, n: int) -> np.ndarray:
    ranks, negative = draw(_ranks(n)), draw(_signs(n))
    low, high = UPSTREAM_RANGE
    magnitude = low + (high - low) * (ranks + 0.5) / max(n, 1)
    return np.where(negative, -magnitude, magnitude)


_BUILDERS: dict[str, Callable[[int], st.SearchStrategy[np.ndarray]]] = {
    "separated": _separated,
    "wide": _wide,
    "ties": _ties,
    "zeros": _zeros,
    "mixed": _mixed,
    "parameters": _parameters,
    "upstream": _upstream,
}


@functools.lru_cache(maxsize=4096)
def _array(kind: str, shape: tuple[int, ...], dtype: np.dtype) -> st.SearchStrategy[np.ndarray]:
    """float64 values of _BUILDERS[kind] cast to ``dtype`` and reshaped. Cached: a strategy is built
    (and validated by hypothesis) once per (kind, shape, dtype), not once per draw."""
    return _BUILDERS[kind](math.prod(shape)).map(lambda v: v.astype(dtype).reshape(shape))


def _shape(shape: object) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, tuple) or not all(isinstance(s, (int, np.integer)) and s >= 0 for s in shape):
        raise ValueError(f"shape={shape!r}: expected a tuple of non-negative ints")
    return tuple(int(s) for s in shape)


def float_dtype(dtype: object) -> np.dtype:
    """np.float32 or np.float64 as a np.dtype; ValueError otherwise."""
    try:
        resolved = np.dtype(dtype)  # type: ignore[call-overload]
    except TypeError:
        resolved = None
    if resolved not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype={dtype!r}: expected float32 or float64")
    return resolved


def check_mode(mode: object) -> str:
    """``mode`` if it is one of MODES; ValueError otherwise."""
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}: expected one of {MODES}")
    return mode  # type: ignore[return-value]


def values(
    shape: tuple[int, ...], dtype: object = np.float64, mode: str = "separated"
) -> st.SearchStrategy[np.ndarray]:
    """Arrays of ``shape`` and ``dtype`` (float32 or float64), every cell drawn, in one of MODES:

    - ``"separated"`` (default): distinct multiples of MIN_GAP offset by MIN_GAP/2, in a random
      arrangement with a random number of negatives: every two entries differ by >= MIN_GAP (0.1), so
      every pool window's top two do, and |x| >= MIN_ABS (0.05): no zeros, no ties. |x| grows to
      about MIN_GAP * size. What finite differences need. Shrinks towards sorted, all positive.
    - ``"ties"``: only the values TIE_LEVELS = (0, +-0.5, +-1), so pool windows of 2+ cells often tie
      and ReLU sees exact zeros. Shrinks towards all zeros (every window tied).
    - ``"zeros"``: "separated" values with between 1 and half of the entries (those nearest zero) set
      to exactly 0.0; the rest keep the separation. For ReLU kinks. Shrinks towards a single zero.
    - ``"mixed"``: |x| log-uniform over MIXED_RANGE (1e-3 .. 1e3), both signs, finite, no subnormals.
      Shrinks towards all 1.0.
    - ``"wide"``: "separated" values scaled up to gaps of at least WIDE_GAP (1.0): for a batch norm, whose
      curvature grows as 1 / sigma^3, so that a finite-difference step stays far below every channel's spread.
    """
    return _array(check_mode(mode), _shape(shape), float_dtype(dtype))


def parameters(shape: tuple[int, ...], dtype: object = np.float64) -> st.SearchStrategy[np.ndarray]:
    """Weights and biases of ``shape`` and ``dtype``: |w| log-uniform in WEIGHT_RANGE (0.1 .. 1), both signs,
    never zero. Shrinks towards all 10**-0.5 (~0.32), positive."""
    return _array("parameters", _shape(shape), float_dtype(dtype))


def upstream(shape: tuple[int, ...], dtype: object = np.float64) -> st.SearchStrategy[np.ndarray]:
    """The upstream gradient G of ``shape`` (``()`` gives a 0-d array) and ``dtype``.

    |g| takes n evenly spaced, pairwise distinct values inside UPSTREAM_RANGE (0.1 .. 2) in a random
    arrangement, each with a random sign: never zero, and never constant when it has two or more
    entries (an all-ones G hides permutation bugs; distinct entries expose any mis-routing).
    Shrinks towards sorted magnitudes, all positive.
    """
    return _array("upstream", _shape(shape), float_dtype(dtype))


@functools.lru_cache(maxsize=256)
def labels(batch: int, classes: int) -> st.SearchStrategy[np.ndarray]:
    """int64 class indices (batch,) in [0, classes), every entry drawn; shrinks towards all 0."""
    return hnp.arrays(np.int64, batch, elements=st.integers(0, classes - 1), fill=st.nothing())
