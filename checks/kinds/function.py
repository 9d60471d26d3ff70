"""function: a layer of ANY differentiable computation the user declares, Z = f(X, params...), judged with no
reference at all: the only gradient oracle is finite differences of the layer's own forward. Several inputs,
Z = f(A, B, ..., params...) (a gated product, a residual add, scores Q K^T), are judged input by input the same way.

| what | how it is judged |
|---|---|
| shapes | declared in the LayerSpec (``shapes={"input": ..., "output": ..., <param>: ...}``), never drawn |
| inputs | named in the LayerSpec (``inputs=("a", "b")``; default ``("input",)``): forward(a, b), backward -> (dA, dB) |
| parameters | whatever the LayerSpec names (``params``), drawn like any kind's weights; every input in the value mode |
| ``forward`` | shape, dtype and finiteness only: with no reference, its values are not judged (said in the report) |
| ``grad_<name>`` | central differences of L = sum(Z * G) through the layer's own forward, kink-guarded (below) |
| ``oracle_agreement`` | skipped: there is one oracle |
| structural | linearity, determinism, no_mutation, quiet, as for every kind |

The kinks of such a layer (an abs, a max, a clip inside it) are invisible to us: there is no reference to name
its kink sites. So every entry (or, for a large array, every random direction v) is differenced with two steps:

    D(h) = (L(x + h v) - L(x - h v)) / 2h            central differences at h and at h/2
    A(h) = (L(x + h v) - 2 L(x) + L(x - h v)) / h     the one-sided asymmetry

and judged only where |D(h) - D(h/2)| and |A(h) - 2 A(h/2)| both stay within a quarter of the allowance the
comparison itself grants that entry. For a smooth L both are rounding plus O(h^2); at a kink of slope jump J at
x, A(h) = A(h/2) = J, so A(h) - 2 A(h/2) = -J; a kink within a step moves D(h) away from D(h/2). A jump below a
quarter of the allowance cannot make a correct gradient fail, so an entry that passes both tests is one where
finite differences are the gradient; the others are "not judged", never failed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from hypothesis import strategies as st

from checks.case import Case
from checks.geometry import FunctionGeometry
from checks.kinds import Kind
from checks.oracles.fd import FDDirectional, FDGradient, batch, promote, random_directions, rounding_noise
from checks.tolerances import DtypeTolerances

NO_REFERENCE = "a function layer has no reference forward: its output's values are not judged"
"""Why ``forward`` is not judged (shape, dtype and finiteness still are)."""
ONE_ORACLE = "one oracle: a function layer is judged by differences of its own forward only"
"""Why ``oracle_agreement`` is skipped and torch does not judge."""
NO_REFERENCE_LAYER = "a function layer has no reference layer: the user's layer is the only implementation"
GUARD = 4.0
"""The kink tests must hold within 1/GUARD of the comparison's own allowance (see the module docstring)."""


def declared(
    shapes: Mapping[str, tuple[int, ...]], params: Mapping[str, object], inputs: Sequence[str] = ("input",)
) -> FunctionGeometry:
    """The one geometry of a declared layer: its inputs (in the order forward takes them), output and parameter
    shapes as written. A layer of the one input "input" keeps ``inputs=()`` (see FunctionGeometry)."""
    pairs = tuple((name, tuple(shapes[name])) for name in params)
    named = () if tuple(inputs) == ("input",) else tuple((name, tuple(shapes[name])) for name in inputs)
    return FunctionGeometry(tuple(shapes[inputs[0]]), tuple(shapes["output"]), pairs, named)


def function_geometries() -> st.SearchStrategy[FunctionGeometry]:
    """A small fixed geometry (X (2, 3) -> Z (2, 3), no parameters): the default strategy of the registry; a
    user's function layer always has the geometry its LayerSpec declares (``declared``)."""
    return st.just(FunctionGeometry((2, 3), (2, 3)))


def reference_layer(case: Case):
    """None exists: the user's function is the only implementation. A failing gradient is explained against the
    guarded differences instead (checks.explain.where.blind_grads: the entries they judged, column ``fd``)."""
    raise LookupError(NO_REFERENCE_LAYER)


def _allowance(d: np.ndarray, noise: np.ndarray, tol: DtypeTolerances, scale: float) -> np.ndarray:
    """What the fd comparison allows each estimate: atol * scale + rtol * |D| + rounding noise."""
    return tol.fd.atol * scale + tol.fd.rtol * np.abs(d) + noise


