"""The torch composition of the reference kinds: a second oracle for a whole network, besides finite differences.

Each layer of the user's network is identified as one of our kinds, with a geometry and the layouts its arrays
are held in, by what it computes: a candidate is accepted only when the kind's reference forward, given the
input and the parameters the layer had in every case, reproduces the layer's own output there within the forward
tolerance (the first candidate that does, in a fixed order, with the kinds its class name suggests first). The
identified pieces are then composed in torch, layouts included (each layout change is a gather along a fixed
index array, so autograd maps every gradient back into the layout the user holds the array in), and

    L(x, theta) = loss(piece_n(... piece_1(x, theta_1) ..., theta_n), labels)

is differentiated by autograd at the case's input and the layers' parameters: dL/dx and dL/dtheta in the user's
own layouts, to compare entry by entry with what the network's backward returned and its steps took.

The candidates for each layer, and the layouts they try, are the kinds' own (``Kind.candidates``: conv, the
pools, dense, dense+softmax, flatten and the elementwise kinds; checks.kinds.fit has the table).

Kinks: at a tie in a max-pool window or a zero at a ReLU input several gradients are valid and torch's is one of
them. Where the composition's reference forward meets such a point (within rounding: checks.oracles.kinks), the
gradients are computed twice, with torch's tie-break and with the opposite one (the last maximum of each window,
slope 1 at a ReLU zero); the case is judged only when both give the same gradients (the kink is then invisible
from the network's input and parameters, as a pool tie among zeros a ReLU before it made is), else not judged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from checks import kinds
from checks.adapt import layouts
from checks.kinds.fit import Candidate
from checks.oracles import torch_oracle
from checks.oracles.kinks import KinkSite, near_kink
from checks.tolerances import DtypeTolerances, tolerances_for
from checks.windows import crop, pool_taps, scatter_add

NEAR_KINK = 1e-9
"""A ReLU input or a pool window's top-two gap within NEAR_KINK x the activations' scale counts as a kink."""


@dataclass(frozen=True)
class Piece:
    """One layer identified as a reference kind: its geometry, the gather indices that take the user's input to
    the kind's canonical input (``input_index``, canonical shape) and its canonical output to the user's output
    (``output_index``, the user's shape), and per user parameter its canonical role and gather index."""

    kind: str
    geometry: Any
    input_index: np.ndarray
    output_index: np.ndarray
    params: Mapping[str, tuple[str, np.ndarray]]
    shown: str

    def canonical(self, a: np.ndarray, params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        arrays = {"input": np.asarray(a, dtype=np.float64).reshape(-1)[self.input_index]}
        for name, (role, index) in self.params.items():
            arrays[role] = np.asarray(params[name], dtype=np.float64).reshape(-1)[index]
        return arrays

    def forward(self, a: np.ndarray, params: Mapping[str, np.ndarray]) -> tuple[np.ndarray, list[KinkSite]]:
        """The reference output in the user's output layout, and the kink sites met (canonical)."""
        z, sites = kinds.get(self.kind).forward(self.geometry, self.canonical(a, params), None)
        return np.asarray(z, dtype=np.float64).reshape(-1)[self.output_index], sites


@dataclass(frozen=True)
class Unidentified:
    """Why a layer is not identified: the kinds tried, and how many candidates each gave; ``ambiguous``: two
    candidates whose forwards both agree but whose gradients differ (their descriptions)."""

    index: int
    tried: Mapping[str, int]
    suggested: tuple[str, ...] = ()
    ambiguous: tuple[str, ...] = ()


# -- gather indices: where each canonical entry sits in the user's array ---------------------------------------


def _index(shape: tuple[int, ...]) -> np.ndarray:
    return np.arange(math.prod(shape), dtype=np.int64).reshape(shape)


def to_canonical_index(shape: tuple[int, ...], layout: str) -> np.ndarray:
    """I with I[c] = the flat position in a user array of ``shape`` (in ``layout``) of canonical entry c."""
    if layout == "SAMPLE":  # one sample of any shape: a batch of one with the user's axes as its features
        return _index(shape)[None]
    return layouts.to_canonical(_index(shape), layout)


def to_user_index(canonical: tuple[int, ...], layout: str) -> np.ndarray:
    """I with I[u] = the flat position in the canonical array of the user's entry u."""
    if layout == "SAMPLE":
        return _index(canonical)[0]
    return layouts.to_user(_index(canonical), layout)


def canonical_shape(shape: tuple[int, ...], layout: str) -> tuple[int, ...] | None:
    """The canonical shape of a user array of ``shape`` in ``layout``, an activation's or a weight's
    (Kind.candidates' ``canonical``); None when the layout cannot hold such an array."""
    try:
        if layout in layouts.WEIGHT_LAYOUTS:
            return tuple(layouts.weight_to_canonical(_index(tuple(shape)), layout).shape)
        return tuple(to_canonical_index(tuple(shape), layout).shape)
    except (ValueError, KeyError):
        return None


def piece(kind: str, c: Candidate, a_shape: tuple[int, ...], param_shapes: Mapping[str, tuple[int, ...]]) -> Piece:
    """A candidate's gather indices: the user's input to the canonical input, the canonical output (the
    geometry's) to the user's output layout, each user parameter to its canonical role."""
    roles = {}
    for name, role, layout in c.params:
        flat = _index(tuple(param_shapes[name]))
        roles[name] = (role, flat.reshape(-1) if layout is None else layouts.weight_to_canonical(flat, layout))
    out = to_user_index(tuple(c.geometry.output_shape), c.output)
    return Piece(kind, c.geometry, to_canonical_index(tuple(a_shape), c.input), out, roles, c.shown)


# -- identification ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """One layer in one case as the network ran it: its input, output and parameters (the user's arrays)."""

    input: np.ndarray
    output: np.ndarray
    params: Mapping[str, np.ndarray]


def agrees(piece: Piece, seen: Sequence[Seen], tol: DtypeTolerances) -> bool:
    """Whether the piece's reference forward reproduces the layer's output in every case, within tol.forward."""
    for s in seen:
        try:
            z, _ = piece.forward(s.input, s.params)
        except (ValueError, IndexError):  # a geometry the reference refuses: not this piece
            return False
        out = np.asarray(s.output, dtype=np.float64)
        if z.shape != out.shape or not np.all(np.abs(out - z) <= tol.forward.bound(z)):
            return False
    return True


def identify(index: int, seen: Sequence[Seen], suggested: Sequence[str], tol: DtypeTolerances) -> Piece | Unidentified:
    """The candidate piece whose forward agrees with the layer's in every case (kinds its class was guessed as
    first, then every kind with candidates, in checks.kinds.NAMES order), or why there is none. Every candidate
    is tried: when several agree (a square weight that is symmetric, or zero, reads the same stored (D, M) or
    (M, D)), their gradients at the first case must agree too, else the layer is ambiguous, not identified."""
    first = seen[0]
    tryable = [k.name for k in kinds.all_kinds() if k.candidates is not None]
    order = [k for k in suggested if k in tryable] + [k for k in tryable if k not in suggested]
    shapes = {name: tuple(v.shape) for name, v in first.params.items()}
    tried: dict[str, int] = {}
    agreeing: list[Piece] = []
    for kind in order:
        count = 0
        for candidate in kinds.get(kind).candidates(first.input, first.output, first.params, canonical_shape):
            count += 1
            found = piece(kind, candidate, tuple(first.input.shape), shapes)
            if agrees(found, seen, tol):
                agreeing.append(found)
        if count:
            tried[kind] = count
    suggested = tuple(k for k in suggested if k in kinds.NAMES)
    if not agreeing:
        return Unidentified(index, tried, suggested)
    other = _differs(agreeing, first, tol)
    if other is not None:
        return Unidentified(index, tried, suggested, (agreeing[0].shown, other.shown))
    return agreeing[0]


def _differs(agreeing: Sequence[Piece], seen: Seen, tol: DtypeTolerances) -> Piece | None:
    """An agreeing piece whose gradients (at the first case, along a fixed random upstream gradient) differ from
    the first one's; None when all give the same."""
    if len(agreeing) == 1:
        return None
    upstream = np.random.default_rng(0).standard_normal(np.shape(seen.output))
    base = layer_gradients(agreeing[0], seen.input, seen.params, upstream)
    for other in agreeing[1:]:
        grads = layer_gradients(other, seen.input, seen.params, upstream)
        if not (same(base.input, grads.input, tol) and same_params(base, grads, tol)):
            return other
    return None


def suggested_kinds(cls: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The kinds a layer's class name and constructor suggest (checks.adapt.survey's guesses, as the worker sent
    them), in its order; () when nothing is known."""
    if not cls:
        return ()
    found = cls.get("found")
    guesses = getattr(found, "guesses", ()) or ()
    out: list[str] = []
    for kind, _ in guesses:
        if kind not in out:
            out.append(kind)
    return tuple(out)


# -- the composition in torch -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gradients:
    """The composition's loss and dL/dx and dL/dtheta (by (layer, parameter)) in the user's layouts."""

    loss: float
    input: np.ndarray
    params: dict[tuple[int, str], np.ndarray] = field(default_factory=dict)
    at_kink: np.ndarray | None = None
    """Entries of ``input`` (user layout) where several gradients are valid and torch's is one of them: not to be
    judged against it (None: every entry is judged)."""


def _torch_piece(piece: Piece, F: Any, tensors: dict, alternate: bool) -> Any:
    """The piece's torch twin; ``alternate``: its other tie-break at its kinks (Kind.torch_tiebreak)."""
    kind = kinds.get(piece.kind)
    if alternate and kind.torch_tiebreak is not None:
        return kind.torch_tiebreak(F, piece.geometry, tensors)
    return kind.torch(F, piece.geometry, tensors, None)


def _loss(torch: Any, F: Any, out: Any, labels: np.ndarray, loss: str) -> Any:
    """The network's loss summed over the rows of its output (checks.adapt.chain.loss_and_grad), in torch."""
    rows = out.reshape(-1, out.shape[-1])
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64).reshape(-1))
    if loss == "nll":
        return -torch.log(rows[torch.arange(len(y)), y]).sum()
    return F.cross_entropy(rows, y, reduction="sum")


