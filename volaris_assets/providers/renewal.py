"""One access-token renewal at a time per client, shared by every request that needs it, and
stopped by none of them (Schwab's refresh, Robinhood's refresh or login).

A renewal used to run inside the first caller under a lock: when that caller's attempt timed
out, its cancellation cut the renewal off mid-request. The next request then renewed again
(two token requests where one would do), and where the provider had already rotated the
refresh token for the cut-off request, renewed with a spent one: Schwab's then asks for a
human login, Robinhood's falls back on a password login. Here the renewal is a task of its own
that callers await through `asyncio.shield`; it ends on its own request timeout. A caller that
joined a renewal which then failed asks once itself: the one it joined was sent for callers
before it, maybe long before, and may have been hung from the start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx

from volaris_assets.providers.base import ProviderError
from volaris_assets.providers.http import HttpSource, monotonic


class Renewal:
    """The renewal in flight for one client (bound to the event loop of the run using it)."""

    def __init__(self, renew: Callable[[], Awaitable[None]]) -> None:
        self._renew = renew
        self._task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        """Renew, or wait for the renewal in flight; raises what the renewal raised."""
        joined = self._task is not None and not self._task.done()
        try:
            await asyncio.shield(self._current())
        except ProviderError:
            if not joined:
                raise
            await asyncio.shield(self._current())  # or the one another such caller just began

    async def aclose(self) -> None:
        """Cancel a renewal whose callers have all gone: its task must not outlive the loop."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _current(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._renew())
            # Read its failure even when every caller has gone (no "never retrieved" warning).
            self._task.add_done_callback(lambda task: task.cancelled() or task.exception())
        return self._task


class TokenSource(HttpSource):
    """An HTTP source whose requests carry an access token (Schwab, Robinhood): `_renew`
    obtains one and sets `_access_token` and `_access_expires_at`; `_token` hands out the one
    in force and renews through one `Renewal` when it has lapsed or was just refused."""

    def __init__(self, base_url: str, client: httpx.AsyncClient | None) -> None:
        super().__init__(base_url, client)
        self._access_token: str | None = None
        self._access_expires_at = 0.0
        self._renewal = Renewal(self._renew)

    async def _renew(self) -> None:
        """Obtain an access token and set `_access_token` and `_access_expires_at`."""
        raise NotImplementedError

    async def _token(self, stale: str | None = None) -> str:
        """A valid access token; `stale` is one a 401 just rejected. Comparing against it stops
        a burst of 401s from renewing once per request."""
        fresh = self._access_token is not None and monotonic() < self._access_expires_at
        if not fresh or self._access_token == stale:
            await self._renewal.run()
        return self._access_token  # type: ignore[return-value]

    async def aclose(self) -> None:
        await self._renewal.aclose()
        await super().aclose()
