"""maxpool: Y = max_pool2d(X) on X (N, C, H, W), window (kh, kw), stride s, padding p (-inf), floor mode.

    Y[n,c,i,j] = max_{u,v} X~[n, c, i*s + u, j*s + v]
    dL/dX: each window's G goes to its maximum position; overlapping windows add up (+=)

A kink wherever a window's maximum is tied: there the valid gradients (the Clarke subdifferential) are
every split of the window's G into non-negative shares, summing to G, on its tied maxima only. First-max,
last-max and even splits are all members; sending the full G to every tied maximum is not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from hypothesis import strategies as st

import cnn
from checks import strategies as cs
from checks.case import Case
from checks.compare import Comparison, Membership, compare
from checks.geometry import PoolGeometry
from checks.kinds import Kind, Mistake, Region, catalogue, fit
from checks.oracles.kinks import KinkSite
from checks.strategies._bounds import lowest
from checks.subject import LayerSubject
from checks.tolerances import Tolerance
from checks.windows import argmax_sets, coverage, covered, crop, pool_taps, probe_groups, scatter_add, tied_positions
from cnn.ops import pad2d


def forward(g: PoolGeometry, a, labels):
    """Y = max_pool2d(X); the pool input is a kink site."""
    y, _ = cnn.max_pool2d(a["input"], g.kernel, g.stride, g.padding)
    return y, [KinkSite("pool", a["input"], g)]


def torch(F, g: PoolGeometry, t, labels):
    return F.max_pool2d(t["input"], g.kernel, g.stride, g.padding)


def reference_layer(case: Case) -> LayerSubject:
    g = case.geometry
    return LayerSubject(cnn.MaxPool2D(g.kernel, g.stride, g.padding))


def user_geometries(s, input_layout: str):
    if s.padding == "valid":
        s = replace(s, padding=0)
    elif isinstance(s.padding, str):
        raise ValueError(f"padding={s.padding!r}: a pool takes 'valid' (no padding) or an int bound")

    def geometries(kernel, stride):
        return cs.pool_geometries(
            batch=s.batch,
            channels=s.channels,
            kernel=kernel,
            stride=stride,
            padding=s.padding,
            output=s.output,
            square=s.square,
            square_input=s.square_input,
            remainder=s.remainder,
        )

    if s.stride != "kernel":
        return geometries(s.kernel, s.stride)
    # pools whose stride is always their window: one drawn size for both
    lo, hi = (s.kernel, s.kernel) if isinstance(s.kernel, int) else s.kernel
    return st.integers(lo, hi).flatmap(lambda k: geometries(k, k))


def corner(s):
    """Overlapping windows (the smallest stride), where `=` instead of `+=` shows."""
    return s if s.stride == "kernel" else replace(s, stride=lowest(s.stride))


# -- the verdict at a kink ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Routing:
    """What a max-pool backward did, window by window (each array (N, C, Ho, Wo), float64): sent, the
    gradient it put on the window's maximum position(s); elsewhere, the |gradient| it put on the window's
    other positions; negative, the most negative share (signed by G) on a maximum; upstream, the
    window's G; argmax, (N, C, Ho, Wo, kh, kw) True at each maximum tap."""

    sent: np.ndarray
    elsewhere: np.ndarray
    negative: np.ndarray
    upstream: np.ndarray
    argmax: np.ndarray

    def bad(self, tol: Tolerance) -> np.ndarray:
        """The windows that break the rule: mass != G, anything elsewhere, or a share of the wrong sign."""
        scale = float(np.abs(self.upstream).max(initial=0.0))
        bound = tol.bound(self.upstream, scale)
        return (
            (np.abs(self.sent - self.upstream) > bound) | (self.elsewhere > tol.atol * scale) | (-self.negative > bound)
        )

    def badness(self) -> np.ndarray:
        return np.abs(self.sent - self.upstream) + self.elsewhere + np.abs(self.negative)


