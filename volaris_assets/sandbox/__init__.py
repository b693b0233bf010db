"""A loopback server that speaks the market-data providers' wire formats (see `server.py`)."""

from volaris_assets.sandbox.limits import RateLimit
from volaris_assets.sandbox.server import Sandbox, start_sandbox

__all__ = ["RateLimit", "Sandbox", "start_sandbox"]
