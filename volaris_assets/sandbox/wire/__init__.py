"""Per-provider wire formats served by the sandbox, by provider name.

Each module offers `ROUTES`, `authorize(request, ctx)` (None or the provider's 401 reply) and
`rate_limited_reply(retry_after_s)`; Schwab, Yahoo and Robinhood also `expired_reply()` for the
expired-token fault (an access token or crumb rejected early).
"""

from __future__ import annotations

from types import ModuleType

from volaris_assets.sandbox.wire import (
    alpaca,
    databento,
    finnhub,
    polygon,
    robinhood,
    schwab,
    tiingo,
    yahoo,
)

WIRES: dict[str, ModuleType] = {
    module.NAME: module
    for module in (schwab, polygon, yahoo, tiingo, alpaca, finnhub, databento, robinhood)
}
