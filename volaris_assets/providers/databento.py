"""Databento historical: 1-minute (and daily) OHLCV for backfills, and past option chains.

Auth is HTTP Basic with the API key as user name and an empty password. The client asks
`POST /v0/timeseries.get_range` for `encoding=json` with `map_symbols=true`, which streams
newline-delimited records `{"hd": {"ts_event": "<ns>", "rtype": 33, ...}, "open": "<1e-9 fixed
point>", ..., "volume": "<int>", "symbol": "AAPL"}`. `ts_event` is the bar start; minutes
without trades have no record. There is no 5-minute schema, so 5m bars are aggregated here from
1m. Every request costs money: this is a backfill source, not a polling one.

Past option chains (the `history` capability) come from OPRA.PILLAR, asked for every option of
one underlying at once with the parent symbology (`stype_in=parent`, `AAPL.OPT`): the day's
`definition` records (`raw_symbol`, `instrument_class` C/P, `strike_price` in 1e-9 units,
`expiration` in ns, `underlying`), then the `cbbo-1m` records of the closing minute (consolidated
NBBO; `levels[0].bid_px/ask_px` in 1e-9 units, joined to the definitions by
`hd.instrument_id`), plus the underlying's daily bar for its close: three requests per symbol
and session. The `cbbo-1m` record type number is not in the sources read (UNCONFIRMED), so
records are told apart by their fields, not their `rtype`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pydantic_core

from volaris_assets.providers.base import (
    BAR_COLUMNS,
    CHAIN_COLUMNS,
    aggregate_bars,
    canonical,
)
from volaris_assets.providers.http import (
    HttpSource,
    bad_data,
    build_occ,
    echoed_symbol,
    epoch_to_utc,
    field,
    in_window,
    no_data,
    numeric,
    session_day,
)
from volaris_assets.providers.past_chains import close_of, quotes_only
from volaris_assets.symbols import InvalidSymbol, normalize_symbol, occ_root, to_provider

NAME = "databento"
DEFAULT_BASE = "https://hist.databento.com"
DEFAULT_DATASET = "XNAS.ITCH"
REQUIRED_SETTINGS: tuple[str, ...] = ("DATABENTO_API_KEY",)
CAPABILITIES: frozenset[str] = frozenset({"intraday", "daily", "history"})
PRICE_SCALE = 1e9  # prices are integers in units of 1e-9
# Consolidated US equity options (OPRA), the dataset past chains come from.
OPTIONS_DATASET = "OPRA.PILLAR"
# DBN's "no price" (i64 max), before scaling.
UNDEF_PRICE = float(2**63 - 1)
_SCHEMA = {"1m": "ohlcv-1m", "5m": "ohlcv-1m", "1d": "ohlcv-1d"}
_BAR_FIELDS = ("hd", "symbol", "open", "high", "low", "close", "volume")
# The fields each schema's parser reads; a record keeps only these. A real OPRA definition
# has ~67 fields, and SPY's chain ~8,000 of them: kept whole, the day's definitions are tens of
# MB of dicts held while the quotes are fetched.
FIELDS: dict[str, tuple[str, ...]] = {
    "ohlcv-1m": _BAR_FIELDS,
    "ohlcv-1d": _BAR_FIELDS,
    "definition": ("hd", "instrument_class", "strike_price", "expiration", "underlying"),
    "cbbo-1m": ("hd", "levels"),
}
# Lines decoded between two turns of the event loop: ~10 ms of a definitions body.
LINES_PER_TURN = 1000


class DatabentoClient(HttpSource):
    """`BarSource` and `HistorySource` over Databento's historical time-series endpoint."""

    name = NAME
    # One session's definitions of a large parent run past the 12 MB default: a real OPRA
    # definition is ~1.5-2 KB of JSON, SPY lists ~8,000-10,000 contracts (16-20 MB) and the
    # S&P 500's largest chains (TSLA, NVDA) thousands. The body is decoded a batch of lines at
    # a time into records cut down to five fields, so it costs little more than its bytes
    # (bench/bench_loop_lag.py --case databento).
    response_cap_mb = 64.0

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

    async def _get_range(self, *, schema: str, **query: str) -> list[dict[str, Any]]:
        """The records of one `timeseries.get_range` request (JSON lines, raw prices and ns),
        each with the fields of `FIELDS[schema]` it has."""
        response = await self._send(
            "POST",
            f"{self.base_url}/v0/timeseries.get_range",
            auth=self._auth,
            data={
                **query,
                "schema": schema,
                "encoding": "json",
                "compression": "none",
                "map_symbols": "true",
                "pretty_px": "false",
                "pretty_ts": "false",
            },
        )
        return await parse_lines(response.content, FIELDS[schema])

    async def bars(
        self, symbol: str, timeframe: str, start: datetime, end: datetime
    ) -> pd.DataFrame:
        if timeframe not in _SCHEMA:
            raise ValueError(f"unsupported timeframe {timeframe!r}")
        records = await self._get_range(
            dataset=self._dataset,
            symbols=to_provider(symbol, NAME),
            schema=_SCHEMA[timeframe],
            start=_iso(start),
            end=_iso(end),
            stype_in="raw_symbol",
        )
        frame = parse_records(records, symbol, "1m" if timeframe == "5m" else timeframe)
        if frame.empty:  # no `ts` to window (an unknown symbol, a day without trading)
            return frame
        if timeframe == "5m":
            frame = to_five_minutes(frame)
        return canonical(in_window(frame, start, end), BAR_COLUMNS)

    async def session_close_chain(self, symbol: str, day: date) -> pd.DataFrame:
        """Every option of `symbol` quoted in the closing minute of the session on `day`."""
        close = close_of(day)
        parent = {
            "dataset": OPTIONS_DATASET,
            "symbols": f"{occ_root(symbol)}.OPT",
            "stype_in": "parent",
        }
        midnight = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
        definitions = await self._get_range(
            **parent, schema="definition", start=_iso(midnight), end=_iso(close)
        )
        quotes = await self._get_range(
            **parent, schema="cbbo-1m", start=_iso(close - timedelta(minutes=1)), end=_iso(close)
        )
        underlying = await self.bars(symbol, "1d", midnight, midnight + timedelta(days=1))
        if underlying.empty:
            raise no_data(NAME, symbol, f"close on {day}")
        chain = parse_chain(definitions, quotes, symbol)
        if chain.empty:
            raise no_data(NAME, symbol, f"option quotes at the close of {day}")
        chain["underlying_price"] = float(underlying["close"].iloc[-1])
        return quotes_only(chain, day)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def parse_lines(body: bytes, keep: tuple[str, ...]) -> list[dict[str, Any]]:
    """Records from a newline-delimited JSON body, each cut down to the fields in `keep`.

    Decoded `LINES_PER_TURN` lines at a time, the event loop running between: SPY's definitions
    for one session are ~16 MB, ~0.15 s of decoding that would otherwise hold up every other
    request's timeout, hedge and budget turn in the run. One undecodable line fails the whole
    answer: a backfill that silently loses its tail to a truncated stream would leave a gap
    nobody asked for.
    """
    lines = _numbered_lines(body)
    records: list[dict[str, Any]] = []
    while batch := list(itertools.islice(lines, LINES_PER_TURN)):
        for record in _decode_batch(batch):
            records.append({name: record[name] for name in keep if name in record})
        await asyncio.sleep(0)
    return records


