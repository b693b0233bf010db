"""Past sessions' option chains: the `history` capability, for the IV history bootstrap.

Live chain sources only know the current chain, so a past session's chain comes from providers
that sell history (Databento's OPRA.PILLAR, Polygon/Massive option aggregates) or from the
simulated market, which can replay any day. Each answers `session_close_chain(symbol, day)`
with a canonical chain frame (`CHAIN_COLUMNS`) as of the session's close:
- quotes only: `bid`/`ask`/`mark_price` are the closing prices and `underlying_price` the
  underlying's close; `implied_volatility` and the greeks are NaN, whatever the source knows,
  so that every session of the history is solved by the same solver (`quant.implied_vol`,
  through `ingest.validation.validate_chain`) from the same kind of input;
- `quote_ts` is the session's close and `dte` counts from the session's date.

`near_the_money` names the contracts the 30-day ATM IV is read from (`quant.iv_metrics`
interpolates at the spot between the strikes around it, then in total variance between the
expirations around 30 days), so a source that pays per contract asks for those only, and a
full chain is cut to them before it is solved: the same number for a tenth of the work.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from volaris_assets import calendar
from volaris_assets.providers.base import CHAIN_COLUMNS, ChainFilter, ChainSource
from volaris_assets.providers.resilience import FallbackChain, Fetched

# What a historical chain leaves for the solver to work out.
SOLVED_COLUMNS: tuple[str, ...] = ("implied_volatility", "delta", "gamma", "theta", "vega")
# The constant maturity the history is of (`volatility.metrics`' `atm_iv_30d`).
TARGET_DAYS = 30
# How far out a past chain is asked for: the 30-day point needs the expiration after it, and
# monthly cycles leave up to ~35 days between expirations.
HORIZON_DAYS = 120


@runtime_checkable
class HistorySource(Protocol):
    """Something that can return the chain of `symbol` at the close of a past session."""

    name: str

    async def session_close_chain(self, symbol: str, day: date) -> pd.DataFrame: ...

    async def aclose(self) -> None: ...


def close_of(day: date) -> datetime:
    """The UTC instant a session's closing quotes are taken at (early closes respected);
    ValueError for a day that is no session."""
    return calendar.session(day).close


def days_to_expiry(expirations: pd.Series, day: date) -> np.ndarray:
    """Calendar days from `day` to each expiration (NaN where it is not a date)."""
    distinct = {e: (e - day).days if isinstance(e, date) else np.nan for e in set(expirations)}
    return np.array([distinct[e] for e in expirations], dtype=float)


def quotes_only(chain: pd.DataFrame, day: date) -> pd.DataFrame:
    """`chain` as a historical source hands it over: IV and greeks blanked, stamped at the
    close, days to expiry counted from `day`."""
    out = chain.reindex(columns=list(CHAIN_COLUMNS)).reset_index(drop=True)
    out[list(SOLVED_COLUMNS)] = np.nan
    out["quote_ts"] = pd.Timestamp(close_of(day))
    out["dte"] = days_to_expiry(out["expiration"], day)
    return out


def near_the_money(
    chain: pd.DataFrame, spot: float, day: date, strikes_per_side: int = 2
) -> pd.DataFrame:
    """The rows the 30-day ATM IV reads: of the last expiration at or before TARGET_DAYS and
    the first at or after, the `strikes_per_side` strikes nearest below `spot` and above it
    (a strike at the spot counts on both sides), calls and puts. Rows without an expiration
    or strike are kept, for validation to count."""
    days = days_to_expiry(chain["expiration"], day)
    strike = chain["strike"].to_numpy(float)
    unusable = np.isnan(days) | np.isnan(strike)
    near, far = days[(days <= TARGET_DAYS) & (days > 0)], days[days >= TARGET_DAYS]
    chosen = {near.max()} if near.size else set()
    chosen |= {far.min()} if far.size else set()
    keep = unusable.copy()
    for expiry_days in chosen:
        rows = days == expiry_days
        strikes = np.unique(strike[rows])
        below = strikes[strikes <= spot][-strikes_per_side:]
        above = strikes[strikes >= spot][:strikes_per_side]
        keep |= rows & np.isin(strike, np.concatenate([below, above]))
    return chain[keep].reset_index(drop=True)


class ReplayedHistory:
    """A chain source that can be asked about any past instant (the simulated market) as a
    `HistorySource`: its chain at the session's close, reduced to quotes."""

    def __init__(self, source: ChainSource) -> None:
        self.source = source
        self.name = source.name

    async def session_close_chain(self, symbol: str, day: date) -> pd.DataFrame:
        """The closing chain's expirations within HORIZON_DAYS: all `near_the_money` reads,
        a third of the simulated chain's work."""
        window = ChainFilter(expires_from=day, expires_to=day + timedelta(days=HORIZON_DAYS))
        return quotes_only(await self.source.option_chain(symbol, close_of(day), window), day)

    async def aclose(self) -> None:
        await self.source.aclose()


class HistoryChain(FallbackChain):
    """A fallback chain of `HistorySource`s: the same guards, budgets and breakers as the
    chain it is made from, asked for past sessions' chains."""

    def rotated(self, start_with: str | None) -> HistoryChain:
        return HistoryChain.of(super().rotated(start_with))

    async def session_close_chain(self, symbol: str, day: date) -> Fetched:
        return await self._first_answer(lambda source: source.session_close_chain(symbol, day))
