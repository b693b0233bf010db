"""Fixtures of the reliability tests: a scratch database each, per-process provider state reset,
one sandbox per module at the fixed market clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from volaris_assets.resources import market_data
from volaris_assets.sandbox.server import Sandbox, start_sandbox
from volaris_assets_tests.conftest import postgres_url
from volaris_assets_tests.reliability.databases import scratch_database
from volaris_assets_tests.reliability.market_setup import AS_OF


@pytest.fixture
def scratch_db() -> Iterator[str]:
    """A PostgreSQL database of this test's own (fails under CI when there is no server)."""
    with scratch_database(postgres_url()) as url:
        yield url


@pytest.fixture(autouse=True)
def fresh_provider_state() -> Iterator[None]:
    """Circuit breakers and token buckets live per process, and every production run is a
    process of its own: start each test (and leave) with none of them."""
    market_data._resilience.cache_clear()
    yield
    market_data._resilience.cache_clear()


@pytest.fixture(scope="module")
def reliability_sandbox() -> Iterator[Sandbox]:
    with start_sandbox(as_of=AS_OF, seed=7) as sandbox:
        yield sandbox
