"""What went wrong with the warehouse, in one paragraph a user can act on.

A database failure reaches a run as a driver error (psycopg2 or sqlite3) wrapped by SQLAlchemy,
and its text (`could not translate host name`, `attempt to write a readonly database`, SQL and
parameters) says little to someone who only set DATABASE_URL. `classify` sorts it into one of a
few infrastructure problems from the SQLSTATE code and the driver's message; `explain` turns
that into what failed, which database (never its password) and the likely fix. A row the
database refused (a key conflict, a value out of range) is not infrastructure: `classify` says
None and the caller records it as bad data.

`Problem.transient` marks the failures a restart or a failover causes (refused, dropped,
starting up): the warehouse reconnects through those for a while instead of failing the run.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass

import sqlalchemy as sa

from volaris_assets import redaction
from volaris_assets.warehouse.urls import describe_database, normalize_url

# The driver modules whose exceptions are database errors (SQLAlchemy wraps them as `.orig`;
# the COPY path calls psycopg2 directly, so they also arrive unwrapped).
_DRIVER_MODULES = ("psycopg2", "sqlite3")
# Errors about the database or its connection rather than a row (DB-API's own split: its
# OperationalError and InterfaceError, in SQLAlchemy's wrapping or the driver's own classes).
_UNCLASSIFIED_INFRASTRUCTURE = (sa.exc.OperationalError, sa.exc.InterfaceError, OSError)


class WarehouseUnavailable(RuntimeError):
    """The warehouse cannot be used for infrastructure reasons; the message says which
    database, what failed and the likely fix. The run stops rather than record noise."""


@dataclass(frozen=True)
class Problem:
    """One class of infrastructure failure, as a user reads it."""

    label: str  # what failed, in two or three words
    what: str  # completes "<the database> ..."
    fix: str
    transient: bool = False  # caused by a restart or failover: worth reconnecting


@dataclass(frozen=True)
class _Rule:
    problem: Problem
    codes: tuple[str, ...] = ()  # SQLSTATE codes, or two-character classes
    pattern: str | None = None  # a regular expression over the driver's lower-cased message

    def matches(self, code: str, message: str) -> bool:
        if code and any(code.startswith(c) for c in self.codes):
            return True
        return self.pattern is not None and re.search(self.pattern, message) is not None


_RECONNECTS = "runs reconnect on their own for a while"
REFUSED = Problem(
    "connection refused",
    "refused the connection",
    "Is the server running and listening on that host and port? Check DATABASE_URL.",
    transient=True,
)
UNREACHABLE = Problem(
    "unreachable",
    "did not answer (timed out or no route)",
    "Check that the server is up and reachable from this machine (firewall, VPN, security "
    "group) and the host and port in DATABASE_URL.",
    transient=True,
)
NOT_ACCEPTING = Problem(
    "not accepting connections",
    "is not accepting connections (starting up, shutting down or out of connection slots)",
    f"Wait for the server or check its log; {_RECONNECTS}.",
    transient=True,
)
CONNECTION_LOST = Problem(
    "connection lost",
    "dropped the connection (a restart, a failover or an idle-connection timeout)",
    f"Check that the server is up; {_RECONNECTS}.",
    transient=True,
)
OTHER = Problem("database error", "failed", "Check the database server and its log.")

_RULES: tuple[_Rule, ...] = (
    _Rule(
        Problem(
            "authentication failed",
            "refused the login",
            "Check the user and password in DATABASE_URL (and the server's pg_hba.conf).",
        ),
        ("28",),
        r"authentication failed|role \".*\" does not exist|no pg_hba\.conf entry",
    ),
    _Rule(
        Problem(
            "database does not exist",
            "does not exist on that server",
            "Create it (createdb <name>) or fix the database name in DATABASE_URL.",
        ),
        ("3D000",),
        r"database \".*\" does not exist",
    ),
    _Rule(
        Problem(
            "permission denied",
            "does not let that user write the warehouse tables",
            "Grant the user in DATABASE_URL CREATE on the schema and INSERT, UPDATE, DELETE on "
            "its tables.",
        ),
        ("42501",),
    ),
    _Rule(
        Problem(
            "read-only",
            "is read-only (a replica, or a server in recovery)",
            "Point DATABASE_URL at the primary server.",
        ),
        ("25006",),
    ),
    _Rule(
        Problem(
            "read-only",
            "is read-only",
            "The SQLite file or its directory is read-only: check their permissions and mount.",
        ),
        (),
        r"readonly database|read-only file system|permission denied",
    ),
    _Rule(
        Problem(
            "disk full",
            "is out of disk space",
            "The disk holding the server's data directory is full: free space or grow the "
            "volume, then re-run.",
        ),
        ("53100",),
    ),
    _Rule(
        Problem(
            "disk full",
            "is on a full disk",
            "Free space on that disk (or move the file with DATABASE_URL), then re-run.",
        ),
        (),
        r"database or disk is full|no space left on device",
    ),
    _Rule(
        Problem(
            "locked",
            "is locked by another writer",
            "Another process holds the write lock (a second run, or a tool with an open "
            "transaction): stop it or wait for it, then re-run.",
        ),
        ("55P03",),
        r"database is locked|database table is locked",
    ),
    _Rule(
        Problem(
            "cannot open",
            "cannot be opened",
            "Check that the path in DATABASE_URL exists and that its directory is writable.",
        ),
        (),
        r"unable to open database file|not a directory|file exists",
    ),
    _Rule(
        Problem(
            "not a database",
            "is not a SQLite database, or is damaged",
            "Point DATABASE_URL at the warehouse file, or move the damaged file aside and "
            "materialize again (sqlite3 <file> 'PRAGMA integrity_check' says which).",
        ),
        (),
        r"file is not a database|database disk image is malformed",
    ),
    _Rule(
        Problem(
            "disk I/O error",
            "reported a disk I/O error",
            "Check the disk holding that file (dmesg, free space) and the file's integrity.",
        ),
        (),
        r"disk i/o error",
    ),
    _Rule(
        Problem(
            "unknown host",
            "has a host name that does not resolve",
            "Check the host in DATABASE_URL (a typo?) and this machine's DNS.",
        ),
        (),
        r"could not translate host name|name or service not known"
        r"|temporary failure in name resolution|nodename nor servname",
    ),
    _Rule(REFUSED, (), r"connection refused"),
    _Rule(UNREACHABLE, (), r"timeout expired|timed out|no route to host|network is unreachable"),
    _Rule(
        NOT_ACCEPTING,
        ("57P03", "53300"),
        r"the database system is (starting up|shutting down|in recovery|not yet accepting)"
        r"|too many clients|remaining connection slots",
    ),
    _Rule(
        CONNECTION_LOST,
        ("57P01", "57P02", "08"),
        r"server closed the connection|terminating connection|connection already closed"
        r"|could not (receive|send) data|ssl syscall|ssl connection has been closed"
        r"|connection reset|broken pipe|no connection to the server|connection not open",
    ),
)


def classify(error: BaseException) -> Problem | None:
    """The infrastructure problem behind `error`, or None when it is not one (a row the
    database refused, or no database error at all)."""
    driver = _driver_error(error)
    if driver is None:
        return None
    code = str(getattr(driver, "pgcode", None) or "")
    message = str(driver).lower()
    for rule in _RULES:
        if rule.matches(code, message):
            return rule.problem
    if getattr(error, "connection_invalidated", False):
        return CONNECTION_LOST
    if isinstance(error, _UNCLASSIFIED_INFRASTRUCTURE) or any(
        kind.__name__ in ("OperationalError", "InterfaceError") for kind in type(driver).__mro__
    ):
        return OTHER
    return None


def is_connection_lost(error: BaseException) -> bool:
    """Whether `error` is the kind a restart or failover causes (worth a fresh connection).
    SQLite's "database is locked" is not: its busy timeout has already waited."""
    problem = classify(error)
    return problem is not None and problem.transient


