"""batchnorm: training-mode batch normalisation on X (N, D), per feature over N, or spatial on X (N, C, H, W), per
channel over N, H and W (every axis but 1), with gamma and beta (C,) and eps a geometry field (default 1e-5).

    x_hat = (X - mu) / sigma,  sigma = sqrt(var + eps)  (mu and the BIASED var per channel)    Y = gamma x_hat + beta
    dL/dX = (gamma / sigma) (G - mean(G) - x_hat mean(G x_hat))    dL/dgamma = sum G x_hat    dL/dbeta = sum G

(means and sums per channel over the batch axes). Smooth but curved (its third derivative grows as 1 / sigma^3):
finite differences take an absolute step, and their truncation error is bounded in closed form (fd_truncation) and
allowed for, since the gradient can cancel to far below the terms that truncate. Inputs are drawn "wide" (gaps of
at least 1: sigma far above the step) and "separated" (gaps of 0.1: sigma small, eps visible). A layer that
declares an alternative backward (CS231n's batchnorm_backward_alt) is checked on both: each case says which one
it ran (the geometry's ``alt``).
"""

from __future__ import annotations

import numpy as np

import cnn
from checks import strategies as cs
from checks.case import Case
from checks.geometry import BatchNormGeometry
from checks.kinds import Kind, Mistake, catalogue
from checks.subject import LayerSubject


def forward(g: BatchNormGeometry, a, labels):
    """Y = gamma x_hat + beta; no kink sites."""
    return cnn.batch_norm(a["input"], a["gamma"], a["beta"], g.eps), []


def torch(F, g: BatchNormGeometry, t, labels):
    return F.batch_norm(t["input"], None, None, t["gamma"], t["beta"], training=True, eps=g.eps)


def reference_layer(case: Case) -> LayerSubject:
    g = case.geometry
    return LayerSubject(cnn.BatchNorm(g.shape[1], g.eps, dtype=case.dtype))


def user_geometries(s, input_layout: str):
    return cs.batchnorm_geometries(ndim=s.ndim, batch=s.batch, channels=s.channels, eps=s.eps, alt=s.alt)


# -- finite differences -------------------------------------------------------------------------------


TRUNCATION_SAFETY = 2.0
"""The truncation bound below is nearly attained (measured: up to 0.9998 of it); twice it covers its own rounding."""


def fd_truncation(inputs, geometry: BatchNormGeometry, upstream, name: str, h) -> np.ndarray | float:
    """A bound on the truncation error of (L(x + h e_i) - L(x - h e_i)) / 2h, per entry of dL/dX: (h^2 / 6) times
    sup over |t| <= h of |f3(t)|, f3 the third derivative of f(t) = L(x + t e_i). Within entry i's channel
    (M entries, a = x - mu):

        f(t) = gamma (P + Q t) q(t)^(-1/2) + const,   P = sum_j G_j a_j,   Q = G_i - mean(G),
        q(t) = var(t) + eps = A + B t + C t^2,   A = var + eps,   B = 2 a_i / M,   C = (M - 1) / M^2,

    so f3 = gamma ((P + Q t) r3 + 3 Q r2) with r = q^(-1/2) (r2, r3 its second and third derivatives), bounded
    with q_min = min over |t| <= h of q (> 0) and |q'| <= |B| + 2 C h:
    |r2| <= 3/4 q'^2 q^(-5/2) + C q^(-3/2) and |r3| <= 15/8 |q'|^3 q^(-7/2) + 9/2 C |q'| q^(-5/2).
    L is linear in gamma and beta: 0 for them."""
    if name != "input":
        return 0.0
    x = np.asarray(inputs["input"], dtype=np.float64)
    g = np.asarray(upstream, dtype=np.float64)
    h = np.asarray(h, dtype=np.float64)
    axes, m = (0, *range(2, x.ndim)), x.size // x.shape[1]
    gamma = np.abs(np.asarray(inputs["gamma"], dtype=np.float64)).reshape(1, x.shape[1], *([1] * (x.ndim - 2)))
    a = x - x.mean(axis=axes, keepdims=True)
    p = (g * a).sum(axis=axes, keepdims=True)
    q = g - g.mean(axis=axes, keepdims=True)
    big_a, big_b, big_c = (a**2).mean(axis=axes, keepdims=True) + geometry.eps, 2 * a / m, (m - 1) / m**2
    vertex = -big_b / (2 * big_c)
    ends = np.minimum(big_a - big_b * h + big_c * h * h, big_a + big_b * h + big_c * h * h)
    q_min = np.where(np.abs(vertex) <= h, big_a - big_b**2 / (4 * big_c), ends)
    slope = np.abs(big_b) + 2 * big_c * h
    r2 = 0.75 * slope**2 * q_min**-2.5 + big_c * q_min**-1.5
    r3 = 15 / 8 * slope**3 * q_min**-3.5 + 4.5 * big_c * slope * q_min**-2.5
    third = gamma * ((np.abs(p) + np.abs(q) * h) * r3 + 3 * np.abs(q) * r2)
    return TRUNCATION_SAFETY * h * h / 6 * third


