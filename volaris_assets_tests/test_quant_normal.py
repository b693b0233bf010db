"""Accuracy of the numpy normal distribution against the standard library's erf/erfc."""

from __future__ import annotations

import math
from decimal import Decimal, getcontext

import numpy as np
import pytest

from volaris_assets.quant.normal import erfcx, gauss, norm_cdf, norm_pdf, norm_ppf

getcontext().prec = 50
_SQRT2 = Decimal(2).sqrt()
_TWO_PI = Decimal(2) * Decimal("3.14159265358979323846264338327950288419716939937510")


def _reference_cdf(x: float) -> float:
    """Φ(x) = erfc(-x/√2)/2, correcting math.erfc for the rounding of its argument.

    Deep in the tail erfc's relative sensitivity to its argument is ~2y², so the rounding of
    -x/√2 alone would cost digits; a first-order correction with the exact residual (Decimal)
    restores the reference to math.erfc's own accuracy.
    """
    y = -x / math.sqrt(2.0)
    residual = float(Decimal(-x) / _SQRT2 - Decimal(y))
    tail = math.erfc(y)
    return 0.5 * (tail - 2.0 / math.sqrt(math.pi) * math.exp(-y * y) * residual)


def _reference_pdf(x: float) -> float:
    d = Decimal(x)
    return float((-(d * d) / 2).exp() / _TWO_PI.sqrt())


def _points() -> np.ndarray:
    rng = np.random.default_rng(7)
    return np.concatenate([np.linspace(-37.0, 8.0, 4501), rng.uniform(-37.0, 8.0, 4000)])


def test_cdf_relative_error_near_machine_precision_including_lower_tail():
    x = _points()
    got = norm_cdf(x)
    ref = np.array([_reference_cdf(v) for v in x])
    assert np.all(ref > 1e-300)
    rel = np.abs(got - ref) / ref
    assert rel.max() < 3e-15


def test_cdf_upper_tail_is_one_minus_lower_tail():
    x = np.linspace(0.0, 9.0, 901)
    upper = norm_cdf(x)
    lower = np.array([_reference_cdf(-v) for v in x])
    assert np.max(np.abs(upper - (1.0 - lower))) <= 2.3e-16


def test_cdf_matches_math_erf_in_the_centre():
    x = np.linspace(-0.66, 0.66, 1001)
    ref = np.array([0.5 + 0.5 * math.erf(v / math.sqrt(2.0)) for v in x])
    assert np.max(np.abs(norm_cdf(x) - ref) / ref) < 3e-16 * 4


def test_pdf_relative_error_near_machine_precision():
    x = _points()
    ref = np.array([_reference_pdf(v) for v in x])
    assert np.max(np.abs(norm_pdf(x) - ref) / ref) < 2e-15


def test_gauss_is_exact_enough_where_naive_exp_is_not():
    x = np.array([37.123456789])
    exact = float((-(Decimal(x[0]) ** 2) / 2).exp())
    assert abs(gauss(x)[0] - exact) / exact < 2e-15


def test_erfcx_matches_definition_where_it_is_representable():
    y = np.linspace(-5.0, 25.0, 3001)
    ref = np.array([math.erfc(v) * math.exp(v * v) for v in y if v < 5.0])
    got = erfcx(y)[y < 5.0]
    assert np.max(np.abs(got - ref) / ref) < 2e-13  # the reference itself loses digits as y grows
    # asymptotic series erfcx(y) ~ 1/(y√π) Σ (-1)^n (2n-1)!! / (2y²)^n, ample at y >= 20
    big = y[y >= 20.0]
    terms = [(-1) ** n * math.prod(range(1, 2 * n, 2)) / (2 * big**2) ** n for n in range(12)]
    asym = np.sum(terms, axis=0) / (big * math.sqrt(math.pi))
    assert np.max(np.abs(erfcx(big) - asym) / asym) < 2e-15


@pytest.mark.parametrize(
    ("x", "expected"),
    [(-np.inf, 0.0), (np.inf, 1.0), (0.0, 0.5), (-40.0, 0.0), (40.0, 1.0)],
)
def test_cdf_limits(x, expected):
    assert norm_cdf(x) == expected


def test_nan_propagates_and_shape_is_kept():
    x = np.array([[np.nan, 1.0], [-1.0, 0.3]])
    cdf = norm_cdf(x)
    assert cdf.shape == (2, 2)
    assert np.isnan(cdf[0, 0]) and np.isnan(norm_pdf(x)[0, 0]) and np.isnan(erfcx(x)[0, 0])
    assert cdf[0, 1] + cdf[1, 0] == pytest.approx(1.0, abs=1e-16)


def test_ppf_inverts_cdf_over_the_lower_half_and_tails():
    x = np.linspace(-37.0, 0.0, 20001)
    np.testing.assert_allclose(norm_ppf(norm_cdf(x)), x, rtol=2e-15, atol=2e-15)
    u = np.array([1e-300, 1e-10, 0.02, 0.3, 0.5, 0.7, 0.98, 1 - 1e-10])
    # Φ amplifies a relative error ε in z into ~z²ε, hence the looser bound this way round
    np.testing.assert_allclose(norm_cdf(norm_ppf(u)), u, rtol=1e-12)


def test_ppf_limits():
    np.testing.assert_array_equal(
        norm_ppf(np.array([0.0, 1.0, 0.5])), np.array([-np.inf, np.inf, 0.0])
    )
    assert np.all(np.isnan(norm_ppf(np.array([-0.1, 1.1, np.nan]))))
