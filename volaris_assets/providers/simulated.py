"""A deterministic simulated market: the offline default provider and the sandbox's data source.

Everything is a pure function of (seed, symbol, time), so two runs, two processes or the sandbox
and the test that checks it all see the same numbers. It is built to make the downstream maths
meaningful, not to look random:
- a daily close path per symbol (a random walk over weekdays whose variance follows the symbol's
  implied-volatility state, from 1990, as deep as the calendar), and 1-minute bars that bridge
  each session's open to its close, so daily bars are exactly the aggregate of the minute bars;
- a volatility surface whose level mean-reverts from day to day (so IV rank and percentile move),
  with a term structure that inverts when volatility is high and a put skew;
- option chains priced with Black-Scholes from that surface, on real expiration cycles (weekly
  Fridays, monthly third Fridays, moved to Thursday when Friday is a holiday).
Every frame says `provider == "simulated"`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import numpy as np
import pandas as pd

from volaris_assets import calendar
from volaris_assets.providers.base import (
    BAR_COLUMNS,
    CHAIN_COLUMNS,
    QUOTE_COLUMNS,
    WHOLE_CHAIN,
    ChainFilter,
    ErrorCategory,
    ProviderError,
    aggregate_bars,
)
from volaris_assets.quant.black_scholes import bs_greeks, bs_price
from volaris_assets.quant.normal import norm_ppf
from volaris_assets.symbols import occ_symbol

PROVIDER = "simulated"
RISK_FREE_RATE = 0.04
# Weekday ordinals count from this Monday (ordinal 0). The path runs forward from it; the
# history before it (`_past`) runs backward from it, so that adding the deep history left every
# number after the epoch as it was. The calendar's table starts in 1990.
_EPOCH = date(2015, 1, 5)
_FIRST_DAY = date(1990, 1, 2)
_COUNT_FROM = date(1990, 1, 1)  # a Monday
# Weekdays a cached path covers: a day's path is the one of its block's horizon.
_BLOCK = 256
_VOL_MEAN_REVERSION = 0.96
_VOL_OF_VOL = 0.07
_PRICE_MEAN_REVERSION = 0.9986
_WEEKLY_HORIZON_DAYS = 35
_MONTHLY_HORIZON_DAYS = 200
_STRIKES_PER_SIDE = 10
_MIN_MARK = 0.02
# Sessions whose minute arrays are computed together by `_daily_bars`.
_SESSIONS_PER_BLOCK = 32


@dataclass(frozen=True)
class SymbolProfile:
    """The fixed personality of a simulated symbol, drawn from a hash of its name."""

    symbol: str
    key: int
    base_price: float
    base_vol: float
    dividend_yield: float
    daily_volume: float
    term_tilt: float


def _stable_key(symbol: str) -> int:
    return int.from_bytes(hashlib.blake2b(symbol.encode(), digest_size=8).digest(), "little")


def _weekday_ordinals(days: list[date]) -> np.ndarray:
    """Weekdays between the epoch and each day (a weekend day maps to the Friday before)."""
    # Counted from a Monday before the first day, since numpy counts a backward span
    # differently (end-inclusive); the epoch's count is then subtracted.
    after = [day + timedelta(days=1) for day in days]
    return np.busday_count(_COUNT_FROM, after) - 1 - np.busday_count(_COUNT_FROM, _EPOCH)


@dataclass(frozen=True)
class _Path:
    """Per-weekday closes and volatility levels from the epoch up to a horizon."""

    closes: np.ndarray
    vol_levels: np.ndarray


def _minute_seed(seed: int, key: int, ordinal: int) -> list[int]:
    """A session's own generator (seeds are non-negative: days before the epoch get a stream
    of their own)."""
    return [seed, key, 2, ordinal] if ordinal >= 0 else [seed, key, 5, -ordinal]


def _walk(
    profile: SymbolProfile,
    vol_state: float,
    price_state: float,
    vol_shocks: list[float],
    price_shocks: list[float],
) -> _Path:
    """Closes and volatility levels after each pair of shocks, from the given log-states.

    AR(1) recursions have no vectorised form worth it; on Python floats (not numpy scalars) the
    loop costs a third. The price wanders around its base (half-life ~2 years) so that decades
    of simulated history keep plausible prices."""
    log_vol, log_level = [], []
    for vol_shock, price_shock in zip(vol_shocks, price_shocks, strict=True):
        vol_state = _VOL_MEAN_REVERSION * vol_state + _VOL_OF_VOL * vol_shock
        log_vol.append(vol_state)
        daily_sigma = 0.85 * profile.base_vol * math.exp(vol_state) / math.sqrt(252.0)
        price_state = _PRICE_MEAN_REVERSION * price_state + daily_sigma * price_shock
        log_level.append(price_state)
    return _Path(
        closes=profile.base_price * np.exp(np.array(log_level)),
        vol_levels=profile.base_vol * np.exp(np.array(log_vol)),
    )


@dataclass(frozen=True)
class SimulatedQuote:
    """One symbol's quote (the `QUOTE_COLUMNS` of a quote frame, less the provider)."""

    symbol: str
    last: float
    bid: float
    ask: float
    volume: int
    prev_close: float
    quote_ts: datetime