def _numbered_lines(body: bytes) -> Iterator[tuple[int, bytes]]:
    """The non-blank lines of `body` with their numbers (from 1), sliced as they are asked
    for: splitting the whole body first would hold a second copy of it."""
    start = 0
    for number in itertools.count(1):
        if start >= len(body):
            return
        end = body.find(b"\n", start)
        end = len(body) if end < 0 else end
        line = body[start:end]
        start = end + 1
        if line.strip():
            yield number, line


def _decode_batch(batch: list[tuple[int, bytes]]) -> list[dict[str, Any]]:
    """The objects of numbered lines, decoded as one JSON array (one call instead of one per
    line); when that fails, or a line holds other than one object, line by line to name it."""
    try:
        decoded = pydantic_core.from_json(b"[" + b",".join(line for _, line in batch) + b"]")
    except ValueError:
        decoded = None
    if (
        isinstance(decoded, list)
        and len(decoded) == len(batch)
        and all(isinstance(record, dict) for record in decoded)
    ):
        return decoded
    return [_decode_line(number, line) for number, line in batch]


def _decode_line(number: int, line: bytes) -> dict[str, Any]:
    try:
        record = pydantic_core.from_json(line)
    except ValueError:
        raise bad_data(NAME, f"undecodable JSON on line {number}") from None
    if not isinstance(record, dict):
        raise bad_data(NAME, f"line {number} is not a JSON object")
    return record


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


