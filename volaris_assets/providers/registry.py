"""Which provider modules exist, and building the configured ones for one capability.

Modules are imported lazily by name so that a broken or optional provider cannot break the
import of the platform, and so that a user without keys never touches a provider's code path.
A provider that cannot be built (no credentials, no such capability, bad settings) is returned
as a `Skipped` with a reason for the caller to log; the reason names settings, never values.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from volaris_assets.providers.base import PROVIDER_NAMES, BarSource, ChainSource
from volaris_assets.providers.http import RESPONSE_CAP_SETTING, parse_response_caps

SIMULATED = "simulated"
PROVIDER_MODULES: dict[str, str] = {
    name: f"volaris_assets.providers.{name}" for name in PROVIDER_NAMES
}
# Every name a provider list may hold, the offline simulated market first.
KNOWN_PROVIDERS: tuple[str, ...] = (SIMULATED, *PROVIDER_MODULES)
CAPABILITIES: tuple[str, ...] = ("chain", "intraday", "daily", "profile", "history")
# The environment variable that orders the providers of each capability (first is primary).
CAPABILITY_SETTINGS: dict[str, str] = {
    "chain": "VOLARIS_CHAIN_PROVIDERS",
    "intraday": "VOLARIS_INTRADAY_PROVIDERS",
    "daily": "VOLARIS_DAILY_PROVIDERS",
    "profile": "VOLARIS_PROFILE_PROVIDERS",
    "history": "VOLARIS_HISTORY_PROVIDERS",
}
DEFAULT_PROVIDERS: tuple[str, ...] = (SIMULATED,)


@dataclass(frozen=True)
class Skipped:
    """A configured provider that was not built, and why."""

    provider: str
    reason: str


def parse_provider_list(text: str | None) -> list[str]:
    """Provider names from "schwab, Polygon,,yahoo" (lower-cased, de-duplicated, in order);
    empty or unset means the simulated market, so nothing changes for a user without keys."""
    names: list[str] = []
    for part in (text or "").split(","):
        name = part.strip().lower()
        if name and name not in names:
            names.append(name)
    return names or list(DEFAULT_PROVIDERS)


def configured_providers(capability: str, settings: Mapping[str, str]) -> list[str]:
    """The provider order configured for `capability` (e.g. `VOLARIS_CHAIN_PROVIDERS`)."""
    return parse_provider_list(settings.get(CAPABILITY_SETTINGS[_checked(capability)]))


def load_module(name: str) -> ModuleType:
    """The provider module for `name` (KeyError for a name not in `PROVIDER_MODULES`)."""
    return importlib.import_module(PROVIDER_MODULES[name])


def missing_settings(module: ModuleType, settings: Mapping[str, str]) -> list[str]:
    """Required settings that are unset or blank."""
    return [key for key in module.REQUIRED_SETTINGS if not str(settings.get(key) or "").strip()]


def build_sources(
    names: Sequence[str],
    settings: Mapping[str, str],
    capability: str,
    simulated_factory: Callable[[], Any],
) -> tuple[list[Any], list[Skipped]]:
    """Build the sources named (in order) for `capability`; the rest come back as `Skipped`.

    `simulated_factory()` builds the simulated provider (it lives outside this module's
    knowledge). Each built source owns its HTTP client; close them with `aclose()`. Each HTTP
    source gets its response cap from `VOLARIS_MAX_RESPONSE_MB` here, once for all provider
    modules; a malformed value raises `ValueError` rather than building sources without a cap
    the operator meant to set.
    """
    _checked(capability)
    caps = parse_response_caps(settings.get(RESPONSE_CAP_SETTING))
    sources: list[Any] = []
    skipped: list[Skipped] = []
    for name in names:
        if name == SIMULATED:
            source = simulated_factory()
            if capability == "history" and isinstance(source, ChainSource):
                source = _replayed(source)
            if _serves(source, capability):
                sources.append(source)
            else:
                skipped.append(Skipped(name, f"does not provide {capability} data"))
            continue
        built = _build_one(name, settings, capability)
        if isinstance(built, Skipped):
            skipped.append(built)
        else:
            built.max_response_bytes = caps.for_provider(name, built.response_cap_mb)
            sources.append(built)
    return sources, skipped


def _build_one(name: str, settings: Mapping[str, str], capability: str) -> Any:
    if name not in PROVIDER_MODULES:
        return Skipped(name, f"unknown provider (known: {', '.join(KNOWN_PROVIDERS)})")
    try:
        module = load_module(name)
    except ImportError as exc:
        return Skipped(name, f"module failed to import ({type(exc).__name__})")
    if capability not in module.CAPABILITIES:
        return Skipped(name, f"does not provide {capability} data")
    missing = missing_settings(module, settings)
    if missing:
        return Skipped(name, f"missing settings: {', '.join(missing)}")
    try:
        return module.create(settings)
    except (ValueError, TypeError) as exc:
        return Skipped(name, f"invalid settings ({type(exc).__name__})")


def _serves(source: Any, capability: str) -> bool:
    if capability == "chain":
        return isinstance(source, ChainSource)
    if capability == "profile":
        return callable(getattr(source, "profile", None))
    if capability == "history":
        return callable(getattr(source, "session_close_chain", None))
    return isinstance(source, BarSource)


def _replayed(source: ChainSource) -> Any:
    """The simulated market's history: it replays any past chain (`providers.past_chains`)."""
    from volaris_assets.providers.past_chains import ReplayedHistory

    return ReplayedHistory(source)


def _checked(capability: str) -> str:
    if capability not in CAPABILITIES:
        raise ValueError(f"unknown capability {capability!r}; expected one of {CAPABILITIES}")
    return capability
