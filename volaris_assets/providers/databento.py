"""Databento historical: 1-minute (and daily) OHLCV for backfills.

Auth is HTTP Basic with the API key as user name and an empty password. The client asks
`POST /v0/timeseries.get_range` for `encoding=json` with `map_symbols=true`, which streams
newline-delimited records `{"hd": {"ts_event": "<ns>", "rtype": 33, ...}, "open": "<1e-9 fixed
point>", ..., "volume": "<int>", "symbol": "AAPL"}`. `ts_event` is the bar start; minutes
without trades have no record. There is no 5-minute schema, so 5m bars are aggregated here from
1m. Every request costs money: this is a backfill source, not a polling one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
import pandas as pd

from volaris_assets.providers.base import BAR_COLUMNS, aggregate_bars, canonical
from volaris_assets.providers.http import (
    HttpSource,
    bad_data,
    epoch_to_utc,
    field,
    in_window,
    numeric,
    session_day,
)
from volaris_assets.symbols import InvalidSymbol, normalize_symbol, to_provider

NAME = "databento"
DEFAULT_BASE = "https://hist.databento.com"
DEFAULT_DATASET = "XNAS.ITCH"
REQUIRED_SETTINGS: tuple[str, ...] = ("DATABENTO_API_KEY",)
CAPABILITIES: frozenset[str] = frozenset({"intraday", "daily"})
PRICE_SCALE = 1e9  # prices are integers in units of 1e-9
_SCHEMA = {"1m": "ohlcv-1m", "5m": "ohlcv-1m", "1d": "ohlcv-1d"}


class DatabentoClient(HttpSource):
    """`BarSource` over Databento's historical time-series endpoint."""

    name = NAME

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = DEFAULT_BASE,
        dataset: str = DEFAULT_DATASET,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(base_url, client)
        self._auth = httpx.BasicAuth(api_key, "")
        self._dataset = dataset

    async def bars(
        self, symbol: str, timeframe: str, start: datetime, end: datetime
    ) -> pd.DataFrame:
        if timeframe not in _SCHEMA:
            raise ValueError(f"unsupported timeframe {timeframe!r}")
        response = await self._send(
            "POST",
            f"{self.base_url}/v0/timeseries.get_range",
            auth=self._auth,
            data={
                "dataset": self._dataset,
                "symbols": to_provider(symbol, NAME),
                "schema": _SCHEMA[timeframe],
                "start": _iso(start),
                "end": _iso(end),
                "stype_in": "raw_symbol",
                "encoding": "json",
                "compression": "none",
                "map_symbols": "true",
                "pretty_px": "false",
                "pretty_ts": "false",
            },
        )
        records = parse_lines(response.content)
        frame = parse_records(records, symbol, "1m" if timeframe == "5m" else timeframe)
        if timeframe == "5m":
            frame = to_five_minutes(frame)
        return canonical(in_window(frame, start, end), BAR_COLUMNS)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_lines(body: bytes) -> list[dict[str, Any]]:
    """Records from a newline-delimited JSON body.

    One undecodable line fails the whole answer: a backfill that silently loses its tail to a
    truncated stream would leave a gap nobody asked for.
    """
    records: list[dict[str, Any]] = []
    for number, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise bad_data(NAME, f"undecodable JSON on line {number}") from None
        if not isinstance(record, dict):
            raise bad_data(NAME, f"line {number} is not a JSON object")
        records.append(record)
    return records


def parse_records(records: list[dict[str, Any]], symbol: str, timeframe: str) -> pd.DataFrame:
    """Canonical bars from OHLCV records, keeping those whose echoed `symbol` is `symbol`."""
    mine = [r for r in records if _echoes(r.get("symbol"), symbol)]
    if not mine:
        return canonical(pd.DataFrame(), BAR_COLUMNS)
    raw = pd.DataFrame.from_records(mine)
    header = field(raw, "hd").map(lambda h: h.get("ts_event") if isinstance(h, dict) else None)
    ts = epoch_to_utc(header, "ns")
    if timeframe == "1d":
        ts = session_day(ts, "UTC")
    frame = pd.DataFrame({"symbol": symbol, "timeframe": timeframe, "ts": ts})
    for column in ("open", "high", "low", "close"):
        frame[column] = numeric(field(raw, column)) / PRICE_SCALE
    frame["volume"] = numeric(field(raw, "volume"))
    frame["provider"] = NAME
    return canonical(frame, BAR_COLUMNS)


def _echoes(raw: Any, symbol: str) -> bool:
    try:
        return normalize_symbol(str(raw)) == symbol
    except InvalidSymbol:
        return False


def to_five_minutes(minutes: pd.DataFrame) -> pd.DataFrame:
    """5-minute bars (buckets on the clock, as the session opens on a 5-minute mark)."""
    if minutes.empty:
        return minutes.assign(timeframe="5m")
    timed = minutes.dropna(subset=["ts"])
    return aggregate_bars(
        timed,
        timed["ts"].dt.floor("5min"),
        symbol=minutes["symbol"].iloc[0],
        timeframe="5m",
        provider=NAME,
    )


def create(settings: Mapping[str, str], client: httpx.AsyncClient | None = None) -> DatabentoClient:
    """A client from environment-style settings (`REQUIRED_SETTINGS` must be present)."""
    return DatabentoClient(
        api_key=settings["DATABENTO_API_KEY"],
        base_url=settings.get("DATABENTO_API_BASE") or DEFAULT_BASE,
        dataset=settings.get("DATABENTO_DATASET") or DEFAULT_DATASET,
        client=client,
    )
