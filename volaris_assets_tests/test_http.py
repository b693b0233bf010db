"""The shared HTTP layer: status/exception → category, Retry-After, secret-free messages."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, date, datetime

import httpx
import numpy as np
import pandas as pd
import pytest

from volaris_assets.providers.base import ErrorCategory, ProviderError
from volaris_assets.providers.http import (
    build_client,
    category_for_status,
    days_to_expiry,
    epoch_to_utc,
    floats,
    iso_to_utc,
    json_body,
    numeric,
    occ_symbols,
    parse_retry_after,
    retry_after_seconds,
    same_origin,
    send,
    session_day,
)
from volaris_assets_tests.sandbox_fixtures import FAST_TIMEOUT_S, faults

pytest_plugins = ("volaris_assets_tests.sandbox_fixtures",)
NOW = datetime(2026, 3, 11, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        (" 1.5 ", 1.5),
        ("Wed, 11 Mar 2026 15:00:30 GMT", 30.0),
        ("Wed, 11 Mar 2026 14:00:00 GMT", 0.0),  # a date in the past means "now"
        ("-5", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
    ],
)
def test_retry_after_is_delta_seconds_or_an_http_date(header, expected):
    assert parse_retry_after(header, now=NOW) == expected


def test_alpaca_reset_header_is_the_fallback():
    reset = str(int(NOW.timestamp()) + 12)
    assert retry_after_seconds(httpx.Headers({"X-RateLimit-Reset": reset}), now=NOW) == 12.0
    both = httpx.Headers({"Retry-After": "3", "X-RateLimit-Reset": reset})
    assert retry_after_seconds(both, now=NOW) == 3.0


@pytest.mark.parametrize(
    ("status", "category"),
    [
        (401, "auth"),
        (403, "auth"),
        (404, "not_found"),
        (408, "timeout"),
        (429, "rate_limited"),
        (500, "server_error"),
        (502, "server_error"),
        (503, "server_error"),
        (400, "unknown"),
        (422, "unknown"),
    ],
)
def test_status_categories(status, category):
    assert category_for_status(status) == category


async def _send(url, **kwargs):
    async with build_client(timeout_s=FAST_TIMEOUT_S) as client:
        response = await send(client, "GET", url, provider="test", **kwargs)
        return json_body(response, "test")


def _error(coro) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        asyncio.run(coro)
    return caught.value


def test_429_carries_retry_after_and_messages_hold_no_query_or_headers(clean_sandbox):
    clean_sandbox.set_faults({**faults("rate_limit"), "retry_after_s": 4})
    url = f"{clean_sandbox.url('polygon')}/v3/snapshot/options/AAPL?apiKey=sbx-polygon-key"
    error = _error(_send(url))
    assert error.category == ErrorCategory.RATE_LIMITED and error.retry_after == 4.0
    assert "sbx-polygon-key" not in str(error) and "apiKey" not in str(error)
    assert "/polygon/v3/snapshot/options/AAPL" in str(error)


@pytest.mark.parametrize(
    ("kind", "category"),
    [
        ("server_error", "server_error"),
        ("timeout", "timeout"),
        ("reset", "server_error"),
        ("truncated", "bad_data"),
    ],
)
def test_transport_faults(clean_sandbox, kind, category):
    clean_sandbox.set_faults(faults(kind))
    url = f"{clean_sandbox.url('finnhub')}/quote?symbol=AAPL&token=sbx-finnhub-key"
    error = _error(_send(url))
    assert error.category == category and "sbx-finnhub-key" not in str(error)


def test_refused_connection_is_unreachable_and_retryable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    error = _error(_send(f"http://127.0.0.1:{port}/x?token=secret"))
    assert error.category == "unreachable" and "secret" not in str(error)
    assert error.retryable


def test_a_name_that_does_not_resolve_is_unreachable():
    # RFC 6761: `.invalid` never resolves, so this fails in the resolver, never on the network.
    error = _error(_send("http://volaris-no-such-host.invalid/x?token=secret"))
    assert error.category == "unreachable" and "secret" not in str(error)


def test_unauthorized_and_unknown_paths(clean_sandbox):
    base = clean_sandbox.url("finnhub")
    assert _error(_send(f"{base}/quote?symbol=AAPL&token=wrong")).category == "auth"
    assert _error(_send(f"{base}/no/such/path?token=sbx-finnhub-key")).category == "not_found"


def test_numeric_turns_every_spelling_of_nothing_into_nan():
    values = numeric([1, "2.5", None, "NaN", "abc", -999.0, float("inf")], sentinels=(-999.0,))
    assert values.iloc[:2].tolist() == [1.0, 2.5]
    assert values.iloc[2:7].isna().all()


def test_iso_timestamps_are_read_one_by_one_whatever_the_first_looks_like():
    """Alpaca drops a zero fraction: a value without one after a value with one is the same
    instant format, not a missing timestamp."""
    read = iso_to_utc(
        ["2026-03-03T14:59:59.123456789Z", "2026-03-03T15:00:00Z", "2026-03-03T10:00:00-05:00"]
    )
    assert read.tolist() == [
        pd.Timestamp("2026-03-03T14:59:59.123456789Z"),
        pd.Timestamp("2026-03-03T15:00:00Z"),
        pd.Timestamp("2026-03-03T15:00:00Z"),
    ]
    assert str(read.dtype) == "datetime64[ns, UTC]"


def test_timestamps_out_of_range_or_in_the_wrong_unit_become_nat_not_an_error():
    """A unit slip must reach validation as a missing timestamp (counted), not raise for the
    whole column (the symbol fails) or turn into 1970 (wrong data kept)."""
    quote_ms = 1_773_241_200_000  # 2026-03-11 15:00 UTC
    by_epoch = epoch_to_utc([quote_ms, quote_ms * 10**6, quote_ms // 1000, 1e30], "ms")
    assert by_epoch.iloc[0] == pd.Timestamp("2026-03-11T15:00:00Z")
    assert by_epoch.iloc[1:].isna().all()  # in ns, in s (1970-01-21), absurd
    by_text = iso_to_utc(["9999-03-03T00:00:00Z", "1700000000", 1_700_000_000, None])
    assert by_text.isna().all()
    assert str(by_text.dtype) == "datetime64[ns, UTC]"
    quoted = epoch_to_utc([quote_ms] * 3, "ms")
    dte = days_to_expiry(pd.Series(["2026-04-17", "9999-12-31", "junk"]), quoted)
    assert dte.iloc[0] == 37 and dte.iloc[1:].isna().all()


def test_integers_past_a_float_and_strikes_past_an_occ_symbol_do_not_fail_the_chain():
    assert np.isnan(floats([1.5, 10**400, "2"])).tolist() == [False, True, False]
    expires = date(2026, 4, 17)
    assert occ_symbols(["AAPL"] * 2, [expires] * 2, ["P", "P"], np.array([200.0, 1e306])) == [
        "AAPL  260417P00200000",
        None,
    ]


def test_an_unreadable_pagination_link_is_refused_not_raised():
    assert not same_origin("http://[::1", "http://127.0.0.1:8000/polygon")


def test_session_day_reads_each_provider_zone():
    stamps = pd.Series(
        pd.to_datetime(["2026-03-10 05:00", "2026-03-10 06:00", "2026-03-10 00:00"], utc=True)
    )
    expected = pd.Timestamp("2026-03-10", tz="UTC")
    assert (session_day(stamps.iloc[:1], "America/New_York") == expected).all()
    assert (session_day(stamps.iloc[1:2], "America/Chicago") == expected).all()
    assert (session_day(stamps.iloc[2:], "UTC") == expected).all()


JUNK = [None, 0, "text", [], {}, [1, "a"], {"symbol": "AAPL"}, {"symbol": "AAPL", "candles": "x"}]


@pytest.mark.parametrize("payload", JUNK)
def test_parsers_answer_junk_with_a_category_never_a_crash(payload):
    from datetime import timedelta

    from volaris_assets.providers import polygon, schwab, tiingo, yahoo

    start = NOW - timedelta(days=1)
    parsers = [
        lambda: schwab.parse_chain(payload, "AAPL"),
        lambda: schwab.parse_price_history(payload, "AAPL", "1m", start, NOW),
        lambda: yahoo.parse_chart(payload, "AAPL", "1m", start, NOW),
        lambda: tiingo.parse_prices(payload, "AAPL", "1d", start, NOW),
        lambda: polygon.parse_snapshot([payload] if isinstance(payload, dict) else [], "AAPL"),
    ]
    for parse in parsers:
        try:
            frame = parse()
        except ProviderError:
            continue
        assert isinstance(frame, pd.DataFrame)
