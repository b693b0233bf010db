"""Running a step's event loop so that Dagster can still stop the step.

Dagster stops a run (the UI's Terminate, run monitoring, `dagster run terminate`) with SIGTERM,
which its handler turns into an exception raised in the main thread wherever that thread is.
When the main thread is running an asyncio event loop, that is often inside a plain callback
(the loop's self-pipe reader, a future's callback), and asyncio catches and logs every
exception there except KeyboardInterrupt and SystemExit: the run logged "Exception in
callback" and went on to succeed. `run_interruptibly` keeps the main thread out of the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_interruptibly(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """`asyncio.run(main())` on a thread of its own while the calling thread waits.

    An interrupt raised in the waiting thread cancels the loop's task (its `finally` blocks
    close clients and finish the write in progress), waits for the loop to wind down, and is
    re-raised. The wait is an `Event`: an interrupted `Thread.join` marks a thread that is
    still running as stopped (bpo-45274). The loop runs in a copy of the caller's context.
    """
    context = contextvars.copy_context()
    started, finished = threading.Event(), threading.Event()
    handles: dict[str, Any] = {}
    outcome: dict[str, Any] = {}

    async def tracked() -> T:
        handles["loop"], handles["task"] = asyncio.get_running_loop(), asyncio.current_task()
        started.set()
        return await main()

    def target() -> None:
        try:
            outcome["value"] = context.run(asyncio.run, tracked())
        except BaseException as error:  # noqa: BLE001 - handed to the waiting thread
            outcome["error"] = error
        finally:
            started.set()
            finished.set()

    thread = threading.Thread(target=target, name="event-loop", daemon=True)
    thread.start()
    try:
        finished.wait()
    except BaseException:
        started.wait()
        if not finished.is_set():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: it is done
                handles["loop"].call_soon_threadsafe(handles["task"].cancel)
        finished.wait()
        thread.join()
        raise
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
