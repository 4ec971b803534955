"""bnlib.gradcheck: the finite-difference helper the chapters and the tests rely on."""

import numpy as np
import pytest

from bnlib.gradcheck import numerical_gradient, relative_error


def test_numerical_gradient_of_a_known_function():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((3, 4))
    x = rng.standard_normal((3, 4))
    grad = numerical_gradient(lambda z: float((a * z**2).sum() + np.sin(z).sum()), x)
    np.testing.assert_allclose(grad, 2 * a * x + np.cos(x), rtol=1e-8, atol=1e-8)


def test_numerical_gradient_leaves_x_unchanged_and_checks_h():
    x = np.arange(4.0)
    numerical_gradient(lambda z: float(z.sum()), x)
    np.testing.assert_array_equal(x, np.arange(4.0))
    with pytest.raises(ValueError, match="positive step"):
        numerical_gradient(lambda z: float(z.sum()), x, h=0.0)


def test_relative_error():
    assert relative_error([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert relative_error([1.0, 2.5], [1.0, 2.0]) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="shapes differ"):
        relative_error([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="all zeros"):
        relative_error([1.0], [0.0])
