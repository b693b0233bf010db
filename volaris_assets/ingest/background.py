"""A watcher task that lives exactly as long as a block of a fan-out."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any


@contextlib.asynccontextmanager
async def alongside(watcher: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Run `watcher` (a loop that never ends on its own: a progress timer, a heartbeat) as a
    task while the block runs, and cancel it when the block ends, also when the block raises,
    so that no watcher outlives its run's event loop."""
    task = asyncio.create_task(watcher)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
