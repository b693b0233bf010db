"""Settings validated once, before anything runs.

`load()` reads every documented variable through the model in `model.py` and either returns the
validated `Settings` or raises `SettingsError` listing every problem at once: the variable, its
value (secrets redacted) and the accepted form with an example. `materialize`, `volaris-doctor`
and the code location (so that the UI shows it) call it before they do anything else.
"""

from __future__ import annotations

import difflib
import functools
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import ValidationError
from pydantic.fields import FieldInfo

from volaris_assets import redaction
from volaris_assets.settings.model import Settings, extra, fields

__all__ = [
    "Problem",
    "Settings",
    "SettingsError",
    "fields",
    "load",
    "problems",
    "render",
    "unknown",
]

# A report longer than this would bury the first problem; the rest are counted.
MAX_LINES = 16
# Variables of the project's own tooling, read outside the model (bench/, the tests).
_TOOLING_PREFIXES = ("VOLARIS_BENCH_", "VOLARIS_TEST_")
logger = logging.getLogger(__name__)
# A webhook's id and token; a password passed as a query parameter.
_WEBHOOK_TOKEN = re.compile(r"(/api/webhooks/)\S*")
_QUERY_PASSWORD = re.compile(r"(?i)([?&](?:password|passwd|pwd)=)([^&\s]*)")
_HTTP_PATH = re.compile(r"(?i)^(https?://[^/?#]*)([/?#].*)$")


@dataclass(frozen=True)
class Problem:
    """One invalid variable."""

    variable: str
    shown: str
    reason: str
    accepted: str
    example: str

    def line(self) -> str:
        return (
            f"{self.variable}={self.shown!r}: {self.reason}; expected {self.accepted}, "
            f"e.g. {self.variable}={self.example}"
        )


class SettingsError(ValueError):
    """Raised by `load()`; its text is the whole report, ready to print."""

    def __init__(self, found: list[Problem]) -> None:
        super().__init__(render(found))
        self.problems = found


def load(env: Mapping[str, str] | None = None) -> Settings:
    """The validated settings of `env` (default: the process environment); a VOLARIS_*
    variable it does not know is logged once as a warning (`unknown`)."""
    env = os.environ if env is None else env
    settings, found = _validate(env)
    if found or settings is None:
        raise SettingsError(found)
    _warn_once(tuple(unknown(env)))
    return settings


def unknown(env: Mapping[str, str] | None = None) -> list[str]:
    """A line per VOLARIS_* variable that is no setting, with the closest one's name, and per
    other variable that nearly spells a setting's name (DATABSE_URL, POLYGON_APIKEY): a
    misspelled variable is otherwise ignored without a word, and the run goes on with the
    default (VOLARIS_CHAIN_PROVIDER=polygon leaves the chains on the simulated market,
    DATABSE_URL the warehouse on SQLite). Other variables are the environment's business."""
    env = os.environ if env is None else env
    known = fields()
    unprefixed = [name for name in known if not name.startswith("VOLARIS_")]
    lines = []
    for name in sorted(env):
        if name in known or name.startswith(_TOOLING_PREFIXES):
            continue
        if name.startswith("VOLARIS_"):
            close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.8)
        else:
            close = difflib.get_close_matches(name, unprefixed, n=1, cutoff=0.85)
            if not close:
                continue
        hint = f"; did you mean {close[0]}?" if close else ""
        lines.append(f"{name} is not a setting and is ignored{hint}")
    return lines


@functools.cache
def _warn_once(lines: tuple[str, ...]) -> None:
    for line in lines:
        logger.warning(line)


def problems(env: Mapping[str, str] | None = None) -> list[Problem]:
    """Every problem in `env`, for reports that go on past them (the doctor)."""
    return _validate(os.environ if env is None else env)[1]


def render(found: list[Problem]) -> str:
    """The report a user reads: one line per problem, at most `MAX_LINES` of them."""
    lines = [f"invalid settings ({len(found)}); nothing was run:"]
    lines += [f"  {problem.line()}" for problem in found[:MAX_LINES]]
    if len(found) > MAX_LINES:
        lines.append(f"  ... and {len(found) - MAX_LINES} more")
    lines.append("Fix them in the environment (every variable: .env.example, README).")
    return "\n".join(lines)