def gradients(
    pieces: Sequence[Piece],
    x: np.ndarray,
    params: Sequence[Mapping[str, np.ndarray]],
    labels: np.ndarray,
    loss: str,
    *,
    alternate: bool = False,
) -> Gradients:
    """Autograd of L(x, theta) = loss(composition(x, theta), labels) through the composed pieces."""
    return _autograd(pieces, x, params, lambda torch, F, out: _loss(torch, F, out, labels, loss), alternate)


def layer_gradients(
    piece: Piece, a: np.ndarray, params: Mapping[str, np.ndarray], upstream: np.ndarray, *, alternate: bool = False
) -> Gradients:
    """One layer alone: autograd of sum(piece(a, theta) * G), G the upstream gradient it received (user layout);
    ``params`` keys are (0, name)."""

    def scalar(torch, F, out):
        return (out * torch.as_tensor(np.asarray(upstream, dtype=np.float64))).sum()

    return _autograd([piece], a, [params], scalar, alternate)


def _autograd(pieces, x, params, scalar, alternate: bool) -> Gradients:
    """The composed pieces in torch float64 on one thread (as checks.oracles.torch_oracle), ``scalar`` of their
    output, and its gradients with respect to x and every piece's parameters (in the user's layouts)."""
    torch = torch_oracle.module()
    F = torch.nn.functional
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        xt = torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=True)
        theta = {
            (i, name): torch.tensor(np.asarray(params[i][name], dtype=np.float64), requires_grad=True)
            for i, piece in enumerate(pieces)
            for name in piece.params
        }
        t = xt
        for i, piece in enumerate(pieces):
            tensors = {"input": t.reshape(-1)[torch.from_numpy(piece.input_index)]}
            for name, (role, index) in piece.params.items():
                tensors[role] = theta[(i, name)].reshape(-1)[torch.from_numpy(index)]
            z = _torch_piece(piece, F, tensors, alternate)
            t = z.reshape(-1)[torch.from_numpy(piece.output_index)]
        value = scalar(torch, F, t)
        leaves = [xt, *theta.values()]
        grads = torch.autograd.grad(value, leaves, allow_unused=True)
        arrays = [np.zeros(leaf.shape) if gr is None else gr.numpy() for leaf, gr in zip(leaves, grads, strict=True)]
        return Gradients(float(value.detach()), arrays[0], dict(zip(theta, arrays[1:], strict=True)))
    finally:
        torch.set_num_threads(previous)