def membership(
    inputs,
    geometry: PoolGeometry,
    upstream: np.ndarray,
    grad: np.ndarray,
    backward: Callable[[np.ndarray], np.ndarray],
    tol: Tolerance,
) -> Membership:
    """Max-pool routing checked window by window through probes.

    A probe runs ``backward`` with G kept only on a group of mutually non-overlapping windows; its
    result inside each window is then that window's routing alone. Each window must put all of its
    gradient (mass = G) on its maximum positions with the sign of G, nothing may land elsewhere,
    and the probes must add up to the full backward (overlaps accumulate, `+=` not `=`). Every group
    is probed (the routing of every window is kept as evidence); the first violated condition, in
    group order, is the reason.
    """
    x = inputs["input"]
    g = np.asarray(upstream, dtype=np.float64)
    argmax = argmax_sets(x, geometry)
    total = np.zeros(geometry.input_shape, dtype=np.float64)
    sent, elsewhere, negative = (np.zeros(geometry.output_shape) for _ in range(3))
    failure: Membership | None = None
    for group in probe_groups(geometry):
        probe_g = np.where(group, g, 0.0)
        dx = np.asarray(backward(probe_g.astype(upstream.dtype)), dtype=np.float64)
        total += dx
        dx_taps = pool_taps(dx, geometry, fill=0.0)
        on_max = argmax & group[..., None, None]
        mass = np.where(on_max, dx_taps, 0.0).sum(axis=(-2, -1))
        signed = np.where(on_max, dx_taps * np.sign(g)[..., None, None], 0.0)
        sent = np.where(group, mass, sent)
        elsewhere = np.where(group, np.abs(np.where(argmax, 0.0, dx_taps)).sum(axis=(-2, -1)), elsewhere)
        negative = np.where(group, np.minimum(signed.min(axis=(-2, -1)), 0.0), negative)
        if failure is None:
            failure = _group_failure(dx, geometry, group, g, mass, argmax, on_max, signed, tol)
    routing = Routing(sent, elsewhere, negative, g, argmax)
    if failure is not None:
        return replace(failure, evidence=routing)
    full = compare(np.asarray(grad, dtype=np.float64), total, tol)
    if not full.ok:
        return Membership(
            False,
            "the full backward differs from the sum of its per-window parts: "
            "overlapping windows must add up (+=), not overwrite",
            full,
            evidence=routing,
        )
    return Membership(True, "every window routes its gradient to its maximum position(s)", full, evidence=routing)


def _group_failure(dx, geometry, group, g, mass, argmax, on_max, signed, tol) -> Membership | None:
    check = compare(np.where(group, mass, 0.0), np.where(group, g, 0.0), tol)
    if not check.ok:
        i = check.worst_index
        ratio = mass[i] / g[i] if g[i] else float("nan")
        return Membership(
            False,
            f"window {i} sends {mass[i]:.6g} to its maximum position(s) but its upstream gradient is "
            f"{g[i]:.6g} (ratio {ratio:.3g}; {int(argmax[i].sum())} tied maximum(s))",
            check,
        )
    negative = compare(np.minimum(signed, 0.0), np.zeros_like(signed), tol)
    if not negative.ok:
        return Membership(False, "a window routes a share with the wrong sign to one of its maxima", negative)
    stray = _stray(dx, covered(on_max, geometry), g, tol)
    if not stray.ok:
        return Membership(False, f"gradient lands on {stray.worst_index}, which is no window's maximum", stray)
    return None


def _stray(dx: np.ndarray, covered_positions: np.ndarray, g: np.ndarray, tol: Tolerance) -> Comparison:
    """Gradient outside every maximum position must be 0 (scale: the largest |G|)."""
    scale = float(np.abs(g).max(initial=0.0)) or 1.0
    outside = np.where(covered_positions, 0.0, dx)
    bad = np.abs(outside) > tol.atol * scale
    index = tuple(int(i) for i in np.unravel_index(int(np.argmax(np.abs(outside))), dx.shape))
    return Comparison(
        ok=not bad.any(),
        max_abs=float(np.abs(outside).max(initial=0.0)),
        max_rel=float(np.abs(outside).max(initial=0.0) / scale),
        worst_index=index,
        worst_actual=float(outside[index]),
        worst_expected=0.0,
        mismatched=int(bad.sum()),
        total=int(dx.size),
    )


def regions(case: Case, name: str) -> list[Region]:
    if name != "input":
        return []
    g = case.geometry
    return [
        ("overlap", coverage(g) >= 2, "only where pool windows overlap"),
        ("ties", tied_positions(case.inputs["input"], g), "only in windows with tied maxima"),
    ]


# -- known mistakes ----------------------------------------------------------------------------------


def _route_to_all_ties(case: Case, correct):
    g = case.geometry
    x, up = case.inputs["input"], case.upstream
    routed = np.where(argmax_sets(x, g), up[..., None, None], 0)
    return {"input": crop(scatter_add(routed, g, dtype=x.dtype), g)}


