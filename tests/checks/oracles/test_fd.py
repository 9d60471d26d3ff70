"""checks.oracles.fd: central differences, element-wise and directional, in float64 copies, with
steps that scale with |x|, and the kink signature that marks untrusted estimates."""

from __future__ import annotations

import numpy as np
import pytest

from checks.geometry import PoolGeometry
from checks.oracles import fd, kinks

EPS = 1e-4


def linear_loss(c: np.ndarray):
    """L(x) = <c, x> (+ a term in y that never changes): dL/dx = c exactly."""
    return lambda a: float(np.sum(c * a["x"]) + np.sum(a["y"]))


def sin_loss(a) -> float:
    return float(np.sum(np.sin(a["x"])))


def relu_signature(point):
    return kinks.signature([kinks.KinkSite("relu", point["x"])])


def pool_signature(geometry: PoolGeometry):
    return lambda point: kinks.signature([kinks.KinkSite("pool", point["x"], geometry)])


def relu_loss(g: np.ndarray):
    return fd.scalar_loss(lambda a: np.maximum(a["x"], 0.0), g)


def test_elementwise_differences_of_a_linear_function_are_exact_to_rounding():
    rng = np.random.default_rng(1)
    c = rng.standard_normal((3, 4))
    inputs = {"x": rng.standard_normal((3, 4)) * 10, "y": np.ones(2)}
    estimate = fd.elementwise(linear_loss(c), inputs, "x", EPS)
    assert estimate.trusted.all()
    # rounding only: ~ u * |L| / h, far below any tolerance
    np.testing.assert_allclose(estimate.value, c, rtol=0, atol=1e-9)


def test_elementwise_differences_of_a_smooth_function_are_within_eps_squared():
    x = np.linspace(-3.0, 3.0, 13).reshape(1, 13)  # |x| <= 3: h = eps*max(1,|x|) <= 3 eps
    estimate = fd.elementwise(sin_loss, {"x": x}, "x", 1e-3)
    error = np.abs(estimate.value - np.cos(x))
    h = 1e-3 * np.maximum(1.0, np.abs(x))
    assert np.all(error <= h**2 / 6 * 1.01 + 1e-12)  # |f'''| <= 1: truncation h^2/6
    assert error.max() > 1e-9  # not exact: the step is really h, not a smaller one


def test_the_truncation_error_shrinks_with_the_square_of_the_step():
    x = {"x": np.array([1.0, 2.0, -2.5])}
    coarse = np.abs(fd.elementwise(sin_loss, x, "x", 2e-3).value - np.cos(x["x"]))
    fine = np.abs(fd.elementwise(sin_loss, x, "x", 1e-3).value - np.cos(x["x"]))
    np.testing.assert_allclose(coarse / fine, 4.0, rtol=0.01)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_loss_sees_float64_copies_and_the_callers_arrays_are_untouched(dtype):
    x = np.array([[0.5, -1.25], [3.0, 2.0]], dtype=dtype)
    y = np.array([1.0, 2.0], dtype=dtype)
    keep_x, keep_y = x.copy(), y.copy()
    seen = []

    def loss(a) -> float:
        seen.extend((v.dtype, np.shares_memory(v, x) or np.shares_memory(v, y)) for v in a.values())
        a["x"][...] = 0.0  # a loss that writes into what it is given still cannot reach the caller
        return 0.0

    fd.elementwise(loss, {"x": x, "y": y}, "x", EPS)
    fd.directional(loss, {"x": x, "y": y}, "x", [np.ones(x.shape)], EPS)
    assert seen
    assert all(dt == np.float64 and not shared for dt, shared in seen)
    assert x.dtype == dtype and np.array_equal(x, keep_x) and np.array_equal(y, keep_y)


def test_promote_returns_float64_copies():
    x = np.arange(3, dtype=np.float32)
    out = fd.promote({"x": x})
    assert out["x"].dtype == np.float64 and not np.shares_memory(out["x"], x)


def test_directional_estimates_equal_the_projection_of_the_gradient():
    rng = np.random.default_rng(2)
    c = rng.standard_normal((2, 3, 4))
    inputs = {"x": rng.standard_normal((2, 3, 4)), "y": np.zeros(1)}
    directions = fd.random_directions(c.shape, 4, rng)
    estimate = fd.directional(linear_loss(c), inputs, "x", directions, EPS)
    assert estimate.directions is directions
    expected = [float(np.sum(c * u)) for u in directions]
    np.testing.assert_allclose(estimate.projections, expected, rtol=1e-9, atol=1e-9)


def test_directional_estimates_of_a_smooth_function_are_within_eps_squared():
    x = np.array([0.3, -1.1, 2.0, 0.7])
    u = np.array([1.0, -0.5, 0.25, -1.0])
    estimate = fd.directional(sin_loss, {"x": x}, "x", [u], 1e-3)
    h = 1e-3 * 2.0  # eps * max(1, max|x|)
    assert abs(estimate.projections[0] - float(np.cos(x) @ u)) <= h**2 / 6 * np.sum(np.abs(u) ** 3) + 1e-12


def test_random_directions_are_signed_and_every_entry_takes_part():
    directions = fd.random_directions((50, 40), 3, np.random.default_rng(3))
    assert len(directions) == 3
    for u in directions:
        assert u.shape == (50, 40)
        assert np.all((np.abs(u) >= 0.1) & (np.abs(u) <= 1.0))
        assert (u > 0).any() and (u < 0).any()


def recording(points: list):
    def loss(a) -> float:
        points.append(a["x"].copy())
        return 0.0

    return loss