@dataclass(frozen=True)
class _Tape:
    """One session of one symbol, as quotes read it: minute closes, running volume, and the
    previous session's close."""

    closes: np.ndarray
    volumes: np.ndarray
    previous_close: float


class SimulatedMarket:
    """The simulated market. Cheap to construct; caches a little per symbol."""

    def __init__(self, seed: int = 7) -> None:
        self.seed = seed
        self._path = functools.lru_cache(maxsize=256)(self._build_path)
        self._past = functools.lru_cache(maxsize=256)(self._build_past)
        self._profile = functools.lru_cache(maxsize=1024)(self._build_profile)
        # A session's minute closes and running volume per symbol: quotes of the whole universe
        # every minute read it instead of rebuilding paths (their cache holds 256 symbols).
        # ~6 KB a symbol.
        self._tape = functools.lru_cache(maxsize=1024)(self._build_tape)

    # ----------------------------------------------------------------- per-symbol state
    def profile(self, symbol: str) -> SymbolProfile:
        return self._profile(symbol)

    def _build_profile(self, symbol: str) -> SymbolProfile:
        key = _stable_key(symbol)
        rng = np.random.default_rng([self.seed, key, 0])
        return SymbolProfile(
            symbol=symbol,
            key=key,
            base_price=float(math.exp(rng.uniform(math.log(12), math.log(650)))),
            base_vol=float(rng.uniform(0.16, 0.62)),
            dividend_yield=float(rng.choice([0.0, rng.uniform(0.0, 0.035)])),
            daily_volume=float(math.exp(rng.uniform(math.log(4e5), math.log(4e7)))),
            term_tilt=float(rng.uniform(-0.08, 0.12)),
        )

    def _build_path(self, symbol: str, horizon: int) -> _Path:
        """Weekdays 0..horizon from the epoch on."""
        profile = self.profile(symbol)
        rng = np.random.default_rng([self.seed, profile.key, 1])
        vol_shocks, price_shocks = rng.standard_normal((2, horizon + 1)).tolist()
        return _walk(profile, 0.0, 0.0, vol_shocks, price_shocks)

    def _build_past(self, symbol: str, horizon: int) -> _Path:
        """Weekdays 0..horizon back from the epoch (index j is ordinal -j): the same process
        run backward from the epoch's state, on shocks of its own."""
        profile = self.profile(symbol)
        anchor = self._path(symbol, _BLOCK)
        vol_state = math.log(anchor.vol_levels[0] / profile.base_vol)
        price_state = math.log(anchor.closes[0] / profile.base_price)
        rng = np.random.default_rng([self.seed, profile.key, 4])
        # Drawn in pairs, so a longer horizon extends a shorter one's path instead of
        # replacing it (the forward path's (2, n) draw jumps where its blocks meet).
        vol_shocks, price_shocks = rng.standard_normal((horizon, 2)).T.tolist()
        back = _walk(profile, vol_state, price_state, vol_shocks, price_shocks)
        return _Path(
            closes=np.concatenate([anchor.closes[:1], back.closes]),
            vol_levels=np.concatenate([anchor.vol_levels[:1], back.vol_levels]),
        )

    def _day_state(self, symbol: str, day: date) -> tuple[float, float, float]:
        """(previous close, close, volatility level) for the weekday `day`."""
        previous_close, close, level = self._day_states(symbol, [day])
        return float(previous_close[0]), float(close[0]), float(level[0])

    def _day_states(
        self, symbol: str, days: list[date]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(previous closes, closes, volatility levels) for the weekdays `days`."""
        if min(days) < _FIRST_DAY:
            raise ProviderError(
                ErrorCategory.NO_DATA,
                f"no simulated history before {_FIRST_DAY}",
                provider=PROVIDER,
            )
        ordinals = _weekday_ordinals(days)
        previous_closes, closes, levels = (np.empty(len(days)) for _ in range(3))
        # A day and its previous close are read from one path: forward from the epoch for
        # ordinals >= 1, backward (index -ordinal, the previous day one further back) for the
        # others.
        for direction, path_of in ((1, self._path), (-1, self._past)):
            rows = np.flatnonzero(ordinals >= 1 if direction == 1 else ordinals < 1)
            at = direction * ordinals[rows]
            before = at - direction
            horizons = (np.maximum(at, before) // _BLOCK + 1) * _BLOCK
            for horizon in np.unique(horizons).tolist():
                block = horizons == horizon
                path = path_of(symbol, horizon)
                previous_closes[rows[block]] = path.closes[before[block]]
                closes[rows[block]] = path.closes[at[block]]
                levels[rows[block]] = path.vol_levels[at[block]]
        return previous_closes, closes, levels

    # ----------------------------------------------------------------- bars
    def minute_bars(self, symbol: str, day: date) -> pd.DataFrame:
        """All 1-minute bars of the session on `day` (empty frame if it is not a session)."""
        if not calendar.is_session(day):
            return pd.DataFrame(columns=list(BAR_COLUMNS))
        session = calendar.session(day)
        opens, highs, lows, closes, volumes = (a[0] for a in self._minute_arrays(symbol, [session]))
        ts = pd.date_range(session.open, periods=session.minutes, freq="1min", tz="UTC")
        return pd.DataFrame(
            {
                "symbol": symbol,
                "timeframe": "1m",
                "ts": ts,
                "open": opens,
                "high": highs,
                "low": lows,
                "close": closes,
                "volume": volumes,
                "provider": PROVIDER,
            }
        )

    def _minute_arrays(
        self, symbol: str, sessions: list[calendar.Session]
    ) -> tuple[np.ndarray, ...]:
        """The 1-minute (open, high, low, close, volume) columns as stored, one row per session
        (all of one length: full days and early closes go in separate calls).

        The one place minute bars are computed: `minute_bars` frames one row, and daily bars
        reduce a year of rows at once. Each session draws from its own generator, so a day's
        numbers do not depend on which days are computed with it; the arithmetic after the
        draws runs over all rows together, which is most of what a year of daily bars cost.
        """
        n = sessions[0].minutes
        days = [current.day for current in sessions]
        previous_closes, closes, levels = self._day_states(symbol, days)
        profile = self.profile(symbol)
        count = len(sessions)
        log_open, log_close = np.empty(count), np.empty(count)
        steps, wick_draws = np.empty((count, n)), np.empty((count, 2, n))
        weight_draws, day_volumes = np.empty((count, n)), np.empty(count)
        minute_sigma = 0.85 * levels / math.sqrt(252.0 * 390.0)
        for row, ordinal in enumerate(_weekday_ordinals(days).tolist()):
            rng = np.random.default_rng(_minute_seed(self.seed, profile.key, ordinal))
            # The day's gap, its n steps and its 2n wicks, in the order drawn: one call.
            normals = rng.standard_normal(1 + 3 * n)
            gap = 0.25 * float(levels[row]) / math.sqrt(252.0) * normals[0]
            log_open[row] = math.log(float(previous_closes[row])) + gap
            log_close[row] = math.log(float(closes[row]))
            steps[row] = normals[1 : n + 1]
            wick_draws[row] = normals[n + 1 :].reshape(2, n)
            weight_draws[row] = rng.lognormal(0.0, 0.35, n)
            day_volumes[row] = profile.daily_volume * rng.lognormal(0.0, 0.3)
        sigma = minute_sigma[:, None]
        walk = np.zeros((count, n + 1))
        np.cumsum(steps * sigma, axis=1, out=walk[:, 1:])
        fraction = np.arange(n + 1) / n
        log_path = (
            log_open[:, None]
            + fraction * (log_close - log_open)[:, None]
            + walk
            - fraction * walk[:, -1:]
        )
        prices = np.exp(log_path)
        opens, closes_ = prices[:, :-1], prices[:, 1:]
        wick = np.exp(np.abs(wick_draws) * sigma[:, :, None] * 0.6)
        highs = np.maximum(opens, closes_) * wick[:, 0]
        lows = np.minimum(opens, closes_) / wick[:, 1]
        shape = 1.0 + 1.6 * (np.linspace(-1.0, 1.0, n) ** 2)  # the intraday U of volume
        weights = shape * weight_draws
        shares = day_volumes[:, None] * weights / weights.sum(axis=1, keepdims=True)
        volumes = np.maximum(1, np.round(shares))
        return (
            np.round(opens, 4),
            np.round(highs, 4),
            np.round(lows, 4),
            np.round(closes_, 4),
            volumes.astype("int64"),
        )

    def bars(self, symbol: str, timeframe: str, start: datetime, end: datetime) -> pd.DataFrame:
        """Bars with start <= ts < end; 5m and 1d are aggregated from the 1m bars."""
        if timeframe not in ("1m", "5m", "1d"):
            raise ProviderError(ErrorCategory.BAD_DATA, f"unknown timeframe {timeframe!r}")
        first = max(
            start.astimezone(calendar.NY).date() - timedelta(days=1), calendar.FIRST_SESSION
        )
        last = min(end.astimezone(calendar.NY).date(), calendar.CALENDAR_END)
        sessions = _sessions(first, last)
        if timeframe == "1d":
            out = self._daily_bars(symbol, sessions)
        else:
            frames = [
                _aggregate(self.minute_bars(symbol, current.day), timeframe, current.day)
                for current in sessions
            ]
            if not frames:
                return pd.DataFrame(columns=list(BAR_COLUMNS))
            out = pd.concat(frames, ignore_index=True)
        out = out[(out["ts"] >= pd.Timestamp(start)) & (out["ts"] < pd.Timestamp(end))]
        return out.reset_index(drop=True)[list(BAR_COLUMNS)]

    def _daily_bars(self, symbol: str, sessions: tuple[calendar.Session, ...]) -> pd.DataFrame:
        """One bar per session, reduced from the minute arrays: a year of daily bars is a
        backfill's unit of work, so sessions of one length are computed in blocks of
        _SESSIONS_PER_BLOCK (a year at once held ~20 MB of minute arrays, a block ~2.5 MB, and
        ran no faster)."""
        if not sessions:
            return pd.DataFrame(columns=list(BAR_COLUMNS))
        ohlc = np.empty((len(sessions), 4))
        volume = np.empty(len(sessions), dtype=np.int64)
        for minutes in {current.minutes for current in sessions}:
            same_length = [i for i, current in enumerate(sessions) if current.minutes == minutes]
            for start in range(0, len(same_length), _SESSIONS_PER_BLOCK):
                rows = same_length[start : start + _SESSIONS_PER_BLOCK]
                self._reduce_to_daily(symbol, [sessions[i] for i in rows], ohlc, volume, rows)
        return pd.DataFrame(
            {
                "symbol": symbol,
                "timeframe": "1d",
                "ts": pd.DatetimeIndex([pd.Timestamp(s.day, tz="UTC") for s in sessions]),
                "open": ohlc[:, 0],
                "high": ohlc[:, 1],
                "low": ohlc[:, 2],
                "close": ohlc[:, 3],
                "volume": volume,
                "provider": PROVIDER,
            }
        )

    def _reduce_to_daily(
        self,
        symbol: str,
        sessions: list[calendar.Session],
        ohlc: np.ndarray,
        volume: np.ndarray,
        rows: list[int],
    ) -> None:
        """Write the daily (open, high, low, close) and volume of `sessions` into `rows`."""
        opens, highs, lows, closes, volumes = self._minute_arrays(symbol, sessions)
        ohlc[rows] = np.column_stack(
            [opens[:, 0], highs.max(axis=1), lows.min(axis=1), closes[:, -1]]
        )
        volume[rows] = volumes.sum(axis=1)

    def spot(self, symbol: str, as_of: datetime) -> float:
        """The last traded price at `as_of`: the last completed minute's close in a session."""
        day = as_of.astimezone(calendar.NY).date()
        if calendar.is_session(day):
            session = calendar.session(day)
            if as_of >= session.open:
                minutes = self.minute_bars(symbol, day)
                done = int((min(as_of, session.close) - session.open).total_seconds() // 60)
                if done > 0:
                    return float(minutes["close"].iloc[done - 1])
        return float(self.minute_bars(symbol, calendar.previous_session(day).day)["close"].iloc[-1])

    def quote(self, symbol: str, as_of: datetime) -> SimulatedQuote:
        """The quote at `as_of`: the last completed minute's close as the last trade (as `spot`),
        a spread of a few basis points around it, the session's volume so far and the previous
        session's close. Between sessions it is the last session's closing quote."""
        day = as_of.astimezone(calendar.NY).date()
        current = calendar.session(day) if calendar.is_session(day) else None
        done = 0
        if current is not None and as_of >= current.open:
            done = int((min(as_of, current.close) - current.open).total_seconds() // 60)
        if current is None or done == 0:
            current = calendar.previous_session(day)
            done = current.minutes
        tape = self._tape(symbol, current.day)
        last = float(tape.closes[done - 1])
        half_spread = max(0.01, round(last * 0.0002, 2))
        return SimulatedQuote(
            symbol=symbol,
            last=last,
            bid=round(last - half_spread, 2),
            ask=round(last + half_spread, 2),
            volume=int(tape.volumes[done - 1]),
            prev_close=tape.previous_close,
            quote_ts=min(as_of, current.open + timedelta(minutes=done)),
        )

    def _build_tape(self, symbol: str, day: date) -> _Tape:
        current = calendar.session(day)
        _, _, _, closes, volumes = (a[0] for a in self._minute_arrays(symbol, [current]))
        previous_close = self._day_state(symbol, calendar.previous_session(day).day)[1]
        return _Tape(closes, np.cumsum(volumes), round(previous_close, 4))

    # ----------------------------------------------------------------- options
    def atm_vol(self, symbol: str, day: date, years: np.ndarray | float) -> np.ndarray:
        """ATM implied volatility for maturities `years` on `day`: level x term structure.

        The short end sits above the long end when the level is above the symbol's base (a
        stressed, inverted term structure) and below it in calm regimes.
        """
        _, _, level = self._day_state(symbol, day)
        profile = self.profile(symbol)
        stress = math.log(level / profile.base_vol)
        tilt = profile.term_tilt + 0.8 * stress
        return level * (1.0 + tilt * (np.exp(-np.asarray(years) / 0.15) - 0.35))

    def implied_vol(
        self, symbol: str, day: date, years: np.ndarray, log_moneyness: np.ndarray
    ) -> np.ndarray:
        """The surface: ATM vol with a put skew and a smile in standardised moneyness."""
        atm = self.atm_vol(symbol, day, years)
        z = log_moneyness / (atm * np.sqrt(np.maximum(years, 1.0 / 365.0)))
        return np.clip(atm * (1.0 - 0.10 * z + 0.025 * z * z), 0.04, 4.0)

    def expirations(self, as_of: datetime) -> list[date]:
        """Listed expirations: weekly Fridays near term, monthly third Fridays further out."""
        today = as_of.astimezone(calendar.NY).date()
        out: set[date] = set()
        friday = today + timedelta(days=(4 - today.weekday()) % 7)
        while (friday - today).days <= _MONTHLY_HORIZON_DAYS:
            is_monthly = 15 <= friday.day <= 21
            if is_monthly or (friday - today).days <= _WEEKLY_HORIZON_DAYS:
                out.add(_business_expiry(friday))
            friday += timedelta(days=7)
        close_today = datetime.combine(today, time(16, 0), calendar.NY)
        return sorted(d for d in out if d > today or (d == today and as_of < close_today))

    def option_chain(
        self, symbol: str, as_of: datetime, only: ChainFilter = WHOLE_CHAIN
    ) -> pd.DataFrame:
        """Every listed contract for `symbol` at `as_of` (of the expirations `only` covers),
        priced from the surface. A contract's numbers do not depend on which others are
        priced with it, so a filtered chain is the whole chain's rows, for less work."""
        spot = self.spot(symbol, as_of)
        profile = self.profile(symbol)
        day = _latest_weekday(as_of.astimezone(calendar.NY).date())
        expiries = [expiry for expiry in self.expirations(as_of) if only.covers(expiry)]
        if not expiries:  # no rows, with the whole chain's column types
            return self.option_chain(symbol, as_of)[:0]
        step = _strike_step(spot)
        atm_strike = round(spot / step) * step
        offsets = np.arange(-_STRIKES_PER_SIDE, _STRIKES_PER_SIDE + 1)
        rows_expiry, rows_strike = [], []
        for expiry in expiries:
            years = _years_to(expiry, as_of)
            width = max(
                1.0, 1.6 * profile.base_vol * math.sqrt(years) * spot / step / _STRIKES_PER_SIDE
            )
            strikes = atm_strike + np.round(offsets * width) * step
            strikes = np.unique(strikes[strikes > 0])
            rows_expiry.extend([expiry] * len(strikes))
            rows_strike.append(strikes)
        strikes = np.concatenate(rows_strike) if rows_strike else np.array([])
        expiry_arr = np.array(rows_expiry, dtype=object)
        strikes = np.concatenate([strikes, strikes])
        expiry_arr = np.concatenate([expiry_arr, expiry_arr])
        is_call = np.repeat([True, False], len(strikes) // 2)
        years = np.array([_years_to(e, as_of) for e in expiry_arr])
        q = profile.dividend_yield
        forward = spot * np.exp((RISK_FREE_RATE - q) * years)
        vol = self.implied_vol(symbol, day, years, np.log(strikes / forward))
        theo = bs_price(spot, strikes, years, vol, RISK_FREE_RATE, q, is_call)
        keep = theo >= _MIN_MARK
        strikes, expiry_arr, is_call, years, vol, theo = (
            a[keep] for a in (strikes, expiry_arr, is_call, years, vol, theo)
        )
        greeks = bs_greeks(spot, strikes, years, vol, RISK_FREE_RATE, q, is_call)
        rights = np.where(is_call, "C", "P")
        occ = [
            occ_symbol(symbol, e, r, k)
            for e, r, k in zip(expiry_arr, rights, strikes, strict=False)
        ]
        # Quotes move like a market between snapshots: prices and greeks follow the spot's
        # minute path and the day's surface; each contract's spread width, open interest (set
        # overnight, from the previous close), share of it traded today and last-trade offset are
        # fixed for the day, and volume accumulates through the session.
        draws = _contract_draws(self.seed, occ, day)
        mark = np.round(theo, 4)
        half_spread = 0.01 + 0.03 * mark * (0.5 + draws[:, 0])
        bid = np.maximum(np.round(mark - half_spread, 2), 0.0)
        ask = np.maximum(np.round(mark + half_spread, 2), bid + 0.01)
        quote_day = as_of.astimezone(calendar.NY).date()
        dte = np.array([(e - quote_day).days for e in expiry_arr])
        previous_close = self._day_state(symbol, calendar.previous_session(day).day)[1]
        moneyness = np.abs(np.log(strikes / previous_close)) / (
            profile.base_vol * np.sqrt(np.maximum(dte, 1) / 365.0)
        )
        open_interest = np.round(
            profile.daily_volume
            / 200.0
            * np.exp(-0.5 * moneyness**2)
            * np.exp(0.5 * norm_ppf(draws[:, 1]))
        ).astype("int64")
        traded = 0.25 * draws[:, 2] * _session_fraction(as_of)
        volume = np.round(open_interest * traded).astype("int64")
        frame = pd.DataFrame(
            {
                "symbol": symbol,
                "occ_symbol": occ,
                "expiration": list(expiry_arr),
                "strike": strikes,
                "right": rights,
                "bid": bid,
                "ask": ask,
                "mark_price": mark,
                "last": np.round(mark * (0.97 + 0.06 * draws[:, 3]), 2),
                "volume": volume,
                "open_interest": open_interest,
                "implied_volatility": np.round(vol, 6),
                "delta": greeks["delta"],
                "gamma": greeks["gamma"],
                "theta": greeks["theta"],
                "vega": greeks["vega"],
                "underlying_price": spot,
                "dte": dte,
                "provider": PROVIDER,
                "quote_ts": pd.Timestamp(as_of).tz_convert("UTC"),
            }
        )
        return frame[list(CHAIN_COLUMNS)]

    def average_dollar_volume(self, symbol: str) -> float:
        """A liquidity score for ordering scans (liquid symbols first)."""
        profile = self.profile(symbol)
        return profile.daily_volume * profile.base_price


class SimulatedProvider:
    """`SimulatedMarket` behind the async `ChainSource`/`BarSource`/`QuoteSource` protocols."""

    name = PROVIDER
    # No URL to keep short: a batch as large as the S&P 500 with the ETFs and alerted symbols.
    max_quote_batch = 1000

    def __init__(self, market: SimulatedMarket | None = None) -> None:
        self.market = market or SimulatedMarket()

    async def option_chain(
        self, symbol: str, as_of: datetime, only: ChainFilter = WHOLE_CHAIN
    ) -> pd.DataFrame:
        return only.apply(self.market.option_chain(symbol, as_of, only))

    async def bars(
        self, symbol: str, timeframe: str, start: datetime, end: datetime
    ) -> pd.DataFrame:
        return self.market.bars(symbol, timeframe, start, end)

    async def quotes(self, symbols: Sequence[str], as_of: datetime) -> pd.DataFrame:
        rows = [dataclasses.asdict(self.market.quote(symbol, as_of)) for symbol in symbols]
        frame = pd.DataFrame(rows, columns=[c for c in QUOTE_COLUMNS if c != "provider"])
        frame["quote_ts"] = pd.to_datetime(frame["quote_ts"], utc=True)
        return frame.assign(provider=PROVIDER)[list(QUOTE_COLUMNS)]

    async def aclose(self) -> None:
        """Nothing to close; present so callers treat every source alike."""


def expiry_instant(expiration: date) -> datetime:
    """Options stop trading at 16:00 New York time on expiration day."""
    return datetime.combine(expiration, time(16, 0), calendar.NY)


def _years_to(expiration: date, as_of: datetime) -> float:
    seconds = (expiry_instant(expiration) - as_of).total_seconds()
    return max(seconds, 60.0) / (365.0 * 86400.0)


def _business_expiry(friday: date) -> date:
    """A Friday expiry moves to the previous session when the exchange is closed that day."""
    day = friday
    while calendar.FIRST_SESSION <= day <= calendar.CALENDAR_END and not calendar.is_session(day):
        day -= timedelta(days=1)
    return day


def _contract_draws(seed: int, occ_symbols: Sequence[str], day: date) -> np.ndarray:
    """Four uniforms in (0, 1) per contract, fixed for the contract and the day (a hash of both:
    the same whatever else the chain lists), so a contract's quote changes between snapshots
    only as the market moves."""
    out = np.empty((len(occ_symbols), 4))
    for row, occ in enumerate(occ_symbols):
        digest = hashlib.blake2b(f"{seed}|{occ}|{day}".encode(), digest_size=16).digest()
        out[row] = np.frombuffer(digest, dtype="<u4")
    return (out + 0.5) / 2.0**32


def _session_fraction(as_of: datetime) -> float:
    """How much of the session has traded by `as_of` (at least one 15-minute window's worth, so
    a chain at the open is not all zero volume; 1 after the close or between sessions)."""
    day = as_of.astimezone(calendar.NY).date()
    if not calendar.is_session(day):
        return 1.0
    current = calendar.session(day)
    done = (as_of - current.open).total_seconds() / (current.close - current.open).total_seconds()
    return float(np.clip(done, 15 / 390, 1.0)) if as_of >= current.open else 1.0


@functools.lru_cache(maxsize=64)
def _sessions(first: date, last: date) -> tuple[calendar.Session, ...]:
    """Sessions in [first, last], cached: a backfill asks for the same range once per symbol."""
    return tuple(calendar.sessions_between(first, last))


def _latest_weekday(day: date) -> date:
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


def _strike_step(spot: float) -> float:
    for limit, step in ((25, 0.5), (100, 1.0), (250, 2.5), (1000, 5.0)):
        if spot < limit:
            return step
    return 10.0


def _aggregate(minutes: pd.DataFrame, timeframe: str, day: date) -> pd.DataFrame:
    """Aggregate one session's 1m bars to `timeframe` (5m buckets start at the open)."""
    if timeframe == "1m" or minutes.empty:
        return minutes
    if timeframe == "5m":
        bucket = minutes["ts"].dt.floor("5min")
    else:
        bucket = pd.Series(pd.Timestamp(day, tz="UTC"), index=minutes.index)
    return aggregate_bars(
        minutes, bucket, symbol=minutes["symbol"].iloc[0], timeframe=timeframe, provider=PROVIDER
    )
