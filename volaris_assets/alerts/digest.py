"""The morning digest: yesterday's movers and the IV picture, from the warehouse.

Posted at the open of each session (see `monitoring/digest.py`), it reports on the last completed
session against the one before it: the biggest daily moves (from the `1d` bars), the highest
30-day ATM IVs, the highest IV ranks and the biggest changes in IV (all from `iv_metrics`). IV
rank compares today's IV with a year (252 sessions) of it: until that history exists the digest
says how much there is, and with fewer than `MIN_OBSERVATIONS` sessions there is no rank at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time

import pandas as pd
import sqlalchemy as sa

from volaris_assets import calendar
from volaris_assets.quant.iv_metrics import MIN_OBSERVATIONS, RANK_WINDOW
from volaris_assets.warehouse import tables
from volaris_assets.warehouse.store import Warehouse, as_date

TOP = 5


@dataclass(frozen=True)
class Digest:
    """What the digest says; each list is (symbol, value, detail) lines, best first."""

    session: date
    previous: date
    gainers: list[tuple[str, float, float]]
    losers: list[tuple[str, float, float]]
    iv_rank: list[tuple[str, float, float]]
    iv_changes: list[tuple[str, float, float]]
    # The highest 30-day ATM IVs (symbol, IV, sessions of IV history), and the longest history
    # any symbol has (None: no IV metrics for the session).
    iv_high: list[tuple[str, float, float]]
    iv_history: int | None

    @property
    def empty(self) -> bool:
        return not (self.gainers or self.losers or self.iv_high or self.iv_rank or self.iv_changes)

    def fields(self) -> dict[str, str]:
        """Embed fields, one block per list; empty lists are left out, except IV rank, which
        says why it is missing while the IV history is too short."""
        blocks = {
            "Top gainers": [f"{s} {v:+.2%} ({d:.2f})" for s, v, d in self.gainers],
            "Top losers": [f"{s} {v:+.2%} ({d:.2f})" for s, v, d in self.losers],
            "Highest IV (30-day ATM)": [f"{s} {v:.1%}" for s, v, _ in self.iv_high],
            "Highest IV rank": [f"{s} {v:.0f} (IV {d:.1%})" for s, v, d in self.iv_rank],
            "Biggest IV changes": [f"{s} {v:+.1f} pts (IV {d:.1%})" for s, v, d in self.iv_changes],
        }
        note = self.iv_history_note()
        if note:
            blocks["Highest IV rank"].append(note)
        return {name: "\n".join(lines) for name, lines in blocks.items() if lines}

    def iv_history_note(self) -> str | None:
        """What IV rank rests on while there is less than a year of IV history."""
        if self.iv_history is None or self.iv_history >= RANK_WINDOW:
            return None
        history = f"{self.iv_history} of {RANK_WINDOW} sessions of IV history"
        if not self.iv_rank:
            return f"IV rank needs history: {history} (ranks start at {MIN_OBSERVATIONS})"
        return f"(ranks over {history})"


def build_digest(warehouse: Warehouse, today: date, top: int = TOP) -> Digest:
    """The digest to post on `today`: the last session before it, against the one before that."""
    session = calendar.previous_session(today).day
    previous = calendar.previous_session(session).day
    moves = _daily_moves(warehouse, previous, session)
    iv = _iv_pairs(warehouse, previous, session)
    return Digest(
        session=session,
        previous=previous,
        gainers=_lines(moves[moves["change"] > 0], "change", "close", top, ascending=False),
        losers=_lines(moves[moves["change"] < 0], "change", "close", top, ascending=True),
        iv_rank=_lines(iv.dropna(subset=["iv_rank"]), "iv_rank", "atm_iv", top, ascending=False),
        iv_changes=_biggest_changes(iv, top),
        iv_high=_lines(iv.dropna(subset=["atm_iv"]), "atm_iv", "history", top, ascending=False),
        iv_history=int(iv["history"].max()) if iv["history"].notna().any() else None,
    )


def _daily_moves(warehouse: Warehouse, previous: date, session: date) -> pd.DataFrame:
    """Close-to-close change per symbol; daily bars are stamped at the session date 00:00 UTC."""
    bars = tables.price_bars
    stamps = {
        day: datetime.combine(day, time(0), tzinfo=calendar.UTC) for day in (previous, session)
    }
    frame = warehouse.read_frame(
        sa.select(bars.c.symbol, bars.c.ts, bars.c.close).where(
            bars.c.timeframe == "1d",
            bars.c.ts.in_([warehouse.instant(stamp) for stamp in stamps.values()]),
        )
    )
    if frame.empty:
        return pd.DataFrame(columns=["symbol", "change", "close"])
    frame["day"] = pd.to_datetime(frame["ts"], utc=True).dt.date
    closes = frame.pivot_table(index="symbol", columns="day", values="close").reindex(
        columns=[previous, session]
    )
    closes = closes.dropna()
    return pd.DataFrame(
        {
            "symbol": closes.index,
            "change": (closes[session] / closes[previous] - 1.0).to_numpy(),
            "close": closes[session].to_numpy(),
        }
    )


def _iv_pairs(warehouse: Warehouse, previous: date, session: date) -> pd.DataFrame:
    """Per symbol: the session's IV rank and ATM IV, and the previous session's ATM IV."""
    iv = tables.iv_metrics
    frame = warehouse.read_frame(
        sa.select(
            iv.c.symbol, iv.c.date, iv.c.atm_iv_30d, iv.c.iv_rank, iv.c.iv_history_days
        ).where(iv.c.date.in_([previous, session]))
    )
    columns = ["symbol", "iv_rank", "atm_iv", "previous_iv", "history"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    frame["date"] = frame["date"].map(as_date)
    current = frame[frame["date"] == session].set_index("symbol")
    before = frame[frame["date"] == previous].set_index("symbol")
    out = pd.DataFrame(
        {
            "iv_rank": current["iv_rank"],
            "atm_iv": current["atm_iv_30d"],
            "previous_iv": before["atm_iv_30d"].reindex(current.index),
            "history": current["iv_history_days"],
        }
    )
    return (
        out.rename_axis("symbol")
        .reset_index()[columns]
        .astype({"iv_rank": float, "atm_iv": float, "previous_iv": float, "history": float})
    )


def _biggest_changes(iv: pd.DataFrame, top: int) -> list[tuple[str, float, float]]:
    pairs = iv.dropna(subset=["atm_iv", "previous_iv"]).copy()
    pairs["points"] = (pairs["atm_iv"] - pairs["previous_iv"]) * 100.0
    pairs = pairs.reindex(pairs["points"].abs().sort_values(ascending=False).index).head(top)
    return [(r.symbol, float(r.points), float(r.atm_iv)) for r in pairs.itertuples()]


def _lines(
    frame: pd.DataFrame, value: str, detail: str, top: int, *, ascending: bool
) -> list[tuple[str, float, float]]:
    best = frame.sort_values(value, ascending=ascending).head(top)
    return [
        (str(s), float(v), float(d))
        for s, v, d in zip(best["symbol"], best[value], best[detail], strict=True)
    ]