@pytest.mark.parametrize("value, step", [(0.01, EPS), (1.0, EPS), (-250.0, 250 * EPS), (4000.0, 4000 * EPS)])
def test_elementwise_steps_scale_with_the_magnitude_of_the_entry(value, step):
    points: list = []
    fd.elementwise(recording(points), {"x": np.array([value])}, "x", EPS)
    plus, minus = points
    assert plus[0] - value == pytest.approx(step, rel=1e-9)
    assert value - minus[0] == pytest.approx(step, rel=1e-9)


def test_directional_steps_scale_with_the_largest_entry():
    points: list = []
    x = np.array([0.5, -300.0, 2.0])
    u = np.array([1.0, -1.0, 0.5])
    fd.directional(recording(points), {"x": x}, "x", [u], EPS)
    plus, minus = points
    np.testing.assert_allclose(plus - x, 300 * EPS * u, rtol=1e-9)
    np.testing.assert_allclose(x - minus, 300 * EPS * u, rtol=1e-9)


def test_scalar_loss_is_the_sum_of_the_output_times_the_upstream_gradient():
    g = np.array([[1.0, -2.0], [0.5, 3.0]], dtype=np.float32)
    loss = fd.scalar_loss(lambda a: 2 * a["x"], g)
    x = np.array([[1.0, 1.0], [2.0, -1.0]])
    assert loss({"x": x}) == pytest.approx(float(np.sum(2 * x * g)))


# -- kinks -------------------------------------------------------------------------------------


def test_a_relu_input_within_a_step_of_zero_is_untrusted_and_the_rest_is_exact():
    x = np.array([[2.0, 0.5 * EPS, -0.3 * EPS, 0.0, -1.5, 0.5]])
    g = np.array([[1.0, -2.0, 0.5, 3.0, 0.25, -1.0]])
    estimate = fd.elementwise(relu_loss(g), {"x": x}, "x", EPS, relu_signature)
    assert estimate.trusted.tolist() == [[True, False, False, False, True, True]]
    mask = (x > 0).astype(float)
    np.testing.assert_allclose(estimate.value[estimate.trusted], (g * mask)[estimate.trusted], atol=1e-9)


def test_without_the_signature_the_difference_across_a_relu_kink_is_wrong():
    """Why the untrusted entries must never judge: at x = h/2 the difference is neither 0 nor G."""
    x, g = np.array([0.5 * EPS]), np.array([1.0])
    estimate = fd.elementwise(relu_loss(g), {"x": x}, "x", EPS)
    assert estimate.trusted.all()
    assert 0.1 < estimate.value[0] < 0.9


def test_far_from_every_kink_all_estimates_are_trusted():
    x = np.array([[1.0, -1.0, 0.25, -0.01]])  # every |x| > h
    estimate = fd.elementwise(relu_loss(np.ones((1, 4))), {"x": x}, "x", EPS, relu_signature)
    assert estimate.trusted.all()
    geometry = PoolGeometry(1, 1, 2, 4, (2, 2), (2, 2))
    xp = np.array([[[[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]]])  # top two of each window 1 apart
    estimate = fd.elementwise(lambda a: 0.0, {"x": xp}, "x", EPS, pool_signature(geometry))
    assert estimate.trusted.all()


def test_a_pool_window_whose_top_two_values_are_within_a_step_is_untrusted():
    geometry = PoolGeometry(1, 1, 2, 4, (2, 2), (2, 2))
    near = 1.0 + 0.5 * EPS
    x = np.array([[[[1.0, -3.0, 5.0, 2.0], [near, -4.0, 1.0, 0.0]]]])
    estimate = fd.elementwise(lambda a: 0.0, {"x": x}, "x", EPS, pool_signature(geometry))
    # first window: the two near-tied entries are untrusted, the two far below it are not;
    # second window (max 5 far above the rest): all trusted
    assert estimate.trusted.tolist() == [[[[False, True, True, True], [False, True, True, True]]]]


def test_a_directional_step_across_a_kink_gives_no_estimate():
    x = np.array([2.0, EPS, -1.0])  # h = eps * max|x| = 2 eps: along ``near`` the middle entry crosses 0
    g = np.ones(3)
    far, near = np.array([1.0, 0.0, 1.0]), np.array([0.0, 1.0, 0.0])
    estimate = fd.directional(relu_loss(g), {"x": x}, "x", [far, near], EPS, relu_signature)
    assert estimate.projections[0] == pytest.approx(1.0)
    assert estimate.projections[1] is None


def test_the_rounding_noise_bound_covers_an_exactly_zero_gradient_but_not_a_real_error():
    from checks.compare import compare
    from checks.tolerances import TOLERANCES

    # L = sum(x) * 0 + large constant-ish terms: dL/dx is exactly 0, the estimate is pure rounding.
    big = np.linspace(1e3, 2e3, 50)

    def loss(inputs):
        return float(np.sum(big * inputs["w"]) + 0.0 * inputs["b"].sum())

    inputs = {"w": np.linspace(-1.0, 1.0, 50), "b": np.array([0.3, -0.7])}
    tol = TOLERANCES[np.dtype(np.float64)]
    estimate = fd.elementwise(loss, inputs, "b", tol.eps)
    assert np.all(estimate.noise > 0) and np.all(estimate.noise < 1e-6)
    assert compare(np.zeros(2), estimate.value, tol.fd, floor=estimate.noise).ok
    assert not compare(np.array([0.0, 1e-4]), estimate.value, tol.fd, floor=estimate.noise).ok
