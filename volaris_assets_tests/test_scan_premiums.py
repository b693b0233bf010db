"""Wheel candidates and the streaming top-premiums list, against plain pandas references."""

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from volaris_assets.providers.simulated import SimulatedMarket
from volaris_assets.scan.premiums import (
    CANDIDATE_COLUMNS,
    TopPremiums,
    WheelSettings,
    best_premiums,
    wheel_candidates,
)
from volaris_assets.warehouse import tables

AS_OF = datetime(2026, 11, 24, 21, 0, tzinfo=UTC)
SYMBOLS = ["AAPL", "MSFT", "NVDA", "BRK.B", "KO", "XOM", "TSLA", "AMD", "F", "T", "PFE", "INTC"]


def test_top_premiums_streams_what_the_batch_picked():
    market, settings = SimulatedMarket(), WheelSettings()
    chosen = [wheel_candidates(market.option_chain(s, AS_OF), settings) for s in SYMBOLS]
    top = TopPremiums(size=5)
    for frame in [*chosen, chosen[0].iloc[0:0]]:  # an empty scan result is ignored
        top.offer(frame)
    per_symbol_best = pd.concat([c.nlargest(1, "annual_return") for c in chosen if not c.empty])
    expected = best_premiums(per_symbol_best, top=5)
    assert top.best() == expected
    assert len(expected) == 5 and len({row["symbol"] for row in expected}) == 5


def _reference_candidates(chain: pd.DataFrame, settings: WheelSettings) -> pd.DataFrame:
    """The selection written the obvious pandas way (what `wheel_candidates` must equal)."""
    puts = chain[(chain["right"] == "P") & (chain["dte"] >= settings.min_dte)]
    distance = (puts["dte"] - settings.target_dte).abs()
    nearest = puts.loc[distance == distance.min(), "expiration"].min()
    chosen = puts[
        (puts["expiration"] == nearest)
        & puts["delta"].between(settings.delta_min, settings.delta_max)
        & (puts["bid"] > 0)
    ].copy()
    on_collateral = (chosen["bid"] + chosen["ask"]) / 2.0 / chosen["strike"]
    chosen["premium"] = ((chosen["bid"] + chosen["ask"]) / 2.0).round(4)
    chosen["monthly_return"] = (on_collateral * 30.0 / chosen["dte"]).round(6)
    chosen["annual_return"] = (on_collateral * 365.0 / chosen["dte"]).round(6)
    chosen = chosen.sort_values("strike", ascending=False, kind="stable").reset_index(drop=True)
    return chosen[[*CANDIDATE_COLUMNS, "premium", "monthly_return", "annual_return"]]


@pytest.mark.parametrize("target_dte", [7, 30, 45, 90])
def test_wheel_candidates_equal_the_pandas_reference(target_dte: int):
    market = SimulatedMarket()
    settings = WheelSettings(target_dte=target_dte)
    for symbol in SYMBOLS:
        chain = market.option_chain(symbol, AS_OF)
        chain.loc[chain.index[::7], "delta"] = np.nan  # a provider without greeks for some
        chain.loc[chain.index[::11], "bid"] = 0.0  # no bid: not sellable
        pd.testing.assert_frame_equal(
            wheel_candidates(chain, settings), _reference_candidates(chain, settings)
        )


def test_wheel_candidates_of_a_chain_without_puts_is_empty():
    chain = SimulatedMarket().option_chain("AAPL", AS_OF)
    assert wheel_candidates(chain[chain["right"] == "C"], WheelSettings()).empty


@pytest.mark.parametrize("side", ["P", "C"])
def test_stamped_candidates_are_stock_premiums_rows(side: str):
    """What the scan writes as it comes: every column of `stock_premiums` and no other, the
    stamp on every row, also when nothing qualifies (a chain of calls only)."""
    chain = SimulatedMarket().option_chain("AAPL", AS_OF)
    day, now = AS_OF.date(), datetime(2026, 11, 24, 21, 5, tzinfo=UTC)
    rows = wheel_candidates(
        chain[chain["right"] == side], WheelSettings(), {"scan_date": day, "updated_at": now}
    )
    assert set(rows.columns) == {c.name for c in tables.stock_premiums.columns}
    assert rows.empty == (side == "C")
    assert (rows["scan_date"] == day).all() and (rows["updated_at"] == now).all()
