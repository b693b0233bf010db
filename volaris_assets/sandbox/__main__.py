"""`python -m volaris_assets.sandbox --port N --faults PROFILE [--seed S] [--as-of ISO]`.

Prints the settings that point the provider clients at it (fake keys only), then serves until
interrupted.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from volaris_assets.sandbox.faults import parse_faults
from volaris_assets.sandbox.server import RateLimit, Sandbox


def _as_of(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _rate_limit(text: str) -> tuple[str, RateLimit]:
    """`provider=N/SECONDS`, e.g. `polygon=5/60`."""
    provider, _, rule = text.partition("=")
    count, _, seconds = rule.partition("/")
    return provider.strip(), RateLimit(int(count), float(seconds or 60))


def _faults(text: str) -> str:
    """The fault spec as given, once it parses: a bad one is the usage error it is."""
    try:
        parse_faults(text)
    except ValueError as error:  # JSON errors are ValueErrors too
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m volaris_assets.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--faults", type=_faults, default="none", help="preset, JSON or key=value,... spec"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--as-of", type=_as_of, default=None, help="market clock (ISO, UTC)")
    parser.add_argument(
        "--rate-limit", type=_rate_limit, action="append", default=[], help="provider=N/SECONDS"
    )
    parser.add_argument("--schwab-token-lifetime", type=float, default=1800.0)
    args = parser.parse_args(argv)
    try:
        sandbox = Sandbox(
            host=args.host,
            port=args.port,
            faults=args.faults,
            seed=args.seed,
            as_of=args.as_of,
            rate_limits=dict(args.rate_limit),
            schwab_token_lifetime_s=args.schwab_token_lifetime,
        )
    except OSError as error:  # the port is taken, or the host is not this machine's
        parser.error(f"cannot listen on {args.host}:{args.port}: {error.strerror or error}")
    print(f"sandbox on {sandbox.base_url} (as of {sandbox.market.as_of.isoformat()})", flush=True)
    for key, value in sandbox.settings().items():
        print(f"{key}={value}", flush=True)
    try:
        sandbox.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
