"""The provider contract: the chain filter (what it covers, how sources without an API filter
cut) and the canonical frame every parser returns."""

import asyncio
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest

from volaris_assets.providers.base import QUOTE_COLUMNS, WHOLE_CHAIN, ChainFilter, canonical
from volaris_assets.providers.simulated import SimulatedMarket, SimulatedProvider

AS_OF = datetime(2026, 11, 24, 21, 0, tzinfo=UTC)


def test_a_filter_covers_its_inclusive_range():
    december = ChainFilter(expires_from=date(2026, 12, 1), expires_to=date(2026, 12, 31))
    assert december.covers(date(2026, 12, 1)) and december.covers(date(2026, 12, 31))
    assert not december.covers(date(2026, 11, 30)) and not december.covers(date(2027, 1, 1))
    assert ChainFilter(expires_from=date(2026, 12, 1)).covers(date(2030, 1, 1))
    assert WHOLE_CHAIN.covers(date(1999, 1, 1))


@pytest.mark.parametrize(
    "arguments",
    [
        {"right": "PUT"},
        {"right": "p"},
        {"expires_from": date(2026, 12, 2), "expires_to": date(2026, 12, 1)},
    ],
)
def test_a_filter_that_cannot_mean_anything_is_refused(arguments):
    with pytest.raises(ValueError):
        ChainFilter(**arguments)


def test_apply_keeps_exactly_the_matching_rows():
    chain = SimulatedMarket().option_chain("AAPL", AS_OF)
    wanted = ChainFilter(right="P", expires_from=date(2026, 12, 10), expires_to=date(2027, 1, 20))
    cut = wanted.apply(chain)
    inside = chain["expiration"].map(wanted.covers) & (chain["right"] == "P")
    assert 0 < len(cut) == inside.sum() < len(chain)
    assert cut["occ_symbol"].tolist() == chain.loc[inside, "occ_symbol"].tolist()
    assert WHOLE_CHAIN.apply(chain) is chain


def test_the_simulated_provider_cuts_its_chain_to_the_filter():
    wanted = ChainFilter(right="C", expires_to=date(2026, 12, 31))
    provider = SimulatedProvider()
    got = asyncio.run(provider.option_chain("MSFT", AS_OF, wanted))
    assert set(got["right"]) == {"C"} and max(got["expiration"]) <= date(2026, 12, 31)
    assert len(got) == len(wanted.apply(provider.market.option_chain("MSFT", AS_OF)))


def test_canonical_columns_from_a_mapping_equal_those_from_a_frame():
    """A parser may hand `canonical` its columns as a mapping (built once) or as a frame
    (reindexed): same frame either way, missing columns NaN, unknown ones dropped, a scalar
    filling every row, rows numbered from 0."""
    data = {
        "provider": "schwab",
        "last": pd.Series([10.5, 11.0], index=[7, 8]).to_numpy(),
        "symbol": ["AAPL", "MSFT"],
        "note": ["not", "canonical"],
    }
    from_mapping = canonical(data, QUOTE_COLUMNS)
    pd.testing.assert_frame_equal(from_mapping, canonical(pd.DataFrame(data), QUOTE_COLUMNS))
    pd.testing.assert_frame_equal(
        canonical(pd.DataFrame(data, index=[7, 8]), QUOTE_COLUMNS), from_mapping
    )
    assert list(from_mapping.columns) == list(QUOTE_COLUMNS)
    assert from_mapping["bid"].isna().all() and from_mapping["bid"].dtype == np.float64
    assert list(from_mapping["provider"]) == ["schwab", "schwab"]
    assert list(from_mapping.index) == [0, 1]
