"""The warehouse tables: the contract the Discord bot reads (see docs/design.md).

Table names are public; columns may grow. Every table has a natural primary key so that every
write is an idempotent upsert. Timestamps are UTC (`timezone=True` on PostgreSQL; naive UTC on
SQLite, which has no time-zone type).

Free text (names, sectors, messages, examples) is TEXT: PostgreSQL refuses a value longer than
its VARCHAR, and a data source's description has no length it promises. Identifiers keep a
bound where the platform itself guarantees one (the tests check each against its source);
a wire value that could break one is validated and rejected as a counted row first.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

_TS = sa.DateTime(timezone=True)
# A canonical ticker: 1-6 letters and a class suffix of 1-2 (`symbols.normalize_symbol`), or "-".
_SYMBOL = sa.String(12)
# An OCC option symbol: 21 characters (root padded to 6, strike in 8 digits); the longest
# canonical root (8 letters, a class share's) with a strike under 1,000,000 is 24.
_OCC_SYMBOL = sa.String(24)
# One provider's registry name ("simulated", "databento").
_PROVIDER = sa.String(16)
# The providers a multi-session result came from, comma-joined: all eight fit in 62.
_PROVIDER_LIST = sa.String(80)
# Run ids (UUIDs), asset keys, partition keys and `first..last` range labels (34 at most).
_RUN_LABEL = sa.String(64)


def _option_columns() -> list[sa.Column]:
    """Columns shared by the latest-chain table and its history."""
    return [
        sa.Column("symbol", _SYMBOL, nullable=False, index=True),
        sa.Column("expiration", sa.Date, nullable=False),
        sa.Column("strike", sa.Float, nullable=False),
        sa.Column("right", sa.String(1), nullable=False),
        sa.Column("bid", sa.Float),
        sa.Column("ask", sa.Float),
        sa.Column("mark_price", sa.Float),
        sa.Column("last", sa.Float),
        sa.Column("volume", sa.BigInteger),
        sa.Column("open_interest", sa.BigInteger),
        sa.Column("implied_volatility", sa.Float),
        sa.Column("delta", sa.Float),
        sa.Column("gamma", sa.Float),
        sa.Column("theta", sa.Float),
        sa.Column("vega", sa.Float),
        sa.Column("underlying_price", sa.Float),
        sa.Column("dte", sa.Integer),
        sa.Column("provider", _PROVIDER, nullable=False),
    ]


tickers = sa.Table(
    "tickers",
    metadata,
    sa.Column("symbol", _SYMBOL, primary_key=True),
    sa.Column("name", sa.Text),
    sa.Column("sector", sa.Text),
    sa.Column("sub_industry", sa.Text),
    sa.Column("is_active", sa.Boolean, nullable=False),
    sa.Column("in_sp500", sa.Boolean, nullable=False),
    sa.Column("in_scan_universe", sa.Boolean, nullable=False),
    sa.Column("liquidity_rank", sa.Integer),
    sa.Column("added_on", sa.Date),
    sa.Column("updated_at", _TS, nullable=False),
)

price_bars = sa.Table(
    "price_bars",
    metadata,
    sa.Column("symbol", _SYMBOL, primary_key=True),
    sa.Column("timeframe", sa.String(4), primary_key=True),
    sa.Column("ts", _TS, primary_key=True),
    sa.Column("open", sa.Float, nullable=False),
    sa.Column("high", sa.Float, nullable=False),
    sa.Column("low", sa.Float, nullable=False),
    sa.Column("close", sa.Float, nullable=False),
    sa.Column("volume", sa.BigInteger, nullable=False),
    sa.Column("provider", _PROVIDER, nullable=False),
)

option_contracts = sa.Table(
    "option_contracts",
    metadata,
    sa.Column("occ_symbol", _OCC_SYMBOL, primary_key=True),
    *_option_columns(),
    sa.Column("last_updated", _TS, nullable=False),
)

option_snapshots = sa.Table(
    "option_snapshots",
    metadata,
    sa.Column("occ_symbol", _OCC_SYMBOL, primary_key=True),
    sa.Column("snapshot_ts", _TS, primary_key=True),
    *_option_columns(),
    sa.Index("ix_option_snapshots_symbol_ts", "symbol", "snapshot_ts"),
)

iv_metrics = sa.Table(
    "iv_metrics",
    metadata,
    sa.Column("symbol", _SYMBOL, primary_key=True),
    sa.Column("date", sa.Date, primary_key=True),
    sa.Column("atm_iv_30d", sa.Float),
    sa.Column("iv_rank", sa.Float),
    sa.Column("iv_percentile", sa.Float),
    sa.Column("iv_history_days", sa.Integer),
    sa.Column("iv_7d", sa.Float),
    sa.Column("iv_30d", sa.Float),
    sa.Column("iv_60d", sa.Float),
    sa.Column("iv_90d", sa.Float),
    sa.Column("skew_25d", sa.Float),
    sa.Column("expected_move", sa.Float),
    sa.Column("expected_move_expiration", sa.Date),
    sa.Column("underlying_price", sa.Float),
    sa.Column("provider", _PROVIDER_LIST),
    sa.Column("updated_at", _TS, nullable=False),
)

# The same numbers measured during the session, one row per symbol per chain snapshot measured
# (`as_of`), for the bot's current IV. `iv_metrics` keeps one row per session, the end-of-day
# value, and it is the only history IV rank and percentile are computed against.
iv_metrics_intraday = sa.Table(
    "iv_metrics_intraday",
    metadata,
    sa.Column("symbol", _SYMBOL, primary_key=True),
    sa.Column("as_of", _TS, primary_key=True),
    *(
        sa.Column(column.name, column.type, nullable=column.nullable)
        for column in iv_metrics.columns
        if column.name != "symbol"
    ),
)

stock_premiums = sa.Table(
    "stock_premiums",
    metadata,
    sa.Column("symbol", _SYMBOL, primary_key=True),
    sa.Column("expiration", sa.Date, primary_key=True),
    sa.Column("strike", sa.Float, primary_key=True),
    sa.Column("scan_date", sa.Date, nullable=False),
    sa.Column("dte", sa.Integer, nullable=False),
    sa.Column("premium", sa.Float, nullable=False),
    sa.Column("bid", sa.Float),
    sa.Column("ask", sa.Float),
    sa.Column("delta", sa.Float),
    sa.Column("implied_volatility", sa.Float),
    sa.Column("volume", sa.BigInteger),
    sa.Column("open_interest", sa.BigInteger),
    sa.Column("underlying_price", sa.Float),
    sa.Column("monthly_return", sa.Float),
    sa.Column("annual_return", sa.Float),
    sa.Column("provider", _PROVIDER),
    sa.Column("updated_at", _TS, nullable=False),
)

# The session each symbol's `stock_premiums` rows reflect, written with them: a scan that finds
# no candidate for a symbol leaves no premium row to carry its date, and without this an
# earlier session's scan (a backfill) would then put older candidates back.
stock_premium_scans = sa.Table(
    "stock_premium_scans",
    metadata,
    sa.Column("symbol", _SYMBOL, primary_key=True),
    sa.Column("scan_date", sa.Date, nullable=False),
    sa.Column("candidates", sa.Integer, nullable=False),
    sa.Column("provider", _PROVIDER),
    sa.Column("updated_at", _TS, nullable=False),
)


def _quote_columns() -> list[sa.Column]:
    """Columns shared by the latest quotes and their intraday history."""
    return [
        sa.Column("last", sa.Float, nullable=False),
        sa.Column("bid", sa.Float),
        sa.Column("ask", sa.Float),
        sa.Column("volume", sa.BigInteger),
        sa.Column("prev_close", sa.Float),
        sa.Column("provider", _PROVIDER, nullable=False),
    ]


quotes = sa.Table(
    "quotes",
    metadata,
    sa.Column("symbol", _SYMBOL, primary_key=True),
    *_quote_columns(),
    sa.Column("quote_ts", _TS, nullable=False),
    sa.Column("updated_at", _TS, nullable=False),
)

# The intraday tape of `quotes`: one row per symbol per minute (the quote's time, floored),
# kept for a few days only (`quotes.assets.HISTORY_DAYS`): the durable intraday record is the
# 1-minute bars in `price_bars`; this holds what moved between two bar refreshes.
quote_history = sa.Table(
    "quote_history",
    metadata,
    sa.Column("symbol", _SYMBOL, primary_key=True),
    sa.Column("minute", _TS, primary_key=True),
    *_quote_columns(),
    sa.Column("quote_ts", _TS, nullable=False),
    sa.Index("ix_quote_history_minute", "minute"),
)

sync_stock_results = sa.Table(
    "sync_stock_results",
    metadata,
    sa.Column("run_id", _RUN_LABEL, primary_key=True),
    sa.Column("asset", _RUN_LABEL, primary_key=True),
    sa.Column("partition", _RUN_LABEL, primary_key=True),
    sa.Column("symbol", _SYMBOL, primary_key=True),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("error_type", sa.String(16)),
    sa.Column("error_message", sa.Text),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("provider", _PROVIDER_LIST),
    sa.Column("rows_written", sa.Integer, nullable=False),
    sa.Column("rows_rejected", sa.Integer, nullable=False),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Column("recorded_at", _TS, nullable=False),
    sa.Index("ix_sync_stock_results_asset_partition", "asset", "partition"),
)

row_rejections = sa.Table(
    "row_rejections",
    metadata,
    sa.Column("run_id", _RUN_LABEL, primary_key=True),
    sa.Column("asset", _RUN_LABEL, primary_key=True),
    sa.Column("partition", _RUN_LABEL, primary_key=True),
    sa.Column("symbol", _SYMBOL, primary_key=True),
    sa.Column("reason", sa.String(40), primary_key=True),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("example", sa.Text),
    sa.Column("recorded_at", _TS, nullable=False),
)

# The trader's price rules, which the bot writes, and each time one fired with whether its
# message reached Discord (`alerts/`). A rule fires when the latest price (quote or 1-minute
# close) is at or beyond `threshold` in `direction`; a one-shot rule fires once and is done
# (`triggered_at` set, `armed` false for good); a repeating rule re-arms when the price is back
# on the near side of the threshold, so it fires once per crossing rather than once a minute.
price_alerts = sa.Table(
    "price_alerts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("symbol", sa.String(12), nullable=False, index=True),
    sa.Column("direction", sa.String(5), nullable=False),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("repeating", sa.Boolean, nullable=False, default=False),
    sa.Column("armed", sa.Boolean, nullable=False, default=True),
    sa.Column("note", sa.String(200)),
    sa.Column("created_by", sa.String(64)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("triggered_at", sa.DateTime(timezone=True)),
    sa.Column("trigger_count", sa.Integer, nullable=False, default=0),
    sa.Column("last_trigger_price", sa.Float),
    sa.CheckConstraint("direction IN ('above', 'below')", name="ck_price_alerts_direction"),
    sa.CheckConstraint("threshold > 0", name="ck_price_alerts_threshold"),
)

# One row per trigger, written in the transaction that claims it (disarms the rule): the
# sensor posts the rows not yet delivered and marks them, so a Discord outage delays an alert
# instead of losing it. `delivery`: sent (Discord accepted it, or had it already), skipped (no
# webhook configured), expired (undelivered for ALERT_DELIVERY_TTL; logged); NULL: pending.
price_alert_triggers = sa.Table(
    "price_alert_triggers",
    metadata,
    sa.Column("alert_id", sa.Integer, primary_key=True),
    sa.Column("trigger_number", sa.Integer, primary_key=True),
    sa.Column("symbol", sa.String(12), nullable=False),
    sa.Column("direction", sa.String(5), nullable=False),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("price", sa.Float, nullable=False),
    sa.Column("price_ts", sa.DateTime(timezone=True), nullable=False),
    sa.Column("source", sa.String(8), nullable=False),
    sa.Column("repeating", sa.Boolean, nullable=False),
    sa.Column("note", sa.String(200)),
    sa.Column("triggered_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("delivery", sa.String(8)),
    sa.Column("delivered_at", sa.DateTime(timezone=True)),
    sa.Index("ix_price_alert_triggers_pending", "delivery", "triggered_at"),
)

# Natural keys, used by the upsert paths (the primary key of each table).
KEYS: dict[str, tuple[str, ...]] = {
    t.name: tuple(c.name for c in t.primary_key.columns) for t in metadata.sorted_tables
}


def text_limits(table: sa.Table) -> dict[str, int]:
    """The bounded text columns of `table` and their lengths: what PostgreSQL enforces, and
    what validation checks wire values against before a write."""
    return {
        column.name: column.type.length
        for column in table.columns
        if isinstance(column.type, sa.String) and column.type.length is not None
    }
