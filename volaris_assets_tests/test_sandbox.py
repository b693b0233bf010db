"""The sandbox itself: fault profiles, reproducible draws, rate limits, runtime control, caching."""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import timedelta

import httpx
import pytest

from volaris_assets.providers import polygon
from volaris_assets.providers.http import build_client
from volaris_assets.sandbox.__main__ import _rate_limit
from volaris_assets.sandbox.__main__ import main as sandbox_main
from volaris_assets.sandbox.faults import PRESETS, FaultProfile, draw, parse_faults
from volaris_assets.sandbox.protocol import STREAM_CHUNK_BYTES, huge_json_reply
from volaris_assets.sandbox.server import RateLimit
from volaris_assets.sandbox.wire import schwab as schwab_wire
from volaris_assets_tests.sandbox_fixtures import SANDBOX_AS_OF, faults, outcome

pytest_plugins = ("volaris_assets_tests.sandbox_fixtures",)
ALL = set(PRESETS["hostile"].__dataclass_fields__) & {
    "rate_limit",
    "server_error",
    "timeout",
    "reset",
    "truncated",
    "expired_token",
    "malformed",
    "bad_greeks",
    "crossed",
    "empty_chain",
}


def test_profiles_parse_from_presets_json_and_pairs():
    assert parse_faults("none") == FaultProfile()
    assert parse_faults("hostile") == PRESETS["hostile"]
    tuned = parse_faults("flaky,timeout=0.2,latency_ms=50-150")
    assert tuned.timeout == 0.2 and tuned.latency_ms == (50.0, 150.0)
    assert tuned.server_error == PRESETS["flaky"].server_error
    assert parse_faults('{"reset": 0.5, "latency_ms": [1, 2]}') == FaultProfile(
        reset=0.5, latency_ms=(1.0, 2.0)
    )
    for bad in ("calm", "timeout=2", "nonsense=0.1", "timeout=0.6,reset=0.6", "latency_ms=9-1"):
        with pytest.raises(ValueError):
            parse_faults(bad)


def test_huge_bodies_are_aimed_at_symbols_in_every_spelling():
    pairs = parse_faults("flaky,huge_body_symbols=aapl+BRK/B,huge_body_mb=2")
    assert pairs.huge_body_symbols == {"AAPL", "BRK.B"} and pairs.huge_body_mb == 2.0
    assert pairs.timeout == PRESETS["flaky"].timeout
    spelled = parse_faults('{"huge_body_symbols": ["MSFT"]}')
    assert spelled.huge_body_symbols == {"MSFT"} and spelled.huge_body_mb == 50.0
    assert parse_faults("none").huge_body_symbols == frozenset()
    for bad in ("huge_body_mb=0", "huge_body_symbols=DROP;TABLE", "huge_body_symbols=AAPL,MSFT"):
        with pytest.raises(ValueError):
            parse_faults(bad)


def test_a_huge_body_is_valid_json_made_a_chunk_at_a_time():
    chunks = list(huge_json_reply("AAPL", 1).stream or ())
    assert max(map(len, chunks)) <= STREAM_CHUNK_BYTES + 1  # never more held than that
    body = b"".join(chunks)
    assert 1024**2 - STREAM_CHUNK_BYTES <= len(body) <= 1024**2 + 2 * STREAM_CHUNK_BYTES
    payload = json.loads(body)
    assert payload["symbol"] == "AAPL" and payload["status"] == "SUCCESS"
    assert payload["contracts"][0]["symbol"] == "AAPL  260320P00100000"


def test_a_huge_body_streams_chunked_for_its_symbols_only(clean_sandbox):
    clean_sandbox.set_faults("huge_body_symbols=AAPL,huge_body_mb=3")
    huge = _get(clean_sandbox, "/quote", symbol="aapl")
    normal = _get(clean_sandbox, "/quote", symbol="MSFT")
    assert huge.status_code == normal.status_code == 200
    assert huge.headers["transfer-encoding"] == "chunked" and "content-length" not in huge.headers
    assert len(huge.content) >= 3 * 1024**2 - STREAM_CHUNK_BYTES
    assert huge.json()["symbol"] == "AAPL"
    assert set(normal.json()) >= {"c", "pc", "t"}
    assert clean_sandbox.stats.faults["huge_body"] == 1
    assert clean_sandbox.stats.count("finnhub", "/quote", 200) == 2


