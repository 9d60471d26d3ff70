"""Central finite differences of L = sum(Z * G), in float64, kink-aware. Needs numpy only.

Element-wise:   dL/dx_i ~ (L(x + h_i e_i) - L(x - h_i e_i)) / (2 h_i),  h_i = eps * max(1, |x_i|)
                (``relative=False``: h = eps, for curved functions such as softmax whose curvature
                does not shrink as |x| grows, so a step scaled by |x| would truncate).
Directional:    <dL/dx, u> ~ (L(x + h u) - L(x - h u)) / (2 h),  h = eps * max(1, max|x|),
                u a random signed direction with |u_i| in [0.1, 1] (every entry takes part).
Two evaluations per entry, or two per direction whatever the size. Inputs are promoted to float64
copies, so neither the caller's arrays nor the layer's dtype change. An estimate is kept only where
the activation pattern is the same at x - h u, x and x + h u (see checks.oracles.kinks): elsewhere it is
marked untrusted and the difference never judges.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from checks.oracles.kinks import same_signature

Arrays = Mapping[str, np.ndarray]
Loss = Callable[[Arrays], float]
Signature = Callable[[Arrays], list[np.ndarray]]


@dataclass(frozen=True)
class FDGradient:
    """Element-wise estimate of dL/d(name); ``trusted`` is False where a step crossed a kink;
    ``noise`` bounds each estimate's rounding error (see ``rounding_noise``)."""

    value: np.ndarray
    trusted: np.ndarray
    noise: np.ndarray | None = None


# Each L evaluation sums many products; its rounding error is a few ulps of the largest partial
# sum, which max(|L+|, |L-|) underestimates when terms cancel. The factor covers both evaluations
# and that cancellation, and stays far below any real gradient error at the tolerances used.
NOISE_ULPS = 64.0
FLOAT64 = np.dtype(np.float64)


def rounding_noise(magnitude: float, h: float | np.ndarray, dtype: np.dtype = FLOAT64) -> np.ndarray:
    """|error| of (L+ - L-) / 2h from rounding alone: about NOISE_ULPS * u * magnitude / h, where u is
    the unit roundoff of the dtype the layer computes in and magnitude ~ max |L|."""
    return np.asarray(NOISE_ULPS * np.finfo(dtype).eps * magnitude / (2 * np.asarray(h)))


@dataclass(frozen=True)
class FDDirectional:
    """Directional estimates: projections[k] ~ <dL/d(name), directions[k]>; None if a step crossed a kink."""

    directions: list[np.ndarray]
    projections: list[float | None]


def scalar_loss(forward: Callable[[Arrays], np.ndarray], upstream: np.ndarray) -> Loss:
    """L(inputs) = sum(forward(inputs) * G) in float64."""
    g = np.asarray(upstream, dtype=np.float64)

    def loss(inputs: Arrays) -> float:
        return float(np.sum(np.asarray(forward(inputs), dtype=np.float64) * g))

    return loss


def promote(inputs: Arrays) -> dict[str, np.ndarray]:
    """float64 copies of every array."""
    return {k: np.array(v, dtype=np.float64, copy=True) for k, v in inputs.items()}


def _stable(signature: Signature | None, base: list[np.ndarray] | None, *points: Arrays) -> bool:
    if signature is None:
        return True
    return all(same_signature(base, signature(p)) for p in points)


def elementwise(
    loss: Loss,
    inputs: Arrays,
    name: str,
    eps: float,
    signature: Signature | None = None,
    compute_dtype: np.dtype = FLOAT64,
    relative: bool = True,
) -> FDGradient:
    """dL/d(inputs[name]) entry by entry; 2 loss evaluations per entry."""
    point = promote(inputs)
    x = point[name]
    base = signature(point) if signature is not None else None
    grad = np.zeros(x.shape, dtype=np.float64)
    trusted = np.ones(x.shape, dtype=bool)
    noise = np.zeros(x.shape, dtype=np.float64)
    flat, gflat, tflat, nflat = x.reshape(-1), grad.reshape(-1), trusted.reshape(-1), noise.reshape(-1)
    for i in range(flat.size):
        original = flat[i]
        h = eps * max(1.0, abs(original)) if relative else eps
        flat[i] = original + h
        plus, plus_point = loss(point), _snapshot(point, name, signature)
        flat[i] = original - h
        minus, minus_point = loss(point), _snapshot(point, name, signature)
        flat[i] = original
        gflat[i] = (plus - minus) / (2 * h)
        nflat[i] = rounding_noise(max(abs(plus), abs(minus)), h, compute_dtype)
        tflat[i] = _stable(signature, base, *(p for p in (plus_point, minus_point) if p is not None))
    return FDGradient(grad, trusted, noise)


def _snapshot(point: dict[str, np.ndarray], name: str, signature: Signature | None) -> Arrays | None:
    """A copy of the perturbed point for the signature check (skipped when there are no kinks)."""
    if signature is None:
        return None
    return {**point, name: point[name].copy()}


def random_directions(shape: tuple[int, ...], count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Signed directions with |u_i| in [0.1, 1], so no entry is left out of the projection."""
    return [rng.uniform(0.1, 1.0, shape) * rng.choice([-1.0, 1.0], shape) for _ in range(count)]


def directional(
    loss: Loss,
    inputs: Arrays,
    name: str,
    directions: list[np.ndarray],
    eps: float,
    signature: Signature | None = None,
    relative: bool = True,
) -> FDDirectional:
    """(L(x + h u) - L(x - h u)) / (2 h) per direction u; 2 loss evaluations per direction."""
    point = promote(inputs)
    x = point[name]
    base = signature(point) if signature is not None else None
    h = eps * max(1.0, float(np.abs(x).max(initial=0.0))) if relative else eps
    projections: list[float | None] = []
    for u in directions:
        plus = {**point, name: x + h * u}
        minus = {**point, name: x - h * u}
        value = (loss(plus) - loss(minus)) / (2 * h)
        projections.append(value if _stable(signature, base, plus, minus) else None)
    return FDDirectional(directions, projections)
