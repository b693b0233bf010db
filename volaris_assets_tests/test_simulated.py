from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from volaris_assets import calendar
from volaris_assets.providers.base import BAR_COLUMNS, CHAIN_COLUMNS, ChainFilter
from volaris_assets.providers.simulated import (
    _SESSIONS_PER_BLOCK,
    RISK_FREE_RATE,
    SimulatedMarket,
    _years_to,
)
from volaris_assets.quant.black_scholes import bs_price

UTC = calendar.UTC
AS_OF = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)  # 10:00 ET


@pytest.fixture(scope="module")
def market():
    return SimulatedMarket(seed=7)


def test_deterministic_per_seed(market):
    again = SimulatedMarket(seed=7).option_chain("AAPL", AS_OF)
    pd.testing.assert_frame_equal(market.option_chain("AAPL", AS_OF), again)
    assert SimulatedMarket(seed=8).spot("AAPL", AS_OF) != SimulatedMarket(seed=7).spot(
        "AAPL", AS_OF
    )


def test_minute_bars_follow_the_session(market):
    regular = market.minute_bars("MSFT", date(2026, 11, 24))
    early = market.minute_bars("MSFT", date(2026, 11, 27))
    assert len(regular) == 390 and len(early) == 210
    assert regular["ts"].iloc[0] == calendar.session(date(2026, 11, 24)).open
    assert early["ts"].iloc[-1] + timedelta(minutes=1) == calendar.session(date(2026, 11, 27)).close
    assert market.minute_bars("MSFT", date(2026, 11, 26)).empty
    assert (regular["high"] >= regular[["open", "close"]].max(axis=1)).all()
    assert (regular["low"] <= regular[["open", "close"]].min(axis=1)).all()
    assert (regular["volume"] > 0).all()
    assert list(regular.columns) == list(BAR_COLUMNS)


def test_bars_aggregate_exactly_from_minutes(market):
    day = date(2026, 11, 24)
    minutes = market.minute_bars("NVDA", day)
    start, end = datetime(2026, 11, 24, tzinfo=UTC), datetime(2026, 11, 25, tzinfo=UTC)
    daily = market.bars("NVDA", "1d", start, end)
    assert len(daily) == 1
    bar = daily.iloc[0]
    assert bar["ts"] == pd.Timestamp(day, tz="UTC")
    assert bar["open"] == minutes["open"].iloc[0]
    assert bar["close"] == minutes["close"].iloc[-1]
    assert bar["high"] == minutes["high"].max() and bar["low"] == minutes["low"].min()
    assert bar["volume"] == minutes["volume"].sum()
    five = market.bars("NVDA", "5m", start, end)
    assert len(five) == 78
    first = minutes.iloc[:5]
    assert five.iloc[0][["open", "close", "volume"]].tolist() == [
        first["open"].iloc[0],
        first["close"].iloc[-1],
        first["volume"].sum(),
    ]
    assert five["volume"].sum() == minutes["volume"].sum()


def test_daily_closes_chain_and_skip_holidays(market):
    bars = market.bars(
        "KO", "1d", datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
    )
    days = [ts.date() for ts in bars["ts"]]
    assert date(2026, 11, 26) not in days and date(2026, 11, 27) in days
    assert all(calendar.is_session(d) for d in days)


def test_chain_marks_are_black_scholes_of_the_surface(market):
    chain = market.option_chain("AAPL", AS_OF)
    assert list(chain.columns) == list(CHAIN_COLUMNS)
    assert chain["occ_symbol"].is_unique
    profile = market.profile("AAPL")
    spot = market.spot("AAPL", AS_OF)
    years = np.array([_years_to(e, AS_OF) for e in chain["expiration"]])
    theo = bs_price(
        spot,
        chain["strike"].to_numpy(),
        years,
        chain["implied_volatility"].to_numpy(),
        RISK_FREE_RATE,
        profile.dividend_yield,
        (chain["right"] == "C").to_numpy(),
    )
    np.testing.assert_allclose(chain["mark_price"], theo, atol=2e-4, rtol=1e-5)
    assert (chain["bid"] <= chain["mark_price"]).all() and (
        chain["ask"] >= chain["mark_price"]
    ).all()
    assert (chain["underlying_price"] == spot).all()


def test_spot_is_last_completed_minute(market):
    minutes = market.minute_bars("AAPL", date(2026, 11, 24))
    assert market.spot("AAPL", AS_OF) == minutes["close"].iloc[29]  # 10:00 -> 30 minutes done
    before_open = datetime(2026, 11, 24, 13, 0, tzinfo=UTC)
    previous = market.minute_bars("AAPL", date(2026, 11, 23))["close"].iloc[-1]
    assert market.spot("AAPL", before_open) == previous