def kink_sites(pieces: Sequence[Piece], x: np.ndarray, params: Sequence[Mapping[str, np.ndarray]]) -> list[KinkSite]:
    """The kink sites the composition's reference forward meets at (x, theta)."""
    sites: list[KinkSite] = []
    a = np.asarray(x, dtype=np.float64)
    for i, piece in enumerate(pieces):
        a, met = piece.forward(a, params[i])
        sites += met
    return sites


def at_kink(pieces: Sequence[Piece], x: np.ndarray, params: Sequence[Mapping[str, np.ndarray]]) -> bool:
    """Whether some ReLU input or pool window's top-two gap is within NEAR_KINK of 0, relative to its values."""
    for site in kink_sites(pieces, x, params):
        scale = float(np.max(np.abs(site.values), initial=0.0))
        if near_kink([site], max(scale, 1e-300), NEAR_KINK):
            return True
    return False


def judge_case(
    pieces: Sequence[Piece],
    x: np.ndarray,
    params: Sequence[Mapping[str, np.ndarray]],
    labels: np.ndarray,
    loss: str,
    tol: DtypeTolerances,
) -> Gradients | str:
    """The composition's gradients at one case, or why they do not judge it: at a kink (``at_kink``) they are
    computed with both tie-breaks and judge only when the two agree within tol.exact (module docstring)."""
    grads = gradients(pieces, x, params, labels, loss)
    if at_kink(pieces, x, params):
        other = gradients(pieces, x, params, labels, loss, alternate=True)
        if not (same(grads.input, other.input, tol) and same_params(grads, other, tol)):
            return "a tie or a zero inside the network where torch's two tie-breaks give different gradients"
    return grads