def _header_field(record: dict[str, Any], name: str) -> Any:
    header = record.get("hd")
    return header.get(name) if isinstance(header, dict) else None


def _price(values: Any) -> pd.Series:
    return numeric(values, sentinels=(UNDEF_PRICE,)) / PRICE_SCALE


def _top_of_book(record: dict[str, Any]) -> dict[str, Any]:
    levels = record["levels"]
    top = levels[0] if isinstance(levels, list) and levels else None
    return top if isinstance(top, dict) else {}


def _definitions(records: list[dict[str, Any]], symbol: str) -> pd.DataFrame:
    """The last definition of each instrument, built column by column (a frame from the record
    dicts, mapped over their headers, was most of a large chain's parse). Any definition for
    another underlying, superseded or not, is bad data; the underlying may be spelled as the
    symbol (BRK.B) or as the OCC root the request named (BRKB.OPT)."""
    rows = [record for record in records if "instrument_class" in record]
    root = occ_root(symbol)
    for echoed in {row["underlying"] for row in rows if row.get("underlying") is not None}:
        if str(echoed).strip().upper() != root:
            echoed_symbol(echoed, symbol, NAME)
    frame = pd.DataFrame(
        {
            "instrument": numeric([_header_field(row, "instrument_id") for row in rows]),
            **{
                name: [row.get(name) for row in rows]
                for name in ("instrument_class", "strike_price", "expiration", "underlying")
            },
        }
    )
    return frame.drop_duplicates("instrument", keep="last")


def _closing_quotes(records: list[dict[str, Any]]) -> pd.DataFrame:
    """The last top-of-book quote of each instrument."""
    rows = [record for record in records if "levels" in record]
    tops = [_top_of_book(row) for row in rows]
    frame = pd.DataFrame(
        {
            "instrument": numeric([_header_field(row, "instrument_id") for row in rows]),
            "bid": _price([top.get("bid_px") for top in tops]),
            "ask": _price([top.get("ask_px") for top in tops]),
        }
    )
    return frame.drop_duplicates("instrument", keep="last")


def parse_chain(
    definitions: list[dict[str, Any]], quotes: list[dict[str, Any]], symbol: str
) -> pd.DataFrame:
    """A canonical chain (quotes only) from `definition` and `cbbo-1m` records.

    The last definition and the last quote of each instrument count (a definition can be
    updated during the day; the closing minute's quote is the last). Instruments without a
    quote in that minute are not part of the close; a definition for another underlying is
    bad data.
    """
    defs = _definitions(definitions, symbol)
    books = _closing_quotes(quotes)
    if defs.empty or books.empty:
        return canonical(pd.DataFrame(), CHAIN_COLUMNS)
    joined = defs.merge(books, on="instrument", how="inner")
    expiry = epoch_to_utc(joined["expiration"], "ns").dt.tz_convert("America/New_York")
    frame = pd.DataFrame({"symbol": [symbol] * len(joined)})
    frame["expiration"] = expiry.dt.date.astype(object).where(expiry.notna(), None)
    frame["strike"] = _price(joined["strike_price"]).to_numpy()
    right = joined["instrument_class"]
    frame["right"] = right.where(right.isin(["C", "P"]), None)
    frame["bid"] = joined["bid"].to_numpy()
    frame["ask"] = joined["ask"].to_numpy()
    frame["mark_price"] = (frame["bid"] + frame["ask"]) / 2.0
    frame["provider"] = NAME
    frame["occ_symbol"] = build_occ(frame)
    out = canonical(frame, CHAIN_COLUMNS)
    out["volume"] = out["open_interest"] = out["last"] = np.nan
    return out


def create(settings: Mapping[str, str], client: httpx.AsyncClient | None = None) -> DatabentoClient:
    """A client from environment-style settings (`REQUIRED_SETTINGS` must be present)."""
    return DatabentoClient(
        api_key=settings["DATABENTO_API_KEY"],
        base_url=settings.get("DATABENTO_API_BASE") or DEFAULT_BASE,
        dataset=settings.get("DATABENTO_DATASET") or DEFAULT_DATASET,
        client=client,
    )