def explain(error: BaseException, url: str) -> str:
    """One paragraph for a user: what failed, which database (password hidden) and the fix."""
    problem = classify(error) or OTHER
    what = problem.what
    if problem is OTHER:
        what = f"failed: {_first_line(_driver_error(error) or error)}"
    redaction.register(sa.make_url(normalize_url(url)).password)
    return redaction.redact(
        f"Warehouse unavailable ({problem.label}): {describe_database(url)} {what}. {problem.fix}"
    )


@contextlib.contextmanager
def infrastructure_failures(url: str) -> Iterator[None]:
    """Raise an infrastructure failure inside the block as `WarehouseUnavailable` carrying its
    explanation (the driver's traceback would only repeat it less clearly); anything else,
    a refused row included, passes through unchanged."""
    try:
        yield
    except WarehouseUnavailable:
        raise
    except Exception as error:
        if classify(error) is None:
            raise
        raise WarehouseUnavailable(explain(error, url)) from None


def _driver_error(error: BaseException) -> BaseException | None:
    """The driver's (or the OS's) exception behind `error`, or None for any other error."""
    if isinstance(error, sa.exc.DBAPIError):
        return error.orig
    if isinstance(error, OSError) or type(error).__module__.split(".")[0] in _DRIVER_MODULES:
        return error
    return None


def _first_line(error: BaseException) -> str:
    """The driver's message without libpq's "connection to server ... failed:" preamble."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return re.sub(r"^connection to server .*? failed:\s*(FATAL:\s*)?", "", text)
