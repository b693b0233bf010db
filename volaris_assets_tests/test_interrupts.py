"""A step's event loop stops when Dagster stops the run, every time, and cleans up first."""

import asyncio
import contextvars
import os
import signal
import threading

import pytest
from dagster._core.errors import DagsterExecutionInterruptedError, raise_execution_interrupts
from dagster._utils.interrupts import capture_interrupts

from volaris_assets.ingest.interrupts import run_interruptibly

REQUEST = contextvars.ContextVar("request", default="unset")


async def callback_heavy(cleaned_up: list[str]) -> None:
    """Many tasks resolving futures through plain callbacks and worker threads, as a fan-out
    does, for 3 s: longer than any test waits to interrupt it."""
    deadline = asyncio.get_running_loop().time() + 3.0

    async def one(index: int) -> None:
        loop = asyncio.get_running_loop()
        while loop.time() < deadline:
            future = loop.create_future()
            loop.call_soon(future.set_result, index)
            await future
            await asyncio.to_thread(sum, range(50))

    try:
        await asyncio.gather(*(one(i) for i in range(32)))
    finally:
        cleaned_up.append("closed")


@pytest.mark.parametrize("delay_s", [0.05, 0.13, 0.2, 0.31, 0.4, 0.5, 0.66, 0.75])
def test_a_sigterm_always_interrupts_the_loop_after_it_cleaned_up(delay_s: float):
    """Dagster's own handlers, as `dagster api execute_run` installs them around a step. With
    a bare `asyncio.run` about one SIGTERM in eight was swallowed here."""
    cleaned_up: list[str] = []
    timer = threading.Timer(delay_s, os.kill, (os.getpid(), signal.SIGTERM))
    with pytest.raises(DagsterExecutionInterruptedError):
        with capture_interrupts(), raise_execution_interrupts():
            timer.start()
            run_interruptibly(lambda: callback_heavy(cleaned_up))
    timer.join()
    assert cleaned_up == ["closed"]


def test_results_errors_and_context_pass_through():
    async def answer() -> str:
        return REQUEST.get()

    async def fail() -> None:
        raise ValueError("bad symbol")

    token = REQUEST.set("scan")
    try:
        assert run_interruptibly(answer) == "scan"
    finally:
        REQUEST.reset(token)
    with pytest.raises(ValueError, match="bad symbol"):
        run_interruptibly(fail)