def test_draws_are_reproducible_and_rates_hold():
    profile = FaultProfile(server_error=0.3, timeout=0.1)
    first = [draw(profile, 7, "GET /x", n, ALL).fault for n in range(1, 2001)]
    again = [draw(profile, 7, "GET /x", n, ALL).fault for n in range(1, 2001)]
    other_seed = [draw(profile, 8, "GET /x", n, ALL).fault for n in range(1, 2001)]
    assert first == again and first != other_seed
    assert 0.26 < first.count("server_error") / 2000 < 0.34
    assert 0.07 < first.count("timeout") / 2000 < 0.13
    assert draw(profile, 7, "GET /x", 1, {"malformed"}).fault is None  # not allowed here


def test_latency_follows_the_configured_range():
    profile = FaultProfile(latency_ms=(50.0, 150.0))
    lags = [draw(profile, 1, "id", n, ALL).latency_s for n in range(1, 500)]
    assert 0.05 <= min(lags) < 0.06 and 0.14 < max(lags) <= 0.15


def _get(sandbox, path, **params):
    headers = {"X-Finnhub-Token": sandbox.keys["finnhub"]["api_key"]}
    return httpx.get(f"{sandbox.url('finnhub')}{path}", params=params, headers=headers, timeout=5)


def test_rate_limit_answers_429_with_retry_after(clean_sandbox):
    clean_sandbox.set_rate_limit("finnhub", RateLimit(requests=2, per_s=10))
    statuses = [_get(clean_sandbox, "/quote", symbol="AAPL").status_code for _ in range(3)]
    limited = _get(clean_sandbox, "/quote", symbol="AAPL")
    assert statuses == [200, 200, 429] and limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 10
    assert "API limit reached" in limited.json()["error"]
    assert clean_sandbox.stats.count("finnhub", "/quote", 429) == 2


def test_an_injected_429_can_advise_the_window_s_own_wait(clean_sandbox):
    """`retry_after_s=window`: "0" while the account's window has room, its wait once full."""
    clean_sandbox.set_rate_limit("finnhub", RateLimit(requests=2, per_s=10))
    clean_sandbox.set_faults({**faults("rate_limit"), "retry_after_s": "window"})
    advised = [_get(clean_sandbox, "/quote", symbol="AAPL").headers["Retry-After"] for _ in "ab"]
    assert advised[0] == "0" and 9 <= int(advised[1]) <= 10


def test_unauthorized_bodies_are_the_providers_own(clean_sandbox):
    polygon_reply = httpx.get(
        f"{clean_sandbox.url('polygon')}/v3/snapshot/options/AAPL", params={"apiKey": "bad"}
    )
    tiingo_reply = httpx.get(
        f"{clean_sandbox.url('tiingo')}/iex/AAPL/prices", headers={"Authorization": "Token bad"}
    )
    assert polygon_reply.status_code == tiingo_reply.status_code == 401
    assert polygon_reply.json()["error"] == "Unknown API Key"
    assert tiingo_reply.json() == {"detail": "Invalid token."}


def test_a_provider_fails_then_recovers_at_runtime(clean_sandbox):
    async def chain_outcome():
        async with build_client(timeout_s=1) as http:
            client = polygon.create(clean_sandbox.settings(), client=http)
            return await outcome(client.option_chain("AAPL", SANDBOX_AS_OF))

    clean_sandbox.set_faults(faults("server_error"))
    assert asyncio.run(chain_outcome()) == "server_error"
    clean_sandbox.set_faults("none")
    assert asyncio.run(chain_outcome()) == "ok"
    assert clean_sandbox.stats.faults["server_error"] == 1


