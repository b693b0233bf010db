"""The streaming top-premiums list equals the batch one it replaced, without holding frames."""

from datetime import UTC, datetime

import pandas as pd

from volaris_assets.providers.simulated import SimulatedMarket
from volaris_assets.scan.premiums import TopPremiums, WheelSettings, best_premiums, wheel_candidates

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
