"""Databento historical wire format: `POST /v0/timeseries.get_range` with `encoding=json`.

HTTP Basic auth (key as user name, empty password). The body streams one OHLCV record per line
with prices as 1e-9 fixed-point integer strings and `ts_event` in ns as a string; with
`map_symbols=true` each record carries `symbol`.

OPRA.PILLAR with `stype_in=parent` (`AAPL.OPT`) serves a past session's chain, the simulated
market's at that session's close: `definition` records (one per contract, stamped at the
session's midnight) and `cbbo-1m` records (the closing minute's NBBO, stamped at its start).
A request whose window holds no close, or a close the sandbox clock has not reached, gets no
quotes, as a real window without trading would.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from volaris_assets import calendar
from volaris_assets.sandbox.market import malform
from volaris_assets.sandbox.protocol import (
    Context,
    Reply,
    Request,
    json_reply,
    retry_after_header,
    route,
)

NAME = "databento"
_SCHEMAS = {"ohlcv-1m": ("1m", 33), "ohlcv-1d": ("1d", 35)}
_OPTION_SCHEMAS = ("definition", "cbbo-1m")
# Record types: 19 is the instrument definition; the sandbox's 196 for cbbo-1m is UNCONFIRMED
# (clients must not rely on it).
_RTYPE_DEFINITION, _RTYPE_CBBO_1M = 19, 196


def authorize(request: Request, ctx: Context) -> Reply | None:
    expected = base64.b64encode(f"{ctx.keys['api_key']}:".encode()).decode()
    if request.headers.get("Authorization") == f"Basic {expected}":
        return None
    return json_reply({"detail": "Authentication failed."}, 401)


def rate_limited_reply(retry_after_s: float) -> Reply:
    return json_reply(
        {"detail": "Too many requests."}, 429, **{"Retry-After": retry_after_header(retry_after_s)}
    )


def _moment(text: str | None) -> datetime | None:
    if not text:
        return None
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1e9, UTC)
    try:
        return pd.Timestamp(text).tz_convert("UTC").to_pydatetime()
    except (ValueError, TypeError):
        return None


def _fixed(price: float) -> str:
    return str(round(price * 1e9))


def _instrument(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=3).digest(), "little")


def _header(ts: pd.Timestamp, rtype: int, instrument: int) -> dict[str, Any]:
    return {
        "ts_event": str(ts.value),
        "rtype": rtype,
        "publisher_id": 2,
        "instrument_id": instrument,
    }


def _option_records(
    form: dict[str, str], schema: str, start: datetime, end: datetime, ctx: Context
) -> list[dict[str, Any]]:
    """`definition` or `cbbo-1m` records of the parents named, for the one session whose close
    falls in [start, end) (a history request asks about one session)."""
    if form.get("stype_in") != "parent":
        return []
    day = (end - timedelta(microseconds=1)).astimezone(calendar.NY).date()
    try:
        close = calendar.session(day).close
    except ValueError:
        return []
    minute = pd.Timestamp(close - timedelta(minutes=1))
    if schema == "cbbo-1m" and not start <= minute < end:
        return []
    lines: list[dict[str, Any]] = []
    for parent in filter(None, form.get("symbols", "").split(",")):
        root, _, asset = parent.partition(".")
        symbol = ctx.market.listed(root) if asset == "OPT" else None
        chain = ctx.market.closing_chain(symbol, day) if symbol else None
        if chain is None:
            continue
        midnight = pd.Timestamp(day, tz=calendar.NY).tz_convert("UTC")
        for row in chain.to_dict("records"):
            instrument = _instrument(row["occ_symbol"])
            if schema == "definition":
                expiry = pd.Timestamp(row["expiration"], tz=calendar.NY) + pd.Timedelta(hours=16)
                record: dict[str, Any] = {
                    "ts_recv": str(midnight.value),
                    "hd": _header(midnight, _RTYPE_DEFINITION, instrument),
                    "raw_symbol": row["occ_symbol"],
                    "security_update_action": "A",
                    "instrument_class": row["right"],
                    "strike_price": _fixed(row["strike"]),
                    "expiration": str(expiry.value),
                    "underlying": root,
                    "exchange": "OPRA",
                }
            else:
                record = {
                    "ts_recv": str(minute.value + 59 * 10**9),
                    "hd": _header(minute, _RTYPE_CBBO_1M, instrument),
                    "price": _fixed(row["last"]),
                    "size": 1,
                    "side": "N",
                    "flags": 0,
                    "levels": [
                        {
                            "bid_px": _fixed(row["bid"]),
                            "ask_px": _fixed(row["ask"]),
                            "bid_sz": 10,
                            "ask_sz": 10,
                            "bid_pb": 2,
                            "ask_pb": 2,
                        }
                    ],
                }
            if form.get("map_symbols") == "true":
                record["symbol"] = row["occ_symbol"]
            lines.append(record)
    return lines


def _get_range(request: Request, match: Any, ctx: Context) -> Reply:
    form = request.form
    schema_name = form.get("schema", "")
    schema = _SCHEMAS.get(schema_name)
    start, end = _moment(form.get("start")), _moment(form.get("end"))
    if form.get("encoding") != "json":
        return json_reply({"detail": "the sandbox serves encoding=json only"}, 400)
    if (schema is None and schema_name not in _OPTION_SCHEMAS) or start is None:
        return json_reply({"detail": "schema and start are required"}, 422)
    if schema is None:
        lines = _option_records(form, schema_name, start, end or ctx.market.as_of, ctx)
        return _lines_reply(lines, ctx)
    timeframe, rtype = schema
    lines: list[dict[str, Any]] = []
    for raw in filter(None, form.get("symbols", "").split(",")):
        symbol = ctx.market.listed(raw)
        if symbol is None:
            continue
        instrument = _instrument(symbol)
        bars = ctx.market.bars(symbol, timeframe, start, end or ctx.market.as_of)
        for row in bars.to_dict("records"):
            record = {
                "hd": {
                    "ts_event": str(pd.Timestamp(row["ts"]).value),
                    "rtype": rtype,
                    "publisher_id": 2,
                    "instrument_id": instrument,
                },
                "open": _fixed(row["open"]),
                "high": _fixed(row["high"]),
                "low": _fixed(row["low"]),
                "close": _fixed(row["close"]),
                "volume": str(int(row["volume"])),
            }
            if form.get("map_symbols") == "true":
                record["symbol"] = raw
            lines.append(record)
    return _lines_reply(lines, ctx)


def _lines_reply(lines: list[dict[str, Any]], ctx: Context) -> Reply:
    if ctx.fault == "malformed":
        malform(lines, ctx.rng, ctx.row_fraction)
    body = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines).encode()
    return Reply(200, body, content_type="application/json", cacheable=ctx.fault is None)


ROUTES = [route("POST", r"^/v0/timeseries\.get_range$", "data", _get_range)]
