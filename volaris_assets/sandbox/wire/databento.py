"""Databento historical wire format: `POST /v0/timeseries.get_range` with `encoding=json`.

HTTP Basic auth (key as user name, empty password). The body streams one OHLCV record per line
with prices as 1e-9 fixed-point integer strings and `ts_event` in ns as a string; with
`map_symbols=true` each record carries `symbol`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pandas as pd

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


def _get_range(request: Request, match: Any, ctx: Context) -> Reply:
    form = request.form
    schema = _SCHEMAS.get(form.get("schema", ""))
    start, end = _moment(form.get("start")), _moment(form.get("end"))
    if form.get("encoding") != "json":
        return json_reply({"detail": "the sandbox serves encoding=json only"}, 400)
    if schema is None or start is None:
        return json_reply({"detail": "schema and start are required"}, 422)
    timeframe, rtype = schema
    lines: list[dict[str, Any]] = []
    for raw in filter(None, form.get("symbols", "").split(",")):
        symbol = ctx.market.listed(raw)
        if symbol is None:
            continue
        instrument = int.from_bytes(
            hashlib.blake2b(symbol.encode(), digest_size=3).digest(), "little"
        )
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
    if ctx.fault == "malformed":
        malform(lines, ctx.rng, ctx.row_fraction)
    body = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines).encode()
    return Reply(200, body, content_type="application/json", cacheable=ctx.fault is None)


ROUTES = [route("POST", r"^/v0/timeseries\.get_range$", "data", _get_range)]