# -- known mistakes ----------------------------------------------------------------------------------


def _parts(case: Case) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, ...], int]:
    """(X, G, gamma broadcast per channel, the batch axes, M = entries per channel), in float64."""
    x = np.asarray(case.inputs["input"], dtype=np.float64)
    g = np.asarray(case.upstream, dtype=np.float64)
    shape = (1, x.shape[1], *([1] * (x.ndim - 2)))
    gamma = np.asarray(case.inputs["gamma"], dtype=np.float64).reshape(shape)
    axes = (0, *range(2, x.ndim))
    return x, g, gamma, axes, x.size // x.shape[1]


def _stats_as_constants(case: Case, correct):
    """dX = G gamma / sigma: mu and var treated as constants (their paths through every X of the channel dropped)."""
    x, g, gamma, _, _ = _parts(case)
    _, sigma = cnn.normalize(x, case.geometry.eps)
    return {"input": (g * gamma / sigma).astype(case.dtype)}


def _var_unbiased(case: Case, correct):
    """The gradients of a batch norm that normalises with the UNBIASED variance S / (M - 1) (np.var(ddof=1),
    torch.var's default): sigma_u = sqrt(S / (M - 1) + eps), x_u = (X - mu) / sigma_u,
    dX = (gamma / sigma_u) (G - mean(G) - x_u sum(G x_u) / (M - 1)), dgamma = sum G x_u."""
    x, g, gamma, axes, m = _parts(case)
    centred = x - x.mean(axis=axes, keepdims=True)
    sigma = np.sqrt((centred**2).sum(axis=axes, keepdims=True) / (m - 1) + case.geometry.eps)
    x_u = centred / sigma
    through_var = x_u * (g * x_u).sum(axis=axes, keepdims=True) / (m - 1)
    dx = gamma / sigma * (g - g.mean(axis=axes, keepdims=True) - through_var)
    return {"input": dx.astype(case.dtype), "gamma": (g * x_u).sum(axis=axes).astype(case.dtype)}


def _gamma_unnormalised(case: Case, correct):
    """dgamma = sum G X: the raw input where the normalised x_hat belongs."""
    x, g, _, axes, _ = _parts(case)
    return {"gamma": (g * x).sum(axis=axes).astype(case.dtype)}


MISTAKES = catalogue(
    "batchnorm",
    Mistake(
        "batchnorm_stats_as_constants",
        "input",
        "batch-norm backward treats the mean and variance as constants: dX = G gamma / sigma, the paths through "
        "mu and var (which every X of the channel feeds) are missing",
        "dX = (gamma / sigma) (G - mean(G) - x_hat mean(G x_hat)), means per channel over the batch axes",
        _stats_as_constants,
    ),
    Mistake(
        "batchnorm_var_unbiased",
        "input",
        "batch norm normalises with the unbiased variance (N - 1, np.var(ddof=1) / torch.var's default) where "
        "training mode uses the biased one (N)",
        "var = mean((X - mu)^2) per channel (divide by N); dX = (gamma / sigma) (G - mean(G) - x_hat mean(G x_hat))",
        _var_unbiased,
        lambda c: c.inputs["input"].size // c.inputs["input"].shape[1] >= 2,
    ),
    Mistake(
        "batchnorm_gamma_grad_unnormalised",
        "gamma",
        "gamma gradient computed from the raw input: sum G X instead of sum G x_hat",
        "dgamma = sum of G * x_hat per channel, x_hat = (X - mu) / sqrt(var + eps)",
        _gamma_unnormalised,
    ),
)

KIND = Kind(
    name="batchnorm",
    geometry=BatchNormGeometry,
    forward=forward,
    torch=torch,
    reference_layer=reference_layer,
    default_geometries=cs.batchnorm_geometries,
    axes={"input": "nc|nchw|nc*", "output": "nc|nchw|nc*", "gamma": "c", "beta": "c"},
    layouts={"input": "ND", "output": "ND", "gamma": None, "beta": None},
    modes=("wide", "separated"),
    user_geometries=user_geometries,
    curved=True,
    mistakes=MISTAKES,
    fd_truncation=fd_truncation,
)
