"""Building the configured providers per capability, and skipping the ones that cannot be."""

from __future__ import annotations

import asyncio

import pytest

from volaris_assets.providers.polygon import PolygonClient
from volaris_assets.providers.registry import (
    PROVIDER_MODULES,
    Skipped,
    build_sources,
    configured_providers,
    load_module,
    parse_provider_list,
)
from volaris_assets.providers.schwab import SchwabClient
from volaris_assets.providers.simulated import SimulatedProvider

SECRET = "very-secret-value"


def _close(sources):
    for source in sources:
        asyncio.run(source.aclose())


def test_provider_lists_parse_in_order_and_default_to_simulated():
    assert parse_provider_list(" Schwab, polygon,,schwab ,YAHOO") == ["schwab", "polygon", "yahoo"]
    assert parse_provider_list("") == parse_provider_list(None) == ["simulated"]
    assert configured_providers("chain", {"VOLARIS_CHAIN_PROVIDERS": "schwab,polygon"}) == [
        "schwab",
        "polygon",
    ]
    assert configured_providers("daily", {}) == ["simulated"]
    with pytest.raises(ValueError):
        configured_providers("options", {})


def test_every_module_declares_what_the_registry_needs():
    for name in PROVIDER_MODULES:
        module = load_module(name)
        assert module.NAME == name
        assert set(module.CAPABILITIES) <= {"chain", "intraday", "daily", "profile", "history"}
        assert all(key.isupper() for key in module.REQUIRED_SETTINGS)
        assert callable(module.create)


def test_missing_credentials_are_skipped_with_a_reason_not_a_crash():
    settings = {"SCHWAB_APP_KEY": SECRET, "POLYGON_API_KEY": SECRET}
    sources, skipped = build_sources(
        ["schwab", "polygon", "yahoo", "simulated"], settings, "chain", SimulatedProvider
    )
    assert [s.name for s in sources] == ["polygon", "yahoo", "simulated"]
    assert isinstance(sources[0], PolygonClient) and isinstance(sources[2], SimulatedProvider)
    assert skipped == [
        Skipped("schwab", "missing settings: SCHWAB_SECRET_KEY, SCHWAB_REFRESH_TOKEN")
    ]
    assert SECRET not in repr(skipped)
    _close(sources)


def test_capabilities_unknown_names_and_bad_settings_are_skipped():
    settings = {
        "FINNHUB_API_KEY": SECRET,
        "SCHWAB_APP_KEY": "a",
        "SCHWAB_SECRET_KEY": "b",
        "SCHWAB_REFRESH_TOKEN": SECRET,
        "SCHWAB_REFRESH_TOKEN_ISSUED_AT": "last tuesday",
    }
    sources, skipped = build_sources(
        ["finnhub", "etrade", "schwab", "simulated"], settings, "chain", SimulatedProvider
    )
    reasons = {s.provider: s.reason for s in skipped}
    assert reasons["finnhub"] == "does not provide chain data"
    assert reasons["etrade"].startswith("unknown provider")
    assert reasons["schwab"] == "invalid settings (ValueError)"
    assert [s.name for s in sources] == ["simulated"]
    assert SECRET not in repr(skipped)

    profile_sources, profile_skipped = build_sources(
        ["simulated", "finnhub"], settings, "profile", SimulatedProvider
    )
    assert [s.name for s in profile_sources] == ["finnhub"]
    assert profile_skipped == [Skipped("simulated", "does not provide profile data")]
    _close(profile_sources)


def test_sandbox_settings_build_every_provider():
    from volaris_assets.sandbox.server import Sandbox

    unstarted = Sandbox()  # only its settings are needed
    settings = unstarted.settings()
    unstarted.stop()
    sources, skipped = build_sources(list(PROVIDER_MODULES), settings, "daily", SimulatedProvider)
    assert skipped == [
        Skipped("finnhub", "does not provide daily data"),
        Skipped("robinhood", "does not provide daily data"),
    ]
    assert isinstance(sources[0], SchwabClient) and len(sources) == 6
    chains, skipped = build_sources(list(PROVIDER_MODULES), settings, "chain", SimulatedProvider)
    assert [s.name for s in chains][-1] == "robinhood" and len(skipped) == 4
    _close(chains)
    _close(sources)
