"""dense, its three backward functions, flatten and unflatten against PyTorch (float64). Our weight is
(D, M) (Y = X W + b); torch.nn.functional.linear takes (M, D), so torch sees W.T."""

from __future__ import annotations

import numpy as np
import pytest

from cnn import dense, dense_grad_bias, dense_grad_input, dense_grad_weight, flatten
from cnn.fully_connected import unflatten

DENSE_CASES = [
    # (input shape, out features)
    pytest.param((3, 5), 4, id="2d-n3-d5-m4"),
    pytest.param((2, 3, 4, 5), 6, id="nchw-flattened-d60-m6"),
    pytest.param((1, 7), 1, id="n1-m1"),
    pytest.param((4, 2, 3), 5, id="3d-flattened"),
]


def dense_arrays(rng, shape, m, dtype=np.float64):
    d = int(np.prod(shape[1:]))
    x, w, b, g = (rng.standard_normal(s).astype(dtype) for s in (shape, (d, m), (m,), (shape[0], m)))
    return x, w, b, g


def torch_dense(oracle, x, w, b, g):
    def fn(x, w, b):
        return oracle.F.linear(x.flatten(1), w.T, b)

    return oracle.vjp(fn, {"x": x, "w": w, "b": b}, g)


def our_grads(x, w, g):
    return {"x": dense_grad_input(g, w, x.shape), "w": dense_grad_weight(g, x), "b": dense_grad_bias(g)}


@pytest.mark.parametrize("shape, m", DENSE_CASES)
def test_forward_and_gradients_match_torch(shape, m, rng, oracle, close):
    x, w, b, g = dense_arrays(rng, shape, m)
    y_ref, ref = torch_dense(oracle, x, w, b, g)
    close(dense(x, w, b), y_ref, what="dense")
    ours = our_grads(x, w, g)
    assert ours["x"].shape == x.shape and ours["w"].shape == w.shape and ours["b"].shape == b.shape
    for name in ref:
        close(ours[name], ref[name], what=f"d{name}")


@pytest.mark.parametrize("shape, m", DENSE_CASES)
def test_without_bias_matches_torch(shape, m, rng, oracle, close):
    x, w, _, g = dense_arrays(rng, shape, m)
    y_ref, _ = torch_dense(oracle, x, w, None, g)
    close(dense(x, w), y_ref, what="dense without bias")


def test_gradients_are_the_matrix_formulas(rng, close):
    x, w, _, g = dense_arrays(rng, (3, 2, 2), 4)
    flat = x.reshape(3, 4)
    close(dense_grad_weight(g, x), flat.T @ g, what="dW = X^T G")
    close(dense_grad_input(g, w, x.shape), (g @ w.T).reshape(x.shape), what="dX = G W^T")
    close(dense_grad_bias(g), g.sum(axis=0), what="db = sum_n G")


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (3, 7), (1, 2, 3), (4, 1, 1, 1)], ids=str)
def test_flatten_and_unflatten_match_torch(shape, rng, oracle, close):
    x = rng.standard_normal(shape)
    g = rng.standard_normal((shape[0], int(np.prod(shape[1:]))))
    y_ref, grads = oracle.vjp(lambda x: x.flatten(1), {"x": x}, g)
    close(flatten(x), y_ref, what="flatten")
    close(unflatten(g, x.shape), grads["x"], what="unflatten")
    np.testing.assert_array_equal(unflatten(flatten(x), x.shape), x)


@pytest.mark.parametrize("shape, m", DENSE_CASES)
def test_float32_is_preserved_and_close_to_float64(shape, m, rng, close):
    x, w, b, g = dense_arrays(rng, shape, m, np.float32)
    assert dense(x, w, b).dtype == np.float32
    assert flatten(x).dtype == unflatten(g @ w.T, x.shape).dtype == np.float32
    ours = our_grads(x, w, g)
    assert {v.dtype for v in ours.values()} == {np.dtype(np.float32)}
    x64, w64, b64, g64 = (a.astype(np.float64) for a in (x, w, b, g))
    close(dense(x, w, b), dense(x64, w64, b64), "float32_vs_float64")
    for name, ref in our_grads(x64, w64, g64).items():
        close(ours[name], ref, "float32_vs_float64", what=f"d{name}")


def test_arguments_are_not_modified(rng):
    arrays = dense_arrays(rng, (2, 3, 4), 5)
    copies = [a.copy() for a in arrays]
    x, w, b, g = arrays
    dense(x, w, b)
    our_grads(x, w, g)
    unflatten(flatten(x), x.shape)
    for a, c in zip(arrays, copies, strict=True):
        np.testing.assert_array_equal(a, c)
