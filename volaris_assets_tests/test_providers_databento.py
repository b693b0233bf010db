"""Contract tests: the Databento client against the sandbox's Databento wire format over HTTP."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest

from volaris_assets.providers import databento
from volaris_assets.providers.base import ProviderError
from volaris_assets.providers.http import build_client
from volaris_assets_tests.sandbox_fixtures import (
    FAST_TIMEOUT_S,
    SANDBOX_AS_OF,
    assert_bars_match,
    faults,
    outcome,
)

pytest_plugins = ("volaris_assets_tests.sandbox_fixtures",)
START = SANDBOX_AS_OF - timedelta(days=2)


async def _with_client(sandbox, action, **overrides):
    settings = {**sandbox.settings(), **overrides}
    client = databento.create(settings, client=build_client(timeout_s=FAST_TIMEOUT_S))
    try:
        return await action(client)
    finally:
        await client.http.aclose()


@pytest.mark.parametrize("timeframe", ["1m", "5m", "1d"])
def test_bars_match_the_simulated_market(clean_sandbox, market, timeframe):
    start = SANDBOX_AS_OF - timedelta(days=30 if timeframe == "1d" else 2)
    frame = asyncio.run(
        _with_client(clean_sandbox, lambda c: c.bars("TSLA", timeframe, start, SANDBOX_AS_OF))
    )
    assert_bars_match(
        frame, market.bars("TSLA", timeframe, start, SANDBOX_AS_OF), provider="databento"
    )


def test_fixed_point_prices_are_scaled():
    records = asyncio.run(
        databento.parse_lines(
            b'{"hd":{"ts_event":"1767364200000000000","rtype":33,"publisher_id":2,'
            b'"instrument_id":38},"open":"200000000000","high":"200400000000",'
            b'"low":"199900000000","close":"200200000000","volume":"15230","symbol":"AAPL"}\n',
            databento.FIELDS["ohlcv-1m"],
        )
    )
    frame = databento.parse_records(records, "AAPL", "1m")
    assert frame.loc[0, ["open", "high", "low", "close", "volume"]].tolist() == [
        200.0,
        200.4,
        199.9,
        200.2,
        15230.0,
    ]
    assert str(frame.loc[0, "ts"]) == "2026-01-02 14:30:00+00:00"


def test_bad_key_is_an_auth_error(clean_sandbox):
    result = asyncio.run(
        _with_client(
            clean_sandbox,
            lambda c: outcome(c.bars("TSLA", "1m", START, SANDBOX_AS_OF)),
            DATABENTO_API_KEY="x",
        )
    )
    assert result == "auth"


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("rate_limit", "rate_limited"),
        ("server_error", "server_error"),
        ("timeout", "timeout"),
        ("reset", "server_error"),
        ("truncated", "bad_data"),
        ("malformed", "ok"),
    ],
)
def test_each_fault_maps_to_its_category(clean_sandbox, kind, expected):
    clean_sandbox.set_faults(faults(kind))
    result = asyncio.run(
        _with_client(clean_sandbox, lambda c: outcome(c.bars("TSLA", "1m", START, SANDBOX_AS_OF)))
    )
    assert result == expected


def _definition_lines(count: int) -> list[bytes]:
    """`count` OPRA definition lines with fields no parser reads, as a real one has ~67."""
    return [
        json.dumps(
            {
                "hd": {"ts_event": "1", "rtype": 19, "instrument_id": number},
                "instrument_class": "P",
                "strike_price": str(number * 10**9),
                "expiration": "1766091600000000000",
                "underlying": "SPY",
                "raw_symbol": f"SPY   261218P{number:08d}",
                "min_price_increment": "10000000",
            }
        ).encode()
        for number in range(count)
    ]


def _parse_turning(body: bytes) -> tuple[list[dict], int]:
    """The records of `body`, and how often another task ran while they were decoded."""

    async def run() -> tuple[list[dict], int]:
        turns = 0
        done = False

        async def count() -> None:
            nonlocal turns
            while not done:
                turns += 1
                await asyncio.sleep(0)

        counter = asyncio.create_task(count())
        await asyncio.sleep(0)
        turns = 0
        records = await databento.parse_lines(body, databento.FIELDS["definition"])
        done = True
        await counter
        return records, turns

    return asyncio.run(run())


def test_a_large_answer_is_decoded_with_the_event_loop_turning():
    count = 2 * databento.LINES_PER_TURN + 500
    records, turns = _parse_turning(b"\n".join(_definition_lines(count)))
    assert len(records) == count
    assert turns >= 2  # the decode gave the loop a turn between its batches of lines
    assert records[-1] == {
        "hd": {"ts_event": "1", "rtype": 19, "instrument_id": count - 1},
        "instrument_class": "P",
        "strike_price": str((count - 1) * 10**9),
        "expiration": "1766091600000000000",
        "underlying": "SPY",
    }  # cut down to the fields the chain parser reads


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        (b'{"hd": {}} {"hd": {}}', "undecodable JSON on line 1502"),
        (b"[1, 2]", "line 1502 is not a JSON object"),
        (b'{"hd": ', "undecodable JSON on line 1502"),
        (b"7", "line 1502 is not a JSON object"),
    ],
)
def test_one_bad_line_fails_the_answer_and_is_named(bad_line, message):
    lines = _definition_lines(2 * databento.LINES_PER_TURN)
    lines.insert(1, b"   ")  # a blank line still counts in the numbering
    lines[1501] = bad_line
    with pytest.raises(ProviderError) as failure:
        asyncio.run(databento.parse_lines(b"\n".join(lines), databento.FIELDS["definition"]))
    assert failure.value.category == "bad_data"
    assert message in str(failure.value)


def test_a_superseded_definition_for_another_underlying_is_still_bad_data():
    definitions = [
        {"hd": {"instrument_id": 1}, "instrument_class": "P", "underlying": "MSFT"},
        {"hd": {"instrument_id": 1}, "instrument_class": "P", "underlying": "SPY"},
    ]
    quotes = [{"hd": {"instrument_id": 1}, "levels": [{"bid_px": "1", "ask_px": "2"}]}]
    with pytest.raises(ProviderError, match="answer is for MSFT"):
        databento.parse_chain(definitions, quotes, "SPY")


@pytest.mark.parametrize("echoed", ["BRK.B", "BRKB", "brkb"])
def test_a_class_share_underlying_may_be_spelled_as_its_occ_root(echoed):
    """The request names the parent by its OCC root (BRKB.OPT); a definition may name the
    underlying either way, while another symbol (BRKA) is still refused."""
    definitions = [
        {
            "hd": {"instrument_id": 1},
            "instrument_class": "P",
            "underlying": echoed,
            "strike_price": "400000000000",
            "expiration": "1798664400000000000",
        }
    ]
    quotes = [{"hd": {"instrument_id": 1}, "levels": [{"bid_px": "1", "ask_px": "2"}]}]
    chain = databento.parse_chain(definitions, quotes, "BRK.B")
    assert chain["occ_symbol"].str.startswith("BRKB  ").all() and len(chain) == 1
    with pytest.raises(ProviderError, match="answer is for BRK.A"):
        databento.parse_chain([{**definitions[0], "underlying": "BRK.A"}], quotes, "BRK.B")


def test_a_class_share_chain_reads_through_the_sandbox(clean_sandbox):
    """The sandbox names the underlying by its OCC root, as the request does: BRK.B's close
    chain is read (before: `asked for BRK.B, answer is for BRKB`)."""
    day = SANDBOX_AS_OF.date() - timedelta(days=1)
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    chain = asyncio.run(_with_client(clean_sandbox, lambda c: c.session_close_chain("BRK.B", day)))
    assert len(chain) > 10 and set(chain["symbol"]) == {"BRK.B"}
