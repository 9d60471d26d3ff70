"""Known backward-pass mistakes, each as the (wrong) gradient it produces, in canonical layout.

Used twice: the tests turn each into a broken layer that the checker must catch, and the
diagnosis compares a failing layer's gradient with each mistake's to name what went wrong.
A mistake is a function (case, correct gradients) -> {name: wrong gradient} for the gradients it
changes; every other gradient stays correct.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import cnn
from checks.case import Case
from checks.geometry import ConvGeometry, PoolGeometry
from checks.windows import argmax_sets, crop, scatter_add
from cnn.ops import corr2d, corr2d_full, pad2d

Grads = dict[str, np.ndarray]


@dataclass(frozen=True)
class Mistake:
    """name; kind of layer; gradient it corrupts; what went wrong (one line); the right formula;
    wrong(case, correct) -> the corrupted gradients; applies(case) -> whether it is visible here."""

    name: str
    kind: str
    gradient: str
    explanation: str
    formula: str
    wrong: Callable[[Case, Grads], Grads]
    applies: Callable[[Case], bool] = lambda case: True


def _conv_parts(case: Case):
    g = case.geometry
    assert isinstance(g, ConvGeometry)
    return g, case.inputs["input"], case.inputs["weight"], case.upstream


def _kernel_flipped(case: Case, correct: Grads) -> Grads:
    g, x, w, up = _conv_parts(case)
    flipped = np.ascontiguousarray(w[..., ::-1, ::-1])
    return {"input": cnn.conv2d_grad_input(up, flipped, x.shape, g.stride, g.padding, g.dilation)}


def _stride_ignored(case: Case, correct: Grads) -> Grads:
    """Windows placed at i instead of i*s in backward: the scatter uses stride 1."""
    g, x, w, up = _conv_parts(case)
    n, c, h, wd = x.shape
    ph, pw = g.padding
    full = corr2d_full(up, w, g.dilation)
    dxp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw), dtype=x.dtype)
    rh, rw = min(full.shape[2], dxp.shape[2]), min(full.shape[3], dxp.shape[3])
    dxp[:, :, :rh, :rw] = full[:, :, :rh, :rw]
    xt = pad2d(x, g.padding).transpose(1, 0, 2, 3)
    dw = corr2d(xt, up.transpose(1, 0, 2, 3), stride=g.dilation, dilation=(1, 1))
    kh, kw = g.kernel
    return {
        "input": dxp[:, :, ph : ph + h, pw : pw + wd],
        "weight": np.ascontiguousarray(dw[:, :, :kh, :kw].transpose(1, 0, 2, 3)),
    }


def _empty_crop(case: Case, correct: Grads) -> Grads:
    g, x, w, up = _conv_parts(case)
    ph, pw = g.padding
    padded = pad2d(correct["input"], g.padding)
    # The classic slice dxp[:, :, p:-p, p:-p]: correct for p > 0, EMPTY for p == 0.
    return {"input": padded[:, :, ph:-ph, pw:-pw]}


def _divide_by_batch(name: str) -> Callable[[Case, Grads], Grads]:
    def wrong(case: Case, correct: Grads) -> Grads:
        return {name: correct[name] / case.inputs["input"].shape[0]}

    return wrong


def _transpose_weight(case: Case, correct: Grads) -> Grads:
    return {"weight": np.ascontiguousarray(correct["weight"].T)}


def _conv_weight_spatially_transposed(case: Case, correct: Grads) -> Grads:
    return {"weight": np.ascontiguousarray(correct["weight"].transpose(0, 1, 3, 2))}


def _route_to_all_ties(case: Case, correct: Grads) -> Grads:
    g = case.geometry
    assert isinstance(g, PoolGeometry)
    x, up = case.inputs["input"], case.upstream
    routed = np.where(argmax_sets(x, g), up[..., None, None], 0)
    return {"input": crop(scatter_add(routed, g, dtype=x.dtype), g)}


def _overwrite_overlaps(case: Case, correct: Grads) -> Grads:
    """`dx[window] = ...` instead of `+=`: the last window in row-major order that routes to a
    position wins (the first-max tap of each window, as the reference routes)."""
    g = case.geometry
    assert isinstance(g, PoolGeometry)
    x, up = case.inputs["input"], case.upstream
    _, argmax = cnn.max_pool2d(x, g.kernel, g.stride, g.padding)
    dxp = np.zeros(pad2d(x, g.padding).shape, dtype=x.dtype)
    n, c, ho, wo = g.output_shape
    for i in range(ho):
        for j in range(wo):
            u, v = np.divmod(argmax[:, :, i, j], g.kernel[1])
            rows, cols = i * g.stride[0] + u, j * g.stride[1] + v
            nn, cc = np.meshgrid(np.arange(n), np.arange(c), indexing="ij")
            dxp[nn, cc, rows, cols] = up[:, :, i, j]
    ph, pw = g.padding
    return {"input": dxp[:, :, ph : ph + x.shape[2], pw : pw + x.shape[3]]}


def _relu_never_masks(case: Case, correct: Grads) -> Grads:
    return {"input": case.upstream.copy()}


def _relu_mask_on_upstream(case: Case, correct: Grads) -> Grads:
    return {"input": np.where(case.upstream > 0, case.upstream, 0).astype(case.dtype)}


def _has_batch(case: Case) -> bool:
    return case.inputs["input"].shape[0] > 1


def _conv_stride_gt1(case: Case) -> bool:
    return max(case.geometry.stride) > 1  # type: ignore[union-attr]


def _pool_overlaps(case: Case) -> bool:
    return case.geometry.overlapping  # type: ignore[union-attr]


def _pool_has_ties(case: Case) -> bool:
    return bool((argmax_sets(case.inputs["input"], case.geometry).sum(axis=(-2, -1)) > 1).any())  # type: ignore[arg-type]


def _square_dense(case: Case) -> bool:
    d, m = case.inputs["weight"].shape
    return d == m and d > 1


MISTAKES: tuple[Mistake, ...] = (
    Mistake(
        "kernel_flipped",
        "conv",
        "input",
        "kernel orientation wrong: the full-convolution form needs rot180(K), the scatter form "
        "(dX[window] += G * K) must NOT rotate; this gradient used the other one",
        "dL/dX = crop_p(full_corr(dilate_s(G), rot180(K)))  ==  sum_{i,j} G[i,j] * K placed at window (i,j)",
        _kernel_flipped,
        lambda c: c.inputs["weight"].shape[-2:] != (1, 1),
    ),
    Mistake(
        "stride_ignored",
        "conv",
        "input",
        "stride ignored in backward: windows placed at i instead of i*stride",
        "dX~[c, i*s + u*d, j*s + v*d] += G[f,i,j] K[f,c,u,v]",
        _stride_ignored,
        _conv_stride_gt1,
    ),
    Mistake(
        "empty_crop_at_pad0",
        "conv",
        "input",
        "padding crop dX~[p:-p] is empty when the padding is 0",
        "dL/dX = dX~[:, :, p:p+H, p:p+W]",
        _empty_crop,
        lambda c: min(c.geometry.padding) == 0,
    ),  # type: ignore[union-attr]
    Mistake(
        "weight_grad_over_batch",
        "conv",
        "weight",
        "weight gradient divided by the batch size (averaged); L = sum(Z * G) is already the batch sum",
        "dL/dK[f,c,u,v] = sum_{n,i,j} G[n,f,i,j] X~[n, c, i*s+u*d, j*s+v*d]",
        _divide_by_batch("weight"),
        _has_batch,
    ),
    Mistake(
        "bias_grad_over_batch",
        "conv",
        "bias",
        "bias gradient averaged over the batch instead of summed",
        "dL/dB[f] = sum_{n,i,j} G[n,f,i,j]",
        _divide_by_batch("bias"),
        _has_batch,
    ),
    Mistake(
        "conv_weight_transposed",
        "conv",
        "weight",
        "weight gradient with its spatial axes swapped (kh and kw transposed)",
        "dL/dK has K's layout (F, C, kh, kw)",
        _conv_weight_spatially_transposed,
        lambda c: c.inputs["weight"].shape[-1] == c.inputs["weight"].shape[-2] > 1,
    ),
    Mistake(
        "route_to_all_ties",
        "maxpool",
        "input",
        "gradient sent to EVERY tied maximum of a window: the window's gradient is counted once per tie",
        "each window's G is split into non-negative shares summing to G, on its maximum positions only",
        _route_to_all_ties,
        _pool_has_ties,
    ),
    Mistake(
        "overwrite_overlaps",
        "maxpool",
        "input",
        "`=` instead of `+=` where pool windows overlap: a later window overwrites an earlier one's gradient",
        "dX[argmax of window (i,j)] += G[i,j], summed over every window",
        _overwrite_overlaps,
        _pool_overlaps,
    ),
    Mistake(
        "relu_never_masks",
        "relu",
        "input",
        "ReLU passes the gradient where the input is negative (mask on `output < 0`, which never holds)",
        "dX = G * (X > 0)",
        _relu_never_masks,
    ),
    Mistake(
        "relu_mask_on_upstream",
        "relu",
        "input",
        "ReLU mask taken on the wrong array (the upstream gradient instead of the input)",
        "dX = G * (X > 0)",
        _relu_mask_on_upstream,
    ),
    Mistake(
        "dense_weight_transposed",
        "dense",
        "weight",
        "weight gradient transposed: G^T X instead of X^T G (invisible in the shape when D == M)",
        "dL/dW = X^T G, shape (D, M)",
        _transpose_weight,
        _square_dense,
    ),
    Mistake(
        "dense_bias_over_batch",
        "dense",
        "bias",
        "bias gradient averaged over the batch instead of summed",
        "dL/db = sum_n G[n, :]",
        _divide_by_batch("bias"),
        _has_batch,
    ),
    Mistake(
        "dense_weight_over_batch",
        "dense",
        "weight",
        "weight gradient divided by the batch size",
        "dL/dW = X^T G",
        _divide_by_batch("weight"),
        _has_batch,
    ),
)


def for_kind(kind: str) -> list[Mistake]:
    return [m for m in MISTAKES if m.kind == kind]


def by_name(name: str) -> Mistake:
    for m in MISTAKES:
        if m.name == name:
            return m
    raise KeyError(f"no mistake named {name!r}; known: {[m.name for m in MISTAKES]}")


class MistakenSubject:
    """Our reference layer with one mistake applied to its backward: a layer the checker must catch."""

    def __init__(self, mistake: Mistake, case: Case) -> None:
        from checks.subject import reference_subject

        self.mistake, self.case = mistake, case
        self.inner = reference_subject(case)

    def forward(self, inputs):
        self._inputs = {k: np.array(v, copy=True) for k, v in inputs.items()}
        return self.inner.forward(inputs)

    def backward(self, upstream):
        correct = dict(self.inner.backward(upstream))
        shadow = Case(
            self.case.kind, self.case.geometry, self._inputs, np.asarray(upstream), self.case.labels, self.case.mode
        )
        correct.update(self.mistake.wrong(shadow, correct))
        return correct


def mistaken(mistake: Mistake | str) -> Callable[[Case], MistakenSubject]:
    """A SubjectFactory for the reference layer with ``mistake`` applied."""
    m = by_name(mistake) if isinstance(mistake, str) else mistake
    return lambda case: MistakenSubject(m, case)