def test_pagination_tokens_are_opaque_and_resumable(clean_sandbox):
    key = {"APCA-API-KEY-ID": "sbx-alpaca-key-id", "APCA-API-SECRET-KEY": "sbx-alpaca-secret"}
    params = {
        "symbols": "AAPL,MSFT",
        "timeframe": "5Min",
        "start": (SANDBOX_AS_OF - timedelta(days=1)).isoformat(),
        "end": SANDBOX_AS_OF.isoformat(),
        "limit": "50",
    }
    url = f"{clean_sandbox.url('alpaca')}/v2/stocks/bars"
    seen: dict[str, int] = {}
    token = None
    for _ in range(20):
        page = httpx.get(
            url, params={**params, **({"page_token": token} if token else {})}, headers=key
        ).json()
        for symbol, bars in (page["bars"] or {}).items():
            seen[symbol] = seen.get(symbol, 0) + len(bars)
        token = page["next_page_token"]
        if token is None:
            break
    assert token is None and seen["AAPL"] == seen["MSFT"] > 50


def test_the_cli_parses_rate_limits():
    assert _rate_limit("polygon=5/60") == ("polygon", RateLimit(5, 60.0))


def test_serves_many_concurrent_connections(clean_sandbox):
    """Sixteen connections at once, each reused: every request is answered (how fast is the
    benchmarks' business, not the suite's)."""

    async def hammer(count: int) -> list[int]:
        headers = {"X-Finnhub-Token": clean_sandbox.keys["finnhub"]["api_key"]}
        limits = httpx.Limits(max_connections=16)
        async with httpx.AsyncClient(headers=headers, limits=limits, timeout=10) as client:
            url = f"{clean_sandbox.url('finnhub')}/quote"
            replies = await asyncio.gather(
                *(
                    client.get(url, params={"symbol": s})
                    for s in ["AAPL", "MSFT", "NVDA"] * (count // 3)
                )
            )
            return [r.status_code for r in replies]

    statuses = asyncio.run(hammer(600))
    assert len(statuses) == 600 and set(statuses) == {200}
    assert clean_sandbox.stats.count("finnhub", outcome=200) == 600


def test_chain_bodies_are_cached_per_request(clean_sandbox, monkeypatch):
    renders: list[str] = []
    render = schwab_wire.render_chain

    def counted(raw_symbol, *args):
        renders.append(raw_symbol)
        return render(raw_symbol, *args)

    monkeypatch.setattr(schwab_wire, "render_chain", counted)
    token = json.loads(
        httpx.post(
            f"{clean_sandbox.url('schwab')}/v1/oauth/token",
            auth=("sbx-schwab-app-key", "sbx-schwab-secret"),
            data={"grant_type": "refresh_token", "refresh_token": "sbx-schwab-refresh-token"},
        ).content
    )["access_token"]
    url = f"{clean_sandbox.url('schwab')}/marketdata/v1/chains"
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(headers=headers) as client:
        replies = [client.get(url, params={"symbol": "GOOG"}) for _ in range(20)]
        client.get(url, params={"symbol": "GOOG", "contractType": "PUT"})
    assert len({r.content for r in replies}) == 1
    assert renders == ["GOOG", "GOOG"]  # once per distinct request, not per reply


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--faults", "bogus"], "unknown fault preset 'bogus' (known: none, flaky, hostile)"),
        (["--faults", "rate=2"], "unknown fault setting 'rate' (known: bad_greeks,"),
        (["--faults", "rate_limit=abc"], "fault setting rate_limit='abc' is not a valid value"),
        (["--faults", '{"timeout": '], "argument --faults:"),
    ],
)
def test_a_bad_command_line_is_a_usage_error_not_a_traceback(argv, message, capsys):
    with pytest.raises(SystemExit) as exited:
        sandbox_main(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_a_port_in_use_is_a_usage_error(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(SystemExit) as exited:
            sandbox_main(["--port", str(taken.getsockname()[1])])
    assert exited.value.code == 2
    assert "cannot listen on 127.0.0.1:" in capsys.readouterr().err