def _trusted(
    base: float | np.ndarray,
    plus: np.ndarray,
    minus: np.ndarray,
    plus2: np.ndarray,
    minus2: np.ndarray,
    h: np.ndarray | float,
    allowed: np.ndarray,
) -> np.ndarray:
    """Where |D(h) - D(h/2)| <= allowed / GUARD and |A(h) - 2 A(h/2)| <= allowed / GUARD (and all is finite)."""
    with np.errstate(all="ignore"):
        d1, d2 = (plus - minus) / (2 * h), (plus2 - minus2) / h
        a1, a2 = (plus - 2 * base + minus) / h, (plus2 - 2 * base + minus2) / (np.asarray(h) / 2)
        ok = (np.abs(d1 - d2) <= allowed / GUARD) & (np.abs(a1 - 2 * a2) <= allowed / GUARD)
    return ok & np.isfinite(d1) & np.isfinite(d2) & np.isfinite(a1) & np.isfinite(a2)


def elementwise(loss, inputs: Mapping[str, np.ndarray], name: str, tol: DtypeTolerances, dtype) -> FDGradient:
    """dL/d(inputs[name]) entry by entry at h_i = eps * max(1, |x_i|) and h_i / 2, 4 evaluations per entry plus
    L(x), in one batch; the estimate is D(h/2), trusted only where the kink tests hold."""
    point = promote(inputs)
    x = point[name]
    flat = x.reshape(-1)
    h = tol.eps * np.maximum(1.0, np.abs(flat))
    losses = batch(loss)
    base = float(losses.at_arrays(point, name, x[None])[0])
    index = np.repeat(np.arange(flat.size), 4)
    values = np.stack([flat + h, flat - h, flat + h / 2, flat - h / 2], axis=1).reshape(-1)
    out = losses.at_entries(point, name, index, values).reshape(flat.size, 4)
    plus, minus, plus2, minus2 = out.T
    value = (plus2 - minus2) / h
    magnitude = np.maximum.reduce(
        [np.abs(plus), np.abs(minus), np.abs(plus2), np.abs(minus2), np.full_like(h, abs(base))]
    )
    noise = rounding_noise(magnitude, h / 2, dtype)
    scale = float(np.max(np.abs(value), initial=0.0)) if np.isfinite(value).all() else 0.0
    trusted = _trusted(base, plus, minus, plus2, minus2, h, _allowance(value, noise, tol, scale))
    return FDGradient(value.reshape(x.shape), trusted.reshape(x.shape), noise.reshape(x.shape))


def directional(
    loss, inputs: Mapping[str, np.ndarray], name: str, tol: DtypeTolerances, dtype, rng: np.random.Generator
) -> FDDirectional:
    """<dL/dx, u> along tol.directions random directions at h = eps * max(1, max|x|) and h / 2 (5 evaluations each,
    one batch); a direction whose kink tests fail is not judged (its projection is None)."""
    point = promote(inputs)
    x = point[name]
    directions = random_directions(x.shape, tol.directions, rng)
    h = tol.eps * max(1.0, float(np.abs(x).max(initial=0.0)))
    rows = [x] + [p for u in directions for p in (x + h * u, x - h * u, x + h / 2 * u, x - h / 2 * u)]
    values = batch(loss).at_arrays(point, name, np.stack(rows))
    base = float(values[0])
    projections: list[float | None] = []
    for k in range(len(directions)):
        plus, minus, plus2, minus2 = (np.float64(v) for v in values[1 + 4 * k : 5 + 4 * k])
        d = (plus2 - minus2) / h
        noise = rounding_noise(float(np.max(np.abs(values[[0, *range(1 + 4 * k, 5 + 4 * k)]]))), h / 2, dtype)
        # the directional comparison allows atol * max(sum|grad_i u_i|, |D|): |D| is the part known here
        allowed = _allowance(np.asarray(d), noise, tol, abs(float(d)))
        ok = bool(_trusted(base, plus, minus, plus2, minus2, h, allowed))
        projections.append(float(d) if ok else None)
    return FDDirectional(directions, projections)


def blind_fd(
    loss, inputs: Mapping[str, np.ndarray], name: str, tol: DtypeTolerances, dtype, rng: np.random.Generator
) -> FDGradient | FDDirectional:
    """Kink-guarded finite differences of the layer's own forward: entry by entry up to tol.max_elementwise
    entries, else along random directions."""
    if np.asarray(inputs[name]).size <= tol.max_elementwise:
        return elementwise(loss, inputs, name, tol, dtype)
    return directional(loss, inputs, name, tol, dtype, rng)


KIND = Kind(
    name="function",
    geometry=FunctionGeometry,
    forward=None,
    torch=None,
    reference_layer=reference_layer,
    default_geometries=function_geometries,
    axes={"input": "n*", "output": "n*"},
    layouts={"input": "ND", "output": "ND"},
    modes=("separated", "zeros", "ties"),
    declared=declared,
    blind_fd=blind_fd,
)
