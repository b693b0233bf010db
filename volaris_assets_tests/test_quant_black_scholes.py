"""Black–Scholes–Merton prices and greeks: textbook values, parity, finite differences, edges."""

from __future__ import annotations

import numpy as np
import pytest

from volaris_assets.quant.black_scholes import bs_greeks, bs_price


def test_hull_example_call_and_put():
    # Hull, Options, Futures and Other Derivatives, Example 15.6: S=42, K=40, r=10%, σ=20%, T=0.5.
    call, put = bs_price(42.0, 40.0, 0.5, 0.2, 0.1, 0.0, np.array([True, False]))
    assert call == pytest.approx(4.76, abs=0.005)
    assert put == pytest.approx(0.81, abs=0.005)


def test_hull_index_option_with_dividend_yield():
    # Hull, Example 17.1: index 930, K=900, r=8%, q=3%, σ=20%, T=2/12 → call 51.83.
    assert bs_price(930.0, 900.0, 2 / 12, 0.2, 0.08, 0.03) == pytest.approx(51.83, abs=0.005)


def test_hull_greeks_example_in_vendor_units():
    # Hull's running example (S=49, K=50, r=5%, σ=20%, T=20 weeks): delta 0.522, gamma 0.066,
    # theta -4.31 per year, vega 12.1 per unit of vol.
    g = bs_greeks(49.0, 50.0, 20 / 52, 0.2, 0.05)
    assert g["delta"] == pytest.approx(0.522, abs=5e-4)
    assert g["gamma"] == pytest.approx(0.066, abs=5e-4)
    assert g["theta"] == pytest.approx(-4.31 / 365, abs=0.005 / 365)
    assert g["vega"] == pytest.approx(0.121, abs=5e-4)


def _grid():
    spot, strike, t, vol, rate, q = np.meshgrid(
        [100.0],
        [60.0, 90.0, 100.0, 110.0, 150.0],
        [2 / 365, 0.1, 0.75, 2.0],
        [0.08, 0.3, 0.9],
        [0.0, 0.05],
        [0.0, 0.02],
        indexing="ij",
    )
    return spot.ravel(), strike.ravel(), t.ravel(), vol.ravel(), rate.ravel(), q.ravel()


def test_put_call_parity():
    spot, strike, t, vol, rate, q = _grid()
    call = bs_price(spot, strike, t, vol, rate, q, True)
    put = bs_price(spot, strike, t, vol, rate, q, False)
    forward_diff = spot * np.exp(-q * t) - strike * np.exp(-rate * t)
    np.testing.assert_allclose(call - put, forward_diff, rtol=0, atol=1e-12)


@pytest.mark.parametrize("is_call", [True, False])
def test_greeks_match_finite_differences(is_call):
    spot, strike, t, vol, rate, q = _grid()
    g = bs_greeks(spot, strike, t, vol, rate, q, is_call)

    def price(**bump):
        args = {"spot": spot, "strike": strike, "t": t, "vol": vol, "rate": rate, "div_yield": q}
        args.update(bump)
        return bs_price(**args, is_call=is_call)

    # spot steps scale with the one-sd move so short-dated, high-gamma options are resolved too
    h = 1e-3 * spot * vol * np.sqrt(t)
    delta = (price(spot=spot + h) - price(spot=spot - h)) / (2 * h)
    h = 10 * h
    gamma = (price(spot=spot + h) - 2 * price() + price(spot=spot - h)) / h**2
    dv = 1e-5
    vega = (price(vol=vol + dv) - price(vol=vol - dv)) / (2 * dv) * 0.01
    dt = 1e-6
    theta = -(price(t=t + dt) - price(t=t - dt)) / (2 * dt) / 365
    np.testing.assert_allclose(g["delta"], delta, atol=1e-6)
    np.testing.assert_allclose(g["gamma"], gamma, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(g["vega"], vega, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(g["theta"], theta, rtol=1e-5, atol=1e-9)


def test_broadcasting_with_bool_array():
    strikes = np.array([[90.0], [100.0], [110.0]])
    is_call = np.array([True, False])
    price = bs_price(100.0, strikes, 0.25, 0.3, 0.02, 0.0, is_call)
    assert price.shape == (3, 2)
    assert price[0, 0] > price[1, 0] > price[2, 0]  # calls cheapen with strike
    assert price[0, 1] < price[1, 1] < price[2, 1]  # puts richen with strike
    assert set(bs_greeks(100.0, strikes, 0.25, 0.3, is_call=is_call)) == {
        "delta",
        "gamma",
        "theta",
        "vega",
    }


def test_expiry_and_zero_vol_give_discounted_intrinsic():
    spot = np.array([110.0, 90.0, 100.0, 110.0])
    t = np.array([0.0, 0.0, 0.0, 1.0])
    vol = np.array([0.3, 0.3, 0.3, 0.0])
    call = bs_price(spot, 100.0, t, vol, 0.05, 0.0, True)
    put = bs_price(spot, 100.0, t, vol, 0.05, 0.0, False)
    np.testing.assert_allclose(call, [10.0, 0.0, 0.0, 110.0 - 100.0 * np.exp(-0.05)], atol=1e-12)
    np.testing.assert_allclose(put, [0.0, 10.0, 0.0, 0.0], atol=1e-12)
    g = bs_greeks(spot, 100.0, t, vol, 0.05, 0.0, True)
    np.testing.assert_array_equal(g["delta"], [1.0, 0.0, 0.5, 1.0])
    np.testing.assert_array_equal(g["gamma"], 0.0)
    np.testing.assert_array_equal(g["vega"], 0.0)
    assert np.all(np.isfinite(g["theta"]))


@pytest.mark.parametrize(
    "bad",
    [
        {"spot": 0.0},
        {"spot": -5.0},
        {"strike": 0.0},
        {"t": -0.1},
        {"vol": -0.2},
        {"vol": np.nan},
        {"rate": np.inf},
    ],
)
def test_invalid_inputs_give_nan(bad):
    args = {"spot": 100.0, "strike": 100.0, "t": 0.5, "vol": 0.2, "rate": 0.01, "div_yield": 0.0}
    args.update(bad)
    assert np.isnan(bs_price(**args))
    assert all(np.isnan(v) for v in bs_greeks(**args).values())


def test_far_wings_are_nonnegative_and_monotone():
    # Deep in the wings the call is a difference of two tiny tails; it must not go negative or
    # wiggle, and a 50%-OTM one-day call is exactly worthless in float64.
    strikes = np.linspace(100.0, 140.0, 401)
    call = bs_price(100.0, strikes, 7 / 365, 0.2)
    assert np.all(call >= 0)
    assert np.all(np.diff(call) <= 0)
    assert call[-1] < 1e-30
    assert bs_price(100.0, 150.0, 1 / 365, 0.2) == 0.0
