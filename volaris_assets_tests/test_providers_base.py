"""The provider contract's chain filter: what it covers, how sources without an API filter cut."""

import asyncio
from datetime import UTC, date, datetime

import pytest

from volaris_assets.providers.base import WHOLE_CHAIN, ChainFilter
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