def test_expiration_cycles(market):
    expirations = market.expirations(AS_OF)
    assert expirations[0] == date(2026, 11, 27)  # weekly Friday
    assert date(2026, 12, 24) in expirations  # Christmas Friday moves to Thursday
    assert date(2026, 12, 25) not in expirations
    monthly = [d for d in expirations if d > date(2027, 1, 1)]
    assert monthly and all(15 <= d.day <= 21 and d.weekday() == 4 for d in monthly)
    assert max(expirations) - AS_OF.date() > timedelta(days=90)


def test_surface_has_skew_and_drifting_level(market):
    day = date(2026, 11, 24)
    years = np.full(3, 30 / 365)
    vols = market.implied_vol("AAPL", day, years, np.array([-0.1, 0.0, 0.1]))
    assert vols[0] > vols[1]  # put skew
    levels = [
        float(market.atm_vol("AAPL", d.day, 30 / 365))
        for d in calendar.sessions_between(date(2026, 1, 2), date(2026, 11, 24))
    ]
    assert max(levels) / min(levels) > 1.3  # the level moves, so IV rank means something


def test_daily_bars_over_a_range_equal_each_sessions_minutes(market):
    """The daily path reduces blocks of sessions' minute arrays at once; it must agree to the
    bit with each session computed alone: over several blocks, across the 2026-10-14 change of
    cached price path, with an early close (2026-11-27) and a holiday (2026-11-26)."""
    start, end = datetime(2026, 8, 20, tzinfo=UTC), datetime(2026, 12, 2, tzinfo=UTC)
    daily = market.bars("BRK.B", "1d", start, end)
    days = [s.day for s in calendar.sessions_between(date(2026, 8, 20), date(2026, 12, 1))]
    assert len(days) > 2 * _SESSIONS_PER_BLOCK
    assert [ts.date() for ts in daily["ts"]] == days
    for bar, day in zip(daily.itertuples(), days, strict=True):
        minutes = market.minute_bars("BRK.B", day)
        assert (bar.open, bar.close) == (minutes["open"].iloc[0], minutes["close"].iloc[-1])
        assert (bar.high, bar.low) == (minutes["high"].max(), minutes["low"].min())
        assert bar.volume == minutes["volume"].sum()


def test_history_reaches_back_to_1990_without_moving_a_number_after_2015(market):
    """The deep history runs backward from the 2015 epoch, so a 2000-01-03 backfill has data
    offline; every close from the epoch on is what it was before (two pinned closes)."""

    def closes(first: date, last: date):
        end = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        start = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
        return market.bars("AAPL", "1d", start, end)

    assert closes(date(2026, 11, 24), date(2026, 11, 24))["close"].tolist() == [440.9571]
    assert closes(date(2016, 5, 3), date(2016, 5, 3))["close"].tolist() == [523.6094]
    deep = closes(date(2000, 1, 3), date(2015, 2, 27))
    sessions = calendar.sessions_between(date(2000, 1, 3), date(2015, 2, 27))
    assert [ts.date() for ts in deep["ts"]] == [s.day for s in sessions]
    assert (deep[["open", "high", "low", "close"]] > 0).all().all()
    # Each session opens near the previous close, up to the epoch and across it (2015-01-02
    # -> 01-05). (After it, the forward path jumps where its 256-weekday blocks meet.)
    epoch = [ts.date() for ts in deep["ts"]].index(date(2015, 1, 5))
    gaps = np.abs(np.log(deep["open"].to_numpy()[1:] / deep["close"].to_numpy()[:-1]))
    assert np.median(gaps) < 0.01 and gaps[:epoch].max() < 0.15
    # The calendar's table, and so the history, starts on 1990-01-02.
    assert closes(date(1989, 12, 1), date(1990, 1, 5))["ts"].iloc[0].date() == date(1990, 1, 2)


@pytest.mark.parametrize(
    "only",
    [
        ChainFilter(expires_from=date(2026, 11, 24), expires_to=date(2027, 3, 24)),
        ChainFilter(right="P", expires_from=date(2026, 12, 4), expires_to=date(2027, 1, 15)),
        ChainFilter(expires_from=date(2030, 1, 1)),  # nothing listed that far out
    ],
)
def test_a_filtered_chain_is_the_whole_chains_rows(market, only):
    """The market prices only the expirations asked for (the IV bootstrap asks for 120 days);
    a contract's numbers must not depend on which others were priced with it."""
    part = only.apply(market.option_chain("AAPL", AS_OF, only))
    pd.testing.assert_frame_equal(part, only.apply(market.option_chain("AAPL", AS_OF)))