def _overwrite_overlaps(case: Case, correct):
    """`dx[argmax] = ...` instead of `+=`: the last window in row-major order that routes to a position
    wins (the first-max tap of each window, as the reference routes)."""
    g = case.geometry
    x, up = case.inputs["input"], case.upstream
    _, argmax = cnn.max_pool2d(x, g.kernel, g.stride, g.padding)
    dxp = np.zeros(pad2d(x, g.padding).shape, dtype=x.dtype)
    n, c, ho, wo = g.output_shape
    nn, cc = np.meshgrid(np.arange(n), np.arange(c), indexing="ij")
    for i in range(ho):
        for j in range(wo):
            u, v = np.divmod(argmax[:, :, i, j], g.kernel[1])
            dxp[nn, cc, i * g.stride[0] + u, j * g.stride[1] + v] = up[:, :, i, j]
    ph, pw = g.padding
    return {"input": dxp[:, :, ph : ph + x.shape[2], pw : pw + x.shape[3]]}


def _window_overwrite(case: Case, correct):
    """`dx[window] = mask * G` for the WHOLE window (first maximum): a later overlapping window also
    writes zeros over what an earlier one routed."""
    g = case.geometry
    x, up = np.asarray(case.inputs["input"], dtype=np.float64), np.asarray(case.upstream, dtype=np.float64)
    xp = pad2d(x, g.padding, value=-np.inf)
    dxp = np.zeros(xp.shape)
    n, c, ho, wo = g.output_shape
    (kh, kw), (sh, sw) = g.kernel, g.stride
    nn, cc = np.meshgrid(np.arange(n), np.arange(c), indexing="ij")
    for i in range(ho):
        for j in range(wo):
            window = xp[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw].reshape(n, c, -1)
            mask = np.zeros(window.shape)
            mask[nn, cc, window.argmax(axis=-1)] = 1.0
            dxp[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw] = (mask * up[:, :, i, j, None]).reshape(n, c, kh, kw)
    return {"input": crop(dxp, g)}


def _has_ties(case: Case) -> bool:
    return bool((argmax_sets(case.inputs["input"], case.geometry).sum(axis=(-2, -1)) > 1).any())


MISTAKES = catalogue(
    "maxpool",
    Mistake(
        "route_to_all_ties",
        "input",
        "gradient sent to EVERY tied maximum of a window: the window's gradient is counted once per tie",
        "each window's G is split into non-negative shares summing to G, on its maximum positions only",
        _route_to_all_ties,
        _has_ties,
    ),
    Mistake(
        "overwrite_overlaps",
        "input",
        "`=` instead of `+=` where pool windows overlap: a later window overwrites an earlier one's gradient",
        "dX[argmax of window (i,j)] += G[i,j], summed over every window",
        _overwrite_overlaps,
        lambda c: c.geometry.overlapping,
        also=(_window_overwrite,),
    ),
)


def candidates(a, z, params, canonical):
    """A max-pool in a network: see checks.kinds.fit.pools."""
    return fit.pools("maxpool", PoolGeometry, a, z, params, canonical)


def torch_tiebreak(F, g: PoolGeometry, t):
    """max_pool2d routing a tie to the LAST maximum of its window (torch's own routes it to the first): the
    windows as columns (-inf padding), reversed, and their max."""
    x = t["input"]
    (kh, kw), (sh, sw), (ph, pw) = g.kernel, g.stride, g.padding
    padded = F.pad(x, (pw, pw, ph, ph), value=float("-inf"))
    cols = F.unfold(padded, (kh, kw), stride=(sh, sw)).reshape(x.shape[0], x.shape[1], kh * kw, -1)
    return cols.flip(2).max(dim=2).values.reshape(g.output_shape)


KIND = Kind(
    name="maxpool",
    geometry=PoolGeometry,
    forward=forward,
    torch=torch,
    reference_layer=reference_layer,
    default_geometries=cs.pool_geometries,
    axes={"input": "nchw", "output": "ncij"},
    layouts={"input": "NCHW", "output": "NCHW"},
    modes=("separated", "ties"),
    user_geometries=user_geometries,
    corner=corner,
    membership=membership,
    regions=regions,
    mistakes=MISTAKES,
    candidates=candidates,
    torch_tiebreak=torch_tiebreak,
)
