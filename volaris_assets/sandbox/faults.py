"""Fault profiles: what the sandbox breaks, how often, decided reproducibly.

A profile is a set of per-request rates. Whether a given request is hit is a pure function of
(seed, the request's identity, how many times that identity has been seen), so a run replays
exactly, yet a retry of the same request draws again and can succeed, as it would against a
real provider having a bad minute. Spell a profile as a preset name (`none`, `flaky`,
`hostile`), a JSON object, or `key=value` pairs, optionally after a preset:
`flaky,timeout=0.2,latency_ms=50-150`.

One fault is not drawn but aimed: every data or chain request naming one of
`huge_body_symbols` (`huge_body_symbols=AAPL+MSFT`, or a JSON list) is answered 200 with
`huge_body_mb` MB of JSON, the runaway answer a client must refuse without running out of memory.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from volaris_assets.symbols import normalize_symbol

# Faults that replace the whole response, in the order a draw is matched against them.
TRANSPORT_FAULTS: tuple[str, ...] = (
    "rate_limit",
    "server_error",
    "timeout",
    "reset",
    "truncated",
    "expired_token",
)
# Faults that corrupt the payload but still answer 200.
PAYLOAD_FAULTS: tuple[str, ...] = ("malformed", "bad_greeks", "crossed", "empty_chain")
FAULT_KINDS: tuple[str, ...] = TRANSPORT_FAULTS + PAYLOAD_FAULTS
# The aimed fault (see the module docstring), as `SandboxStats.faults` counts it.
HUGE_BODY = "huge_body"


@dataclass(frozen=True)
class FaultProfile:
    """Per-request probabilities of each fault, plus the shape of latency and of hangs."""

    rate_limit: float = 0.0
    server_error: float = 0.0
    timeout: float = 0.0
    reset: float = 0.0
    truncated: float = 0.0
    expired_token: float = 0.0
    malformed: float = 0.0
    bad_greeks: float = 0.0
    crossed: float = 0.0
    empty_chain: float = 0.0
    latency_ms: tuple[float, float] = (0.0, 0.0)
    # What an injected 429 advises: a fixed number of seconds, or None (spelled `window`) for
    # the time until the provider account's window admits a request, 0 when it has room now,
    # as a provider whose 429s come from its window advises.
    retry_after_s: float | None = 1.0
    hang_s: float = 30.0
    row_fraction: float = 0.2
    huge_body_symbols: frozenset[str] = frozenset()
    huge_body_mb: float = 50.0

    def __post_init__(self) -> None:
        for kind in FAULT_KINDS:
            rate = getattr(self, kind)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{kind} rate must be within [0, 1], got {rate}")
        low, high = self.latency_ms
        if not 0.0 <= low <= high:
            raise ValueError(
                f"latency_ms must be 'low-high' with 0 <= low <= high, got {low}-{high}"
            )
        if sum(getattr(self, kind) for kind in FAULT_KINDS) > 1.0:
            raise ValueError("fault rates add up to more than 1 (one fault per request)")
        if not 0.0 < self.row_fraction <= 1.0:
            raise ValueError("row_fraction must be within (0, 1]")
        if not self.huge_body_mb > 0.0:
            raise ValueError(f"huge_body_mb must be > 0, got {self.huge_body_mb}")


PRESETS: dict[str, FaultProfile] = {
    "none": FaultProfile(),
    "flaky": FaultProfile(
        rate_limit=0.03,
        server_error=0.03,
        timeout=0.01,
        reset=0.01,
        truncated=0.01,
        expired_token=0.01,
        malformed=0.02,
        bad_greeks=0.05,
        crossed=0.03,
        empty_chain=0.01,
        latency_ms=(5.0, 40.0),
    ),
    "hostile": FaultProfile(
        rate_limit=0.10,
        server_error=0.10,
        timeout=0.04,
        reset=0.04,
        truncated=0.04,
        expired_token=0.04,
        malformed=0.10,
        bad_greeks=0.15,
        crossed=0.10,
        empty_chain=0.05,
        latency_ms=(50.0, 150.0),
    ),
}


def parse_faults(spec: str | dict[str, Any] | FaultProfile | None) -> FaultProfile:
    """A `FaultProfile` from a preset name, JSON, `key=value` pairs, or a mapping."""
    if spec is None:
        return PRESETS["none"]
    if isinstance(spec, FaultProfile):
        return spec
    if isinstance(spec, dict):
        return _with_overrides(PRESETS["none"], spec)
    text = spec.strip()
    if text.startswith("{"):
        return _with_overrides(PRESETS["none"], json.loads(text))
    profile = PRESETS["none"]
    overrides: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        if "=" in part:
            key, value = (s.strip() for s in part.split("=", 1))
            overrides[key] = value
        elif part in PRESETS:
            profile = PRESETS[part]
        else:
            raise ValueError(f"unknown fault preset {part!r} (known: {', '.join(PRESETS)})")
    return _with_overrides(profile, overrides)


def _with_overrides(profile: FaultProfile, overrides: dict[str, Any]) -> FaultProfile:
    known = {f.name for f in fields(FaultProfile)}
    values: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in known:
            raise ValueError(f"unknown fault setting {key!r} (known: {', '.join(sorted(known))})")
        try:
            values[key] = _PARSERS.get(key, float)(value)
        except (TypeError, ValueError):
            raise ValueError(f"fault setting {key}={value!r} is not a valid value") from None
    return replace(profile, **values)


def _latency(value: Any) -> tuple[float, float]:
    if isinstance(value, (list, tuple)):
        low, high = value
    elif isinstance(value, str) and "-" in value:
        low, high = value.split("-", 1)
    else:
        low = high = value
    return float(low), float(high)


def _symbols(value: Any) -> frozenset[str]:
    """Canonical symbols from a JSON list or "AAPL+MSFT" (commas separate the profile's
    settings, so they cannot separate symbols)."""
    names = value.replace("+", " ").split() if isinstance(value, str) else value
    return frozenset(normalize_symbol(str(name)) for name in names)


def _retry_after(value: Any) -> float | None:
    return None if value is None or str(value).strip() == "window" else float(value)


# Settings that are not a plain number, and how to read them.
_PARSERS: dict[str, Callable[[Any], Any]] = {
    "latency_ms": _latency,
    "retry_after_s": _retry_after,
    "huge_body_symbols": _symbols,
}


@dataclass(frozen=True)
class Decision:
    """What to do to one request: at most one fault, and a latency."""

    fault: str | None
    latency_s: float
    rng: random.Random = field(compare=False)


def draw(
    profile: FaultProfile, seed: int, identity: str, occurrence: int, allowed: set[str]
) -> Decision:
    """Decide one request's fault among `allowed` kinds, reproducibly.

    Two independent uniforms come from a hash of (seed, identity, occurrence): one picks the
    fault by walking the cumulative rates, the other the latency. The returned RNG (same seed)
    picks which rows a payload fault corrupts.
    """
    digest = hashlib.blake2b(f"{seed}|{identity}|{occurrence}".encode(), digest_size=16).digest()
    pick = int.from_bytes(digest[:8], "little") / 2**64
    lag = int.from_bytes(digest[8:], "little") / 2**64
    fault = None
    cumulative = 0.0
    for kind in FAULT_KINDS:
        if kind not in allowed:
            continue
        cumulative += getattr(profile, kind)
        if pick < cumulative:
            fault = kind
            break
    low, high = profile.latency_ms
    return Decision(fault, (low + (high - low) * lag) / 1000.0, random.Random(digest))
