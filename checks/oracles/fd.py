"""Central finite differences of L = sum(Z * G), in float64, kink-aware. Needs numpy only.

Element-wise:   dL/dx_i ~ (L(x + h_i e_i) - L(x - h_i e_i)) / (2 h_i),  h_i = eps * max(1, |x_i|)
                (``relative=False``: h = eps, for curved functions such as softmax whose curvature
                does not shrink as |x| grows, so a step scaled by |x| would truncate).
Directional:    <dL/dx, u> ~ (L(x + h u) - L(x - h u)) / (2 h),  h = eps * max(1, max|x|),
                u a random signed direction with |u_i| in [0.1, 1] (every entry takes part).
Two evaluations per entry, or two per direction whatever the size, asked as one batch (``BatchLoss``: a
layer in another process answers it in one request). Inputs are promoted to float64
copies, so neither the caller's arrays nor the layer's dtype change. An estimate is kept only where
the activation pattern is the same at x - h u, x and x + h u (see checks.oracles.kinks): elsewhere it is
marked untrusted and the difference never judges.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

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


class BatchLoss(Protocol):
    """L at many points near one base point, in one call (a layer in another process answers a batch in
    one request): ``at_entries`` sets entry ``index[k]`` of input ``name`` to ``values[k]``, ``at_arrays``
    replaces the whole input ``name`` by ``points[k]``; both return L per point, float64."""

    def at_entries(self, base: Arrays, name: str, index: np.ndarray, values: np.ndarray) -> np.ndarray: ...

    def at_arrays(self, base: Arrays, name: str, points: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class PointLoss:
    """A scalar loss asked point by point: the BatchLoss of anything that can evaluate one point."""

    loss: Loss

    def at_entries(self, base: Arrays, name: str, index: np.ndarray, values: np.ndarray) -> np.ndarray:
        point = promote(base)
        flat = point[name].reshape(-1)
        out = np.empty(len(index))
        for k, (i, v) in enumerate(zip(index, values, strict=True)):
            original = flat[i]
            flat[i] = v
            out[k] = self.loss(point)
            flat[i] = original
        return out

    def at_arrays(self, base: Arrays, name: str, points: np.ndarray) -> np.ndarray:
        point = promote(base)
        return np.array([self.loss({**point, name: p}) for p in points])


def batch(loss: Loss | BatchLoss) -> BatchLoss:
    return loss if hasattr(loss, "at_entries") else PointLoss(loss)  # type: ignore[arg-type,return-value]


def promote(inputs: Arrays) -> dict[str, np.ndarray]:
    """float64 copies of every array."""
    return {k: np.array(v, dtype=np.float64, copy=True) for k, v in inputs.items()}


def _stable(signature: Signature | None, base: list[np.ndarray] | None, *points: Arrays) -> bool:
    if signature is None:
        return True
    return all(same_signature(base, signature(p)) for p in points)


def elementwise(
    loss: Loss | BatchLoss,
    inputs: Arrays,
    name: str,
    eps: float,
    signature: Signature | None = None,
    compute_dtype: np.dtype = FLOAT64,
    relative: bool = True,
) -> FDGradient:
    """dL/d(inputs[name]) entry by entry; 2 loss evaluations per entry, asked as one batch."""
    point = promote(inputs)
    x = point[name]
    flat = x.reshape(-1)
    h = eps * np.maximum(1.0, np.abs(flat)) if relative else np.full(flat.shape, float(eps))
    index = np.repeat(np.arange(flat.size), 2)
    values = np.stack([flat + h, flat - h], axis=1).reshape(-1)
    losses = batch(loss).at_entries(point, name, index, values)
    plus, minus = losses[0::2], losses[1::2]
    grad = ((plus - minus) / (2 * h)).reshape(x.shape)
    noise = rounding_noise(np.maximum(np.abs(plus), np.abs(minus)), h, compute_dtype).reshape(x.shape)
    trusted = np.ones(x.shape, dtype=bool)
    if signature is not None:
        base = signature(point)
        tflat = trusted.reshape(-1)
        for i in range(flat.size):
            original = flat[i]
            flat[i] = original + h[i]
            plus_point = {**point, name: x.copy()}
            flat[i] = original - h[i]
            minus_point = {**point, name: x.copy()}
            flat[i] = original
            tflat[i] = _stable(signature, base, plus_point, minus_point)
    return FDGradient(grad, trusted, noise)


def random_directions(shape: tuple[int, ...], count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Signed directions with |u_i| in [0.1, 1], so no entry is left out of the projection."""
    return [rng.uniform(0.1, 1.0, shape) * rng.choice([-1.0, 1.0], shape) for _ in range(count)]


def directional(
    loss: Loss | BatchLoss,
    inputs: Arrays,
    name: str,
    directions: list[np.ndarray],
    eps: float,
    signature: Signature | None = None,
    relative: bool = True,
) -> FDDirectional:
    """(L(x + h u) - L(x - h u)) / (2 h) per direction u; 2 loss evaluations per direction, as one batch."""
    point = promote(inputs)
    x = point[name]
    base = signature(point) if signature is not None else None
    h = eps * max(1.0, float(np.abs(x).max(initial=0.0))) if relative else eps
    points = (
        np.stack([p for u in directions for p in (x + h * u, x - h * u)]) if directions else np.empty((0, *x.shape))
    )
    losses = batch(loss).at_arrays(point, name, points)
    projections: list[float | None] = []
    for k in range(len(directions)):
        value = (losses[2 * k] - losses[2 * k + 1]) / (2 * h)
        plus, minus = {**point, name: points[2 * k]}, {**point, name: points[2 * k + 1]}
        projections.append(float(value) if _stable(signature, base, plus, minus) else None)
    return FDDirectional(directions, projections)
