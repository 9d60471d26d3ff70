"""cnn.normalization (training-mode batch norm, plain on (N, D) and spatial on (N, C, H, W)): the forward and the
gradients for x, gamma and beta against torch.nn.functional.batch_norm in float64, the closed forms they state,
and argument checks."""

from __future__ import annotations

import numpy as np
import pytest

from cnn import BatchNorm, batch_norm, batch_norm_grad_beta, batch_norm_grad_gamma, batch_norm_grad_input, normalize

SHAPES = [
    pytest.param((5, 3), id="plain-n5-d3"),
    pytest.param((2, 4), id="plain-n2"),
    pytest.param((2, 3, 4, 5), id="spatial"),
    pytest.param((1, 2, 3, 3), id="spatial-n1"),
]


def bn_inputs(rng, shape, dtype=np.float64):
    c = shape[1]
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(dtype)
    gamma = rng.uniform(0.5, 1.5, c).astype(dtype) * rng.choice([-1, 1], c).astype(dtype)
    beta = rng.standard_normal(c).astype(dtype)
    return x, gamma, beta


@pytest.mark.parametrize("eps", [1e-5, 0.1])
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_and_gradients_match_torch(shape, eps, rng, oracle, close):
    x, gamma, beta = bn_inputs(rng, shape)
    g = rng.standard_normal(shape)

    def torch_bn(x, gamma, beta):
        return oracle.F.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)

    y_ref, grads = oracle.vjp(torch_bn, {"x": x, "gamma": gamma, "beta": beta}, g)
    close(batch_norm(x, gamma, beta, eps), y_ref, what="forward")
    close(batch_norm_grad_input(g, x, gamma, eps), grads["x"], what="dx")
    close(batch_norm_grad_gamma(g, x, eps), grads["gamma"], what="dgamma")
    close(batch_norm_grad_beta(g), grads["beta"], what="dbeta")


@pytest.mark.parametrize("shape", SHAPES)
def test_the_normalised_input_has_mean_0_and_biased_variance_var_over_var_plus_eps(shape, rng, close):
    x, _, _ = bn_inputs(rng, shape)
    x_hat, sigma = normalize(x, 0.1)
    axes = (0, *range(2, x.ndim))
    var = x.var(axis=axes)  # numpy's default: the biased variance
    close(x_hat.mean(axis=axes), np.zeros(shape[1]), what="mean")
    close((x_hat**2).mean(axis=axes), var / (var + 0.1), what="biased variance")
    close(sigma.reshape(-1), np.sqrt(var + 0.1), what="sigma")


def test_the_input_gradient_is_orthogonal_to_constants_and_to_x_hat_per_channel(rng, close):
    """dx = (gamma / sigma)(G - mean(G) - x_hat mean(G x_hat)) sums to 0 per channel, and sum(dx * x_hat) =
    (gamma / sigma) sum(G x_hat) eps / (var + eps) (0 without eps: the output does not move along x_hat)."""
    x, gamma, _ = bn_inputs(rng, (6, 3))
    g = rng.standard_normal((6, 3))
    dx = batch_norm_grad_input(g, x, gamma, 0.5)
    x_hat, sigma = normalize(x, 0.5)
    var = x.var(axis=0)
    close(dx.sum(axis=0), np.zeros(3), what="sum")
    along = gamma / sigma[0] * (g * x_hat).sum(axis=0) * 0.5 / (var + 0.5)
    close((dx * x_hat).sum(axis=0), along, what="along x_hat")


def test_the_layer_holds_gamma_and_beta_and_their_gradients(rng, oracle, close):
    x, gamma, beta = bn_inputs(rng, (2, 3, 2, 2))
    layer = BatchNorm(3, eps=1e-3)
    np.testing.assert_array_equal(layer.params["gamma"], np.ones(3))
    np.testing.assert_array_equal(layer.params["beta"], np.zeros(3))
    layer.params["gamma"][:], layer.params["beta"][:] = gamma, beta
    g = rng.standard_normal(x.shape)

    def torch_bn(x, gamma, beta):
        return oracle.F.batch_norm(x, None, None, gamma, beta, training=True, eps=1e-3)

    y_ref, grads = oracle.vjp(torch_bn, {"x": x, "gamma": gamma, "beta": beta}, g)
    close(layer.forward(x), y_ref, what="forward")
    close(layer.backward(g), grads["x"], what="dx")
    close(layer.grads["gamma"], grads["gamma"], what="dgamma")
    close(layer.grads["beta"], grads["beta"], what="dbeta")


def test_float32_stays_float32(rng):
    x, gamma, beta = bn_inputs(rng, (4, 3), np.float32)
    g = rng.standard_normal((4, 3)).astype(np.float32)
    assert batch_norm(x, gamma, beta).dtype == np.float32
    assert batch_norm_grad_input(g, x, gamma).dtype == np.float32
    assert batch_norm_grad_gamma(g, x).dtype == np.float32


@pytest.mark.parametrize("eps", [0.0, -1e-5, float("nan"), True, "1e-5"])
def test_eps_must_be_a_positive_number(eps, rng):
    x, gamma, beta = bn_inputs(rng, (3, 2))
    with pytest.raises(ValueError, match="eps must be a positive finite number"):
        batch_norm(x, gamma, beta, eps)


def test_gamma_must_have_one_entry_per_channel(rng):
    x, gamma, beta = bn_inputs(rng, (3, 2))
    with pytest.raises(ValueError):
        batch_norm(x, np.ones(3), beta)
    with pytest.raises(ValueError):
        batch_norm(x[0], gamma, beta)