def _validate(env: Mapping[str, str]) -> tuple[Settings | None, list[Problem]]:
    known = fields()
    raw = {name: str(env[name]).strip() for name in known if str(env.get(name) or "").strip()}
    for name in raw:
        if _is_secret(known[name], raw[name]):
            redaction.register(*_masked(raw[name])[1])
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as error:
        return None, [_problem(known, raw, detail) for detail in error.errors()]
    return settings, _missing_credentials(settings, raw)


def _problem(known: dict[str, FieldInfo], raw: Mapping[str, str], detail: dict) -> Problem:
    name = str(detail["loc"][0]) if detail["loc"] else "settings"
    message = str(detail["msg"]).removeprefix("Value error, ")
    return _make(known[name], name, raw.get(name, ""), message[:1].lower() + message[1:])


def _make(info: FieldInfo, name: str, value: str, reason: str) -> Problem:
    return Problem(
        variable=name,
        shown=_shown(value, secret=_is_secret(info, value)),
        reason=reason,
        accepted=str(extra(info, "accepted")),
        example=str((info.examples or [""])[0]),
    )


def _missing_credentials(settings: Settings, raw: Mapping[str, str]) -> list[Problem]:
    """A provider named for a capability without its keys would be skipped at run time, which
    is how a user ends up on the simulated market believing they ingest real data."""
    from volaris_assets.providers import registry

    known = fields()
    found = []
    for capability in registry.CAPABILITIES:
        variable = registry.CAPABILITY_SETTINGS[capability]
        for name in filter(None, settings.providers(capability).split(",")):
            if name == registry.SIMULATED:
                continue
            missing = registry.missing_settings(registry.load_module(name), raw)
            if missing:
                reason = f"{name} needs {', '.join(missing)}, which {_are(missing)} unset"
                found.append(_make(known[variable], variable, raw.get(variable, ""), reason))
    return found


def _are(names: list[str]) -> str:
    return "is" if len(names) == 1 else "are"


def _is_secret(info: FieldInfo, value: str) -> bool:
    """Whether `value` of the field `info` is masked (see `model.setting`'s `secret`)."""
    kind = extra(info, "secret")
    return bool(kind) and not (kind == "url" and "://" not in value)


def _shown(value: str, *, secret: bool) -> str:
    """The value as it may be printed: secrets masked, but a URL keeps the parts a user needs
    to spot a typo (scheme, user, host, database) with its password hidden."""
    value = value[:120]
    return _masked(value)[0] if secret else redaction.redact(value)


def _masked(value: str) -> tuple[str, list[str]]:
    """(shown, hidden parts) for a secret variable's value, malformed ones included: a URL's
    password (everything between its user's ':' and the last '@', '@'s and all) and any
    `password=` parameter; a webhook's id and token, or the whole path of another http(s) URL
    (a mistyped webhook); the whole value when it is not a URL (an API key)."""
    if "://" not in value and "@" not in value:
        return "***", [value]
    hidden: list[str] = [password for _, password in _QUERY_PASSWORD.findall(value)]
    shown = _QUERY_PASSWORD.sub(r"\1***", value)
    if "@" in shown:
        head, _, host = shown.rpartition("@")
        scheme, separator, userinfo = head.rpartition("://")
        user, colon, password = userinfo.partition(":")
        hidden.append(password)
        shown = f"{scheme}{separator}{user}{':***' if colon else ''}@{host}"
    elif token := _WEBHOOK_TOKEN.search(shown):
        hidden.append(token.group(0).removeprefix("/api/webhooks/"))
        shown = _WEBHOOK_TOKEN.sub(r"\1***", shown)
    elif path := _HTTP_PATH.match(shown):
        hidden.append(path.group(2).lstrip("/"))
        shown = f"{path.group(1)}/***"
    return shown, [part for part in hidden if part]
