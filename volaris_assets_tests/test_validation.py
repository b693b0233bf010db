from datetime import UTC, date, datetime

import numpy as np
import pandas as pd

from volaris_assets.ingest.validation import validate_bars, validate_chain
from volaris_assets.providers.simulated import SimulatedMarket

AS_OF = datetime(2026, 11, 24, 21, 0, tzinfo=UTC)


def chain() -> pd.DataFrame:
    return SimulatedMarket().option_chain("AAPL", AS_OF)


def test_bad_rows_are_rejected_and_counted_good_rows_kept():
    frame = chain()
    n = len(frame)
    frame.loc[0, "bid"], frame.loc[0, "ask"] = 5.0, 4.0  # crossed
    frame.loc[1, "ask"] = -1.0  # negative
    frame.loc[2, "expiration"] = date(2026, 11, 20)  # expired
    frame.loc[3, "strike"] = np.nan  # missing field
    frame.loc[4, "right"] = "X"
    frame = pd.concat([frame, frame.iloc[[10]]], ignore_index=True)  # duplicate contract
    result = validate_chain(frame, AS_OF)
    assert dict(result.rejected) == {
        "crossed_quote": 1,
        "negative_price": 1,
        "expired": 1,
        "missing_field": 1,
        "bad_right": 1,
        "duplicate_key": 1,
    }
    assert len(result.frame) == n - 5
    assert result.examples["crossed_quote"].startswith("AAPL")


def test_missing_greeks_and_iv_are_repaired():
    frame = chain()
    truth = frame.copy()
    frame.loc[:20, ["delta", "gamma", "theta", "vega"]] = np.nan
    frame.loc[:20, "implied_volatility"] = -999.0
    frame.loc[:20, "mark_price"] = np.nan
    result = validate_chain(frame, AS_OF)
    assert result.rejected_count == 0
    repaired = result.frame.iloc[:21]
    assert repaired[["delta", "gamma", "theta", "vega", "implied_volatility"]].notna().all().all()
    np.testing.assert_allclose(repaired["mark_price"], (repaired["bid"] + repaired["ask"]) / 2)
    pd.testing.assert_series_equal(
        result.frame["mark_price"].iloc[21:], truth["mark_price"].iloc[21:]
    )
    # IV implied from the rounded mid lands near the surface's IV.
    np.testing.assert_allclose(
        repaired["implied_volatility"], truth["implied_volatility"][:21], atol=0.03
    )


def test_bar_validation():
    bars = SimulatedMarket().minute_bars("MSFT", date(2026, 11, 24)).iloc[:10].copy()
    bars.loc[0, "high"] = bars.loc[0, "low"] - 1  # inverted
    bars.loc[1, "close"] = 0.0
    bars.loc[2, "volume"] = -5
    bars["volume"] = bars["volume"].astype("float64")  # as a parser hands it over
    bars.loc[3, "volume"] = 1e19  # past int64: it would be stored as a negative number
    bars = pd.concat([bars, bars.iloc[[5]]], ignore_index=True)
    result = validate_bars(bars)
    assert dict(result.rejected) == {
        "inverted_range": 1,
        "nonpositive_price": 1,
        "negative_volume": 1,
        "bad_volume": 1,
        "duplicate_key": 1,
    }
    assert len(result.frame) == 6
    assert (result.frame["volume"] >= 0).all()


def test_expirations_in_any_spelling_are_read_once_and_unreadable_ones_rejected():
    frame = chain()
    expiration = frame["expiration"].astype(object)
    frame["expiration"] = [
        e.isoformat() if i % 3 == 0 else pd.Timestamp(e) if i % 3 == 1 else e
        for i, e in enumerate(expiration)
    ]
    frame.loc[5, "expiration"] = "not a date"
    frame.loc[6, "expiration"] = None
    frame.loc[7:9, "dte"] = np.nan
    result = validate_chain(frame, AS_OF)
    assert dict(result.rejected) == {"missing_field": 2}
    kept = result.frame.set_index("occ_symbol")
    truth = chain().set_index("occ_symbol").loc[kept.index]
    assert all(type(e) is date for e in kept["expiration"])
    assert kept["expiration"].tolist() == truth["expiration"].tolist()
    # A missing DTE is the calendar days from the as-of New York date.
    pd.testing.assert_series_equal(kept["dte"], truth["dte"], check_dtype=False)


def absurd_strike_contract(frame: pd.DataFrame) -> pd.DataFrame:
    """One contract whose strike (100 million, a provider's unit slip) makes its OCC symbol 25
    characters: longer than the warehouse key, which PostgreSQL would refuse."""
    from volaris_assets.symbols import occ_symbol

    row = frame.iloc[[0]].copy()
    row["strike"] = 100_000_000.0
    row["occ_symbol"] = occ_symbol("AAPL", row["expiration"].iloc[0], row["right"].iloc[0], 1e8)
    return row


def test_text_longer_than_its_column_is_rejected_not_written():
    frame = chain()
    bad = absurd_strike_contract(frame)
    result = validate_chain(pd.concat([frame, bad], ignore_index=True), AS_OF)
    assert dict(result.rejected) == {"too_long": 1}
    assert result.examples["too_long"] == bad["occ_symbol"].iloc[0]
    assert len(result.frame) == len(frame)
    assert result.frame["occ_symbol"].str.len().max() == 21