def same(a: np.ndarray, b: np.ndarray, tol: DtypeTolerances) -> bool:
    """b equals a within the exact tolerance, entry by entry."""
    return bool(np.all(np.abs(b - a) <= tol.exact.bound(a)))


def same_params(a: Gradients, b: Gradients, tol: DtypeTolerances) -> bool:
    """The same parameters, each gradient equal within the exact tolerance."""
    return set(a.params) == set(b.params) and all(same(g, b.params[k], tol) for k, g in a.params.items())


def judge_layer(
    piece: Piece, a: np.ndarray, params: Mapping[str, np.ndarray], upstream: np.ndarray, tol: DtypeTolerances
) -> Gradients | str:
    """One layer's reference gradients at the input and upstream gradient it received in the network, or why
    they do not judge it. At a tie or zero of its own input where the two tie-breaks differ, the input entries
    at the kink (``kink_entries``) are marked not to be judged: every other entry's gradient is the same for
    every valid choice; a parameter gradient that differs between the tie-breaks leaves the layer unjudged."""
    grads = layer_gradients(piece, a, params, upstream)
    if not at_kink([piece], a, [params]):
        return grads
    other = layer_gradients(piece, a, params, upstream, alternate=True)
    if not same_params(grads, other, tol):
        return "a tie or a zero at its input where the valid gradients differ: torch's is one of several"
    if same(grads.input, other.input, tol):
        return grads
    canonical = np.zeros(piece.input_index.shape, dtype=bool)
    for site in piece.forward(a, params)[1]:
        canonical |= kink_entries(site)
    mask = np.zeros(np.size(a), dtype=bool)
    mask[piece.input_index.reshape(-1)] = canonical.reshape(-1)
    return Gradients(grads.loss, grads.input, grads.params, mask.reshape(np.shape(a)))


def kink_entries(site: KinkSite, rel: float = NEAR_KINK) -> np.ndarray:
    """The entries of a kink site's input (canonical) where several gradients are valid, within rounding: a ReLU
    input within rel x scale of 0; a member of a pool window whose top values tie within rel x scale (scale: the
    site's largest |value|). An entry outside them gets the same gradient from every valid choice."""
    scale = max(float(np.max(np.abs(site.values), initial=0.0)), 1e-300)
    if site.op == "relu":
        return np.abs(site.values) <= rel * scale
    assert site.geometry is not None
    t = pool_taps(np.asarray(site.values, dtype=np.float64), site.geometry)
    near = t >= t.max(axis=(-2, -1), keepdims=True) - rel * scale
    tied = near & (near.sum(axis=(-2, -1), keepdims=True) > 1)
    return crop(scatter_add(tied, site.geometry, dtype=bool), site.geometry)


def dtype_of(arrays: Sequence[np.ndarray]) -> np.dtype:
    """float32 when any of the layers' arrays is float32 (their rounding rules), float64 otherwise."""
    return np.dtype(np.float32 if any(a.dtype == np.float32 for a in arrays) else np.float64)


def tolerances(arrays: Sequence[np.ndarray]) -> DtypeTolerances:
    """The tolerance row (checks.tolerances) of ``dtype_of(arrays)``."""
    return tolerances_for(dtype_of(arrays))
